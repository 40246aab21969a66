//! The write log: every write request (create, update, patch, apply, delete,
//! deletecollection, subresources included) with the client that sent it, the
//! object, when, and where it falls in the store's order, so tests can check
//! who wrote what and when, for example that two replicas of a controller
//! never wrote in overlapping leadership.
//!
//! Read it at `GET /sim/writes` (`DELETE` clears it) or through
//! [`WriteLog::snapshot`]. A request that changed several objects of its type
//! (a deletecollection) is one entry per object; one that changed nothing (a
//! no-op apply, a refused write) is one entry with `changed: false` and the
//! HTTP code it got.

use std::sync::Mutex;

use serde::Serialize;

/// One write request, or one object a write request changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Write {
    /// Who sent it (as in the request accounting: [`crate::accounting::client_of`]).
    pub client: String,
    /// create, update, patch, apply, delete or deletecollection.
    pub verb: String,
    /// `group/resource[/subresource]`, as in the request accounting.
    pub resource: String,
    /// The object's namespace (empty for cluster-scoped).
    pub namespace: String,
    /// The object's name (empty when a refused create named none).
    pub name: String,
    /// The HTTP status of the answer.
    pub code: u16,
    /// Whether the store changed.
    pub changed: bool,
    /// The store's order: the resourceVersion of the change this write made,
    /// or, for one that changed nothing, the store's version when it was
    /// answered. Writes are totally ordered by it; a write that changed
    /// nothing sorts after the change it saw last.
    pub version: u64,
    /// Microseconds since the Unix epoch, when the write was answered.
    pub unix_micros: u64,
}

/// The log.
#[derive(Default)]
pub struct WriteLog {
    writes: Mutex<Vec<Write>>,
}

impl WriteLog {
    /// Records writes.
    pub fn record(&self, writes: impl IntoIterator<Item = Write>) {
        self.writes.lock().unwrap_or_else(|e| e.into_inner()).extend(writes);
    }

    /// Every write so far, in the order they were answered.
    pub fn snapshot(&self) -> Vec<Write> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets every write.
    pub fn reset(&self) {
        self.writes.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Microseconds since the Unix epoch, now.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or_default()
}
