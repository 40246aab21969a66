//! Request accounting: every API request counted per client, verb and
//! resource, so tests can hold a client (the operator) to an API budget.
//!
//! The client is the `X-Sim-Client` header when present, else the
//! `User-Agent` up to its first `/` (`kubectl`, `Helm`, ...), else the bearer
//! token (kube-rs sends no User-Agent: give each client its own kubeconfig
//! with [`crate::kubeconfig_for`] and its token names it), else `unknown`.
//!
//! Faults: `PUT /sim/faults/CLIENT` with `{"seconds": N, "mode": "hang"}`
//! makes that client's new requests hang until the fault ends and then break
//! the connection (a half-open connection); `"mode": "error"` breaks them at
//! once (a transport error, which clients do not retry as they would a 503).
//! `DELETE /sim/faults/CLIENT` ends it. Watches already open are not cut.

use std::collections::BTreeMap;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One counter.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestCount {
    /// Who asked.
    pub client: String,
    /// get, list, watch, create, update, patch, apply, delete, deletecollection,
    /// or `discovery` for non-resource paths.
    pub verb: String,
    /// `group/resource[/subresource]` (`apps/deployments/scale`, `pods`), or the path.
    pub resource: String,
    /// How many.
    pub count: u64,
}

/// The counters.
#[derive(Default)]
pub struct Accounting {
    counts: Mutex<BTreeMap<(String, String, String), u64>>,
}

impl Accounting {
    /// Counts one request.
    pub fn count(&self, client: &str, verb: &str, resource: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((client.to_string(), verb.to_string(), resource.to_string())).or_default() += 1;
    }

    /// Every counter.
    pub fn snapshot(&self) -> Vec<RequestCount> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((client, verb, resource), count)| RequestCount {
                client: client.clone(),
                verb: verb.clone(),
                resource: resource.clone(),
                count: *count,
            })
            .collect()
    }

    /// Forgets every counter.
    pub fn reset(&self) {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The (verb, resource) of a request, from its method, path and query alone.
pub fn classify(method: &Method, path: &str, query: &str, content_type: &str) -> (String, String) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest): (&str, &[&str]) = match segs.as_slice() {
        ["api", _v, rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (g, rest),
        _ => return ("discovery".into(), path.to_string()),
    };
    if rest.is_empty() {
        return ("discovery".into(), path.to_string());
    }
    let (resource, name, sub) = match rest {
        ["namespaces", _ns, "status" | "finalize"] if group.is_empty() => {
            ("namespaces", Some(()), rest.get(2).copied())
        }
        ["namespaces", _ns, res, tail @ ..] => (*res, tail.first().map(|_| ()), tail.get(1).copied()),
        [res, tail @ ..] => (*res, tail.first().map(|_| ()), tail.get(1).copied()),
        [] => unreachable!("checked non-empty"),
    };
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match *method {
        Method::GET if name.is_some() => "get",
        Method::GET if watch => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE if name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    let mut r = if group.is_empty() { resource.to_string() } else { format!("{group}/{resource}") };
    if let Some(s) = sub {
        r.push('/');
        r.push_str(s);
    }
    (verb.into(), r)
}

/// Who sent a request.
pub fn client_of(headers: &axum::http::HeaderMap) -> String {
    if let Some(c) = headers.get("x-sim-client").and_then(|v| v.to_str().ok()) {
        return c.to_string();
    }
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or(ua).trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(|t| t.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// How a faulted client's requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultMode {
    /// No answer until the fault ends, then a broken connection (half-open).
    Hang,
    /// A broken connection at once (the server unreachable).
    Error,
}

/// Network faults per client, set through `PUT /sim/faults/CLIENT`.
#[derive(Default)]
pub struct Faults {
    until: Mutex<BTreeMap<String, (std::time::Instant, FaultMode)>>,
}

impl Faults {
    /// Faults `client` for `d`.
    pub fn set(&self, client: &str, d: std::time::Duration, mode: FaultMode) {
        self.until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(client.to_string(), (std::time::Instant::now() + d, mode));
    }

    /// Ends a fault.
    pub fn clear(&self, client: &str) {
        self.until.lock().unwrap_or_else(|e| e.into_inner()).remove(client);
    }

    /// The active fault of a client.
    pub fn active(&self, client: &str) -> Option<(std::time::Instant, FaultMode)> {
        self.until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(client)
            .copied()
            .filter(|(t, _)| *t > std::time::Instant::now())
    }
}

/// Middleware counting every request except the simulator's own endpoints,
/// and applying the client's fault, if any.
pub async fn middleware(State(sim): State<std::sync::Arc<crate::Sim>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if !path.starts_with("/sim/") {
        let ct = req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let (verb, resource) = classify(req.method(), &path, req.uri().query().unwrap_or_default(), ct);
        let client = client_of(req.headers());
        tracing::debug!(%client, %verb, %resource, method = %req.method(), %path, content_type = %ct, "request");
        sim.accounting.count(&client, &verb, &resource);
        if let Some((until, mode)) = sim.faults.active(&client) {
            if mode == FaultMode::Hang {
                tokio::time::sleep_until(until.into()).await;
            }
            // A connection that breaks mid-answer: the client sees a transport
            // error (not a status it might retry on).
            let broken = futures::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated network fault",
                ))
            });
            return ([(axum::http::header::CONTENT_TYPE, "application/json")], axum::body::Body::from_stream(broken))
                .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_classify_into_verb_and_resource() {
        let c = |m: Method, p: &str, q: &str, ct: &str| classify(&m, p, q, ct);
        assert_eq!(c(Method::GET, "/api/v1/namespaces/a/pods", "watch=1", ""), ("watch".into(), "pods".into()));
        assert_eq!(c(Method::GET, "/api/v1/namespaces/a/pods/p", "", ""), ("get".into(), "pods".into()));
        assert_eq!(
            c(
                Method::PATCH,
                "/apis/quiver.dev/v1alpha1/namespaces/a/dataclusters/x/status",
                "",
                "application/apply-patch+yaml"
            ),
            ("apply".into(), "quiver.dev/dataclusters/status".into())
        );
        assert_eq!(c(Method::GET, "/api/v1/namespaces", "", ""), ("list".into(), "namespaces".into()));
        assert_eq!(
            c(Method::PUT, "/api/v1/namespaces/a/status", "", ""),
            ("update".into(), "namespaces/status".into())
        );
        assert_eq!(c(Method::GET, "/apis", "", "").0, "discovery");
    }
}
