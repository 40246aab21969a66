//! The simulator driven by the kube-rs client, as the operator drives a real
//! API server: CRUD with the real error shapes, watches, server-side apply,
//! subresources, CRD validation, garbage collection and request accounting.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use kube::{Client, Config};
use quiver_kube_sim::{Handle, start};
use serde_json::{Value, json};

async fn sim(config: quiver_kube_sim::Config) -> (Handle, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(listener, config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    handle.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    (handle, Client::try_from(config).unwrap())
}

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data,
    }))
    .unwrap()
}

#[tokio::test]
async fn crud_answers_with_the_real_servers_status_objects() {
    let (_h, client) = sim(Default::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    let created = api.create(&pp, &cm("a", json!({"app": "x"}), json!({"k": "v"}))).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let dup = api_error(api.create(&pp, &cm("a", json!({}), json!({}))).await.unwrap_err());
    assert_eq!((dup.code, dup.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(dup.message, "configmaps \"a\" already exists");

    // A write with the version it read succeeds; a second one with the same
    // (now stale) version is refused.
    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = api.replace("a", &pp, &changed).await.unwrap();
    assert_ne!(updated.metadata.resource_version, created.metadata.resource_version);
    let stale = api_error(api.replace("a", &pp, &changed).await.unwrap_err());
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));
    assert!(stale.message.contains("the object has been modified"));

    let mut generated = cm("", json!({}), json!({}));
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = api.create(&pp, &generated).await.unwrap();
    let gname = g.metadata.name.unwrap();
    assert!(gname.starts_with("gen-") && gname.len() == 9, "{gname}");

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let gone = api_error(api.get("a").await.unwrap_err());
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(gone.message, "configmaps \"a\" not found");
    let missing_ns: Api<ConfigMap> = Api::namespaced(client, "nowhere");
    let e = api_error(missing_ns.create(&pp, &cm("b", json!({}), json!({}))).await.unwrap_err());
    assert_eq!((e.code, e.message.as_str()), (404, "namespaces \"nowhere\" not found"));
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors() {
    let (_h, client) = sim(Default::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for (n, tier) in [("w1", "worker"), ("w2", "worker"), ("d1", "dashboard")] {
        api.create(&PostParams::default(), &cm(n, json!({"tier": tier}), json!({}))).await.unwrap();
    }
    let names = |l: kube::api::ObjectList<ConfigMap>| -> Vec<String> {
        l.items.into_iter().map(|c| c.metadata.name.unwrap()).collect()
    };
    assert_eq!(names(api.list(&ListParams::default().labels("tier=worker")).await.unwrap()), ["w1", "w2"]);
    assert_eq!(names(api.list(&ListParams::default().labels("tier notin (worker)")).await.unwrap()), ["d1"]);
    assert_eq!(names(api.list(&ListParams::default().fields("metadata.name=w2")).await.unwrap()), ["w2"]);
}

#[tokio::test]
async fn watches_resume_from_a_version_and_a_too_old_one_gets_410() {
    let (_h, client) = sim(quiver_kube_sim::Config { history: 5, ..Default::default() }).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api.create(&PostParams::default(), &cm("c0", json!({}), json!({}))).await.unwrap();
    let rv0 = first.metadata.resource_version.clone().unwrap();
    api.create(&PostParams::default(), &cm("c1", json!({"pick": "yes"}), json!({}))).await.unwrap();
    api.create(&PostParams::default(), &cm("c2", json!({}), json!({}))).await.unwrap();

    // From rv0 with a selector: only c1's creation, then its label removal as DELETED.
    let mut stream = api.watch(&WatchParams::default().labels("pick=yes").timeout(10), &rv0).await.unwrap().boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Added(c) => assert_eq!(c.metadata.name.as_deref(), Some("c1")),
        other => panic!("expected ADDED c1, got {other:?}"),
    }
    api.patch("c1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"pick": null}}})))
        .await
        .unwrap();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Deleted(c) => assert_eq!(c.metadata.name.as_deref(), Some("c1")),
        other => panic!("expected DELETED c1 (left the selection), got {other:?}"),
    }
    drop(stream);

    for i in 3..12 {
        api.create(&PostParams::default(), &cm(&format!("c{i}"), json!({}), json!({}))).await.unwrap();
    }
    let mut old = api.watch(&WatchParams::default(), &rv0).await.unwrap().boxed();
    match old.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(s) => {
            assert_eq!(s.code, 410);
            assert_eq!(s.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_with_bookmarks_and_streaming_lists_sees_changes() {
    let (_h, client) =
        sim(quiver_kube_sim::Config { bookmark_interval: Duration::from_millis(200), ..Default::default() }).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("before", json!({}), json!({}))).await.unwrap();
    for config in [watcher::Config::default(), watcher::Config::default().streaming_lists()] {
        let mut events = watcher(api.clone(), config).boxed();
        let mut seen_init = false;
        let name = format!("after-{}", rand_suffix());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ev = tokio::time::timeout_at(deadline, events.try_next())
                .await
                .expect("watcher event in time")
                .unwrap()
                .unwrap();
            match ev {
                watcher::Event::InitApply(c) if c.metadata.name.as_deref() == Some("before") => seen_init = true,
                watcher::Event::InitDone => {
                    assert!(seen_init, "the initial list carries the existing object");
                    api.create(&PostParams::default(), &cm(&name, json!({}), json!({}))).await.unwrap();
                }
                watcher::Event::Apply(c) if c.metadata.name.as_deref() == Some(name.as_str()) => break,
                _ => {}
            }
        }
    }
}

fn rand_suffix() -> String {
    format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos())
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"app": "d"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": image}]}}
        }
    })
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_noop_applies_write_nothing() {
    // No controllers: their status writes would be watch events too.
    let (_h, client) = sim(quiver_kube_sim::Config { controllers: false, ..Default::default() }).await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let a = PatchParams::apply("manager-a");
    let first = api.patch("d", &a, &Patch::Apply(deployment(2, "x:1"))).await.unwrap();
    assert_eq!(first.metadata.generation, Some(1));
    let rv = first.metadata.resource_version.clone();

    // Same config again: nothing changes, and no watch event is sent.
    let mut events = api.watch(&WatchParams::default().timeout(2), rv.as_deref().unwrap()).await.unwrap().boxed();
    let again = api.patch("d", &a, &Patch::Apply(deployment(2, "x:1"))).await.unwrap();
    assert_eq!(again.metadata.resource_version, rv);
    assert_eq!(again.metadata.generation, Some(1));
    let ev = tokio::time::timeout(Duration::from_millis(500), events.try_next()).await;
    assert!(ev.is_err() || matches!(ev, Ok(Ok(None))), "a no-op apply emitted {ev:?}");

    // Another manager changing an owned field conflicts, naming the field.
    let b = PatchParams::apply("manager-b");
    let conflict = api_error(api.patch("d", &b, &Patch::Apply(deployment(3, "x:1"))).await.unwrap_err());
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        "Apply failed with 1 conflict: conflict with \"manager-a\" using apps/v1: .spec.replicas"
    );

    // Forced, it takes the field over; the spec change bumps the generation.
    let forced = api.patch("d", &b.clone().force(), &Patch::Apply(deployment(3, "x:1"))).await.unwrap();
    assert_eq!(forced.spec.replicas, Some(3));
    assert_eq!(forced.metadata.generation, Some(2));
    let managers: Vec<String> = forced.metadata.managed_fields.unwrap().into_iter().filter_map(|m| m.manager).collect();
    assert!(managers.contains(&"manager-a".to_string()) && managers.contains(&"manager-b".to_string()));

    // Status writes go through the subresource and leave the generation alone.
    let st = api
        .patch_status(
            "d",
            &PatchParams::apply("ctrl").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "status": {"readyReplicas": 3, "replicas": 3}
            })),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().ready_replicas, Some(3));
    assert_eq!(st.metadata.generation, Some(2));
    // And the main resource ignores status.
    let mut with_status = deployment(3, "x:1");
    with_status["status"] = json!({"readyReplicas": 0});
    let main = api.patch("d", &b.clone().force(), &Patch::Apply(with_status)).await.unwrap();
    assert_eq!(main.status.unwrap().ready_replicas, Some(3));

    // The scale subresource reads and writes spec.replicas.
    let scale = api.get_scale("d").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=d"));
    api.patch_scale("d", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await.unwrap();
    assert_eq!(api.get("d").await.unwrap().spec.replicas, Some(5));
}

async fn install_datacluster_crd(client: &Client) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds/datacluster.yaml")).unwrap();
    let crd: Value = serde_yaml::from_str(&yaml).unwrap();
    crds.patch("dataclusters.quiver.dev", &PatchParams::apply("test").force(), &Patch::Apply(crd)).await.unwrap();
    let gvk = GroupVersionKind::gvk("quiver.dev", "v1alpha1", "DataCluster");
    let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    assert!(caps.subresources.iter().any(|(s, _)| s.plural.ends_with("scale")));
    Api::namespaced_with(client.clone(), "default", &ApiResource { ..ar })
}

/// The message of the CRD's rule on `spec.dashboard.autoscaling` (read from
/// crds/, so the test follows the CRD).
fn autoscaling_rule_message() -> String {
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds/datacluster.yaml")).unwrap();
    let crd: Value = serde_yaml::from_str(&yaml).unwrap();
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/dashboard/properties/autoscaling/x-kubernetes-validations/0/message")
        .and_then(Value::as_str)
        .expect("the CRD has a rule on spec.dashboard.autoscaling")
        .to_string()
}

fn datacluster(name: &str, autoscaling: Value) -> Value {
    json!({
        "apiVersion": "quiver.dev/v1alpha1", "kind": "DataCluster",
        "metadata": {"name": name},
        "spec": {
            "workers": {"replicas": 2},
            "dashboard": {"autoscaling": autoscaling},
            "datasets": [{"name": "t", "preset": "celltowers", "source": "s3://bucket/t/"}],
            "unknownField": true
        }
    })
}

#[tokio::test]
async fn custom_resources_are_defaulted_pruned_and_checked_by_their_cel_rules() {
    let (_h, client) = sim(Default::default()).await;
    let dcs = install_datacluster_crd(&client).await;
    let obj: DynamicObject =
        serde_json::from_value(datacluster("good", json!({"minReplicas": 1, "maxReplicas": 2}))).unwrap();
    let created = dcs.create(&PostParams::default(), &obj).await.unwrap();
    let spec = &created.data["spec"];
    assert_eq!(spec["lifecycle"]["suspend"], json!(false), "defaults applied: {spec}");
    assert!(spec.get("unknownField").is_none(), "unknown fields pruned");

    let bad: DynamicObject =
        serde_json::from_value(datacluster("bad", json!({"minReplicas": 3, "maxReplicas": 2}))).unwrap();
    let e = api_error(dcs.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        format!(
            "DataCluster.quiver.dev \"bad\" is invalid: spec.dashboard.autoscaling: Invalid value: \"object\": {}",
            autoscaling_rule_message()
        )
    );
    let bad_name: DynamicObject =
        serde_json::from_value(datacluster("a-very-long-name-that-is-more-than-forty-four-characters", json!({})))
            .unwrap();
    let e = api_error(dcs.create(&PostParams::default(), &bad_name).await.unwrap_err());
    assert!(e.message.contains("at most 44 characters"), "{}", e.message);

    // Scale through the subresource, as `kubectl scale dc` does.
    let scaled = dcs
        .patch_scale("good", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));
    let after = dcs.get("good").await.unwrap();
    assert_eq!(after.data["spec"]["workers"]["replicas"], 3);
    assert_eq!(after.metadata.generation, Some(2));
}

#[tokio::test]
async fn dependents_are_garbage_collected_with_their_owner_unless_orphaned() {
    let (_h, client) = sim(Default::default()).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    for owner in ["o1", "o2"] {
        let o = cms.create(&PostParams::default(), &cm(owner, json!({}), json!({}))).await.unwrap();
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{owner}-child"), "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": owner, "uid": o.metadata.uid.unwrap(), "controller": true
            }]},
            "stringData": {"token": "t"}
        }))
        .unwrap();
        let child = secrets.create(&PostParams::default(), &s).await.unwrap();
        assert_eq!(child.data.unwrap()["token"].0, b"t");
    }
    cms.delete("o1", &DeleteParams::background()).await.unwrap();
    cms.delete("o2", &DeleteParams::orphan()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = secrets
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|s| s.metadata.name.unwrap())
            .collect();
        let owners_left = cms.list(&Default::default()).await.unwrap().items.len();
        if left == ["o2-child"] && owners_left == 0 {
            let orphan = secrets.get("o2-child").await.unwrap();
            assert!(orphan.metadata.owner_references.unwrap_or_default().is_empty());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still there: {left:?}, {owners_left} owners");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn requests_are_counted_per_client_verb_and_resource() {
    let (h, client) = sim(Default::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("x", json!({}), json!({}))).await.unwrap();
    api.get("x").await.unwrap();
    api.get("x").await.unwrap();
    let counts = h.sim.accounting.snapshot();
    let get = counts.iter().find(|c| c.verb == "get" && c.resource == "configmaps").unwrap();
    assert_eq!(get.count, 2);
    // kube-rs sends no User-Agent: the kubeconfig's token names the client.
    assert_eq!(get.client, "quiver-sim-token");
    let body: Value = reqwest_get(&format!("{}/sim/requests", h.url())).await;
    assert!(
        body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["verb"] == "create" && r["resource"] == "configmaps" && r["count"] == 1)
    );
}

#[tokio::test]
async fn writes_are_logged_with_client_object_order_and_outcome() {
    let (h, _) = sim(Default::default()).await;
    let a: Api<ConfigMap> = Api::namespaced(client_as(&h, "replica-a").await, "default");
    let b: Api<ConfigMap> = Api::namespaced(client_as(&h, "replica-b").await, "default");
    let created = a.create(&PostParams::default(), &cm("x", json!({}), json!({"k": "1"}))).await.unwrap();
    a.get("x").await.unwrap();
    let pp = PatchParams::apply("mgr").force();
    b.patch("x", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "2"}})))
        .await
        .unwrap();
    // The same apply again changes nothing; a stale update is refused.
    b.patch("x", &pp, &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "2"}})))
        .await
        .unwrap();
    assert_eq!(api_error(a.replace("x", &PostParams::default(), &created).await.unwrap_err()).code, 409);
    a.delete("x", &DeleteParams::default()).await.unwrap();

    let log = h.sim.writes.snapshot();
    let seen: Vec<(&str, &str, &str, u16, bool)> =
        log.iter().map(|w| (w.client.as_str(), w.verb.as_str(), w.name.as_str(), w.code, w.changed)).collect();
    assert_eq!(
        seen,
        [
            ("replica-a", "create", "x", 201, true),
            ("replica-b", "apply", "x", 200, true),
            ("replica-b", "apply", "x", 200, false),
            ("replica-a", "update", "x", 409, false),
            ("replica-a", "delete", "x", 200, true),
        ],
        "reads are not writes; each write names its client, object and outcome"
    );
    assert!(log.iter().all(|w| w.resource == "configmaps" && w.namespace == "default"));
    // Ordered by the store: a change's version is its resourceVersion, one
    // that changed nothing sorts after the change it saw last.
    let versions: Vec<u64> = log.iter().map(|w| w.version).collect();
    assert!(versions.windows(2).all(|p| p[0] <= p[1]), "{versions:?}");
    assert_eq!(log[0].version.to_string(), created.metadata.resource_version.unwrap());
    assert_eq!(log[2].version, log[1].version, "the no-op apply saw the first apply's change last");
    assert!(log.windows(2).all(|p| p[0].unix_micros <= p[1].unix_micros));
    let body: Value = reqwest_get(&format!("{}/sim/writes", h.url())).await;
    assert_eq!(body["writes"].as_array().unwrap().len(), 5);
    assert_eq!(body["writes"][3]["code"], 409);
}

async fn reqwest_get(url: &str) -> Value {
    // A plain HTTP/1.1 GET over a TcpStream keeps the test free of another client.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let u = url.strip_prefix("http://").unwrap();
    let (host, path) = u.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    s.write_all(format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let body = buf.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str(body).unwrap()
}

async fn client_as(h: &Handle, name: &str) -> Client {
    let kubeconfig: kube::config::Kubeconfig = serde_yaml::from_str(&h.kubeconfig_as(name)).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

async fn put_fault(h: &Handle, client: &str, body: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let req = format!(
        "PUT /sim/faults/{client} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 204"), "{out}");
}

#[tokio::test]
async fn faults_cut_one_client_off_while_others_go_on() {
    let (h, _) = sim(Default::default()).await;
    let a: Api<ConfigMap> = Api::namespaced(client_as(&h, "replica-a").await, "default");
    let b: Api<ConfigMap> = Api::namespaced(client_as(&h, "replica-b").await, "default");
    a.create(&PostParams::default(), &cm("x", json!({}), json!({}))).await.unwrap();

    put_fault(&h, "replica-a", r#"{"seconds": 30, "mode": "error"}"#).await;
    let started = std::time::Instant::now();
    let e = a.get("x").await.unwrap_err();
    assert!(!matches!(e, kube::Error::Api(_)), "a transport error, not a status: {e:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    b.get("x").await.unwrap();

    // A half-open connection: no answer at all while the fault lasts.
    put_fault(&h, "replica-a", r#"{"seconds": 30, "mode": "hang"}"#).await;
    let hung = tokio::time::timeout(Duration::from_millis(300), a.get("x")).await;
    assert!(hung.is_err(), "a hung client got an answer: {hung:?}");

    put_fault(&h, "replica-a", r#"{"seconds": 0, "mode": "error"}"#).await;
    a.get("x").await.unwrap();
}
