//! `quiver-kube-sim`: a simulated Kubernetes control plane on 127.0.0.1 that
//! the real kubectl, helm and kube-rs clients drive.
//!
//! ```text
//! HTTP request ─▶ accounting (count per client, verb, resource)
//!              ─▶ write log (client, object, time, store order)   [writes.rs]
//!              ─▶ discovery (/version, /api, /apis, /openapi)   [discovery.rs]
//!              ─▶ resource path ─▶ api.rs: parse target, verb
//!                   get / list / watch (watch.rs) / create / update / patch /
//!                   apply (fields.rs) / delete / status / scale
//!                   ─▶ write pipeline: identity → defaults (defaults.rs)
//!                      → admission (admission.rs, crd.rs, cel.rs)
//!                      → generation → managedFields → no-op check
//!                   ─▶ store.rs (one lock, global resourceVersion, history)
//!                         └─▶ change feed ─▶ watches, garbage collector (gc.rs),
//!                             controllers (controllers.rs), kubelet (kubelet.rs,
//!                             runtime.rs), kube-proxy (proxy.rs); DNS (dns.rs)
//! ```
//!
//! Start it in-process with [`start`] on `127.0.0.1:0`, or run the binary.
#![warn(missing_docs)]
// `ApiError` carries the Status details (causes, names) by value; it is built
// once per refused request, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod accounting;
pub mod admission;
pub mod api;
pub mod cel;
pub mod controllers;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod dns;
pub mod error;
pub mod fields;
pub mod gc;
pub mod kubelet;
pub mod patch;
pub mod proto;
pub mod proxy;
pub mod resources;
pub mod runtime;
pub mod selectors;
pub mod store;
pub mod table;
pub mod watch;
pub mod writes;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::accounting::Accounting;
use crate::api::json_response;
use crate::error::ApiError;
use crate::resources::Registry;
use crate::store::Store;

/// Tunables.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// How many changes the store keeps for watches to start from; older
    /// versions answer 410 Gone.
    pub history: usize,
    /// The longest a watch stays open (the real server: 30–60 minutes).
    pub max_watch: Duration,
    /// What happens to pods.
    pub pods: kubelet::PodMode,
    /// Run the workload controllers (off: Deployments and StatefulSets are
    /// only stored, as in a cluster whose controller manager is down).
    pub controllers: bool,
    /// The process kubelet's settings (`pods: Process`).
    pub runtime: runtime::RuntimeConfig,
    /// UDP port of the cluster DNS server on 127.0.0.1 (0: any free port).
    pub dns_port: u16,
}

fn config_dns_port(sim: &Sim) -> u16 {
    sim.config.dns_port
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bookmark_interval: Duration::from_secs(15),
            history: 10_000,
            max_watch: Duration::from_secs(1800),
            pods: kubelet::PodMode::Instant,
            controllers: true,
            runtime: runtime::RuntimeConfig {
                root: std::env::temp_dir().join("quiver-kube-sim-pods"),
                probe_period: Duration::from_millis(500),
                ..Default::default()
            },
            dns_port: 0,
        }
    }
}

/// The simulator's state.
pub struct Sim {
    /// Every object.
    pub store: Store,
    /// Served types.
    pub registry: Registry,
    /// Request counters.
    pub accounting: Accounting,
    /// Simulated network faults per client.
    pub faults: accounting::Faults,
    /// Every write request: who, what, when.
    pub writes: writes::WriteLog,
    /// Service listeners (kube-proxy).
    pub proxies: proxy::Proxies,
    /// Tunables.
    pub config: Config,
    next_cluster_ip: AtomicU32,
    next_pod_ip: AtomicU32,
    /// Second octet of this simulator's pod IPs.
    pod_block: u8,
    /// Second octet of this simulator's ClusterIPs.
    cluster_block: u8,
    running: runtime::Running,
    addr: std::sync::OnceLock<SocketAddr>,
    dns_addr: std::sync::OnceLock<SocketAddr>,
}

impl Sim {
    /// A simulator with the default namespaces.
    pub fn new(config: Config) -> Arc<Self> {
        let sim = Arc::new(Sim {
            store: Store::new(config.history),
            registry: Registry::new(),
            accounting: Accounting::default(),
            faults: accounting::Faults::default(),
            writes: writes::WriteLog::default(),
            proxies: proxy::Proxies::default(),
            config,
            next_cluster_ip: AtomicU32::new(1),
            next_pod_ip: AtomicU32::new(0),
            pod_block: rand::random_range(10..130),
            cluster_block: rand::random_range(130..250),
            running: runtime::Running::default(),
            addr: std::sync::OnceLock::new(),
            dns_addr: std::sync::OnceLock::new(),
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let mut obj = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "uid": format!("00000000-0000-4000-8000-{:012}", ns.len()),
                    "creationTimestamp": api::now(),
                    "labels": {"kubernetes.io/metadata.name": ns},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            obj["metadata"]["uid"] =
                json!(format!("00000000-0000-4000-8000-{:012x}", ns.bytes().map(u64::from).sum::<u64>()));
            sim.store.put("namespaces", "", ns, obj);
        }
        sim.store.put("nodes", "", kubelet::NODE, kubelet::node_object());
        sim.store.put(
            "services",
            "default",
            "kubernetes",
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default", "uid": "00000000-0000-4000-8000-000000000001", "creationTimestamp": api::now(), "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": format!("127.{}.0.1", sim.cluster_block), "clusterIPs": [format!("127.{}.0.1", sim.cluster_block)], "type": "ClusterIP", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            }),
        );
        sim
    }

    /// The next free ClusterIP: a loopback address in this simulator's own
    /// block (127.C.x.y, C drawn at start in 130..250, so simulators running
    /// side by side rarely collide), where the simulated kube-proxy listens.
    pub fn allocate_cluster_ip(&self) -> String {
        let n = self.next_cluster_ip.fetch_add(1, Ordering::Relaxed) + 1;
        format!("127.{}.{}.{}", self.cluster_block, (n >> 8) & 0xff, n & 0xff)
    }

    /// Whether pods are deleted gracefully (a kubelet runs them).
    pub fn graceful_pods(&self) -> bool {
        self.config.pods == kubelet::PodMode::Process
    }

    /// Where the cluster DNS server answers (UDP).
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns_addr.get().copied()
    }

    /// `http://ADDR` of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    fn address(&self) -> String {
        self.addr.get().map(|a| a.to_string()).unwrap_or_default()
    }
}

async fn api_fallback(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path.starts_with("/apis/") {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        // Group-version roots are discovery documents.
        let discovery = match segs.as_slice() {
            ["api", v] => Some(("", *v)),
            ["apis", g, v] => Some((*g, *v)),
            _ => None,
        };
        if let Some((g, v)) = discovery {
            if method != Method::GET {
                return ApiError::MethodNotAllowed.into_response();
            }
            return match discovery::resource_list(&sim.registry, g, v) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => ApiError::NoRoute.into_response(),
            };
        }
        if let ["apis", g] = segs.as_slice() {
            return match discovery::group(&sim.registry, g) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => ApiError::NoRoute.into_response(),
            };
        }
        return match api::handle(sim, method, path, uri.query(), headers, body).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    }
    ApiError::NoRoute.into_response()
}

fn accept(headers: &HeaderMap) -> String {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

fn aggregated_response(doc: &serde_json::Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, discovery::AGGREGATED_CONTENT_TYPE)], doc.to_string()).into_response()
}

/// The router.
pub fn app(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/version", get(|| async { json_response(StatusCode::OK, &discovery::version()) }))
        .route(
            "/api",
            get(|State(sim): State<Arc<Sim>>, headers: HeaderMap| async move {
                if discovery::wants_aggregated(&accept(&headers)) {
                    return aggregated_response(&discovery::aggregated(&sim.registry, true));
                }
                json_response(StatusCode::OK, &discovery::core_versions(&sim.address()))
            }),
        )
        .route(
            "/apis",
            get(|State(sim): State<Arc<Sim>>, headers: HeaderMap| async move {
                if discovery::wants_aggregated(&accept(&headers)) {
                    return aggregated_response(&discovery::aggregated(&sim.registry, false));
                }
                json_response(StatusCode::OK, &discovery::groups(&sim.registry))
            }),
        )
        .route(
            "/openapi/v2",
            get(|headers: HeaderMap| async move {
                if accept(&headers).contains("protobuf") {
                    return (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, discovery::OPENAPI_V2_PROTOBUF)],
                        discovery::openapi_v2_protobuf(),
                    )
                        .into_response();
                }
                json_response(StatusCode::OK, &discovery::openapi_v2())
            }),
        )
        .route("/openapi/v3", get(|| async { json_response(StatusCode::OK, &discovery::openapi_v3()) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/sim/requests",
            get(|State(sim): State<Arc<Sim>>| async move {
                json_response(StatusCode::OK, &json!({"requests": sim.accounting.snapshot()}))
            })
            .delete(|State(sim): State<Arc<Sim>>| async move {
                sim.accounting.reset();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/sim/writes",
            get(|State(sim): State<Arc<Sim>>| async move {
                json_response(StatusCode::OK, &json!({"writes": sim.writes.snapshot()}))
            })
            .delete(|State(sim): State<Arc<Sim>>| async move {
                sim.writes.reset();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/sim/faults/{client}",
            axum::routing::put(
                |State(sim): State<Arc<Sim>>, axum::extract::Path(client): axum::extract::Path<String>, body: Bytes| async move {
                    #[derive(serde::Deserialize)]
                    struct Fault {
                        seconds: f64,
                        mode: accounting::FaultMode,
                    }
                    match serde_json::from_slice::<Fault>(&body) {
                        Ok(f) if f.seconds >= 0.0 => {
                            sim.faults.set(&client, Duration::from_secs_f64(f.seconds), f.mode);
                            StatusCode::NO_CONTENT.into_response()
                        }
                        _ => ApiError::BadRequest("want {\"seconds\": N, \"mode\": \"hang\"|\"error\"}".into()).into_response(),
                    }
                },
            )
            .delete(|State(sim): State<Arc<Sim>>, axum::extract::Path(client): axum::extract::Path<String>| async move {
                sim.faults.clear(&client);
                StatusCode::NO_CONTENT
            }),
        )
        .fallback(api_fallback)
        .layer(axum::middleware::from_fn_with_state(sim.clone(), accounting::middleware))
        .with_state(sim)
}

/// A running simulator.
pub struct Handle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (store, registry, counters).
    pub sim: Arc<Sim>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Handle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server (plain http, a dummy bearer token).
    pub fn kubeconfig(&self) -> String {
        kubeconfig_for(&self.url(), "quiver-sim-token")
    }

    /// A kubeconfig whose bearer token is `client`: requests made with it are
    /// counted under that name when the client sends no User-Agent (kube-rs).
    pub fn kubeconfig_as(&self, client: &str) -> String {
        kubeconfig_for(&self.url(), client)
    }

    /// Writes the kubeconfig to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The identity (bearer token, and so the accounted client) the process
/// kubelet gives a pod's containers: its service account and the pod, as a
/// real bound service-account token carries both, so that two replicas under
/// one service account are told apart.
pub fn pod_identity(namespace: &str, service_account: &str, pod: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}@{pod}")
}

/// A kubeconfig for a server URL; the token is not checked, only used to
/// name the client in the request accounting.
pub fn kubeconfig_for(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: quiver-sim
  cluster:
    server: {url}
users:
- name: quiver-sim
  user:
    token: {token}
contexts:
- name: quiver-sim
  context:
    cluster: quiver-sim
    user: quiver-sim
    namespace: default
current-context: quiver-sim
"
    )
}

/// Serves the simulator on `listener` until the handle is stopped or dropped.
pub async fn start(listener: TcpListener, config: Config) -> std::io::Result<Handle> {
    let addr = listener.local_addr()?;
    let sim = Sim::new(config);
    let _ = sim.addr.set(addr);
    let dns = tokio::net::UdpSocket::bind(("127.0.0.1", config_dns_port(&sim))).await?;
    let _ = sim.dns_addr.set(dns.local_addr()?);
    let (tx, rx) = oneshot::channel::<()>();
    let mut background = vec![
        tokio::spawn(gc::run(sim.clone())),
        tokio::spawn(kubelet::run(sim.clone())),
        tokio::spawn(dns::serve(sim.clone(), dns)),
        tokio::spawn(proxy::run(sim.clone())),
    ];
    if sim.config.controllers {
        background.push(tokio::spawn(controllers::run(sim.clone())));
    }
    let router = app(sim.clone());
    let task = tokio::spawn(async move {
        // Not a graceful shutdown: open watches would hold it for their timeout.
        tokio::select! {
            r = axum::serve(listener, router) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "server failed");
                }
            }
            _ = rx => {}
        }
        for t in background {
            t.abort();
        }
    });
    tracing::info!(%addr, "kube-sim listening");
    Ok(Handle { addr, sim, shutdown: Some(tx), task: Some(task) })
}
