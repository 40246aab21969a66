//! The garbage collector and the namespace controller, as one loop woken by
//! every change:
//! - an object whose owners (`ownerReferences`) are all gone is deleted
//!   (background propagation);
//! - an owner deleted with `propagationPolicy: Orphan` (finalizer `orphan`)
//!   has its dependents' references to it removed, then is deleted;
//! - an owner deleted with `Foreground` (finalizer `foregroundDeletion`) waits
//!   until its dependents are gone (they are deleted in the background: the
//!   real collector's blockOwnerDeletion ordering is not simulated);
//! - a namespace being deleted is emptied, then removed.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::Sim;
use crate::api::meta_str;
use crate::store::Op;

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Removes a finalizer; the object goes when it was the last one and it is
/// being deleted.
fn drop_finalizer(sim: &Sim, key: &str, ns: &str, name: &str, finalizer: &str) {
    let _ = sim.store.update::<()>(key, ns, name, |cur| {
        let Some(cur) = cur else { return Ok(Op::Keep) };
        let mut obj = cur.clone();
        let left: Vec<String> = finalizers(cur).into_iter().filter(|f| f != finalizer).collect();
        if left.is_empty() && cur.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(Op::Remove);
        }
        obj["metadata"]["finalizers"] = json!(left);
        Ok(Op::Put(obj))
    });
}

/// Deletes an object as a client would (finalizers honoured).
fn delete(sim: &Sim, key: &str, ns: &str, name: &str) {
    let _ = sim.store.update::<()>(key, ns, name, |cur| {
        let Some(cur) = cur else { return Ok(Op::Keep) };
        let pod = key == "pods" && sim.graceful_pods();
        if finalizers(cur).is_empty() && !pod {
            return Ok(Op::Remove);
        }
        if cur.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(Op::Keep);
        }
        let mut obj = cur.clone();
        obj["metadata"]["deletionTimestamp"] = json!(crate::api::now());
        Ok(Op::Put(obj))
    });
}

/// One pass over the store. Returns whether it changed anything.
pub fn pass(sim: &Sim) -> bool {
    let all = sim.store.all();
    let uids: HashSet<String> = all.iter().filter_map(|(_, _, o)| meta_str(o, "uid").map(str::to_string)).collect();
    let mut changed = false;
    for (key, ns, obj) in &all {
        let name = meta_str(obj, "name").unwrap_or_default();
        let owners = owner_uids(obj);
        if !owners.is_empty() && owners.iter().all(|u| !uids.contains(u)) {
            tracing::debug!(%key, %ns, %name, "garbage-collecting object whose owners are gone");
            delete(sim, key, ns, name);
            changed = true;
            continue;
        }
        if obj.pointer("/metadata/deletionTimestamp").is_none() {
            continue;
        }
        let uid = meta_str(obj, "uid").unwrap_or_default().to_string();
        let fs = finalizers(obj);
        let dependents: Vec<&(String, String, Value)> =
            all.iter().filter(|(_, _, d)| owner_uids(d).contains(&uid)).collect();
        if fs.iter().any(|f| f == "orphan") {
            for (dk, dns, d) in &dependents {
                let _ = sim.store.update::<()>(dk, dns, meta_str(d, "name").unwrap_or_default(), |cur| {
                    let Some(cur) = cur else { return Ok(Op::Keep) };
                    let mut o = cur.clone();
                    if let Some(refs) = o.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                    }
                    Ok(Op::Put(o))
                });
            }
            drop_finalizer(sim, key, ns, name, "orphan");
            changed = true;
        } else if fs.iter().any(|f| f == "foregroundDeletion") {
            if dependents.is_empty() {
                drop_finalizer(sim, key, ns, name, "foregroundDeletion");
            } else {
                for (dk, dns, d) in &dependents {
                    delete(sim, dk, dns, meta_str(d, "name").unwrap_or_default());
                }
            }
            changed = true;
        }
        if key == "namespaces" {
            let inside: Vec<&(String, String, Value)> = all.iter().filter(|(_, n, _)| n == name).collect();
            if inside.is_empty() {
                if finalizers(obj).is_empty() {
                    sim.store.remove(key, "", name);
                }
            } else {
                for (k, n, o) in inside {
                    delete(sim, k, n, meta_str(o, "name").unwrap_or_default());
                }
            }
            changed = true;
        }
    }
    changed
}

/// Runs the collector until the simulator stops.
pub async fn run(sim: Arc<Sim>) {
    let mut rx = sim.store.follow();
    loop {
        match rx.recv().await {
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        // Let a burst of changes land, then look once.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {}
        // Until a pass changes nothing (a pass that only meets finalizers it
        // cannot remove changes nothing, so this ends).
        loop {
            let before = sim.store.current_rv();
            pass(&sim);
            while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {}
            if sim.store.current_rv() == before {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}
