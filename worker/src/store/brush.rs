//! Brush indexes: a viewport's map image broken down by the codes of one
//! dimension (built by `kernel::brush`), and the per-shard set of them, least
//! recently used out first past a byte budget.

use std::sync::{Arc, Mutex};

use crate::geo::PixelMap;

/// Bytes of brush indexes a shard keeps (several brushed dimensions or views).
pub const DEFAULT_BUDGET: usize = 64 << 20;
/// Keys remembered as asked for once.
const SEEN_KEYS: usize = 64;

/// One viewport's raster broken down by the codes of one dimension.
#[derive(Debug)]
pub struct BrushIndex {
    ncat: usize,
    /// Codes of the brushed dimension (its bins and "missing").
    ncodes: usize,
    /// Non-empty pixels, ascending.
    pixels: Vec<u32>,
    /// Per pixel, its first entry (one more element at the end).
    first: Vec<u32>,
    /// Per entry, its category.
    cats: Vec<u8>,
    /// Per entry, `ncodes + 1` prefix sums of rows over the codes.
    prefix: Vec<u32>,
}

impl BrushIndex {
    /// An index from its tables: `pixels` ascending, `first` (one per pixel
    /// and one more) delimiting each pixel's entries, `cats` the category of
    /// each entry, `prefix` its `ncodes + 1` prefix sums.
    pub fn from_parts(
        ncat: usize,
        ncodes: usize,
        pixels: Vec<u32>,
        first: Vec<u32>,
        cats: Vec<u8>,
        prefix: Vec<u32>,
    ) -> BrushIndex {
        assert_eq!(first.len(), pixels.len() + 1);
        assert_eq!(prefix.len(), cats.len() * (ncodes + 1));
        BrushIndex { ncat, ncodes, pixels, first, cats, prefix }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.pixels.len() * 4 + self.first.len() * 4 + self.cats.len() + self.prefix.len() * 4
    }

    /// The raster (non-empty pixels ascending, `ncat` counts each) of the rows
    /// whose code of the indexed dimension passes.
    pub fn raster(&self, passes: impl Fn(usize) -> bool) -> (Vec<u32>, Vec<u32>) {
        // Passing codes as runs [lo, hi): one subtraction per run and entry.
        let mut runs: Vec<(usize, usize)> = vec![];
        for c in (0..self.ncodes).filter(|&c| passes(c)) {
            match runs.last_mut() {
                Some(run) if run.1 == c => run.1 = c + 1,
                _ => runs.push((c, c + 1)),
            }
        }
        let (mut pixels, mut cells) = (vec![], vec![]);
        if runs.is_empty() {
            return (pixels, cells);
        }
        let stride = self.ncodes + 1;
        let mut here = vec![0u32; self.ncat];
        for (i, &p) in self.pixels.iter().enumerate() {
            let mut any = false;
            here.iter_mut().for_each(|n| *n = 0);
            for e in self.first[i] as usize..self.first[i + 1] as usize {
                let pre = &self.prefix[e * stride..(e + 1) * stride];
                let n: u32 = runs.iter().map(|&(lo, hi)| pre[hi] - pre[lo]).sum();
                here[self.cats[e] as usize] = n;
                any |= n > 0;
            }
            if any {
                pixels.push(p);
                cells.extend_from_slice(&here);
            }
        }
        (pixels, cells)
    }
}

/// What an index answers for: the raster's viewport and size, the dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrushKey {
    x0: u32,
    wx: u64,
    y0: u32,
    hy: u64,
    width: u32,
    height: u32,
    dim: usize,
}

impl BrushKey {
    /// The key of `pm`'s raster by dimension `dim`.
    pub fn new(pm: &PixelMap, dim: usize) -> BrushKey {
        BrushKey { x0: pm.vp.x0, wx: pm.vp.wx, y0: pm.vp.y0, hy: pm.vp.hy, width: pm.width, height: pm.height, dim }
    }
}

/// A shard's brush indexes, least recently used out first past the budget.
#[derive(Debug)]
pub struct BrushIndexes {
    budget: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// Keys whose index is being built in the background.
    building: Vec<BrushKey>,
    /// Keys asked for once, most recent last (a key asked for again is a
    /// brush being dragged: then its index is worth building).
    seen: std::collections::VecDeque<BrushKey>,
    clock: u64,
    /// (key, index, last use).
    entries: Vec<(BrushKey, Arc<BrushIndex>, u64)>,
}

impl Default for BrushIndexes {
    fn default() -> Self {
        BrushIndexes::with_budget(DEFAULT_BUDGET)
    }
}

impl BrushIndexes {
    /// Indexes holding at most `budget` bytes (0: never build any).
    pub fn with_budget(budget: usize) -> BrushIndexes {
        BrushIndexes { budget, held: Mutex::new(Held::default()) }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.lock().entries.iter().map(|e| e.1.bytes()).sum()
    }

    /// Drops every index.
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Number of indexes held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when no index is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The lists stay consistent whatever a panicking holder did.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The index for `key`, if held (and then the most recently used).
    pub fn get(&self, key: BrushKey) -> Option<Arc<BrushIndex>> {
        let mut held = self.lock();
        held.clock += 1;
        let now = held.clock;
        let e = held.entries.iter_mut().find(|e| e.0 == key)?;
        e.2 = now;
        Some(e.1.clone())
    }

    /// Claims the background build of `key`'s index: true the second time
    /// the key is asked for (a brush moved over the same view), false when
    /// it is first seen, held or already being built (the caller then builds
    /// nothing). One-off brushes cost no build.
    pub fn claim(&self, key: BrushKey) -> bool {
        let mut held = self.lock();
        if held.building.contains(&key) || held.entries.iter().any(|e| e.0 == key) {
            return false;
        }
        if let Some(at) = held.seen.iter().position(|k| *k == key) {
            held.seen.remove(at);
            held.building.push(key);
            return true;
        }
        if held.seen.len() == SEEN_KEYS {
            held.seen.pop_front();
        }
        held.seen.push_back(key);
        false
    }

    /// Ends a claimed build, keeping its index if it made one.
    pub fn deliver(&self, key: BrushKey, index: Option<BrushIndex>) {
        self.lock().building.retain(|k| *k != key);
        if let Some(index) = index {
            self.get_or_build(key, || Some(index));
        }
    }

    /// The index for `key`, or the one `build` makes (outside the lock, so
    /// other queries go on meanwhile) if it returns one.
    pub fn get_or_build(&self, key: BrushKey, build: impl FnOnce() -> Option<BrushIndex>) -> Option<Arc<BrushIndex>> {
        if let Some(index) = self.get(key) {
            return Some(index);
        }
        let index = Arc::new(build()?);
        let mut held = self.lock();
        held.clock += 1;
        let now = held.clock;
        if !held.entries.iter().any(|e| e.0 == key) {
            held.entries.push((key, index.clone(), now));
        }
        while held.entries.iter().map(|e| e.1.bytes()).sum::<usize>() > self.budget {
            let oldest = (0..held.entries.len()).min_by_key(|&i| held.entries[i].2).expect("over budget, so not empty");
            held.entries.swap_remove(oldest);
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::QViewport;

    /// An index of one pixel, one category and `ncodes` codes of one row each.
    fn index(ncodes: usize) -> BrushIndex {
        let prefix = (0..=ncodes as u32).collect();
        BrushIndex::from_parts(1, ncodes, vec![7], vec![0, 1], vec![0], prefix)
    }

    fn key(dim: usize) -> BrushKey {
        let vp = QViewport { x0: 0, wx: 1 << 32, y0: 0, hy: 1 << 32 };
        BrushKey::new(&PixelMap::new(vp, 10, 10), dim)
    }

    #[test]
    fn rasters_sum_the_passing_codes_in_runs() {
        let ix = index(10);
        assert_eq!(ix.raster(|c| (2..5).contains(&c)), (vec![7], vec![3]));
        assert_eq!(ix.raster(|c| c % 2 == 0), (vec![7], vec![5]));
        assert_eq!(ix.raster(|_| false), (vec![], vec![]));
    }

    #[test]
    fn indexes_are_built_once_and_the_least_recently_used_leave_past_the_budget() {
        let one = index(100).bytes();
        let set = BrushIndexes::with_budget(one * 2);
        let mut builds = 0;
        let mut get = |dim: usize| {
            set.get_or_build(key(dim), || {
                builds += 1;
                Some(index(100))
            })
        };
        let a = get(0).unwrap();
        assert!(Arc::ptr_eq(&a, &get(0).unwrap()), "kept");
        get(1);
        get(0); // 0 is now the more recently used
        get(2); // over budget: 1 leaves
        assert_eq!(set.len(), 2);
        assert!(set.bytes() <= set.budget());
        assert_eq!(builds, 3);
        let mut rebuilt = false;
        set.get_or_build(key(0), || {
            rebuilt = true;
            None
        });
        assert!(!rebuilt, "0 stayed");
        set.get_or_build(key(1), || {
            rebuilt = true;
            None
        });
        assert!(rebuilt, "1 had left");
        assert_eq!(set.len(), 2, "a build that gives nothing keeps nothing");
    }
}
