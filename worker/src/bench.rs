//! `quiver-worker bench`: generation rate, load rate, resident bytes per row,
//! and kernel times of three interactions next to the floor (one plain pass
//! over the same columns). Run it from a release build.

use std::time::Instant;

use clap::Args;

use crate::error::{Error, Result};
use crate::kernel::{self, Plan};
use crate::protocol::{Filter, Query, View, Viewport};
use crate::source::{self, LoadOptions, ShardId};
use crate::spec::{DatasetSpec, Format, Preset};

/// Options of `quiver-worker bench`.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Rows of synthetic cell towers (e.g. 40M).
    #[arg(long, default_value = "40M", value_parser = crate::synth::parse_count)]
    pub rows: u64,
    /// Where the data is generated (reused when present with the same row count).
    #[arg(long, default_value = "/tmp/quiver-bench")]
    pub dir: std::path::PathBuf,
    /// File format of the generated data.
    #[arg(long, default_value = "parquet")]
    pub format: String,
    /// Repetitions of each interaction.
    #[arg(long, default_value_t = 30)]
    pub repeat: usize,
    /// Regenerate even when data is present.
    #[arg(long)]
    pub regen: bool,
    /// Load without the preset's detail columns (`details: []`), to compare
    /// load time and memory with and without them.
    #[arg(long)]
    pub no_details: bool,
    /// Fail (exit non-zero) when a ratio measured in this run passes its
    /// bound: a full scan over the floor above `--max-scan-ratio`, or an
    /// answer from pre-aggregates over the full scan above `--max-aggregate-ratio`.
    /// A guard against slow-downs for CI: ratios of two timings made in the
    /// same run, never absolute times.
    #[arg(long)]
    pub guard: bool,
    /// Largest full scan (3 histograms and the raster, world view, every
    /// row read) ÷ floor the guard accepts.
    #[arg(long, default_value_t = 12.0)]
    pub max_scan_ratio: f64,
    /// Largest pre-aggregated world view (histograms only) ÷ full scan the guard accepts.
    #[arg(long, default_value_t = 0.1)]
    pub max_aggregate_ratio: f64,
    /// Largest world view with its map (pre-aggregates and sub-blocks) ÷
    /// the same view's full scan the guard accepts.
    #[arg(long, default_value_t = 0.5)]
    pub max_map_ratio: f64,
    /// Largest brush-drag position (answered from a brush index) ÷ the
    /// same brush's full scan the guard accepts.
    #[arg(long, default_value_t = 0.2)]
    pub max_brush_ratio: f64,
    /// Largest peak resident memory while loading ÷ resident memory once
    /// loaded the guard accepts.
    #[arg(long, default_value_t = 1.5)]
    pub max_load_peak_ratio: f64,
}

/// Starts the peak resident memory (`VmHWM`) over from the current RSS
/// (Linux `clear_refs`), so a peak measures what follows, not data generation.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

struct Timing {
    median_ms: f64,
    p90_ms: f64,
}

fn time<F: FnMut()>(repeat: usize, mut f: F) -> Timing {
    f(); // warm up
    let mut v: Vec<f64> = (0..repeat.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(|a, b| a.total_cmp(b));
    Timing { median_ms: v[v.len() / 2], p90_ms: v[(v.len() * 9 / 10).min(v.len() - 1)] }
}

/// The benchmark interactions, as the front end asks them over the
/// cell-tower preset: three histograms, a 1400×800 map, the viewport filtering;
/// and the points to draw when at most 5000 match (an all-or-none sample).
pub fn interactions(dataset: &str) -> Vec<(&'static str, Query)> {
    let views = || {
        vec![
            View::Histogram { dimension: "radio".into() },
            View::Histogram { dimension: "range".into() },
            View::Histogram { dimension: "created".into() },
            View::Raster { width: 1400, height: 800 },
            View::Sample { limit: 5000, all_or_none: true },
        ]
    };
    let base = Query {
        version: 1,
        dataset: dataset.to_string(),
        filters: Default::default(),
        viewport: Some(Viewport::WORLD),
        viewport_filter: true,
        views: views(),
    };
    let mut hist_only = base.clone();
    hist_only.views.retain(|v| matches!(v, View::Histogram { .. }));
    let mut category = base.clone();
    category.filters.insert("radio".into(), Filter::Categories(vec!["LTE".into()]));
    let mut brush = base.clone();
    let y2015 = crate::bins::parse_instant("2015-01-01").expect("date") as f64;
    let y2018 = crate::bins::parse_instant("2018-01-01").expect("date") as f64;
    brush.filters.insert("created".into(), Filter::Range { min: y2015, max: y2018 });
    let mut city = base.clone();
    city.viewport = Some(Viewport { west: 1.9, south: 48.6, east: 2.8, north: 49.1 });
    city.filters.insert("radio".into(), Filter::Categories(vec!["LTE".into()]));
    let mut framed = base.clone();
    framed.viewport = Some(Viewport { west: -180.0 + 1e-9, south: -60.0, east: 180.0, north: 75.0 });
    vec![
        ("world view", base),
        ("world view, 60S-75N", framed),
        ("world, histograms only", hist_only),
        ("category click (LTE)", category),
        ("year brush 2015-2017", brush),
        ("city zoom + LTE", city),
    ]
}

/// Runs the benchmark and prints its figures.
pub async fn run(a: BenchArgs) -> Result<()> {
    let format: Format = a.format.parse()?;
    std::fs::create_dir_all(&a.dir)?;
    let dir = std::fs::canonicalize(&a.dir)?;
    let data_dir = dir.join(format!("celltowers-{}-{}", a.rows, format.extension().replace('.', "")));
    let url = format!("file://{}/", data_dir.display());
    println!("quiver-worker bench: {} cell towers, {} threads", a.rows, rayon::current_num_threads());
    // As `serve` does, so memory figures are the server's.
    source::return_large_buffers_at_once();
    let present = data_dir.join(".complete").exists();
    if a.regen || !present {
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)?;
        }
        let opts = crate::synth::GenOptions {
            preset: Preset::Celltowers,
            rows: a.rows,
            out: url.clone(),
            format,
            files: a.rows.div_ceil(4_000_000).max(1) as u32,
            seed: 42,
            s3: Default::default(),
        };
        let s = crate::synth::generate(&opts, true).await?;
        std::fs::write(data_dir.join(".complete"), b"")?;
        println!(
            "generation   {:>10.2} M rows/s   ({} rows, {} files, {:.0} MB, {:.1} s)",
            s.rows as f64 / s.seconds / 1e6,
            s.rows,
            s.files.len(),
            s.bytes as f64 / 1e6,
            s.seconds
        );
    } else {
        println!("generation   (reusing {})", data_dir.display());
    }
    let spec = DatasetSpec {
        name: "celltowers".into(),
        source: url,
        preset: Some(Preset::Celltowers),
        format: None,
        s3: None,
        view: None,
        details: a.no_details.then(Vec::new),
    };
    source::return_freed_memory();
    let (before_load, _) = crate::mem::resident();
    reset_peak();
    let t = Instant::now();
    let shard = source::load(&spec, ShardId::SINGLE, &LoadOptions::default()).await?;
    let load_s = t.elapsed().as_secs_f64();
    source::return_freed_memory();
    let (after_load, load_peak) = crate::mem::resident();
    let rows = shard.rows();
    if rows == 0 {
        return Err(Error::InvalidSpec("benchmark data is empty".into()));
    }
    println!(
        "load         {:>10.2} M rows/s   ({rows} rows in {load_s:.2} s, {:.2} M rows/s per core)",
        rows as f64 / load_s / 1e6,
        rows as f64 / load_s / 1e6 / rayon::current_num_threads() as f64
    );
    println!(
        "resident     {:>10.2} bytes/row ({:.0} MB)",
        shard.bytes() as f64 / rows as f64,
        shard.bytes() as f64 / 1e6
    );
    let detail = shard.details.bytes() as f64;
    println!(
        "details      {:>10.2} bytes/row ({:.0} MB; {} columns: {}), {:.2} bytes/row without them",
        detail / rows as f64,
        detail / 1e6,
        shard.details.columns.len(),
        shard
            .details
            .columns
            .iter()
            .map(|c| format!("{} {:.2}", c.info.column, c.bytes() as f64 / rows as f64))
            .collect::<Vec<_>>()
            .join(", "),
        (shard.bytes() as f64 - detail) / rows as f64
    );
    // What loading added to the process, at its peak and once done.
    let loaded = after_load.saturating_sub(before_load).max(1);
    let load_peak_ratio = load_peak.saturating_sub(before_load) as f64 / loaded as f64;
    println!(
        "load memory  {:>10.2} bytes/row at the peak, {:.2} once loaded (RSS growth; peak / loaded {:.2})",
        load_peak.saturating_sub(before_load) as f64 / rows as f64,
        loaded as f64 / rows as f64,
        load_peak_ratio
    );
    let shard = std::sync::Arc::new(shard);
    let s2 = shard.clone();
    let floor = tokio::task::spawn_blocking(move || {
        time(a.repeat, || {
            std::hint::black_box(kernel::plain_pass(&s2));
        })
    })
    .await
    .map_err(|e| Error::Protocol(e.to_string()))?;
    let bytes_per_row = 8 + shard.dims.len();
    println!(
        "floor        {:>10.2} ms        (one plain pass over {} bytes x {} rows: {:.1} GB/s)",
        floor.median_ms,
        bytes_per_row,
        rows,
        (bytes_per_row as f64 * rows as f64) / (floor.median_ms / 1000.0) / 1e9
    );
    println!("{:<36} {:>10} {:>10} {:>10} {:>12}", "interaction", "median ms", "p90 ms", "x floor", "selected");
    let mut medians = std::collections::HashMap::new();
    for (name, q) in interactions("celltowers") {
        let plan = Plan::new(&q, &shard)?;
        // (label, plan, whether to drop brush indexes before each run)
        let mut variants = vec![(name.to_string(), plan.clone(), false)];
        if plan.aggregable {
            // The same answer with every row read: what the kernel costs without pre-aggregates.
            let mut scan_only = plan.clone();
            scan_only.aggregable = false;
            variants.push((format!("{name} (full scan)"), scan_only, false));
        }
        let brushing = kernel::brush::brushed_dim(&plan).is_some();
        if brushing {
            // The first position of a brush on this dimension: its index built, then used.
            variants.push((format!("{name} (first: index built)"), plan.clone(), true));
        }
        for (label, plan, first) in variants {
            let s2 = shard.clone();
            let (t, selected) = tokio::task::spawn_blocking(move || {
                let mut selected = 0;
                let t = time(a.repeat, || {
                    if first {
                        s2.brushes.clear();
                    }
                    selected = kernel::answer(&s2, &plan).selected;
                });
                (t, selected)
            })
            .await
            .map_err(|e| Error::Protocol(e.to_string()))?;
            println!(
                "{:<36} {:>10.2} {:>10.2} {:>10.2} {:>12}",
                label,
                t.median_ms,
                t.p90_ms,
                t.median_ms / floor.median_ms,
                selected
            );
            medians.insert(label, t.median_ms);
        }
    }
    // A brush dragged over the year histogram: 20 positions of a 3-year window
    // after the first, each a distinct query (as the front end sends while dragging).
    let drag: Vec<Plan> = (0..20)
        .map(|k| {
            let mut q = interactions("celltowers")
                .into_iter()
                .find(|(name, _)| name.starts_with("year brush"))
                .expect("the year brush is an interaction")
                .1;
            let from = crate::bins::parse_instant(&format!("{}-01-01", 2003 + k % 16)).expect("date") as f64;
            let to = crate::bins::parse_instant(&format!("{}-01-01", 2006 + k % 16)).expect("date") as f64;
            q.filters.insert("created".into(), Filter::Range { min: from, max: to });
            Plan::new(&q, &shard)
        })
        .collect::<Result<_>>()?;
    let s2 = shard.clone();
    let mut steps = tokio::task::spawn_blocking(move || {
        let _ = kernel::answer(&s2, &drag[0]); // the first position (builds the brush index)
        let mut steps = vec![];
        for _ in 0..a.repeat.div_ceil(20).max(1) {
            for p in &drag {
                let t = Instant::now();
                std::hint::black_box(kernel::answer(&s2, p));
                steps.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        steps
    })
    .await
    .map_err(|e| Error::Protocol(e.to_string()))?;
    steps.sort_by(|x, y| x.total_cmp(y));
    let q = |f: f64| steps[((steps.len() as f64 * f) as usize).min(steps.len() - 1)];
    let drag_median = q(0.5);
    println!(
        "{:<36} {:>10.2} {:>10.2} {:>10.2}   (p99 {:.2} ms over {} positions)",
        "brush drag, each position",
        q(0.5),
        q(0.9),
        q(0.5) / floor.median_ms,
        q(0.99),
        steps.len()
    );
    let (rss, peak) = crate::mem::resident();
    println!(
        "memory       RSS after the queries {:.1} bytes/row ({:.0} MB); peak {:.1} bytes/row ({:.0} MB, since the load began)",
        rss as f64 / rows as f64,
        rss as f64 / 1e6,
        peak as f64 / rows as f64,
        peak as f64 / 1e6
    );
    // Export: every LTE row (world view) with its detail columns, as Arrow
    // batches, then as CSV (what the dashboard's writer does with them);
    // after the memory figures, which it would inflate.
    {
        let mut q = Query {
            version: crate::protocol::PROTOCOL_VERSION,
            dataset: "celltowers".into(),
            filters: Default::default(),
            viewport: None,
            viewport_filter: false,
            views: vec![View::Rows { limit: crate::protocol::MAX_EXPORT_ROWS, columns: None }],
        };
        q.filters.insert("radio".into(), crate::protocol::Filter::Categories(vec!["LTE".into()]));
        let s2 = shard.clone();
        let (rows_out, arrow_s, csv_s, csv_bytes) = tokio::task::spawn_blocking(move || -> Result<_> {
            let t = Instant::now();
            let plan = kernel::Plan::new(&q, &s2)?;
            let e = crate::export::prepare(&s2, &q, &plan)?;
            let batches: Vec<_> = (0..e.batches()).map(|i| e.batch(&s2, i)).collect::<Result<_>>()?;
            let arrow_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut out = Vec::new();
            let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in &batches {
                w.write(b)?;
            }
            drop(w);
            Ok((e.rows.len(), arrow_s, t.elapsed().as_secs_f64(), out.len()))
        })
        .await
        .map_err(|e| Error::Protocol(e.to_string()))??;
        println!(
            "export       {:>10.2} M rows/s   ({rows_out} LTE rows selected and read with {} detail columns in {:.0} ms; \
             CSV {:.0} MB in {:.0} ms more, {:.2} M rows/s)",
            rows_out as f64 / arrow_s / 1e6,
            shard.details.columns.len(),
            arrow_s * 1000.0,
            csv_bytes as f64 / 1e6,
            csv_s * 1000.0,
            rows_out as f64 / csv_s / 1e6
        );
    }
    if a.guard {
        let scan = medians["world view (full scan)"];
        let checks = [
            ("full scan / floor", scan / floor.median_ms, a.max_scan_ratio),
            ("pre-aggregated histograms / full scan", medians["world, histograms only"] / scan, a.max_aggregate_ratio),
            ("pre-aggregated world view + map / full scan", medians["world view"] / scan, a.max_map_ratio),
            ("load peak / loaded (memory)", load_peak_ratio, a.max_load_peak_ratio),
            (
                "brush drag position / full scan",
                drag_median / medians["year brush 2015-2017 (full scan)"],
                a.max_brush_ratio,
            ),
        ];
        let mut failed = vec![];
        for (what, ratio, bound) in checks {
            let ok = ratio <= bound;
            println!("guard        {what:<40} {ratio:>8.3} (bound {bound}) {}", if ok { "ok" } else { "FAILED" });
            if !ok {
                failed.push(what);
            }
        }
        if !failed.is_empty() {
            return Err(Error::Protocol(format!("benchmark guard failed: {}", failed.join(", "))));
        }
    }
    Ok(())
}
