//! The operator's window on the data plane, with a real in-process worker
//! behind a TCP proxy that counts connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use quiver_operator::activity::{ActivitySource, FlightActivity, Target};
use quiver_worker::server::{WorkerConfig, spawn};
use quiver_worker::source::{LoadOptions, ShardId};
use serde_json::json;

/// Forwards `listen` to `to`; returns how many connections it accepted.
async fn counting_proxy(listen: &str, to: std::net::SocketAddr) -> Arc<AtomicUsize> {
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    accepted
}

#[tokio::test]
async fn passes_over_the_same_workers_reuse_their_connections() {
    let worker = spawn(WorkerConfig {
        datasets: vec![],
        shard: ShardId::new(0, 1).unwrap(),
        token: None,
        load: LoadOptions::default(),
        result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
    })
    .await
    .unwrap();
    // The pod's IP is a loopback address of its own, on the Flight port.
    let accepted = counting_proxy("127.0.0.77:8815", worker.flight_addr()).await;
    let pods: Vec<Pod> = vec![
        serde_json::from_value(json!({"metadata": {"name": "demo-workers-0", "namespace": "analytics"},
                                      "status": {"podIP": "127.0.0.77"}}))
        .unwrap(),
    ];
    let activity = FlightActivity::new("cluster.local", Duration::from_secs(5));
    let target = Target { cluster: "demo".into(), namespace: "analytics".into(), replicas: 1, token: None };
    for pass in 0..3 {
        let reports = activity.observe(&target, &pods).await;
        assert!(reports[0].outcome.is_ok(), "pass {pass}: {:?}", reports[0].outcome);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "three passes over one worker dial it once");
}
