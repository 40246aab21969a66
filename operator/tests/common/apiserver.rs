//! A mocked Kubernetes API server behind `kube::Client` (tower-test's mock
//! pair): it records every request and answers the way the API server would for
//! the calls the operator makes (get, create, server-side apply, status apply,
//! delete, events), from an in-memory object store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request the operator made.
#[derive(Clone, Debug)]
pub struct Call {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string.
    pub query: String,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl Call {
    /// True for requests that change something (events excluded).
    pub fn is_write(&self) -> bool {
        self.method != "GET" && !self.is_event()
    }

    /// True for Events API requests.
    pub fn is_event(&self) -> bool {
        self.path.starts_with("/apis/events.k8s.io/")
    }
}

/// A failure to inject: requests with this method whose path contains this text
/// answer with this HTTP code ([`HANG`]: never answer).
#[derive(Clone, Debug)]
pub struct Fault {
    /// HTTP method.
    pub method: &'static str,
    /// Substring of the path.
    pub path_contains: &'static str,
    /// HTTP status code.
    pub code: u16,
}

/// The fault code of a request that is never answered.
pub const HANG: u16 = 0;

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    statefulset_status: Option<Value>,
    ingress_status: Option<Value>,
    faults: Vec<Fault>,
    conflict_next_put: bool,
    calls: Vec<Call>,
}

/// The mocked API server.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn status_json(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

impl FakeApi {
    /// Starts the server; returns a client talking to it.
    pub fn start() -> (Client, FakeApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let api = FakeApi::default();
        let server = api.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let server = server.clone();
                // One task per request, so a request left unanswered blocks no other.
                tokio::spawn(async move {
                    match server.handle(request).await {
                        Some(response) => send.send_response(response),
                        None => {
                            // A half-open connection: the answer never comes.
                            std::future::pending::<()>().await;
                            drop(send);
                        }
                    }
                });
            }
        });
        (Client::new(service, "default"), api)
    }

    /// Stores an object at its API path (e.g. `/api/v1/namespaces/ns/secrets/name`).
    pub fn insert(&self, path: &str, obj: Value) {
        self.state.lock().unwrap().objects.insert(path.to_string(), obj);
    }

    /// The object stored at a path.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap().objects.get(path).cloned()
    }

    /// The status the API server reports for applied StatefulSets (`observedGeneration` is filled in).
    pub fn set_statefulset_status(&self, status: Value) {
        self.state.lock().unwrap().statefulset_status = Some(status);
    }

    /// The status the API server reports for applied Ingresses.
    pub fn set_ingress_status(&self, status: Value) {
        self.state.lock().unwrap().ingress_status = Some(status);
    }

    /// Adds a failure to inject.
    pub fn fail(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    /// The next PUT answers 409 Conflict, as if another writer got there first.
    pub fn fail_next_put_as_conflict(&self) {
        self.state.lock().unwrap().conflict_next_put = true;
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Requests that changed something, events excluded.
    pub fn writes(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_write).collect()
    }

    /// Reasons of the events published.
    pub fn event_reasons(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.is_event() && c.method == "POST")
            .filter_map(|c| c.body?.get("reason")?.as_str().map(String::from))
            .collect()
    }

    /// The last server-side apply body sent for `resource/name` (e.g. `statefulsets/demo-workers`).
    pub fn applied(&self, resource_and_name: &str) -> Option<Value> {
        self.calls()
            .into_iter()
            .rev()
            .find(|c| c.method == "PATCH" && c.path.ends_with(&format!("/{resource_and_name}")))
            .and_then(|c| c.body)
    }

    /// Status bodies applied to the DataCluster, in order.
    pub fn status_writes(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "PATCH" && c.path.ends_with("/status"))
            .filter_map(|c| c.body?.get("status").cloned())
            .collect()
    }

    /// Clears the request log.
    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// Removes every injected failure.
    pub fn heal(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// The answer to a request, `None` when a fault says it never comes.
    async fn handle(&self, request: Request<Body>) -> Option<Response<Body>> {
        let hang = {
            let st = self.state.lock().unwrap();
            st.faults.iter().any(|f| {
                f.code == HANG
                    && f.method == request.method().as_str()
                    && request.uri().path().contains(f.path_contains)
            })
        };
        let response = self.reply(request).await;
        (!hang).then_some(response)
    }

    async fn reply(&self, request: Request<Body>) -> Response<Body> {
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or("").to_string();
        let bytes = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Option<Value> = if bytes.is_empty() { None } else { serde_json::from_slice(&bytes).ok() };
        let mut st = self.state.lock().unwrap();
        st.calls.push(Call { method: method.clone(), path: path.clone(), query, body: body.clone() });

        if let Some(f) =
            st.faults.iter().find(|f| f.code != HANG && f.method == method && path.contains(f.path_contains))
        {
            let code = f.code;
            return respond(code, status_json(code, "InternalError", "injected failure"));
        }
        if path.starts_with("/apis/events.k8s.io/") {
            return respond(201, body.unwrap_or(json!({})));
        }
        match method.as_str() {
            "GET" => match st.objects.get(&path) {
                Some(o) => respond(200, o.clone()),
                None => respond(404, status_json(404, "NotFound", &format!("{path} not found"))),
            },
            "POST" => {
                let mut obj = body.unwrap_or(json!({}));
                obj["metadata"]["resourceVersion"] = json!("1");
                let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let at = format!("{path}/{name}");
                if st.objects.contains_key(&at) {
                    return respond(409, status_json(409, "AlreadyExists", &format!("{at} exists")));
                }
                st.objects.insert(at, obj.clone());
                respond(201, obj)
            }
            "PATCH" if path.ends_with("/status") => {
                let at = path.trim_end_matches("/status").to_string();
                let new_status = body.as_ref().and_then(|b| b.get("status").cloned()).unwrap_or(json!({}));
                let mut obj = st.objects.get(&at).cloned().unwrap_or_else(|| body.clone().unwrap_or(json!({})));
                obj["status"] = new_status;
                st.objects.insert(at, obj.clone());
                respond(200, obj)
            }
            "PATCH" => {
                let mut obj = body.unwrap_or(json!({}));
                let generation =
                    st.objects.get(&path).and_then(|o| o["metadata"]["generation"].as_i64()).map_or(1, |g| {
                        if st.objects.get(&path).map(|o| &o["spec"]) == Some(&obj["spec"]) { g } else { g + 1 }
                    });
                obj["metadata"]["generation"] = json!(generation);
                if path.contains("/statefulsets/")
                    && let Some(mut s) = st.statefulset_status.clone()
                {
                    s["observedGeneration"] = json!(generation);
                    obj["status"] = s;
                }
                if path.contains("/ingresses/")
                    && let Some(s) = st.ingress_status.clone()
                {
                    obj["status"] = s;
                }
                st.objects.insert(path, obj.clone());
                respond(200, obj)
            }
            "PUT" if std::mem::take(&mut st.conflict_next_put) => {
                respond(409, status_json(409, "Conflict", "the object has been modified"))
            }
            "PUT" => {
                let mut obj = body.unwrap_or(json!({}));
                let Some(current) = st.objects.get(&path) else {
                    return respond(404, status_json(404, "NotFound", &format!("{path} not found")));
                };
                let version = current["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
                if obj["metadata"]["resourceVersion"].as_str() != Some(version.as_str()) {
                    return respond(409, status_json(409, "Conflict", "the object has been modified"));
                }
                let next: u64 = version.parse::<u64>().unwrap_or(0) + 1;
                obj["metadata"]["resourceVersion"] = json!(next.to_string());
                st.objects.insert(path, obj.clone());
                respond(200, obj)
            }
            "DELETE" => match st.objects.remove(&path) {
                Some(o) => respond(200, o),
                None => respond(404, status_json(404, "NotFound", &format!("{path} not found"))),
            },
            _ => respond(405, status_json(405, "MethodNotAllowed", &method)),
        }
    }
}

fn respond(code: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}
