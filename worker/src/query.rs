//! Running a query against a shard: plan, scan, and assemble the protocol answer.

use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::geo::{x_to_lon, y_to_lat};
use crate::kernel::{self, Plan};
use crate::protocol::{Histogram, Query, QueryResult, Raster, Sample, SampleRow, View};
use crate::store::Shard;
use crate::store::detail::DetailValue;

/// Runs a (shape-checked) query over a shard on the current rayon pool.
pub fn run(shard: &Shard, q: &Query) -> Result<QueryResult> {
    let plan = Plan::new(q, shard)?;
    let started = Instant::now();
    let counts = kernel::answer(shard, &plan);
    assemble(shard, q, counts, started.elapsed().as_micros() as u64)
}

/// [`run`] for a server's shared shard, with the plan already compiled (by
/// [`Plan::new`] for `q` and `shard`): brush indexes are built in the
/// background ([`kernel::answer_shared`]).
pub fn run_planned(shard: &Arc<Shard>, q: &Query, plan: &Plan) -> Result<QueryResult> {
    let started = Instant::now();
    let counts = kernel::answer_shared(shard, plan);
    assemble(shard, q, counts, started.elapsed().as_micros() as u64)
}

/// A detail value as JSON (`None` when missing, or a float JSON cannot hold).
fn detail_json(v: DetailValue) -> Option<serde_json::Value> {
    match v {
        DetailValue::Null => None,
        DetailValue::Int(i) => Some(i.into()),
        DetailValue::Float(f) => serde_json::Number::from_f64(f).map(serde_json::Value::Number),
        DetailValue::Text(s) => Some(s.into()),
    }
}

/// The protocol answer from the kernel's counts.
fn assemble(shard: &Shard, q: &Query, mut counts: kernel::Counts, kernel_micros: u64) -> Result<QueryResult> {
    let mut histograms = vec![];
    let mut raster = None;
    let mut sample = None;
    for v in &q.views {
        match v {
            View::Histogram { dimension } => {
                let d = shard.dim_index(dimension).expect("the plan checked dimensions");
                let bins = &shard.dims[d];
                let h = &counts.hists[d];
                let n = bins.nbins() as usize;
                histograms.push(Histogram {
                    dimension: dimension.clone(),
                    bins: bins.bins_with_counts(&h[..n]),
                    missing: h[n],
                });
            }
            View::Raster { width, height } => {
                let (pixels, cell_counts) = (std::mem::take(&mut counts.pixels), std::mem::take(&mut counts.cells));
                raster = Some(Raster {
                    width: *width,
                    height: *height,
                    categories: shard.dims[shard.category_dim].labels().to_vec(),
                    pixels,
                    counts: cell_counts,
                });
            }
            View::Rows { .. } => {}
            View::Sample { .. } => {
                let cat = &shard.dims[shard.category_dim];
                let rows = counts
                    .sample
                    .iter()
                    .map(|&r| {
                        let r = r as usize;
                        let values = shard
                            .dims
                            .iter()
                            .enumerate()
                            .filter(|(d, _)| *d != shard.category_dim)
                            .map(|(d, dim)| {
                                let code = shard.codes[d][r];
                                let text =
                                    dim.labels().get(code as usize).cloned().unwrap_or_else(|| "(missing)".into());
                                (dim.name().to_string(), text)
                            })
                            .collect();
                        let code = shard.codes[shard.category_dim][r] as usize;
                        let details = shard
                            .details
                            .columns
                            .iter()
                            .filter_map(|c| Some((c.info.column.clone(), detail_json(c.value(r))?)))
                            .collect();
                        SampleRow {
                            details,
                            lon: x_to_lon(shard.xs[r]),
                            lat: y_to_lat(shard.ys[r]),
                            category: cat.labels().get(code).cloned().unwrap_or_else(|| "(missing)".into()),
                            values,
                        }
                    })
                    .collect();
                sample = Some(Sample { matched: counts.in_view, rows, columns: shard.details.infos() });
            }
        }
    }
    Ok(QueryResult {
        shard: shard.info.clone(),
        total: shard.rows(),
        selected: counts.selected,
        kernel_micros,
        histograms,
        raster,
        sample,
    })
}
