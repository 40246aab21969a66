//! The kernels against the naive reference on random data, filters and
//! viewports, including the edge cases: empty selections, viewports outside
//! the data, one-pixel rasters, the antimeridian, points on bin edges.

use std::collections::BTreeMap;

use proptest::prelude::*;
use quiver_worker::bins::DimBins;
use quiver_worker::geo::{lat_to_y, lon_to_x};
use quiver_worker::kernel::reference::{self, Rows};
use quiver_worker::kernel::{self, Plan};
use quiver_worker::protocol::{Filter, Query, ShardInfo, View, Viewport};
use quiver_worker::source::presets::default_view;
use quiver_worker::spec::{Preset, ViewConfig};
use quiver_worker::store::{BLOCK_ROWS, Builder, Shard};

fn dims(view: &ViewConfig) -> Vec<DimBins> {
    view.dimensions.iter().map(|d| DimBins::from_spec(d).unwrap()).collect()
}

/// Builds a shard from the rows (which the builder sorts).
fn shard_from(rows: &Rows, view: ViewConfig) -> Shard {
    let d = dims(&view);
    let cat = view.dimensions.iter().position(|x| x.name == view.category).unwrap();
    let b = Builder::from_columns(&rows.xs, &rows.ys, &rows.codes);
    b.finish("t", view, d, cat, ShardInfo { shard: 0, shards: 1, generation: "g".into() }, None)
}

/// Random rows: clustered points (so blocks have tight bounds) plus some
/// anywhere, some on the antimeridian, codes in range including "missing".
fn rows_strategy(max_rows: usize) -> impl Strategy<Value = Rows> {
    let view = default_view(Preset::Celltowers);
    let nb: Vec<u32> = dims(&view).iter().map(|d| d.nbins()).collect();
    (0..max_rows, any::<u64>()).prop_map(move |(n, seed)| {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<(f64, f64)> =
            (0..8).map(|_| (rng.random_range(-180.0..180.0), rng.random_range(-80.0..80.0))).collect();
        let mut r = Rows { xs: vec![], ys: vec![], codes: vec![vec![]; nb.len()] };
        for _ in 0..n {
            let (lon, lat) = match rng.random_range(0..10) {
                0 => (rng.random_range(-180.0..180.0), rng.random_range(-85.0..85.0)),
                1 => (if rng.random_bool(0.5) { 179.99 } else { -179.99 }, rng.random_range(-10.0..10.0)),
                _ => {
                    let c = centres[rng.random_range(0..centres.len())];
                    ((c.0 + rng.random_range(-2.0..2.0)).clamp(-180.0, 180.0), (c.1 + rng.random_range(-2.0..2.0)))
                }
            };
            r.xs.push(lon_to_x(lon));
            r.ys.push(lat_to_y(lat));
            for (d, &k) in nb.iter().enumerate() {
                // Codes 0..=k: k is "missing", which the categorical
                // dimension (0, radio) never has.
                let top = if d == 0 { k - 1 } else { k };
                r.codes[d].push(rng.random_range(0..=top) as u8);
            }
        }
        r
    })
}

fn viewport_strategy() -> impl Strategy<Value = Option<Viewport>> {
    prop_oneof![
        Just(None),
        Just(Some(Viewport::WORLD)),
        // Anywhere, any size, possibly crossing the antimeridian (west > east).
        (-180.0..180.0f64, -180.0..180.0f64, -85.0..85.0f64, 0.01..60.0f64).prop_filter_map(
            "non-empty",
            |(w, e, s, h)| {
                let n = (s + h).min(85.0);
                (w != e && s < n).then_some(Some(Viewport { west: w, south: s, east: e, north: n }))
            }
        ),
    ]
}

fn filters_strategy() -> impl Strategy<Value = BTreeMap<String, Filter>> {
    let radio = prop::sample::subsequence(vec!["GSM", "UMTS", "LTE", "CDMA", "NR", "Other"], 0..=6)
        .prop_map(|v| Filter::Categories(v.into_iter().map(String::from).collect()));
    let range = (0u32..40, 0u32..41).prop_map(|(a, b)| Filter::Bins((a.min(b)..a.max(b)).collect()));
    let created = (2000i32..2024, 0i32..8).prop_map(|(y, n)| {
        let s = quiver_worker::bins::parse_instant(&format!("{y}-01-01")).unwrap() as f64;
        let e = quiver_worker::bins::parse_instant(&format!("{}-01-01", y + n)).unwrap() as f64;
        Filter::Range { min: s, max: e }
    });
    (prop::option::of(radio), prop::option::of(range), prop::option::of(created)).prop_map(|(a, b, c)| {
        let mut m = BTreeMap::new();
        if let Some(a) = a {
            m.insert("radio".to_string(), a);
        }
        if let Some(b) = b {
            m.insert("range".to_string(), b);
        }
        if let Some(c) = c {
            m.insert("created".to_string(), c);
        }
        m
    })
}

fn check(rows: &Rows, q: &Query) -> Result<(), TestCaseError> {
    let view = default_view(Preset::Celltowers);
    let shard = shard_from(rows, view.clone());
    let plan = Plan::new(q, &shard).unwrap();
    let got = kernel::scan(&shard, &plan);
    let nb: Vec<u32> = dims(&view).iter().map(|d| d.nbins()).collect();
    let want = reference::evaluate(rows, &nb, &plan);
    prop_assert_eq!(&got.hists, &want.hists);
    prop_assert_eq!(got.selected, want.selected);
    prop_assert_eq!(got.in_view, want.in_view);
    if let Some(pm) = plan.raster {
        prop_assert!(got.pixels.windows(2).all(|p| p[0] < p[1]), "pixels ascending");
        prop_assert_eq!(got.cells.len(), got.pixels.len() * plan.ncat);
        prop_assert!(got.cells.chunks(plan.ncat).all(|c| c.iter().any(|&n| n > 0)), "only non-empty pixels");
        prop_assert!(got.dense_raster(pm.width, pm.height, plan.ncat) == want.raster, "rasters differ");
    } else {
        prop_assert!(got.pixels.is_empty() && want.raster.is_empty());
    }
    // The admission estimate: every row without a filtering viewport, and at
    // least every row in view with one (blocks outside it are skipped), unless
    // pre-aggregates answer blocks without reading their rows.
    let visit = kernel::rows_to_visit(&shard, &plan);
    prop_assert!(visit <= rows.xs.len());
    if plan.aggregable {
        if plan.raster.is_some() && plan.viewport_filter {
            // Rows in view are read for the raster (blocks wholly inside, or at the edges).
            prop_assert!(visit as u64 >= want.in_view, "visits {} rows, {} in view", visit, want.in_view);
        }
    } else if plan.viewport.is_some() && plan.viewport_filter {
        prop_assert!(visit as u64 >= want.in_view, "visits {} rows, {} in view", visit, want.in_view);
    } else {
        prop_assert_eq!(visit, rows.xs.len());
    }
    // The sample: min(limit, matches) distinct rows, each of which matches;
    // all or none of the matches when asked so.
    if plan.sample_limit > 0 {
        let limit = plan.sample_limit as u64;
        let want_len = match plan.sample_all_or_none {
            true if want.in_view > limit => 0,
            _ => limit.min(want.in_view),
        };
        prop_assert_eq!(got.sample.len() as u64, want_len);
        let mut dedup = got.sample.clone();
        dedup.dedup();
        prop_assert_eq!(dedup.len(), got.sample.len());
        for &r in &got.sample {
            let r = r as usize;
            let ok = (0..shard.dims.len()).all(|d| plan.fail[d][shard.codes[d][r] as usize] == 0)
                && plan.viewport.is_none_or(|vp| vp.contains(shard.xs[r], shard.ys[r]));
            prop_assert!(ok, "sampled row {} does not match", r);
        }
    }
    Ok(())
}

fn query(
    filters: BTreeMap<String, Filter>,
    viewport: Option<Viewport>,
    vpf: bool,
    w: u32,
    h: u32,
    sample: u32,
    all_or_none: bool,
) -> Query {
    let mut views = vec![
        View::Histogram { dimension: "radio".into() },
        View::Histogram { dimension: "range".into() },
        View::Histogram { dimension: "created".into() },
    ];
    if viewport.is_some() {
        views.push(View::Raster { width: w, height: h });
    }
    if sample > 0 {
        views.push(View::Sample { limit: sample, all_or_none });
    }
    Query { version: 1, dataset: "t".into(), filters, viewport, viewport_filter: vpf && viewport.is_some(), views }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn kernels_match_the_reference(
        rows in rows_strategy(3 * BLOCK_ROWS + 100),
        filters in filters_strategy(),
        viewport in viewport_strategy(),
        vpf in any::<bool>(),
        w in 1u32..64, h in 1u32..64,
        sample in prop_oneof![Just(0u32), 1u32..50, 2_000u32..=10_000],
        all_or_none in any::<bool>(),
    ) {
        check(&rows, &query(filters, viewport, vpf, w, h, sample, all_or_none))?;
    }

    /// Queries that filter at most one dimension are answered from
    /// pre-aggregates where blocks allow: the answer, sample included, is the
    /// one a row-by-row scan gives.
    #[test]
    fn pre_aggregates_answer_exactly_what_the_scan_does(
        rows in rows_strategy(3 * BLOCK_ROWS + 100),
        all_filters in filters_strategy(),
        which in 0usize..4,
        viewport in viewport_strategy(),
        vpf in any::<bool>(),
        w in 1u32..64, h in 1u32..64,
        sample in prop_oneof![Just(0u32), 1u32..=32, 33u32..100, 2_000u32..=10_000],
        all_or_none in any::<bool>(),
    ) {
        // At most one of the random filters (none for `which` 3).
        let filters: BTreeMap<String, Filter> = all_filters.into_iter().skip(which).take(1).collect();
        let q = query(filters, viewport, vpf, w, h, sample, all_or_none);
        check(&rows, &q)?;
        let shard = shard_from(&rows, default_view(Preset::Celltowers));
        let plan = Plan::new(&q, &shard).unwrap();
        prop_assert!(plan.aggregable);
        let mut scan_only = plan.clone();
        scan_only.aggregable = false;
        prop_assert_eq!(kernel::scan(&shard, &plan), kernel::scan(&shard, &scan_only));
    }
}

/// A filter on `range` or `created` from a pair of numbers (a brush position).
fn brush_filter(dim: &str, a: u32, b: u32) -> Filter {
    let (lo, hi) = (a.min(b), a.max(b));
    if dim == "range" {
        Filter::Bins((lo % 41..hi % 41).collect())
    } else {
        let year = |n: u32| quiver_worker::bins::parse_instant(&format!("{}-01-01", 1998 + n % 30)).unwrap() as f64;
        Filter::Range { min: year(lo), max: year(hi) }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Brushing one dimension (not the category) with a map image: the first
    /// position builds the shard's brush index and every position, answered
    /// from it, equals the row-by-row scan, the raster included.
    #[test]
    fn brush_indexes_answer_exactly_what_the_scan_does(
        rows in rows_strategy(3 * BLOCK_ROWS + 100),
        viewport in viewport_strategy().prop_filter("a map", |v| v.is_some()),
        vpf in any::<bool>(),
        w in 1u32..64, h in 1u32..64,
        dim in prop_oneof![Just("range"), Just("created")],
        positions in prop::collection::vec((0u32..64, 0u32..64), 1..6),
        sample in prop_oneof![Just(0u32), 1u32..=40],
        threads in 1usize..6,
    ) {
        let shard = shard_from(&rows, default_view(Preset::Celltowers));
        // The index is counted in one band of pixel rows per thread.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| -> Result<(), TestCaseError> {
            for (i, &(a, b)) in positions.iter().enumerate() {
                let mut filters = BTreeMap::new();
                filters.insert(dim.to_string(), brush_filter(dim, a, b));
                let q = query(filters, viewport, vpf, w, h, sample, false);
                let plan = Plan::new(&q, &shard).unwrap();
                let mut scan_only = plan.clone();
                scan_only.aggregable = false;
                let want = kernel::scan(&shard, &scan_only);
                prop_assert_eq!(kernel::answer(&shard, &plan), want, "position {}", i);
                // A filter passing every code does not brush; any other does, and
                // then the index is there for the next position.
                if kernel::brush::brushed_dim(&plan).is_some() {
                    prop_assert_eq!(shard.brushes.len(), 1);
                }
            }
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    #[test]
    fn big_shards_split_across_threads_match_the_reference(
        rows in rows_strategy(300_000).prop_filter("big", |r| r.xs.len() > 210_000),
        filters in filters_strategy(),
        viewport in viewport_strategy(),
    ) {
        check(&rows, &query(filters, viewport, true, 37, 23, 10, false))?;
    }
}

/// Raster counters are 16 bits that spill: a pixel holding more than 65,536
/// rows of a category counts them exactly, whether its rows are read one by
/// one, its blocks fall in the one pixel, or the full scan reads them.
#[test]
fn pixels_holding_more_than_65536_rows_count_exactly() {
    let mut rows = Rows { xs: vec![], ys: vec![], codes: vec![vec![]; 3] };
    let mut push = |lon: f64, lat: f64, radio: u8, i: usize| {
        rows.xs.push(lon_to_x(lon));
        rows.ys.push(lat_to_y(lat));
        rows.codes[0].push(radio);
        rows.codes[1].push((i % 40) as u8);
        rows.codes[2].push((i % 20) as u8);
    };
    // Two points either side of the 2x2 map's middle column: every block
    // spans two pixels, so the pre-aggregated path reads their rows.
    for i in 0..300_000 {
        push(if i % 2 == 0 { -0.001 } else { 0.001 }, 10.0, if i % 10 == 0 { 1 } else { 2 }, i);
    }
    // One point: its blocks fall in one pixel and add their counts whole.
    for i in 0..100_000 {
        push(50.0, -20.0, 3, i);
    }
    let mut two_filters = BTreeMap::new();
    two_filters.insert("range".to_string(), Filter::Bins((0..39).collect()));
    two_filters.insert("created".to_string(), Filter::Bins((0..19).collect()));
    for filters in [BTreeMap::new(), two_filters] {
        check(&rows, &query(filters, Some(Viewport::WORLD), true, 2, 2, 0, false)).unwrap();
    }
}

#[test]
fn empty_shards_and_empty_selections_count_nothing() {
    let rows = Rows { xs: vec![], ys: vec![], codes: vec![vec![]; 3] };
    check(&rows, &query(BTreeMap::new(), Some(Viewport::WORLD), true, 8, 8, 5, false)).unwrap();
    let mut f = BTreeMap::new();
    f.insert("radio".to_string(), Filter::Categories(vec![]));
    let mut rows = Rows { xs: vec![lon_to_x(2.0); 10], ys: vec![lat_to_y(48.0); 10], codes: vec![vec![0; 10]; 3] };
    rows.codes[2] = vec![5; 10];
    check(&rows, &query(f, Some(Viewport::WORLD), true, 1, 1, 5, false)).unwrap();
}

#[test]
fn a_viewport_away_from_the_data_selects_nothing_but_keeps_histograms_when_asked() {
    let n = 5000;
    let rows = Rows {
        xs: (0..n).map(|i| lon_to_x(2.0 + i as f64 * 1e-4)).collect(),
        ys: vec![lat_to_y(48.0); n],
        codes: vec![vec![2; n], vec![10; n], vec![12; n]],
    };
    let vp = Some(Viewport { west: 100.0, south: 10.0, east: 110.0, north: 20.0 });
    let view = default_view(Preset::Celltowers);
    let shard = shard_from(&rows, view);
    let with = kernel::scan(&shard, &Plan::new(&query(BTreeMap::new(), vp, true, 10, 10, 0, false), &shard).unwrap());
    assert_eq!(with.selected, 0);
    assert_eq!(with.hists[0].iter().sum::<u64>(), 0);
    let without =
        kernel::scan(&shard, &Plan::new(&query(BTreeMap::new(), vp, false, 10, 10, 0, false), &shard).unwrap());
    assert_eq!(without.selected, n as u64);
    assert_eq!(without.hists[0][2], n as u64);
    assert!(without.pixels.is_empty() && without.cells.is_empty());
}

#[test]
fn points_on_bin_edges_fall_in_the_upper_bin() {
    // A value exactly on a yearly edge belongs to the bin that starts there.
    let view = default_view(Preset::Celltowers);
    let created = DimBins::from_spec(&view.dimensions[2]).unwrap();
    let edge = quiver_worker::bins::parse_instant("2010-01-01").unwrap();
    assert_eq!(created.labels()[created.code_i64(edge) as usize], "2010");
    assert_eq!(created.labels()[created.code_i64(edge - 1) as usize], "2009");
}

#[test]
fn samples_from_pre_aggregates_equal_the_scan_at_every_limit() {
    // One block, one category: every sampled row comes from one kept list,
    // so a limit beyond the kept rows must fall back to reading the rows.
    let n = 1000;
    let rows = Rows {
        xs: (0..n).map(|i| lon_to_x(-60.0 + i as f64 * 0.1)).collect(),
        ys: (0..n).map(|i| lat_to_y(-30.0 + (i % 50) as f64)).collect(),
        codes: vec![vec![2; n], (0..n).map(|i| (i % 41) as u8).collect(), (0..n).map(|i| (i % 20) as u8).collect()],
    };
    let shard = shard_from(&rows, default_view(Preset::Celltowers));
    for limit in (1..=20).chain([31, 32, 33, 40, 64, 80]) {
        for radio in [None, Some(vec!["LTE".to_string()]), Some(vec!["GSM".to_string(), "LTE".to_string()])] {
            let mut f = BTreeMap::new();
            if let Some(r) = radio {
                f.insert("radio".to_string(), Filter::Categories(r));
            }
            let plan = Plan::new(&query(f, Some(Viewport::WORLD), true, 16, 8, limit, false), &shard).unwrap();
            assert!(plan.aggregable);
            let mut scan_only = plan.clone();
            scan_only.aggregable = false;
            let (a, b) = (kernel::scan(&shard, &plan), kernel::scan(&shard, &scan_only));
            assert_eq!(a, b, "limit {limit}");
            assert_eq!(a.sample.len(), limit as usize);
        }
    }
}

/// A server's brush: the first two positions are scanned, the second starting
/// the index's build in the background (a one-off brush builds nothing);
/// once it is there, positions come from it, equal to the scan.
#[test]
fn a_shared_shard_builds_its_brush_index_in_the_background() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let rows = rows_strategy(4 * BLOCK_ROWS).new_tree(&mut runner).unwrap().current();
    let shard = std::sync::Arc::new(shard_from(&rows, default_view(Preset::Celltowers)));
    let position = |a: u32, b: u32| {
        let mut filters = BTreeMap::new();
        filters.insert("created".to_string(), brush_filter("created", a, b));
        let plan = Plan::new(&query(filters, Some(Viewport::WORLD), true, 300, 200, 3, false), &shard).unwrap();
        let mut scan_only = plan.clone();
        scan_only.aggregable = false;
        (plan, kernel::scan(&shard, &scan_only))
    };
    let (plan, want) = position(10, 20);
    assert!(kernel::brush::brushed_dim(&plan).is_some());
    assert_eq!(kernel::answer_shared(&shard, &plan), want);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(shard.brushes.is_empty(), "nothing built for a first position");
    let (plan, want) = position(11, 21);
    assert_eq!(kernel::answer_shared(&shard, &plan), want);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while shard.brushes.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the index was built");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for (a, b) in [(12, 22), (0, 29), (15, 15)] {
        let (plan, want) = position(a, b);
        assert_eq!(kernel::answer_shared(&shard, &plan), want, "{a}..{b}");
    }
    assert_eq!(shard.brushes.len(), 1, "one index serves every position");
}
