//! The datasets a worker holds, each swapped atomically when a reload succeeds.
//! A failed reload keeps serving the old data and reports the error.

use std::sync::{Arc, Mutex};

use super::Shard;
use crate::protocol::{DatasetStats, LoadState};
use crate::spec::DatasetSpec;

/// State of one dataset slot.
#[derive(Debug, Clone, Default)]
pub struct SlotStatus {
    /// The data being served.
    pub data: Option<Arc<Shard>>,
    /// True while a load runs.
    pub loading: bool,
    /// The last load error.
    pub error: Option<String>,
    /// Seconds the last successful load took.
    pub load_seconds: f64,
    /// When the served data was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// Loads attempted.
    pub attempts: u64,
}

/// One dataset: its spec and its current state.
#[derive(Debug)]
pub struct Slot {
    /// The dataset's spec.
    pub spec: DatasetSpec,
    status: Mutex<SlotStatus>,
}

impl Slot {
    /// A snapshot of the status.
    pub fn status(&self) -> SlotStatus {
        self.status.lock().expect("slot lock").clone()
    }

    /// The data being served, if any.
    pub fn data(&self) -> Option<Arc<Shard>> {
        self.status.lock().expect("slot lock").data.clone()
    }

    /// Marks a load as started; false if one is already running.
    pub fn begin_load(&self) -> bool {
        let mut s = self.status.lock().expect("slot lock");
        if s.loading {
            return false;
        }
        s.loading = true;
        s.attempts += 1;
        true
    }

    /// Records a finished load: swaps the data in on success, keeps the old
    /// data on failure.
    pub fn finish_load(&self, result: Result<(Arc<Shard>, f64), String>) {
        let mut s = self.status.lock().expect("slot lock");
        s.loading = false;
        match result {
            Ok((data, secs)) => {
                s.data = Some(data);
                s.error = None;
                s.load_seconds = secs;
                s.loaded_at = Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            }
            Err(e) => s.error = Some(e),
        }
    }

    /// The protocol view of this slot.
    pub fn stats(&self) -> DatasetStats {
        let s = self.status();
        let state = match (&s.data, &s.error, s.loading) {
            (Some(_), _, _) => LoadState::Ready,
            (None, _, true) => LoadState::Loading,
            (None, Some(_), false) => LoadState::Failed,
            (None, None, false) => LoadState::Loading,
        };
        DatasetStats {
            name: self.spec.name.clone(),
            state,
            rows: s.data.as_ref().map_or(0, |d| d.rows()),
            bytes: s.data.as_ref().map_or(0, |d| d.bytes()),
            generation: s.data.as_ref().map_or_else(String::new, |d| d.info.generation.clone()),
            load_seconds: s.load_seconds,
            loaded_at: s.loaded_at.clone(),
            error: s.error.clone(),
            reloading: s.loading && s.data.is_some(),
        }
    }
}

/// All datasets of this worker, in the order they were declared (clients
/// show them in that order).
#[derive(Debug, Default)]
pub struct Registry {
    slots: Vec<Arc<Slot>>,
}

impl Registry {
    /// A registry for these specs (already validated; names unique).
    pub fn new(specs: Vec<DatasetSpec>) -> Registry {
        let slots =
            specs.into_iter().map(|spec| Arc::new(Slot { spec, status: Mutex::new(SlotStatus::default()) })).collect();
        Registry { slots }
    }

    /// A slot by name.
    pub fn get(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots.iter().find(|s| s.spec.name == name).cloned()
    }

    /// All slots, in declaration order.
    pub fn slots(&self) -> impl Iterator<Item = &Arc<Slot>> {
        self.slots.iter()
    }

    /// True when every dataset has data to serve.
    pub fn all_loaded(&self) -> bool {
        self.slots.iter().all(|s| s.data().is_some())
    }
}
