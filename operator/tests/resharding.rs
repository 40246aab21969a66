//! Re-sharding with real workers: the pod template the operator builds is run
//! as in-process workers (shard index from the pod name, count from
//! `QUIVER_SHARDS`, datasets from the `NAME-datasets` ConfigMap) over generated Parquet
//! files, and their `stats` go through the operator's status summary. Before a
//! scale settles, old-sharding answers are not counted; once it settles, every
//! row is counted exactly once.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use quiver_operator::activity::{WorkerReport, stats_of};
use quiver_operator::children::build_worker_statefulset;
use quiver_operator::crd::DataCluster;
use quiver_operator::status::summarize_shards;
use quiver_operator::validate::{Defaults, ValidCluster, validate};
use quiver_worker::protocol::LoadState;
use quiver_worker::server::{RunningWorker, WorkerConfig, spawn};
use quiver_worker::source::{LoadOptions, S3Defaults, ShardId};
use quiver_worker::spec::{DatasetSpec, Format, Preset};
use quiver_worker::synth::{GenOptions, generate};

const ROWS: u64 = 24_000;

fn env(sts: &StatefulSet, name: &str) -> String {
    let c = &sts.spec.template.spec.as_ref().unwrap().containers[0];
    c.env.as_ref().unwrap().iter().find(|e| e.name == name).unwrap().value.clone().unwrap()
}

/// What the kubelet and the worker binary do with the pod template for pod `ordinal`.
async fn start_pod(c: &ValidCluster, sts: &StatefulSet, ordinal: u32) -> RunningWorker {
    let pod_name = format!("{}-{ordinal}", sts.metadata.name.as_ref().unwrap());
    let index: u32 = pod_name.rsplit('-').next().unwrap().parse().unwrap();
    let shards: u32 = env(sts, "QUIVER_SHARDS").parse().unwrap();
    assert_eq!(env(sts, "QUIVER_DATASETS_FILE"), "/etc/quiver/datasets/datasets.json");
    let config_map = quiver_operator::children::build_datasets_config_map(c);
    let datasets: Vec<DatasetSpec> = serde_json::from_str(&config_map.data.unwrap()["datasets.json"]).unwrap();
    assert_eq!(datasets.len(), c.datasets.len());
    spawn(WorkerConfig {
        datasets,
        shard: ShardId::new(index, shards).unwrap(),
        token: None,
        load: LoadOptions::default(),
        result_cache_bytes: quiver_worker::cache::DEFAULT_BUDGET,
    })
    .await
    .unwrap()
}

async fn reports(pods: &[(u32, &RunningWorker)]) -> Vec<WorkerReport> {
    // Wait until every pod finished loading, as the readiness probe would.
    for _ in 0..400 {
        let r = stats_of(pods.iter().map(|(i, w)| (*i, w.flight_url())).collect(), None, Duration::from_secs(5)).await;
        let loaded = r.iter().all(|r| {
            r.outcome.as_ref().is_ok_and(|s| s.datasets.iter().all(|d| d.state != LoadState::Loading && !d.reloading))
        });
        if loaded {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("workers did not finish loading");
}

fn cluster(dir: &std::path::Path, replicas: i32) -> ValidCluster {
    let yaml = format!(
        "apiVersion: quiver.dev/v1alpha1\nkind: DataCluster\nmetadata: {{name: towers, namespace: t, uid: u1, generation: 1}}\n\
         spec:\n  workers: {{replicas: {replicas}}}\n  datasets:\n  - {{name: celltowers, preset: celltowers, source: 'file://{}/'}}\n",
        dir.display()
    );
    let dc: DataCluster = serde_yaml::from_str(&yaml).unwrap();
    validate(&dc, &Defaults::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_from_three_to_five_workers_counts_every_row_once_when_settled() {
    let dir = tempfile::tempdir().unwrap();
    generate(
        &GenOptions {
            preset: Preset::Celltowers,
            rows: ROWS,
            out: format!("file://{}/", dir.path().display()),
            format: Format::Parquet,
            files: 7,
            seed: 11,
            s3: S3Defaults::default(),
        },
        false,
    )
    .await
    .unwrap();

    // Three workers, settled.
    let three = cluster(dir.path(), 3);
    let sts3 = build_worker_statefulset(&three, 3);
    let mut old = Vec::new();
    for i in 0..3 {
        old.push(start_pod(&three, &sts3, i).await);
    }
    let r = reports(&[(0, &old[0]), (1, &old[1]), (2, &old[2])]).await;
    let s = summarize_shards(&three, 3, 3, &r);
    assert_eq!((s.ready, s.datasets[0].rows), (3, ROWS as i64));

    // kubectl scale --replicas=5: new template. Mid-roll: pods 3 and 4 are new,
    // pod 2 was replaced, pods 0 and 1 still run the three-shard template.
    let five = cluster(dir.path(), 5);
    let sts5 = build_worker_statefulset(&five, 5);
    let old2 = old.pop().unwrap();
    old2.shutdown().await.unwrap();
    let mut new = Vec::new();
    for i in 2..5 {
        new.push((i, start_pod(&five, &sts5, i).await));
    }
    let mut mid_pods: Vec<(u32, &RunningWorker)> = vec![(0, &old[0]), (1, &old[1])];
    mid_pods.extend(new.iter().map(|(i, w)| (*i, w)));
    let r = reports(&mid_pods).await;
    let mid = summarize_shards(&five, 5, 5, &r);
    assert_eq!((mid.ready, mid.stale), (3, 2), "old-sharding workers are not ready");
    assert!(mid.datasets[0].rows < ROWS as i64, "shards 0 and 1 of five are missing, none double-counted");

    // Settled: pods 0 and 1 restarted with the new template.
    for w in old {
        w.shutdown().await.unwrap();
    }
    for i in 0..2 {
        new.push((i, start_pod(&five, &sts5, i).await));
    }
    let pods: Vec<(u32, &RunningWorker)> = new.iter().map(|(i, w)| (*i, w)).collect();
    let r = reports(&pods).await;
    let settled = summarize_shards(&five, 5, 5, &r);
    assert_eq!(settled.ready, 5);
    assert_eq!(settled.stale, 0);
    assert_eq!(settled.datasets[0].rows, ROWS as i64, "every row once");
    // And each shard holds a share: nothing landed on one worker only.
    for rep in &r {
        let rows = rep.outcome.as_ref().unwrap().datasets[0].rows;
        assert!(rows > 0, "shard {} is empty", rep.ordinal);
    }
    for (_, w) in new {
        w.shutdown().await.unwrap();
    }
}
