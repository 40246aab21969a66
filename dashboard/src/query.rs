//! The `/api/query` request: checked against the catalogue, turned into worker
//! tickets, and the merged answers turned into the response (pure).

use std::collections::BTreeMap;

use quiver_worker::protocol::{Filter, Histogram, PROTOCOL_VERSION, Query, QueryError, Sample, View, Viewport};
use serde::{Deserialize, Serialize};

use crate::catalog::Dataset;
use crate::error::{Error, Result};
use crate::merge::ShardReport;

/// The body of `POST /api/query` (see `API.md`).
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryRequest {
    /// Dataset name.
    pub dataset: String,
    /// Filters by dimension.
    #[serde(default)]
    pub filters: BTreeMap<String, Filter>,
    /// Map viewport.
    #[serde(default)]
    pub viewport: Option<Viewport>,
    /// Count only rows inside the viewport.
    #[serde(default)]
    pub viewport_filter: bool,
    /// Dimensions to histogram.
    #[serde(default)]
    pub histograms: Vec<String>,
    /// Also the same histograms without filters.
    #[serde(default)]
    pub baseline: bool,
    /// The map image size.
    #[serde(default)]
    pub image: Option<ImageSize>,
    /// A sample of matching rows.
    #[serde(default)]
    pub sample: Option<SampleSize>,
}

/// Requested image size.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageSize {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

pub use crate::merge::SampleSize;

/// The worker tickets for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The filtered query.
    pub main: Query,
    /// The unfiltered histograms, when asked for.
    pub baseline: Option<Query>,
    /// The sample asked for.
    pub sample: Option<SampleSize>,
}

fn bad<T>(msg: String) -> Result<T> {
    Err(Error::BadRequest(msg))
}

/// Quotes user text in an error, shortened.
fn q(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}", &s[..end])
}

/// Checks a request against the dataset and builds the worker tickets. What
/// only the catalogue knows (the dataset's dimensions) is checked here; whether
/// each filter fits its dimension, and every limit on the query's shape, are
/// the worker's own checks ([`DimBins::check_filter`](quiver_worker::bins::DimBins::check_filter),
/// [`Query::check_shape`]), named in the request's terms by [`refused`].
pub fn plan(req: &QueryRequest, ds: &Dataset) -> Result<Plan> {
    let names = || ds.bins.iter().map(|b| b.name().to_string()).collect::<Vec<_>>().join(", ");
    for (i, h) in req.histograms.iter().enumerate() {
        if ds.dimension(h).is_none() {
            return bad(format!(
                "histograms: unknown dimension {} (dataset {} has {})",
                q(h),
                q(&req.dataset),
                names()
            ));
        }
        if req.histograms[..i].contains(h) {
            return bad(format!("histograms: dimension {} is listed twice", q(h)));
        }
    }
    for (dim, f) in &req.filters {
        let Some(b) = ds.dimension(dim) else {
            return bad(format!("filters: unknown dimension {} (dataset {} has {})", q(dim), q(&req.dataset), names()));
        };
        b.check_filter(f).map_err(|problem| refused(QueryError::Filter { dimension: dim.clone(), problem }))?;
        // The HTTP API refuses an empty range too, which a ticket may hold.
        if let Filter::Range { min, max } = f
            && min == max
        {
            return bad(format!("filters.{dim}: range min {min} must be below max {max}"));
        }
    }
    // The HTTP API asks for a viewport with a sample too, which a ticket need not have.
    if req.sample.is_some() && req.viewport.is_none() {
        return bad("sample needs a viewport".into());
    }
    let mut views: Vec<View> = req.histograms.iter().map(|h| View::Histogram { dimension: h.clone() }).collect();
    if let Some(ImageSize { width, height }) = req.image {
        views.push(View::Raster { width, height });
    }
    if let Some(SampleSize { limit, all_or_none }) = req.sample {
        views.push(View::Sample { limit, all_or_none });
    }
    let main = Query {
        version: PROTOCOL_VERSION,
        dataset: req.dataset.clone(),
        filters: req.filters.clone(),
        viewport: req.viewport,
        viewport_filter: req.viewport_filter,
        views,
    };
    main.check_shape().map_err(refused)?;
    let baseline = (req.baseline && !req.histograms.is_empty()).then(|| Query {
        filters: BTreeMap::new(),
        views: req.histograms.iter().map(|h| View::Histogram { dimension: h.clone() }).collect(),
        ..main.clone()
    });
    Ok(Plan { main, baseline, sample: req.sample })
}

/// A query the worker's checks refuse, as a 400 naming the part of the request
/// at fault the way the request names it (`image`, `viewport`, `filters.radio`).
fn refused(e: QueryError) -> Error {
    use QueryError as E;
    Error::BadRequest(match e {
        E::NoViews => "nothing to compute: ask for histograms, an image or a sample".into(),
        E::Viewport(m) => format!("viewport: {m}"),
        E::RasterEmpty { .. } | E::RasterSide { .. } | E::RasterPixels { .. } => format!("image: {e}"),
        E::RasterWithoutViewport => "image needs a viewport".into(),
        E::ViewportFilterWithoutViewport => "viewportFilter needs a viewport".into(),
        E::Filter { dimension, problem } => format!("filters.{dimension}: {problem}"),
        other => other.to_string(),
    })
}

/// One histogram bin in a response.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct BinCount {
    /// Label.
    pub label: String,
    /// Rows.
    pub count: u64,
}

/// One histogram in a response.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct HistogramOut {
    /// Bins in order.
    pub bins: Vec<BinCount>,
    /// Rows with no value.
    pub missing: u64,
}

/// Histograms keyed by dimension.
pub fn histograms_out(hs: &[Histogram]) -> BTreeMap<String, HistogramOut> {
    hs.iter()
        .map(|h| {
            (
                h.dimension.clone(),
                HistogramOut {
                    bins: h.bins.iter().map(|b| BinCount { label: b.label.clone(), count: b.count }).collect(),
                    missing: h.missing,
                },
            )
        })
        .collect()
}

/// Where the time went, milliseconds.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// Whole request.
    pub total_ms: f64,
    /// Fan-out until the last worker answered.
    pub workers_ms: f64,
    /// Longest worker kernel time.
    pub kernel_ms: f64,
    /// Merging, shading and PNG encoding.
    pub shade_ms: f64,
}

/// The answer of `POST /api/query`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    /// Rows in the dataset (over the shards that answered).
    pub total: u64,
    /// Rows passing every filter.
    pub selected: u64,
    /// Crossfiltered histograms.
    pub histograms: BTreeMap<String, HistogramOut>,
    /// Unfiltered histograms, when asked for.
    pub baseline: Option<BTreeMap<String, HistogramOut>>,
    /// `data:image/png;base64,...`, when asked for.
    pub image: Option<String>,
    /// Sampled rows, when asked for.
    pub sample: Option<Sample>,
    /// Which shards the counts cover.
    pub shards: ShardReport,
    /// True when shards are missing or inconsistent.
    pub partial: bool,
    /// Timings.
    pub timings: Timings,
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_worker::spec::Preset;

    fn towers() -> Dataset {
        let view = quiver_worker::source::presets::default_view(Preset::Celltowers);
        Dataset::new("celltowers", 100, view).unwrap()
    }

    fn req(json: serde_json::Value) -> Result<Plan> {
        let r: QueryRequest = serde_json::from_value(json).map_err(|e| Error::BadRequest(e.to_string()))?;
        plan(&r, &towers())
    }

    fn err(json: serde_json::Value) -> String {
        match req(json) {
            Err(Error::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    const WORLD: &str = r#"{"west": -180, "south": -80, "east": 180, "north": 80}"#;

    fn world() -> serde_json::Value {
        serde_json::from_str(WORLD).unwrap()
    }

    #[test]
    fn a_full_request_becomes_one_ticket_and_a_baseline() {
        let p = req(serde_json::json!({
            "dataset": "celltowers",
            "filters": {"radio": {"categories": ["LTE", "NR"]}, "created": {"range": {"min": 1420070400, "max": 1514764800}}},
            "viewport": world(), "viewportFilter": true,
            "histograms": ["radio", "range", "created"], "baseline": true,
            "image": {"width": 800, "height": 500}, "sample": {"limit": 10}
        }))
        .unwrap();
        assert_eq!(p.main.views.len(), 5);
        assert_eq!(p.main.views[3], View::Raster { width: 800, height: 500 });
        assert_eq!(p.main.views[4], View::Sample { limit: 10, all_or_none: false });
        assert_eq!(p.main.filters.len(), 2);
        let b = p.baseline.unwrap();
        assert!(b.filters.is_empty());
        assert_eq!(b.views.len(), 3);
        assert!(b.viewport_filter);
        assert_eq!(p.sample, Some(SampleSize { limit: 10, all_or_none: false }));
    }

    #[test]
    fn unknown_dataset_fields_are_refused_by_name() {
        let m = err(serde_json::json!({"dataset": "celltowers", "histogram": ["radio"]}));
        assert!(m.contains("histogram"), "{m}");
    }

    #[test]
    fn unknown_dimensions_and_categories_are_named() {
        let m = err(serde_json::json!({"dataset": "celltowers", "histograms": ["colour"]}));
        assert!(m.contains("\"colour\"") && m.contains("radio"), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"speed": {"bins": [1]}}}),
        );
        assert!(m.contains("\"speed\""), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"radio": {"categories": ["5G"]}}}),
        );
        assert!(m.contains("\"5G\"") && m.contains("LTE"), "{m}");
    }

    #[test]
    fn bad_ranges_are_refused() {
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"range": {"range": {"min": 10, "max": 5}}}}),
        );
        assert!(m.contains("min 10") && m.contains("max 5"), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"radio": {"range": {"min": 1, "max": 5}}}}),
        );
        assert!(m.contains("categorical"), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"range": {"categories": ["x"]}}}),
        );
        assert!(m.contains("categorical"), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"created": {"bins": [999]}}}),
        );
        assert!(m.contains("bin 999"), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"range": {"range": {"min": 5, "max": 5}}}}),
        );
        assert!(m.starts_with("filters.range:") && m.contains("min 5"), "{m}");
    }

    #[test]
    fn the_workers_refusals_name_the_requests_fields() {
        let m = err(
            serde_json::json!({"dataset": "celltowers", "viewport": world(), "image": {"width": 5000, "height": 10}}),
        );
        assert!(m.starts_with("image: ") && m.contains("5000x10"), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"radio": {"categories": vec!["LTE"; 1025]}}}),
        );
        assert!(m.starts_with("filters.radio: ") && m.contains("1024"), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "filters": {"created": {"range": {"min": 9, "max": 1}}}}),
        );
        assert_eq!(m, "filters.created: range min 9 is above max 1");
    }

    #[test]
    fn oversize_images_and_samples_are_refused_naming_the_limit() {
        let m = err(
            serde_json::json!({"dataset": "celltowers", "viewport": world(), "image": {"width": 5000, "height": 10}}),
        );
        assert!(m.contains("4096"), "{m}");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "viewport": world(), "image": {"width": 4096, "height": 4096}}),
        );
        assert!(m.contains("4194304"), "{m}");
        let m =
            err(serde_json::json!({"dataset": "celltowers", "viewport": world(), "image": {"width": 0, "height": 10}}));
        assert!(m.contains("1x1"), "{m}");
        let m = err(serde_json::json!({"dataset": "celltowers", "viewport": world(), "sample": {"limit": 10001}}));
        assert!(m.contains("10000"), "{m}");
    }

    #[test]
    fn images_samples_and_viewport_filters_need_a_viewport() {
        let m = err(serde_json::json!({"dataset": "celltowers", "image": {"width": 8, "height": 8}}));
        assert!(m.contains("viewport"), "{m}");
        let m = err(serde_json::json!({"dataset": "celltowers", "histograms": ["radio"], "viewportFilter": true}));
        assert!(m.contains("viewport"), "{m}");
        let m = err(serde_json::json!({"dataset": "celltowers", "sample": {"limit": 5}}));
        assert_eq!(m, "sample needs a viewport");
        let m = err(
            serde_json::json!({"dataset": "celltowers", "viewport": {"west": 0, "south": 10, "east": 5, "north": 5}, "histograms": ["radio"]}),
        );
        assert!(m.starts_with("viewport:"), "{m}");
    }

    #[test]
    fn an_empty_request_is_refused() {
        let m = err(serde_json::json!({"dataset": "celltowers"}));
        assert!(m.contains("nothing to compute"), "{m}");
    }
}
