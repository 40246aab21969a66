//! The object store: every object as JSON, one global resourceVersion counter,
//! and a bounded history of changes that watches replay from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::broadcast;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded in the history and sent to watchers.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Storage key of the resource type (`pods`, `deployments.apps`).
    pub key: String,
    /// Namespace (empty for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (before, for a deletion, with the deletion's rv).
    pub object: Value,
    /// The object before a modification.
    pub prev: Option<Value>,
}

/// What [`Store::update`] does with an object.
#[derive(Debug)]
pub enum Op {
    /// Nothing.
    Keep,
    /// Store this.
    Put(Value),
    /// Delete.
    Remove,
}

/// Why a watch cannot start.
#[derive(Debug, PartialEq, Eq)]
pub struct TooOld {
    /// The oldest resourceVersion a watch can still start from.
    pub oldest: u64,
}

type ObjKey = (String, String);

/// A change made while [`capturing`] on this thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Storage key of the resource type.
    pub key: String,
    /// Namespace (empty for cluster-scoped).
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Vec<Captured>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` and returns, with its result, the changes it made to any store on
/// this thread (the write handlers are synchronous, so these are the
/// request's own changes, not a concurrent request's).
pub fn capturing<T>(f: impl FnOnce() -> T) -> (T, Vec<Captured>) {
    let outer = CAPTURE.with(|c| c.borrow_mut().replace(Vec::new()));
    let out = f();
    let captured = CAPTURE.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer)).unwrap_or_default();
    (out, captured)
}

struct Inner {
    rv: u64,
    objects: HashMap<String, BTreeMap<ObjKey, Value>>,
    history: VecDeque<Arc<Change>>,
    /// Watches may start at any rv >= this one.
    oldest: u64,
}

/// The store. Writes are serialised under one lock; that is also what makes
/// "replay the history, then follow live changes" gap-free for watches.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
    history_cap: usize,
}

/// A watch's start: the changes after the requested version, then live ones.
pub struct Subscription {
    /// Changes already recorded after the requested version.
    pub backlog: Vec<Arc<Change>>,
    /// Live changes from here on.
    pub rx: broadcast::Receiver<Arc<Change>>,
    /// The store's version when the watch started.
    pub current: u64,
}

impl Store {
    /// An empty store keeping `history_cap` changes for watches to replay.
    pub fn new(history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(65536);
        Self {
            inner: Mutex::new(Inner { rv: 1, objects: HashMap::new(), history: VecDeque::new(), oldest: 1 }),
            tx,
            history_cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(key).and_then(|m| m.get(&(ns.to_string(), name.to_string()))).cloned()
    }

    /// Every object of a type (in one namespace when `ns` is given), with the
    /// store's version at the time of the list.
    pub fn list(&self, key: &str, ns: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .get(key)
            .map(|m| m.iter().filter(|((n, _), _)| ns.is_none_or(|ns| ns == n)).map(|(_, v)| v.clone()).collect())
            .unwrap_or_default();
        (items, inner.rv)
    }

    /// Runs `f` on the current object under the store's lock and does what it
    /// returns: [`Op::Put`] stores the object with a new resourceVersion
    /// (ADDED when there was none, MODIFIED otherwise), [`Op::Remove`] deletes
    /// it (DELETED), [`Op::Keep`] changes nothing. Returns the object as
    /// stored or removed (None for Keep); `f`'s error is passed through.
    pub fn update<E>(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(Option<&Value>) -> Result<Op, E>,
    ) -> Result<Option<Value>, E> {
        let mut inner = self.lock();
        let okey = (ns.to_string(), name.to_string());
        let current = inner.objects.get(key).and_then(|m| m.get(&okey));
        let prev = current.cloned();
        match f(current)? {
            Op::Keep => Ok(None),
            Op::Put(mut obj) => {
                inner.rv += 1;
                let rv = inner.rv;
                set_rv(&mut obj, rv);
                inner.objects.entry(key.to_string()).or_default().insert(okey, obj.clone());
                let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
                self.record(&mut inner, key, ns, kind, obj.clone(), prev);
                Ok(Some(obj))
            }
            Op::Remove => {
                let Some(mut obj) = inner.objects.get_mut(key).and_then(|m| m.remove(&okey)) else {
                    return Ok(None);
                };
                inner.rv += 1;
                let rv = inner.rv;
                set_rv(&mut obj, rv);
                self.record(&mut inner, key, ns, EventType::Deleted, obj.clone(), None);
                Ok(Some(obj))
            }
        }
    }

    /// Stores an object unconditionally (see [`Store::update`]).
    pub fn put(&self, key: &str, ns: &str, name: &str, obj: Value) -> Value {
        self.update::<()>(key, ns, name, |_| Ok(Op::Put(obj))).ok().flatten().expect("put stores")
    }

    /// Removes an object; returns it as deleted (with the deletion's version).
    pub fn remove(&self, key: &str, ns: &str, name: &str) -> Option<Value> {
        self.update::<()>(key, ns, name, |cur| Ok(if cur.is_some() { Op::Remove } else { Op::Keep })).ok().flatten()
    }

    /// Every stored object of every type: (key, namespace, object).
    pub fn all(&self) -> Vec<(String, String, Value)> {
        let inner = self.lock();
        inner
            .objects
            .iter()
            .flat_map(|(k, m)| m.iter().map(move |((ns, _), v)| (k.clone(), ns.clone(), v.clone())))
            .collect()
    }

    fn record(&self, inner: &mut Inner, key: &str, ns: &str, kind: EventType, object: Value, prev: Option<Value>) {
        CAPTURE.with(|c| {
            if let Some(v) = c.borrow_mut().as_mut() {
                v.push(Captured {
                    rv: inner.rv,
                    key: key.to_string(),
                    namespace: ns.to_string(),
                    name: object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string(),
                });
            }
        });
        let change =
            Arc::new(Change { rv: inner.rv, key: key.to_string(), namespace: ns.to_string(), kind, object, prev });
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.oldest = old.rv;
            }
        }
        // Nobody listening is fine.
        let _ = self.tx.send(change);
    }

    /// Starts following changes after `rv`. Fails when the history no longer
    /// reaches back that far.
    pub fn subscribe(&self, rv: u64) -> Result<Subscription, TooOld> {
        let inner = self.lock();
        if rv < inner.oldest {
            return Err(TooOld { oldest: inner.oldest });
        }
        let backlog = inner.history.iter().filter(|c| c.rv > rv).cloned().collect();
        Ok(Subscription { backlog, rx: self.tx.subscribe(), current: inner.rv })
    }

    /// Live changes only (for the simulator's own controllers).
    pub fn follow(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(s: &Store, name: &str) -> Value {
        s.put("pods", "default", name, json!({"metadata": {"name": name}}))
    }

    #[test]
    fn every_write_gets_a_higher_resource_version() {
        let s = Store::new(10);
        let a = put(&s, "a");
        let b = put(&s, "b");
        let ra: u64 = a["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        let rb: u64 = b["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        assert!(rb > ra);
        assert_eq!(s.current_rv(), rb);
    }

    #[test]
    fn subscription_replays_changes_after_the_version_and_refuses_trimmed_ones() {
        let s = Store::new(3);
        let first = put(&s, "a");
        let rv1: u64 = first["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
        put(&s, "b");
        let sub = s.subscribe(rv1).unwrap();
        assert_eq!(sub.backlog.len(), 1);
        assert_eq!(sub.backlog[0].object["metadata"]["name"], "b");
        for n in ["c", "d", "e", "f"] {
            put(&s, n);
        }
        assert!(s.subscribe(rv1).is_err());
    }
}
