//! Watches: a stream of JSON lines (`{"type":…,"object":…}`), started from a
//! resourceVersion (or from the current state), with bookmarks, the
//! `sendInitialEvents` streaming list, selectors (an object leaving the
//! selection is sent as DELETED, entering it as ADDED) and a 410 ERROR event
//! for a version older than the history the store keeps.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::Sim;
use crate::api::{Filter, Query, Target, current};
use crate::error::ApiError;
use crate::store::{EventType, TooOld};
use crate::table::{self, Include};

enum Start {
    /// Synthetic ADDED events for the current state, then changes.
    State { initial_events_end: bool },
    /// Changes after this version.
    From(u64),
}

/// Starts a watch and returns the streaming response.
pub fn watch(sim: Arc<Sim>, t: Target, q: &Query, as_table: bool) -> Result<Response, ApiError> {
    let filter = Filter::from_query(q)?;
    let rv = q.get("resourceVersion").map(String::as_str).unwrap_or_default();
    let send_initial = q.get("sendInitialEvents").map(String::as_str);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true" || b == "1");
    let start = match (send_initial, rv) {
        (Some("true"), _) => {
            if q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
                return Err(ApiError::invalid(
                    &t.rt,
                    "",
                    vec![crate::error::Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
                            .into(),
                        field: "resourceVersionMatch".into(),
                    }],
                ));
            }
            Start::State { initial_events_end: bookmarks }
        }
        (_, "" | "0") => Start::State { initial_events_end: false },
        (_, v) => Start::From(v.parse().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v}")))?),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(sim.config.max_watch)
        .min(sim.config.max_watch);
    let include = Include::parse(q.get("includeObject").map(String::as_str));
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(1024);
    let q = q.clone();
    tokio::spawn(async move {
        let mut w = Writer { tx, t: t.clone(), as_table, include, headers_sent: false };
        let from = match start {
            Start::From(rv) => rv,
            Start::State { initial_events_end } => {
                let Ok((items, rv)) = current(&sim, &t, &q) else {
                    return;
                };
                for item in items {
                    if !w.send("ADDED", item).await {
                        return;
                    }
                }
                if initial_events_end {
                    let mut b = w.bookmark(rv);
                    b["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                    if !w.raw("BOOKMARK", b).await {
                        return;
                    }
                }
                rv
            }
        };
        let mut sub = match sim.store.subscribe(from) {
            Ok(s) => s,
            Err(TooOld { oldest }) => {
                let e = ApiError::Gone { requested: from, oldest };
                let _ = w.raw("ERROR", e.status()).await;
                return;
            }
        };
        let key = t.rt.qualified();
        let ns = if t.rt.namespaced { t.namespace.clone() } else { None };
        let mut last = from;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(sim.config.bookmark_interval);
        ticker.tick().await;
        let mut backlog = std::mem::take(&mut sub.backlog).into_iter();
        loop {
            let change = match backlog.next() {
                Some(c) => c,
                None => tokio::select! {
                    c = sub.rx.recv() => match c {
                        Ok(c) => c,
                        Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = ticker.tick(), if bookmarks => {
                        let b = w.bookmark(last);
                        if !w.raw("BOOKMARK", b).await { return; }
                        continue;
                    }
                    _ = &mut deadline => return,
                    _ = w.tx.closed() => return,
                },
            };
            if change.rv <= last {
                continue;
            }
            last = change.rv;
            if change.key != key || ns.as_ref().is_some_and(|n| *n != change.namespace) {
                continue;
            }
            let now_in = filter.matches(&change.object);
            let kind = match change.kind {
                EventType::Added if now_in => "ADDED",
                EventType::Deleted if now_in => "DELETED",
                EventType::Modified => {
                    let was_in = change.prev.as_ref().is_some_and(|p| filter.matches(p));
                    match (was_in, now_in) {
                        (true, true) => "MODIFIED",
                        (false, true) => "ADDED",
                        (true, false) => "DELETED",
                        (false, false) => continue,
                    }
                }
                _ => continue,
            };
            let obj = typed(&t, change.object.clone());
            if !w.send(kind, obj).await {
                return;
            }
        }
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache, private")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

fn typed(t: &Target, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(t.rt.api_version(&t.version)));
        m.insert("kind".into(), json!(t.rt.kind));
    }
    obj
}

struct Writer {
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    t: Target,
    as_table: bool,
    include: Include,
    headers_sent: bool,
}

impl Writer {
    fn bookmark(&self, rv: u64) -> Value {
        json!({
            "kind": self.t.rt.kind,
            "apiVersion": self.t.rt.api_version(&self.t.version),
            "metadata": {"resourceVersion": rv.to_string()},
        })
    }

    async fn send(&mut self, kind: &str, obj: Value) -> bool {
        let obj = if self.as_table {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let t = table::table(&self.t.rt, &self.t.version, &[obj], rv, self.include, !self.headers_sent);
            self.headers_sent = true;
            t
        } else {
            obj
        };
        self.raw(kind, obj).await
    }

    async fn raw(&self, kind: &str, obj: Value) -> bool {
        let mut line = json!({"type": kind, "object": obj}).to_string();
        line.push('\n');
        self.tx.send(Ok(Bytes::from(line))).await.is_ok()
    }
}
