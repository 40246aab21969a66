//! The workload controllers and the instant kubelet, seen through kube-rs:
//! Deployments roll out through ReplicaSets, StatefulSets create ordinal pods
//! in order (or in parallel) and honour their update strategy.

use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Client, Config};
use quiver_kube_sim::{Handle, start};
use serde_json::{Value, json};

async fn sim() -> (Handle, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(listener, Default::default()).await.unwrap();
    let config = Config::new(handle.url().parse().unwrap());
    (handle, Client::try_from(config).unwrap())
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if tokio::time::Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn workload(kind: &str, name: &str, replicas: i64, image: &str, extra: Value) -> Value {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}]}}
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

async fn pod_images(pods: &Api<Pod>, app: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.metadata.name.unwrap(), p.spec.unwrap().containers[0].image.clone().unwrap()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn deployment_rolls_out_a_new_template_through_a_second_replica_set() {
    let (_h, client) = sim().await;
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("test").force();
    deps.patch("web", &pp, &Patch::Apply(workload("Deployment", "web", 3, "web:1", json!({})))).await.unwrap();
    eventually("3 ready pods", || async {
        let d = deps.get("web").await.unwrap();
        let st = d.status.unwrap_or_default();
        (st.ready_replicas == Some(3) && st.updated_replicas == Some(3) && st.observed_generation == Some(1))
            .then_some(())
            .ok_or(format!("{st:?}"))
    })
    .await;
    let running = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    assert!(running.items.iter().all(|p| p.status.as_ref().unwrap().pod_ip.as_deref().unwrap().starts_with("127.")));

    deps.patch("web", &pp, &Patch::Apply(workload("Deployment", "web", 3, "web:2", json!({})))).await.unwrap();
    eventually("rolled to web:2", || async {
        let d = deps.get("web").await.unwrap();
        let st = d.status.unwrap_or_default();
        let images = pod_images(&pods, "web").await;
        let done = st.observed_generation == Some(2)
            && st.updated_replicas == Some(3)
            && st.ready_replicas == Some(3)
            && st.replicas == Some(3)
            && images.len() == 3
            && images.iter().all(|(_, i)| i == "web:2");
        done.then_some(()).ok_or(format!("{st:?} {images:?}"))
    })
    .await;
    let rs = sets.list(&Default::default()).await.unwrap().items;
    assert_eq!(rs.len(), 2);
    let mut replicas: Vec<i32> = rs.iter().map(|r| r.spec.replicas.unwrap()).collect();
    replicas.sort();
    assert_eq!(replicas, [0, 3]);
}

#[tokio::test]
async fn ordered_statefulset_creates_ordinals_in_order_and_removes_from_the_top() {
    let (_h, client) = sim().await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("test").force();
    let mut added = pods.watch(&WatchParams::default().labels("app=w").timeout(20), "0").await.unwrap().boxed();
    sts.patch("w", &pp, &Patch::Apply(workload("StatefulSet", "w", 3, "w:1", json!({"serviceName": "w"}))))
        .await
        .unwrap();
    let mut order = Vec::new();
    while order.len() < 3 {
        if let WatchEvent::Added(p) = added.try_next().await.unwrap().unwrap() {
            let spec = p.spec.unwrap();
            assert_eq!((spec.hostname.as_deref(), spec.subdomain.as_deref()), (p.metadata.name.as_deref(), Some("w")));
            order.push(p.metadata.name.unwrap());
        }
    }
    assert_eq!(order, ["w-0", "w-1", "w-2"]);
    drop(added);
    eventually("3 ready workers", || async {
        let st = sts.get("w").await.unwrap().status.unwrap_or_default();
        (st.ready_replicas == Some(3)).then_some(()).ok_or(format!("{st:?}"))
    })
    .await;

    // Partition 1: only ordinals >= 1 get the new template.
    let upd =
        json!({"serviceName": "w", "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
    sts.patch("w", &pp, &Patch::Apply(workload("StatefulSet", "w", 3, "w:2", upd))).await.unwrap();
    eventually("partitioned update", || async {
        let images = pod_images(&pods, "w").await;
        let want = vec![
            ("w-0".to_string(), "w:1".to_string()),
            ("w-1".to_string(), "w:2".to_string()),
            ("w-2".to_string(), "w:2".to_string()),
        ];
        let st = sts.get("w").await.unwrap().status.unwrap_or_default();
        (images == want && st.updated_replicas == Some(2) && st.ready_replicas == Some(3))
            .then_some(())
            .ok_or(format!("{images:?} {st:?}"))
    })
    .await;

    // OnDelete: a new template waits until the pod is deleted.
    let on_delete = json!({"serviceName": "w", "updateStrategy": {"type": "OnDelete"}});
    sts.patch("w", &pp, &Patch::Apply(workload("StatefulSet", "w", 3, "w:3", on_delete.clone()))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pod_images(&pods, "w").await.iter().all(|(_, i)| i != "w:3"));
    pods.delete("w-1", &DeleteParams::default()).await.unwrap();
    eventually("w-1 recreated at w:3", || async {
        let images = pod_images(&pods, "w").await;
        images.contains(&("w-1".to_string(), "w:3".to_string())).then_some(()).ok_or(format!("{images:?}"))
    })
    .await;

    sts.patch("w", &pp, &Patch::Apply(workload("StatefulSet", "w", 1, "w:3", on_delete))).await.unwrap();
    eventually("scaled to 1", || async {
        let images = pod_images(&pods, "w").await;
        (images.len() == 1 && images[0].0 == "w-0").then_some(()).ok_or(format!("{images:?}"))
    })
    .await;
}

#[tokio::test]
async fn parallel_statefulset_creates_every_ordinal_at_once() {
    let (_h, client) = sim().await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("test").force();
    let spec = json!({"serviceName": "p", "podManagementPolicy": "Parallel"});
    sts.patch("p", &pp, &Patch::Apply(workload("StatefulSet", "p", 4, "p:1", spec))).await.unwrap();
    eventually("4 ready", || async {
        let st = sts.get("p").await.unwrap().status.unwrap_or_default();
        (st.ready_replicas == Some(4) && st.current_revision == st.update_revision)
            .then_some(())
            .ok_or(format!("{st:?}"))
    })
    .await;
    assert_eq!(pod_images(&pods, "p").await.len(), 4);
}

async fn dns_a(server: std::net::SocketAddr, name: &str) -> (u8, Vec<std::net::Ipv4Addr>) {
    let mut q = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&q, server).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await.unwrap().unwrap();
    let r = &buf[..n];
    let count = u16::from_be_bytes([r[6], r[7]]) as usize;
    // Answers follow the echoed question; each is 16 bytes with a name pointer.
    let start = q.len();
    let ips = (0..count).map(|i| {
        let a = &r[start + i * 16 + 12..start + i * 16 + 16];
        std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3])
    });
    (r[3] & 0x0f, ips.collect())
}

#[tokio::test]
async fn services_get_endpoints_and_dns_names_for_their_ready_pods() {
    let (h, client) = sim().await;
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
    let eps: Api<k8s_openapi::api::core::v1::Endpoints> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("test").force();
    svcs.patch(
        "w",
        &pp,
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "w"},
            "spec": {"clusterIP": "None", "selector": {"app": "w"}, "ports": [{"name": "flight", "port": 8815}]}
        })),
    )
    .await
    .unwrap();
    let spec = json!({"serviceName": "w", "podManagementPolicy": "Parallel"});
    sts.patch("w", &pp, &Patch::Apply(workload("StatefulSet", "w", 2, "w:1", spec))).await.unwrap();
    eventually("endpoints for 2 pods", || async {
        let e = eps.get("w").await.map_err(|e| e.to_string())?;
        let n = e.subsets.unwrap_or_default().first().and_then(|s| s.addresses.clone()).map_or(0, |a| a.len());
        (n == 2).then_some(()).ok_or(format!("{n} addresses"))
    })
    .await;
    let dns = h.sim.dns_addr().unwrap();
    let p0 = pods.get("w-0").await.unwrap().status.unwrap().pod_ip.unwrap();
    let (rcode, ips) = dns_a(dns, "w-0.w.default.svc.cluster.local").await;
    assert_eq!((rcode, ips.iter().map(|i| i.to_string()).collect::<Vec<_>>()), (0, vec![p0.clone()]));
    let (rcode, ips) = dns_a(dns, "w.default.svc.cluster.local").await;
    assert_eq!((rcode, ips.len()), (0, 2));
    assert!(ips.iter().any(|i| i.to_string() == p0));
    let (rcode, _) = dns_a(dns, "nope.default.svc.cluster.local").await;
    assert_eq!(rcode, 3);
}

#[tokio::test]
async fn pods_that_fit_no_node_are_unschedulable_until_the_node_matches() {
    let (_h, client) = sim().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let pod = json!({"metadata": {"name": "picky"}, "spec": {"nodeSelector": {"disktype": "ssd"}, "containers": [{"name": "c", "image": "x"}]}});
    pods.create(&Default::default(), &serde_json::from_value(pod).unwrap()).await.unwrap();
    eventually("unschedulable", || async {
        let st = pods.get("picky").await.unwrap().status.unwrap_or_default();
        let c = st.conditions.unwrap_or_default();
        let c = c.iter().find(|c| c.type_ == "PodScheduled").ok_or("no PodScheduled condition")?;
        (c.status == "False" && c.reason.as_deref() == Some("Unschedulable")).then_some(()).ok_or(format!("{c:?}"))
    })
    .await;
    let node = nodes.list(&Default::default()).await.unwrap().items.remove(0).metadata.name.unwrap();
    nodes
        .patch(&node, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"disktype": "ssd"}}})))
        .await
        .unwrap();
    eventually("scheduled and running once the node matches", || async {
        let p = pods.get("picky").await.unwrap();
        let phase = p.status.and_then(|s| s.phase);
        (p.spec.unwrap().node_name.as_deref() == Some(node.as_str()) && phase.as_deref() == Some("Running"))
            .then_some(())
            .ok_or(format!("{phase:?}"))
    })
    .await;
}

#[tokio::test]
async fn a_pod_quota_refuses_pods_and_the_controller_reports_failed_create() {
    let (_h, client) = sim().await;
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> = Api::namespaced(client.clone(), "default");
    quotas
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}})).unwrap(),
        )
        .await
        .unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let spec = json!({"serviceName": "q", "podManagementPolicy": "Parallel"});
    sts.patch("q", &PatchParams::apply("test"), &Patch::Apply(workload("StatefulSet", "q", 2, "q:1", spec)))
        .await
        .unwrap();
    let ev = eventually("FailedCreate event", || async {
        let list = events.list(&ListParams::default().fields("involvedObject.name=q")).await.unwrap();
        list.items.into_iter().find(|e| e.reason.as_deref() == Some("FailedCreate")).ok_or("no event".to_string())
    })
    .await;
    let msg = ev.message.unwrap();
    assert!(
        msg.contains("create Pod q-1 in StatefulSet q failed error: pods \"q-1\" is forbidden: exceeded quota: q"),
        "{msg}"
    );
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(pod_images(&pods, "q").await.len(), 1);
    let direct = pods
        .create(
            &Default::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "extra"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    match direct {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden")),
        other => panic!("{other:?}"),
    }
}
