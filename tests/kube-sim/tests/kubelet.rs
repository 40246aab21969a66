//! The process kubelet with a real program (python3's http.server stands in
//! for a Quiver binary): env from a Secret and the downward API, a ConfigMap
//! volume seen through the rewritten mount path, a loopback pod IP, readiness
//! from the HTTP probe, SIGTERM on deletion, restarts with CrashLoopBackOff.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Config};
use quiver_kube_sim::kubelet::PodMode;
use quiver_kube_sim::{Handle, start};
use serde_json::json;

fn python() -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join("python3")).find(|p| p.is_file())
}

async fn sim(root: PathBuf, python: PathBuf) -> (Handle, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = quiver_kube_sim::Config { pods: PodMode::Process, ..Default::default() };
    config.runtime.root = root;
    config.runtime.probe_period = Duration::from_millis(100);
    config.runtime.images.insert("python".into(), python);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(listener, config).await.unwrap();
    let client = Client::try_from(Config::new(handle.url().parse().unwrap())).unwrap();
    (handle, client)
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn http_get(ip: &str, path: &str) -> Result<String, String> {
    http_get_port(ip, 8080, path).await
}

async fn http_get_port(ip: &str, port: u16, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect((ip, port)).await.map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.map_err(|e| e.to_string())?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).ok_or(buf)
}

const SERVER: &str = "
import os, sys, http.server, functools
d = sys.argv[1]
open(os.path.join(d, 'env.txt'), 'w').write(os.environ['GREETING'] + ' ' + os.environ['MY_NAME'])
open(os.path.join(d, 'hello.txt'), 'w').write(open('/etc/app/hello.txt').read())
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=d)
http.server.ThreadingHTTPServer((sys.argv[2], 8080), h).serve_forever()
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_as_processes_on_their_loopback_ip() {
    let Some(py) = python() else {
        println!("SKIPPED: python3 not on PATH");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (h, client) = sim(root.path().to_path_buf(), py).await;
    let pp = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"greeting": "hi"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(
        &pp,
        &serde_json::from_value(json!({"metadata": {"name": "files"}, "data": {"hello.txt": "from configmap"}}))
            .unwrap(),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = json!({
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "srv",
                "image": "docker.io/library/python:3.13",
                "command": ["python3", "-c", SERVER],
                "args": ["/scratch", "0.0.0.0"],
                "env": [
                    {"name": "GREETING", "valueFrom": {"secretKeyRef": {"name": "s", "key": "greeting"}}},
                    {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "readinessProbe": {"httpGet": {"path": "/env.txt", "port": 8080}},
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}, {"name": "scratch", "mountPath": "/scratch"}]
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "files"}}, {"name": "scratch", "emptyDir": {}}]
        }
    });
    pods.create(&pp, &serde_json::from_value(pod).unwrap()).await.unwrap();
    let ip = eventually("pod ready", || async {
        let p = pods.get("web").await.map_err(|e| e.to_string())?;
        let st = p.status.unwrap_or_default();
        let ready = st.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True");
        match (ready, st.pod_ip) {
            (true, Some(ip)) => Ok(ip),
            (_, ip) => Err(format!("not ready yet (ip {ip:?}), phase {:?}", st.phase)),
        }
    })
    .await;
    assert!(ip.starts_with("127.") && ip != "127.0.0.1", "{ip}");
    assert_eq!(http_get(&ip, "/env.txt").await.unwrap(), "hi web");
    assert_eq!(http_get(&ip, "/hello.txt").await.unwrap(), "from configmap");

    // A Service in front: its ClusterIP (a loopback address) forwards port 80
    // to the pod's 8080, and its DNS name resolves to the ClusterIP.
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
    let svc = svcs
        .create(&pp, &serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})).unwrap())
        .await
        .unwrap();
    let cluster_ip = svc.spec.unwrap().cluster_ip.unwrap();
    let resolved = quiver_kube_sim::dns::resolve(&h.sim, "web.default.svc.cluster.local").unwrap();
    assert_eq!(resolved.iter().map(|i| i.to_string()).collect::<Vec<_>>(), std::slice::from_ref(&cluster_ip));
    let through = eventually("service forwards", || async { http_get_port(&cluster_ip, 80, "/env.txt").await }).await;
    assert_eq!(through, "hi web");

    // Deletion: the process gets SIGTERM (http.server dies of it), then the Pod goes.
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("pod removed", || async {
        match pods.get_opt("web").await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(p) => Err(format!("still there: {:?}", p.metadata.deletion_timestamp)),
        }
    })
    .await;
    assert!(http_get(&ip, "/env.txt").await.is_err(), "the server still answers after deletion");
}

#[tokio::test]
async fn crashing_containers_restart_with_crash_loop_back_off_and_unknown_images_do_not_start() {
    let Some(py) = python() else {
        println!("SKIPPED: python3 not on PATH");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (_h, client) = sim(root.path().to_path_buf(), py).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let crash = json!({"metadata": {"name": "crash"}, "spec": {"containers": [{
        "name": "c", "image": "python", "command": ["python3", "-c", "import sys; print('boom', flush=True); sys.exit(3)"]
    }]}});
    let unknown = json!({"metadata": {"name": "nope"}, "spec": {"containers": [{"name": "c", "image": "ghcr.io/x/not-mapped:1"}]}});
    for p in [crash, unknown] {
        pods.create(&PostParams::default(), &serde_json::from_value(p).unwrap()).await.unwrap();
    }
    eventually("crash loop", || async {
        let p = pods.get("crash").await.map_err(|e| e.to_string())?;
        let cs = p.status.unwrap_or_default().container_statuses.unwrap_or_default();
        let c = cs.first().ok_or("no container status")?;
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref()).and_then(|w| w.reason.clone());
        let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| t.exit_code);
        (c.restart_count >= 1 && waiting.as_deref() == Some("CrashLoopBackOff") && last == Some(3))
            .then_some(())
            .ok_or(format!("{c:?}"))
    })
    .await;
    let logs = pods.logs("crash", &Default::default()).await.unwrap();
    assert!(logs.lines().any(|l| l == "boom"), "{logs:?}");
    eventually("image not mapped", || async {
        let p = pods.get("nope").await.map_err(|e| e.to_string())?;
        let cs = p.status.unwrap_or_default().container_statuses.unwrap_or_default();
        let reason = cs.first().and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
        // ErrImagePull first, then ImagePullBackOff, as the real kubelet reports.
        (reason.as_deref() == Some("ImagePullBackOff")).then_some(()).ok_or(format!("{cs:?}"))
    })
    .await;
}
