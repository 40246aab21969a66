//! Shared results: identical queries on the same data are computed once.
//!
//! Many users open the same default view, and the dashboard asks every first
//! view twice (with and without a baseline). The answer to a query depends only
//! on the query and on the shard's data, which a generation names, so the
//! encoded answer is kept under (dataset, generation, canonical query):
//! - concurrent identical queries wait for the one computing it (single flight;
//!   if that caller gives up, the next waiter computes it instead);
//! - recent answers are kept within a byte budget, least recently used first
//!   out; a reload makes a new generation, whose first insert drops every
//!   answer of the older ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use tokio::sync::OnceCell;

/// The default budget of kept answers: half a dozen world views with a
/// 1400×800 map, or hundreds of zoomed ones (workers are sized for their data).
pub const DEFAULT_BUDGET: usize = 32 << 20;

/// What identifies an answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Dataset name.
    pub dataset: String,
    /// The shard's generation (changes on every reload).
    pub generation: String,
    /// The query in its canonical JSON form (filters sorted by name).
    pub query: String,
}

/// An answer as sent: its batches, and what the log line reports.
#[derive(Debug)]
pub struct Answer {
    /// One batch per view, in view order.
    pub batches: Vec<RecordBatch>,
    /// Rows in the shard.
    pub total: u64,
    /// Rows selected.
    pub selected: u64,
    /// Kernel time when it was computed, microseconds.
    pub kernel_micros: u64,
}

impl Answer {
    fn bytes(&self) -> usize {
        self.batches.iter().map(RecordBatch::get_array_memory_size).sum::<usize>() + 256
    }
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Computed by this call.
    Computed,
    /// Computed by a concurrent identical call this one waited for.
    Shared,
    /// Kept from an earlier call.
    Cached,
}

impl Source {
    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Computed => "computed",
            Source::Shared => "shared",
            Source::Cached => "cached",
        }
    }
}

/// The batches of an answer as this call sends them: marked with where they
/// came from, and with no kernel time unless this call ran the kernels.
pub fn stamp(batches: &[RecordBatch], source: Source) -> Vec<RecordBatch> {
    batches
        .iter()
        .map(|b| {
            let mut meta = b.schema().metadata().clone();
            meta.insert("quiver.source", source.as_str());
            if source != Source::Computed && meta.contains_key("quiver.kernel_micros") {
                meta.insert("quiver.kernel_micros", "0");
            }
            let schema = Arc::new(b.schema().as_ref().clone().with_metadata(meta));
            RecordBatch::try_new(schema, b.columns().to_vec()).expect("same fields, other metadata")
        })
        .collect()
}

struct Entry {
    answer: Arc<Answer>,
    bytes: usize,
    used: u64,
}

#[derive(Default)]
struct Inner {
    done: HashMap<Key, Entry>,
    inflight: HashMap<Key, Arc<OnceCell<Arc<Answer>>>>,
    bytes: usize,
    tick: u64,
}

/// The cache of one worker.
pub struct ResultCache {
    budget: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().expect("cache lock");
        f.debug_struct("ResultCache")
            .field("budget", &self.budget)
            .field("entries", &inner.done.len())
            .field("bytes", &inner.bytes)
            .finish()
    }
}

impl ResultCache {
    /// A cache holding at most `budget` bytes of answers (0 turns keeping
    /// answers off; concurrent identical queries are still computed once).
    pub fn new(budget: usize) -> ResultCache {
        ResultCache { budget, inner: Mutex::new(Inner::default()) }
    }

    /// Bytes of answers held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().expect("cache lock").bytes
    }

    /// Answers held.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("cache lock").done.len()
    }

    /// True when no answer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The answer for `key`: kept, shared with a concurrent identical call, or
    /// computed by `compute`. Errors are not kept: the next call tries again.
    pub async fn get_or_compute<F, Fut, E>(&self, key: Key, compute: F) -> Result<(Arc<Answer>, Source), E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Answer, E>>,
    {
        let cell = {
            let mut inner = self.inner.lock().expect("cache lock");
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(e) = inner.done.get_mut(&key) {
                e.used = tick;
                return Ok((e.answer.clone(), Source::Cached));
            }
            inner.inflight.entry(key.clone()).or_insert_with(|| Arc::new(OnceCell::new())).clone()
        };
        let computed = AtomicBool::new(false);
        let result = cell
            .get_or_try_init(|| async {
                computed.store(true, Ordering::Relaxed);
                compute().await.map(Arc::new)
            })
            .await
            .cloned();
        let mut inner = self.inner.lock().expect("cache lock");
        // The first caller to come back retires the in-flight cell; later callers
        // of the same key then find the answer kept (or compute anew).
        if inner.inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) && cell.initialized() {
            inner.inflight.remove(&key);
        }
        let answer = result?;
        if computed.load(Ordering::Relaxed) {
            self.keep(&mut inner, key, answer.clone());
            Ok((answer, Source::Computed))
        } else {
            Ok((answer, Source::Shared))
        }
    }

    fn keep(&self, inner: &mut Inner, key: Key, answer: Arc<Answer>) {
        // A newer generation of the dataset: answers of the older ones can never be asked again.
        let stale: Vec<Key> =
            inner.done.keys().filter(|k| k.dataset == key.dataset && k.generation != key.generation).cloned().collect();
        for k in stale {
            if let Some(e) = inner.done.remove(&k) {
                inner.bytes -= e.bytes;
            }
        }
        let bytes = answer.bytes();
        if bytes > self.budget / 4 {
            return; // one answer may not crowd out the rest
        }
        inner.tick += 1;
        let used = inner.tick;
        if let Some(old) = inner.done.insert(key, Entry { answer, bytes, used }) {
            inner.bytes -= old.bytes;
        }
        inner.bytes += bytes;
        while inner.bytes > self.budget {
            let Some(oldest) = inner.done.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else { break };
            if let Some(e) = inner.done.remove(&oldest) {
                inner.bytes -= e.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use arrow_array::UInt64Array;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn key(q: &str, generation: &str) -> Key {
        Key { dataset: "d".into(), generation: generation.into(), query: q.into() }
    }

    fn answer(values: usize) -> Answer {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::UInt64, false)]));
        let col = UInt64Array::from_iter_values(0..values as u64);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(col)]).unwrap();
        Answer { batches: vec![batch], total: values as u64, selected: 1, kernel_micros: 5 }
    }

    #[tokio::test]
    async fn identical_concurrent_queries_are_computed_once() {
        let cache = Arc::new(ResultCache::new(1 << 20));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = vec![];
        for _ in 0..8 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute(key("q", "g1"), || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, String>(answer(10))
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut sources = vec![];
        for t in tasks {
            let (a, s) = t.await.unwrap();
            assert_eq!(a.total, 10);
            sources.push(s);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(sources.iter().filter(|s| **s == Source::Computed).count(), 1);
        // Afterwards it is kept.
        let (_, s) = cache.get_or_compute(key("q", "g1"), || async { Err::<Answer, _>("not called") }).await.unwrap();
        assert_eq!(s, Source::Cached);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_hands_the_computation_on() {
        let cache = Arc::new(ResultCache::new(1 << 20));
        let c2 = cache.clone();
        let first = tokio::spawn(async move {
            c2.get_or_compute(key("q", "g1"), || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, String>(answer(1))
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let c3 = cache.clone();
        let second =
            tokio::spawn(
                async move { c3.get_or_compute(key("q", "g1"), || async { Ok::<_, String>(answer(2)) }).await },
            );
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let (a, s) = tokio::time::timeout(Duration::from_secs(5), second).await.expect("no hang").unwrap().unwrap();
        assert_eq!((a.total, s), (2, Source::Computed));
    }

    #[tokio::test]
    async fn errors_are_not_kept() {
        let cache = ResultCache::new(1 << 20);
        let e = cache.get_or_compute(key("q", "g1"), || async { Err::<Answer, _>("boom") }).await.unwrap_err();
        assert_eq!(e, "boom");
        let (a, s) = cache.get_or_compute(key("q", "g1"), || async { Ok::<_, &str>(answer(3)) }).await.unwrap();
        assert_eq!((a.total, s), (3, Source::Computed));
    }

    #[tokio::test]
    async fn a_new_generation_drops_the_old_answers() {
        let cache = ResultCache::new(1 << 20);
        for q in ["a", "b", "c"] {
            cache.get_or_compute(key(q, "g1"), || async { Ok::<_, ()>(answer(4)) }).await.unwrap();
        }
        assert_eq!(cache.len(), 3);
        let (_, s) = cache.get_or_compute(key("a", "g2"), || async { Ok::<_, ()>(answer(5)) }).await.unwrap();
        assert_eq!(s, Source::Computed, "a reload is a different key");
        assert_eq!(cache.len(), 1, "the answers of g1 are gone");
        // Another dataset's answers stay.
        let other = Key { dataset: "e".into(), ..key("a", "g9") };
        cache.get_or_compute(other, || async { Ok::<_, ()>(answer(5)) }).await.unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn the_budget_evicts_the_least_recently_used() {
        let one = answer(1000).bytes();
        let cache = ResultCache::new(one * 4 + one / 2);
        for q in ["a", "b", "c", "d"] {
            cache.get_or_compute(key(q, "g"), || async { Ok::<_, ()>(answer(1000)) }).await.unwrap();
        }
        // Touch "a" so "b" is the oldest.
        let (_, s) = cache.get_or_compute(key("a", "g"), || async { Err::<Answer, ()>(()) }).await.unwrap();
        assert_eq!(s, Source::Cached);
        cache.get_or_compute(key("e", "g"), || async { Ok::<_, ()>(answer(1000)) }).await.unwrap();
        assert_eq!(cache.len(), 4);
        assert!(cache.bytes() <= one * 4 + one / 2);
        let (_, s) = cache.get_or_compute(key("b", "g"), || async { Ok::<_, ()>(answer(1000)) }).await.unwrap();
        assert_eq!(s, Source::Computed, "b was evicted");
        let (_, s) = cache.get_or_compute(key("a", "g"), || async { Err::<Answer, ()>(()) }).await.unwrap();
        assert_eq!(s, Source::Cached, "a was used recently and stays");
    }

    #[test]
    fn stamps_say_where_an_answer_came_from() {
        let mut a = answer(3);
        let meta = [("quiver.kernel_micros", "77")];
        let schema = Arc::new(a.batches[0].schema().as_ref().clone().with_metadata(meta));
        a.batches[0] = a.batches[0].clone().with_schema(schema).unwrap();
        let md = |b: &RecordBatch, k: &str| b.schema().metadata().get(k).cloned();
        let computed = stamp(&a.batches, Source::Computed);
        assert_eq!(md(&computed[0], "quiver.kernel_micros").as_deref(), Some("77"));
        assert_eq!(md(&computed[0], "quiver.source").as_deref(), Some("computed"));
        let cached = stamp(&a.batches, Source::Cached);
        assert_eq!(md(&cached[0], "quiver.kernel_micros").as_deref(), Some("0"));
        assert_eq!(md(&cached[0], "quiver.source").as_deref(), Some("cached"));
        assert_eq!(cached[0].num_rows(), 3);
    }

    #[tokio::test]
    async fn with_no_budget_nothing_is_kept() {
        let cache = ResultCache::new(0);
        cache.get_or_compute(key("a", "g"), || async { Ok::<_, ()>(answer(10)) }).await.unwrap();
        assert!(cache.is_empty());
    }
}
