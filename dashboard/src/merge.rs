//! Merging the workers' partial answers, only across one consistent sharding.
//!
//! Every answer says which shard it is, how many shards there are and which
//! source snapshot (generation) it was cut from. Answers are grouped by
//! `(shards, generation)`; the group covering the most shards is summed, anything
//! else (another sharding mid-rescale, another generation mid-reload, a duplicate
//! shard, a differently binned view) is left out and reported. Shards of the
//! chosen sharding that did not answer are reported as missing.

use std::collections::BTreeMap;

use quiver_worker::protocol::{Histogram, QueryResult, Raster, Sample};
use rand::SeedableRng;
use rand::seq::index::sample as sample_indices;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The sample a request asks for (the `sample` of `/api/query`).
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SampleSize {
    /// Most rows.
    pub limit: u32,
    /// Rows only when every match fits in `limit`, else none (`matched`
    /// still counts them).
    #[serde(default)]
    pub all_or_none: bool,
}

/// Which shards the merged answer covers.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShardReport {
    /// Shard count of the sharding that was summed.
    pub expected: u32,
    /// Shard indices summed, ascending.
    pub answered: Vec<u32>,
    /// Shard indices of that sharding that did not answer, ascending.
    pub missing: Vec<u32>,
    /// False when some answers were left out because they came from another
    /// sharding, generation or view config, or repeated a shard.
    pub consistent: bool,
    /// What is missing or left out, and why; `None` when the answer is complete.
    pub message: Option<String>,
}

impl ShardReport {
    /// True when the counts do not cover the whole dataset, or answers were left out.
    pub fn partial(&self) -> bool {
        !self.missing.is_empty() || !self.consistent
    }
}

/// The merged answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// Rows over the shards summed.
    pub total: u64,
    /// Selected rows over the shards summed.
    pub selected: u64,
    /// Histograms, in the query's order.
    pub histograms: Vec<Histogram>,
    /// The raster, when asked for.
    pub raster: Option<Raster>,
    /// The sample, when asked for.
    pub sample: Option<Sample>,
    /// Which shards are in.
    pub shards: ShardReport,
    /// Longest kernel time among the workers, microseconds.
    pub kernel_micros: u64,
}

/// One worker's reply: its endpoint and its answer or error.
#[derive(Debug)]
pub struct Reply<T> {
    /// The worker's endpoint.
    pub endpoint: String,
    /// Its answer.
    pub result: Result<T>,
}

/// Shapes of a result that must agree across shards for their counts to add up.
fn shape(r: &QueryResult) -> Vec<(String, usize)> {
    r.histograms.iter().map(|h| (h.dimension.clone(), h.bins.len())).collect()
}

/// Picks the consistent set of answers and merges it. `sample` is the sample
/// asked for.
pub fn merge(replies: Vec<Reply<QueryResult>>, sample: Option<SampleSize>) -> Result<Merged> {
    let mut notes: Vec<String> = Vec::new();
    let mut ok: Vec<(String, QueryResult)> = Vec::new();
    let mut failed: Vec<(String, Error)> = Vec::new();
    for r in replies {
        match r.result {
            Ok(q) => ok.push((r.endpoint, q)),
            Err(e) => failed.push((r.endpoint, e)),
        }
    }
    if ok.is_empty() {
        return Err(no_answer(failed));
    }
    let mut consistent = true;
    // Answers claiming an impossible shard index are never summed.
    ok.retain(|(ep, q)| {
        let valid = q.shard.shards > 0 && q.shard.shard < q.shard.shards;
        if !valid {
            consistent = false;
            notes.push(format!("{ep} claims shard {} of {}; left out", q.shard.shard, q.shard.shards));
        }
        valid
    });
    if ok.is_empty() {
        return Err(Error::Unavailable(format!("no usable answer: {}", notes.join("; "))));
    }
    // Group by sharding; the group covering the most distinct shards wins, ties
    // going to the larger shard count (the newer scale while scaling up).
    let mut groups: BTreeMap<(u32, String), Vec<u32>> = BTreeMap::new();
    for (_, q) in &ok {
        let g = groups.entry((q.shard.shards, q.shard.generation.clone())).or_default();
        if !g.contains(&q.shard.shard) {
            g.push(q.shard.shard);
        }
    }
    let chosen = groups
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.0.cmp(&b.0.0)).then(b.0.1.cmp(&a.0.1)))
        .map(|(k, _)| k.clone())
        .expect("at least one answer");
    let (shards, generation) = chosen;
    let mut used: Vec<(String, QueryResult)> = Vec::new();
    let mut reference_shape: Option<Vec<(String, usize)>> = None;
    for (ep, q) in ok {
        if q.shard.shards != shards || q.shard.generation != generation {
            consistent = false;
            notes.push(format!(
                "{ep} answered as shard {} of {} (data generation {}) while the others are {} shards of generation {}; its counts are left out",
                q.shard.shard, q.shard.shards, short(&q.shard.generation), shards, short(&generation)
            ));
            continue;
        }
        if let Some((dup, _)) = used.iter().find(|(_, u)| u.shard.shard == q.shard.shard) {
            consistent = false;
            notes.push(format!("shard {} answered twice ({dup} and {ep}); counted once", q.shard.shard));
            continue;
        }
        let s = shape(&q);
        match &reference_shape {
            Some(r) if *r != s => {
                consistent = false;
                notes.push(format!("{ep} bins its histograms differently; its counts are left out"));
                continue;
            }
            None => reference_shape = Some(s),
            _ => {}
        }
        used.push((ep, q));
    }
    let mut answered: Vec<u32> = used.iter().map(|(_, q)| q.shard.shard).collect();
    answered.sort_unstable();
    let missing: Vec<u32> = (0..shards).filter(|s| !answered.contains(s)).collect();
    if !missing.is_empty() {
        let list = missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let mut m = format!(
            "{} of {shards} shard{} did not answer (shard {list}); counts cover the others only",
            missing.len(),
            if shards == 1 { "" } else { "s" }
        );
        if !failed.is_empty() {
            let why =
                failed.iter().map(|(ep, e)| format!("{ep}: {}", e.public_message())).collect::<Vec<_>>().join("; ");
            m.push_str(&format!(" — {why}"));
        }
        notes.insert(0, m);
    }

    let results: Vec<QueryResult> = used.into_iter().map(|(_, q)| q).collect();
    let total = results.iter().map(|q| q.total).sum();
    let selected = results.iter().map(|q| q.selected).sum();
    let kernel_micros = results.iter().map(|q| q.kernel_micros).max().unwrap_or(0);
    let histograms = merge_histograms(&results);
    let raster = merge_rasters(results.iter().filter_map(|q| q.raster.as_ref()).collect())?;
    let sample = merge_samples(results.iter().filter_map(|q| q.sample.as_ref()).collect(), sample);
    let message = if notes.is_empty() { None } else { Some(notes.join(". ")) };
    Ok(Merged {
        total,
        selected,
        histograms,
        raster,
        sample,
        shards: ShardReport { expected: shards, answered, missing, consistent, message },
        kernel_micros,
    })
}

/// The error when no worker answered: the workers' own error when they all
/// refused the query itself (it is then the user's to fix), else unavailable.
fn no_answer(failed: Vec<(String, Error)>) -> Error {
    use quiver_worker::Error as W;
    if failed.is_empty() {
        return Error::Unavailable("no workers are known (none configured or discovered yet)".into());
    }
    let refused = |e: &Error| {
        matches!(e, Error::Worker { source: W::InvalidQuery(_) | W::UnknownDataset(_) | W::NotReady { .. }, .. })
    };
    if failed.iter().all(|(_, e)| refused(e)) {
        return failed.into_iter().next().expect("non-empty").1;
    }
    let why = failed.iter().map(|(ep, e)| format!("{ep}: {}", e.public_message())).collect::<Vec<_>>().join("; ");
    Error::Unavailable(format!("no worker answered: {why}"))
}

fn short(generation: &str) -> &str {
    let end = generation.char_indices().nth(12).map(|(i, _)| i).unwrap_or(generation.len());
    &generation[..end]
}

/// Sums histograms bin by bin (shapes were checked equal).
pub fn merge_histograms(results: &[QueryResult]) -> Vec<Histogram> {
    let Some(first) = results.first() else { return Vec::new() };
    let mut out = first.histograms.clone();
    for q in &results[1..] {
        for (acc, h) in out.iter_mut().zip(&q.histograms) {
            for (a, b) in acc.bins.iter_mut().zip(&h.bins) {
                a.count += b.count;
            }
            acc.missing += h.missing;
        }
    }
    out
}

/// Adds sparse rasters pixel by pixel, matching categories by label.
pub fn merge_rasters(rasters: Vec<&Raster>) -> Result<Option<Raster>> {
    let Some(first) = rasters.first() else { return Ok(None) };
    let mut acc: Raster = (*first).clone();
    for r in &rasters[1..] {
        if (r.width, r.height) != (acc.width, acc.height) {
            return Err(Error::Internal(format!(
                "rasters of {}x{} and {}x{} cannot be added",
                acc.width, acc.height, r.width, r.height
            )));
        }
        acc = add_rasters(&acc, r);
    }
    Ok(Some(acc))
}

/// `a + b` where `b`'s categories may be ordered differently or include new ones.
fn add_rasters(a: &Raster, b: &Raster) -> Raster {
    let mut categories = a.categories.clone();
    let map: Vec<usize> = b
        .categories
        .iter()
        .map(|label| match categories.iter().position(|c| c == label) {
            Some(i) => i,
            None => {
                categories.push(label.clone());
                categories.len() - 1
            }
        })
        .collect();
    let (na, nb, nc) = (a.categories.len(), b.categories.len(), categories.len());
    if na == nc && map.iter().enumerate().all(|(c, &m)| c == m) {
        return add_aligned(a, b);
    }
    let mut pixels = Vec::with_capacity(a.pixels.len().max(b.pixels.len()));
    let mut counts = Vec::with_capacity(pixels.capacity() * nc);
    let (mut i, mut j) = (0, 0);
    while i < a.pixels.len() || j < b.pixels.len() {
        let pa = a.pixels.get(i).copied().unwrap_or(u32::MAX);
        let pb = b.pixels.get(j).copied().unwrap_or(u32::MAX);
        let p = pa.min(pb);
        let base = counts.len();
        counts.resize(base + nc, 0u32);
        if pa == p && i < a.pixels.len() {
            counts[base..base + na].copy_from_slice(&a.counts[i * na..(i + 1) * na]);
            i += 1;
        }
        if pb == p && j < b.pixels.len() {
            for (c, &v) in b.counts[j * nb..(j + 1) * nb].iter().enumerate() {
                let slot = &mut counts[base + map[c]];
                *slot = slot.saturating_add(v);
            }
            j += 1;
        }
        pixels.push(p);
    }
    Raster { width: a.width, height: a.height, categories, pixels, counts }
}

/// `a + b` when both list the same categories in the same order (the usual case).
fn add_aligned(a: &Raster, b: &Raster) -> Raster {
    let nc = a.categories.len();
    let cap = a.pixels.len().max(b.pixels.len());
    let mut pixels = Vec::with_capacity(cap);
    let mut counts = Vec::with_capacity(cap * nc);
    let (mut i, mut j) = (0, 0);
    while i < a.pixels.len() && j < b.pixels.len() {
        let (pa, pb) = (a.pixels[i], b.pixels[j]);
        if pa < pb {
            pixels.push(pa);
            counts.extend_from_slice(&a.counts[i * nc..(i + 1) * nc]);
            i += 1;
        } else if pb < pa {
            pixels.push(pb);
            counts.extend_from_slice(&b.counts[j * nc..(j + 1) * nc]);
            j += 1;
        } else {
            pixels.push(pa);
            let (ca, cb) = (&a.counts[i * nc..(i + 1) * nc], &b.counts[j * nc..(j + 1) * nc]);
            counts.extend(ca.iter().zip(cb).map(|(x, y)| x.saturating_add(*y)));
            i += 1;
            j += 1;
        }
    }
    pixels.extend_from_slice(&a.pixels[i..]);
    counts.extend_from_slice(&a.counts[i * nc..]);
    pixels.extend_from_slice(&b.pixels[j..]);
    counts.extend_from_slice(&b.counts[j * nc..]);
    Raster { width: a.width, height: a.height, categories: a.categories.clone(), pixels, counts }
}

/// Combines per-shard samples into one uniform sample of at most `limit` rows:
/// each shard contributes in proportion to its matched rows. The choice is seeded
/// by the matched counts, so every replica returns the same rows for the same data.
/// An all-or-none sample has no rows when more than `limit` match in all (a
/// shard then sent its rows only if its own matches fit).
pub fn merge_samples(samples: Vec<&Sample>, asked: Option<SampleSize>) -> Option<Sample> {
    if samples.is_empty() {
        return None;
    }
    let matched: u64 = samples.iter().map(|s| s.matched).sum();
    let available: usize = samples.iter().map(|s| s.rows.len()).sum();
    let limit = asked.map(|a| a.limit as usize).unwrap_or(available);
    // Shards of one generation keep the same detail columns.
    let columns = samples.iter().map(|s| &s.columns).find(|c| !c.is_empty()).cloned().unwrap_or_default();
    if asked.is_some_and(|a| a.all_or_none) && matched > limit as u64 {
        return Some(Sample { matched, rows: vec![], columns });
    }
    if available <= limit {
        let rows = samples.iter().flat_map(|s| s.rows.iter().cloned()).collect();
        return Some(Sample { matched, rows, columns });
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(matched ^ (available as u64).rotate_left(32));
    // Largest-remainder apportionment of `limit` by matched rows, capped by what each shard sent.
    let weights: Vec<f64> = samples.iter().map(|s| s.matched.max(s.rows.len() as u64) as f64).collect();
    let wsum: f64 = weights.iter().sum::<f64>().max(1.0);
    let mut quota: Vec<usize> = samples
        .iter()
        .zip(&weights)
        .map(|(s, w)| ((limit as f64 * w / wsum).floor() as usize).min(s.rows.len()))
        .collect();
    let mut left = limit - quota.iter().sum::<usize>();
    while left > 0 {
        let mut progressed = false;
        for (k, s) in samples.iter().enumerate() {
            if left > 0 && quota[k] < s.rows.len() {
                quota[k] += 1;
                left -= 1;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    let mut rows = Vec::with_capacity(limit);
    for (s, &q) in samples.iter().zip(&quota) {
        let mut idx = sample_indices(&mut rng, s.rows.len(), q).into_vec();
        idx.sort_unstable();
        rows.extend(idx.into_iter().map(|i| s.rows[i].clone()));
    }
    Some(Sample { matched, rows, columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_worker::protocol::{Bin, SampleRow, ShardInfo};

    fn hist(dim: &str, counts: &[u64]) -> Histogram {
        Histogram {
            dimension: dim.into(),
            bins: counts
                .iter()
                .enumerate()
                .map(|(i, &c)| Bin { label: format!("b{i}"), lo: None, hi: None, count: c })
                .collect(),
            missing: 1,
        }
    }

    fn answer(shard: u32, shards: u32, generation: &str, total: u64, counts: &[u64]) -> QueryResult {
        QueryResult {
            shard: ShardInfo { shard, shards, generation: generation.into() },
            total,
            selected: total / 2,
            kernel_micros: 100 + u64::from(shard),
            histograms: vec![hist("radio", counts)],
            raster: None,
            sample: None,
        }
    }

    fn ok(ep: &str, q: QueryResult) -> Reply<QueryResult> {
        Reply { endpoint: ep.into(), result: Ok(q) }
    }

    fn down(ep: &str) -> Reply<QueryResult> {
        Reply {
            endpoint: ep.into(),
            result: Err(Error::WorkerTimeout { endpoint: ep.into(), after: std::time::Duration::from_secs(5) }),
        }
    }

    #[test]
    fn consistent_shards_are_summed() {
        let m = merge(
            vec![ok("a", answer(0, 2, "g1", 100, &[1, 2, 3])), ok("b", answer(1, 2, "g1", 60, &[10, 20, 30]))],
            None,
        )
        .unwrap();
        assert_eq!(m.total, 160);
        assert_eq!(m.selected, 80);
        let counts: Vec<u64> = m.histograms[0].bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![11, 22, 33]);
        assert_eq!(m.histograms[0].missing, 2);
        assert_eq!(m.shards.answered, vec![0, 1]);
        assert!(m.shards.missing.is_empty());
        assert!(m.shards.consistent);
        assert!(!m.shards.partial());
        assert_eq!(m.shards.message, None);
        assert_eq!(m.kernel_micros, 101);
    }

    #[test]
    fn a_missing_shard_is_flagged_and_named() {
        let m = merge(
            vec![ok("a", answer(0, 3, "g1", 100, &[1])), down("http://w2:8815"), ok("c", answer(2, 3, "g1", 5, &[2]))],
            None,
        )
        .unwrap();
        assert_eq!(m.total, 105);
        assert_eq!(m.shards.expected, 3);
        assert_eq!(m.shards.answered, vec![0, 2]);
        assert_eq!(m.shards.missing, vec![1]);
        assert!(m.shards.partial());
        let msg = m.shards.message.unwrap();
        assert!(msg.contains("shard 1"), "{msg}");
        assert!(msg.contains("http://w2:8815"), "{msg}");
    }

    #[test]
    fn a_missing_shard_is_detected_even_when_its_worker_is_not_listed() {
        // DNS dropped the dead pod: only the shard count reveals the gap.
        let m = merge(vec![ok("a", answer(0, 2, "g1", 100, &[1]))], None).unwrap();
        assert_eq!(m.shards.missing, vec![1]);
        assert!(m.shards.partial());
    }

    #[test]
    fn mixed_shardings_are_flagged_not_summed() {
        // Mid-rescale from 2 to 3 shards: two old answers, one new.
        let m = merge(
            vec![
                ok("a", answer(0, 2, "g1", 100, &[1])),
                ok("b", answer(1, 2, "g1", 100, &[1])),
                ok("c", answer(2, 3, "g1", 70, &[1000])),
            ],
            None,
        )
        .unwrap();
        assert_eq!(m.total, 200, "only the 2-shard answers are summed");
        assert_eq!(m.histograms[0].bins[0].count, 2);
        assert_eq!(m.shards.expected, 2);
        assert!(!m.shards.consistent);
        assert!(m.shards.partial());
        assert!(m.shards.message.unwrap().contains("shard 2 of 3"));
    }

    #[test]
    fn mixed_generations_are_flagged_not_summed() {
        let m = merge(vec![ok("a", answer(0, 2, "old", 100, &[1])), ok("b", answer(1, 2, "new", 100, &[1]))], None)
            .unwrap();
        assert_eq!(m.total, 100);
        assert!(!m.shards.consistent);
        assert_eq!(m.shards.missing.len(), 1);
    }

    #[test]
    fn a_repeated_shard_is_counted_once() {
        let m =
            merge(vec![ok("a", answer(0, 1, "g", 100, &[1])), ok("b", answer(0, 1, "g", 100, &[1]))], None).unwrap();
        assert_eq!(m.total, 100);
        assert!(!m.shards.consistent);
        assert!(m.shards.message.unwrap().contains("twice"));
    }

    #[test]
    fn differently_binned_answers_are_left_out() {
        let m =
            merge(vec![ok("a", answer(0, 2, "g", 100, &[1, 2])), ok("b", answer(1, 2, "g", 100, &[1, 2, 3]))], None)
                .unwrap();
        assert_eq!(m.total, 100);
        assert!(!m.shards.consistent);
    }

    #[test]
    fn no_answer_at_all_is_an_error_naming_the_workers() {
        let e = merge(vec![down("http://w0:8815"), down("http://w1:8815")], None).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.to_string().contains("http://w1:8815"), "{e}");
        let e = merge(vec![], None).unwrap_err();
        assert!(e.to_string().contains("no workers"), "{e}");
    }

    #[test]
    fn a_query_every_worker_refuses_is_the_users_error() {
        let refuse = |ep: &str| Reply::<QueryResult> {
            endpoint: ep.into(),
            result: Err(Error::Worker {
                endpoint: ep.into(),
                source: quiver_worker::Error::InvalidQuery("unknown dimension \"foo\"".into()),
            }),
        };
        let e = merge(vec![refuse("a"), refuse("b")], None).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        assert!(e.public_message().contains("foo"));
    }

    fn raster(cats: &[&str], cells: &[(u32, &[u32])]) -> Raster {
        Raster {
            width: 10,
            height: 10,
            categories: cats.iter().map(|s| s.to_string()).collect(),
            pixels: cells.iter().map(|c| c.0).collect(),
            counts: cells.iter().flat_map(|c| c.1.iter().copied()).collect(),
        }
    }

    #[test]
    fn rasters_add_pixelwise_matching_categories_by_label() {
        let a = raster(&["x", "y"], &[(1, &[1, 2]), (5, &[3, 0])]);
        let b = raster(&["y", "z"], &[(0, &[7, 1]), (5, &[1, 4])]);
        let m = merge_rasters(vec![&a, &b]).unwrap().unwrap();
        assert_eq!(m.categories, vec!["x", "y", "z"]);
        assert_eq!(m.pixels, vec![0, 1, 5]);
        assert_eq!(m.counts, vec![0, 7, 1, 1, 2, 0, 3, 1, 4]);
        // Total mass is preserved.
        let sum = |r: &Raster| r.counts.iter().map(|&c| u64::from(c)).sum::<u64>();
        assert_eq!(sum(&m), sum(&a) + sum(&b));
        crate::shade::check_raster(&m).unwrap();
    }

    #[test]
    fn rasters_with_the_same_categories_add_the_same_way() {
        let a = raster(&["x", "y"], &[(1, &[1, 2]), (5, &[3, 0]), (9, &[1, 1])]);
        let b = raster(&["x", "y"], &[(0, &[7, 1]), (5, &[1, 4])]);
        let m = merge_rasters(vec![&a, &b]).unwrap().unwrap();
        assert_eq!(m.pixels, vec![0, 1, 5, 9]);
        assert_eq!(m.counts, vec![7, 1, 1, 2, 4, 4, 1, 1]);
        // The general path (categories reordered) gives the same sums.
        let b2 = raster(&["y", "x"], &[(0, &[1, 7]), (5, &[4, 1])]);
        assert_eq!(merge_rasters(vec![&a, &b2]).unwrap().unwrap(), m);
    }

    fn sample(matched: u64, n: usize, tag: &str) -> Sample {
        Sample {
            matched,
            rows: (0..n)
                .map(|i| SampleRow {
                    lon: i as f64,
                    lat: 0.0,
                    category: tag.into(),
                    values: Default::default(),
                    details: Default::default(),
                })
                .collect(),
            columns: vec![],
        }
    }

    #[test]
    fn samples_are_apportioned_by_matched_rows() {
        let a = sample(9000, 100, "a");
        let b = sample(1000, 100, "b");
        let m = merge_samples(vec![&a, &b], Some(asked(100, false))).unwrap();
        assert_eq!(m.matched, 10_000);
        assert_eq!(m.rows.len(), 100);
        let from_a = m.rows.iter().filter(|r| r.category == "a").count();
        assert_eq!(from_a, 90);
        // Deterministic: another replica picks the same rows.
        assert_eq!(merge_samples(vec![&a, &b], Some(asked(100, false))).unwrap(), m);
    }

    fn asked(limit: u32, all_or_none: bool) -> SampleSize {
        SampleSize { limit, all_or_none }
    }

    #[test]
    fn all_or_none_samples_are_whole_or_empty() {
        // Every shard sent all its rows and they fit: all of them.
        let (a, b) = (sample(3, 3, "a"), sample(2, 2, "b"));
        let m = merge_samples(vec![&a, &b], Some(asked(5, true))).unwrap();
        assert_eq!((m.matched, m.rows.len()), (5, 5));
        // Each shard fits on its own but not together: none, the count kept.
        let m = merge_samples(vec![&a, &b], Some(asked(4, true))).unwrap();
        assert_eq!((m.matched, m.rows.len()), (5, 0));
        // One shard had too many to send: none rather than the other's rows alone.
        let big = sample(9, 0, "c");
        let m = merge_samples(vec![&a, &big], Some(asked(8, true))).unwrap();
        assert_eq!((m.matched, m.rows.len()), (12, 0));
        // Without all-or-none the same answers give a sample of the rows sent.
        let m = merge_samples(vec![&a, &b], Some(asked(4, false))).unwrap();
        assert_eq!((m.matched, m.rows.len()), (5, 4));
    }

    #[test]
    fn small_samples_are_kept_whole() {
        let a = sample(3, 3, "a");
        let b = sample(2, 2, "b");
        let m = merge_samples(vec![&a, &b], Some(asked(100, false))).unwrap();
        assert_eq!(m.rows.len(), 5);
        assert_eq!(m.matched, 5);
    }
}
