//! The query protocol: the versioned JSON ticket, and what comes back.
//!
//! A ticket names a dataset, filters per dimension, an optional map viewport and
//! a list of views. The worker answers one Arrow stream: a `summary` batch,
//! then one batch per view (see `PROTOCOL.md`). [`QueryResult`] is that answer
//! decoded, and is what the dashboard merges across shards.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::geo::Viewport;
use crate::spec::truncate;

/// The ticket version this worker speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest raster a query may ask for, per side.
pub const MAX_RASTER_SIDE: u32 = 4096;
/// Largest raster a query may ask for, in pixels.
pub const MAX_RASTER_PIXELS: u64 = 4_194_304;
/// Largest sample a query may ask for.
pub const MAX_SAMPLE_ROWS: u32 = 10_000;
/// Largest `rows` view (export) a query may ask for.
pub const MAX_EXPORT_ROWS: u64 = 100_000_000;
/// Rows per batch of a `rows` answer.
pub const EXPORT_BATCH_ROWS: usize = 65_536;
/// Largest ticket accepted, in bytes.
pub const MAX_TICKET_BYTES: usize = 64 * 1024;
/// Largest number of views in one query.
pub const MAX_VIEWS: usize = 32;
/// Largest number of categories or bins one filter may list.
pub const MAX_FILTER_VALUES: usize = 1024;
/// Largest number of columns a `rows` view may list.
pub const MAX_ROWS_COLUMNS: usize = 256;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A crossfilter query (the DoGet ticket, JSON).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Query {
    /// Protocol version; must be 1.
    pub version: u32,
    /// Dataset name.
    pub dataset: String,
    /// Filters by dimension name. A row is selected when it passes every filter.
    #[serde(default)]
    pub filters: BTreeMap<String, Filter>,
    /// The map viewport; required by raster views and by `viewportFilter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewport: Option<Viewport>,
    /// When true, histograms and the selected count only include rows inside the viewport.
    #[serde(default)]
    pub viewport_filter: bool,
    /// What to compute.
    pub views: Vec<View>,
}

/// A filter on one dimension.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Filter {
    /// Keep rows whose category label is one of these (categorical dimensions).
    Categories(Vec<String>),
    /// Keep rows in bins whose lower edge lies in `[min, max)` (numeric and temporal
    /// dimensions; temporal bounds in unix seconds).
    Range {
        /// Inclusive lower bound.
        min: f64,
        /// Exclusive upper bound.
        max: f64,
    },
    /// Keep rows in these bins, by index (any dimension).
    Bins(Vec<u32>),
}

/// One thing to compute over the selected rows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum View {
    /// Crossfilter histogram of a dimension: counts rows passing every filter but its own.
    Histogram {
        /// Dimension name.
        dimension: String,
    },
    /// Counts per pixel per category of the selected rows inside the viewport.
    Raster {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A uniform sample of the selected rows inside the viewport (all of them when
    /// at most `limit` match).
    Sample {
        /// Most rows to return.
        limit: u32,
        /// Rows only when every match fits in `limit`, else none (`matched`
        /// still counts them): what a map that draws points only when it can
        /// draw them all asks, without paying for rows it would throw away.
        #[serde(default, rename = "allOrNone", skip_serializing_if = "is_false")]
        all_or_none: bool,
    },
    /// Every selected row inside the viewport (the whole dataset without
    /// one), streamed in batches: the export. Must be the ticket's only view.
    /// Refused before streaming when more than `limit` rows match.
    Rows {
        /// Most rows to return (at most [`MAX_EXPORT_ROWS`]).
        limit: u64,
        /// Detail columns to return, in order (default: all of them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        columns: Option<Vec<String>>,
    },
}

impl Query {
    /// Parses and checks a ticket. Errors quote the offending field or limit.
    pub fn from_json(bytes: &[u8]) -> Result<Query> {
        if bytes.len() > MAX_TICKET_BYTES {
            return Err(Error::InvalidQuery(format!(
                "ticket is {} bytes; the limit is {MAX_TICKET_BYTES}",
                bytes.len()
            )));
        }
        let q: Query = serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidQuery(format!("ticket is not a valid query: {e}")))?;
        q.check_shape()?;
        Ok(q)
    }

    /// Serialises the ticket.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a query always serialises")
    }

    /// Checks limits that do not depend on the dataset: the one check of a
    /// query's shape, run by the worker on every ticket and by the dashboard
    /// on every request it turns into one.
    pub fn check_shape(&self) -> std::result::Result<(), QueryError> {
        if self.version != PROTOCOL_VERSION {
            return Err(QueryError::Version(self.version));
        }
        if self.views.is_empty() {
            return Err(QueryError::NoViews);
        }
        if self.views.len() > MAX_VIEWS {
            return Err(QueryError::TooManyViews(self.views.len()));
        }
        if let Some(v) = &self.viewport {
            v.check().map_err(|e| QueryError::Viewport(reason(e)))?;
        }
        let mut rasters = 0;
        let mut samples = 0;
        for view in &self.views {
            match *view {
                View::Raster { width, height } => {
                    rasters += 1;
                    if width == 0 || height == 0 {
                        return Err(QueryError::RasterEmpty { width, height });
                    }
                    if width > MAX_RASTER_SIDE || height > MAX_RASTER_SIDE {
                        return Err(QueryError::RasterSide { width, height });
                    }
                    if u64::from(width) * u64::from(height) > MAX_RASTER_PIXELS {
                        return Err(QueryError::RasterPixels { width, height });
                    }
                    if self.viewport.is_none() {
                        return Err(QueryError::RasterWithoutViewport);
                    }
                }
                View::Sample { limit, .. } => {
                    samples += 1;
                    if limit > MAX_SAMPLE_ROWS {
                        return Err(QueryError::SampleLimit(limit));
                    }
                }
                View::Histogram { .. } => {}
                View::Rows { limit, ref columns } => {
                    if self.views.len() != 1 {
                        return Err(QueryError::RowsNotAlone);
                    }
                    if limit > MAX_EXPORT_ROWS {
                        return Err(QueryError::RowsLimit(limit));
                    }
                    if columns.as_ref().is_some_and(|c| c.len() > MAX_ROWS_COLUMNS) {
                        return Err(QueryError::RowsColumns);
                    }
                }
            }
        }
        if rasters > 1 || samples > 1 {
            return Err(QueryError::RepeatedView);
        }
        if self.viewport_filter && self.viewport.is_none() {
            return Err(QueryError::ViewportFilterWithoutViewport);
        }
        for (dim, f) in &self.filters {
            f.check_shape().map_err(|problem| QueryError::Filter { dimension: truncate(dim, 64), problem })?;
        }
        Ok(())
    }
}

impl Filter {
    /// Checks the filter's own bounds and sizes (what it asks of its
    /// dimension is [`DimBins::check_filter`](crate::bins::DimBins::check_filter)'s).
    pub fn check_shape(&self) -> std::result::Result<(), FilterProblem> {
        match *self {
            Filter::Range { min, max } if min.is_nan() || max.is_nan() => Err(FilterProblem::RangeNotNumbers),
            Filter::Range { min, max } if min > max => Err(FilterProblem::RangeInverted { min, max }),
            Filter::Categories(ref c) if c.len() > MAX_FILTER_VALUES => Err(FilterProblem::TooManyCategories(c.len())),
            Filter::Bins(ref b) if b.len() > MAX_FILTER_VALUES => Err(FilterProblem::TooManyBins(b.len())),
            _ => Ok(()),
        }
    }
}

/// Why a query is refused, naming the part at fault so that each client can
/// name it in its own terms (the worker in the ticket's, the dashboard in its
/// request's). The messages are the worker's; every check behind them lives
/// here or in [`DimBins::check_filter`](crate::bins::DimBins::check_filter).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The ticket's version is not [`PROTOCOL_VERSION`].
    #[error("ticket version {0} is not supported; this worker speaks version {PROTOCOL_VERSION}")]
    Version(u32),
    /// Nothing to compute.
    #[error("query has no views")]
    NoViews,
    /// More than [`MAX_VIEWS`] views.
    #[error("query has {0} views; the limit is {MAX_VIEWS}")]
    TooManyViews(usize),
    /// The viewport's bounds are out of range (the reason says which).
    #[error("{0}")]
    Viewport(String),
    /// A raster side is zero.
    #[error("raster size {width}x{height} must be at least 1x1")]
    RasterEmpty {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// A raster side is above [`MAX_RASTER_SIDE`].
    #[error("raster size {width}x{height} exceeds the limit of {MAX_RASTER_SIDE} pixels per side")]
    RasterSide {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// A raster has more than [`MAX_RASTER_PIXELS`] pixels.
    #[error("raster size {width}x{height} exceeds the limit of {MAX_RASTER_PIXELS} pixels")]
    RasterPixels {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
    },
    /// A raster view without a viewport.
    #[error("a raster view needs a viewport")]
    RasterWithoutViewport,
    /// A sample above [`MAX_SAMPLE_ROWS`].
    #[error("sample limit {0} exceeds the limit of {MAX_SAMPLE_ROWS} rows")]
    SampleLimit(u32),
    /// A rows view beside other views.
    #[error("a rows view (export) must be the query's only view")]
    RowsNotAlone,
    /// A rows view above [`MAX_EXPORT_ROWS`].
    #[error("rows limit {0} exceeds the limit of {MAX_EXPORT_ROWS} rows")]
    RowsLimit(u64),
    /// A rows view listing more than [`MAX_ROWS_COLUMNS`] columns.
    #[error("a rows view lists more than {MAX_ROWS_COLUMNS} columns")]
    RowsColumns,
    /// Two raster or two sample views.
    #[error("a query may have at most one raster and one sample view")]
    RepeatedView,
    /// `viewportFilter` without a viewport.
    #[error("viewportFilter is set but the query has no viewport")]
    ViewportFilterWithoutViewport,
    /// A filter that is malformed, or does not fit its dimension.
    #[error("filter on {dimension:?}: {problem}")]
    Filter {
        /// The dimension filtered (shortened to 64 characters).
        dimension: String,
        /// What is wrong with the filter.
        problem: FilterProblem,
    },
}

/// What is wrong with one filter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterProblem {
    /// A range bound is NaN.
    #[error("range bounds must be numbers")]
    RangeNotNumbers,
    /// A range whose min is above its max.
    #[error("range min {min} is above max {max}")]
    RangeInverted {
        /// Lower bound asked for.
        min: f64,
        /// Upper bound asked for.
        max: f64,
    },
    /// More than [`MAX_FILTER_VALUES`] categories.
    #[error("{0} categories listed; the limit is {MAX_FILTER_VALUES}")]
    TooManyCategories(usize),
    /// More than [`MAX_FILTER_VALUES`] bins.
    #[error("{0} bins listed; the limit is {MAX_FILTER_VALUES}")]
    TooManyBins(usize),
    /// Categories on a dimension that is not categorical.
    #[error("categories apply to categorical dimensions only; filter it with a range or bins")]
    CategoriesOnNumeric,
    /// A range on a categorical dimension.
    #[error("a range does not apply to a categorical dimension; filter it with categories")]
    RangeOnCategorical,
    /// A category label the dimension does not have.
    #[error("no category {label:?}; expected one of {known}")]
    UnknownCategory {
        /// The label asked for (shortened to 64 characters).
        label: String,
        /// The dimension's labels, comma-separated.
        known: String,
    },
    /// A bin index past the dimension's bins.
    #[error("bin {bin} does not exist; the dimension has {nbins} bins")]
    NoSuchBin {
        /// The index asked for.
        bin: u32,
        /// The dimension's bin count.
        nbins: u32,
    },
}

impl From<QueryError> for Error {
    fn from(e: QueryError) -> Error {
        Error::InvalidQuery(e.to_string())
    }
}

/// The reason of an invalid-query error, without the "invalid query: " prefix.
fn reason(e: Error) -> String {
    match e {
        Error::InvalidQuery(m) => m,
        other => other.to_string(),
    }
}

/// Which shard answered, and what data it holds: lets a client check that
/// partial answers come from one consistent sharding.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShardInfo {
    /// This worker's shard index.
    pub shard: u32,
    /// Number of shards the dataset is split into.
    pub shards: u32,
    /// Identifies the source snapshot (files, sizes, modification times) the
    /// shard was cut from; equal across workers that loaded the same data.
    pub generation: String,
}

/// One histogram bin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bin {
    /// Label (category name, or a formatted range).
    pub label: String,
    /// Lower edge (numeric and temporal dimensions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lo: Option<f64>,
    /// Upper edge (numeric and temporal dimensions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hi: Option<f64>,
    /// Rows counted.
    pub count: u64,
}

/// A crossfilter histogram.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// Dimension name.
    pub dimension: String,
    /// Bins in order.
    pub bins: Vec<Bin>,
    /// Rows whose value is missing (they never pass a filter on this dimension).
    pub missing: u64,
}

/// Counts per pixel per category, sparse: only pixels with a count.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Raster {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Category labels, the order of `counts`' inner index.
    pub categories: Vec<String>,
    /// Pixel indices (`row * width + col`, row 0 at the north edge), ascending.
    pub pixels: Vec<u32>,
    /// `counts[k * categories.len() + c]`: rows of category `c` in pixel `pixels[k]`.
    pub counts: Vec<u32>,
}

/// One sampled row: its position and its original column values.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SampleRow {
    /// Longitude in degrees.
    pub lon: f64,
    /// Latitude in degrees.
    pub lat: f64,
    /// Category label.
    pub category: String,
    /// The bins of the other dimensions, as labels, by dimension name.
    pub values: BTreeMap<String, String>,
    /// The row's exact values of the dataset's detail columns, by column name
    /// (numbers; times in unix seconds; text); missing values are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, serde_json::Value>,
}

/// A sample of the selected rows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Rows that matched (the sample is drawn from these).
    pub matched: u64,
    /// The sampled rows.
    pub rows: Vec<SampleRow>,
    /// The detail columns the rows' `details` hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<DetailInfo>,
}

/// A worker's whole answer to one query, decoded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    /// Which shard answered.
    pub shard: ShardInfo,
    /// Rows in the shard.
    pub total: u64,
    /// Rows passing every filter (and inside the viewport when `viewportFilter` is set).
    pub selected: u64,
    /// Kernel time on the worker, microseconds.
    pub kernel_micros: u64,
    /// Histograms, in the order of the query's views.
    pub histograms: Vec<Histogram>,
    /// The raster, if asked for.
    pub raster: Option<Raster>,
    /// The sample, if asked for.
    pub sample: Option<Sample>,
}

/// Load state of one dataset on one worker.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum LoadState {
    /// Not loaded yet, or reloading for the first time.
    Loading,
    /// Loaded and serving.
    Ready,
    /// Loading failed; see `error`.
    Failed,
}

/// What a worker reports about one dataset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetStats {
    /// Dataset name.
    pub name: String,
    /// Load state.
    pub state: LoadState,
    /// Rows held (of the data being served; a reload in progress keeps serving the old data).
    pub rows: u64,
    /// Bytes held in memory.
    pub bytes: u64,
    /// Source snapshot identifier (see [`ShardInfo::generation`]).
    pub generation: String,
    /// Seconds the last successful load took.
    pub load_seconds: f64,
    /// When the data being served was loaded (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loaded_at: Option<String>,
    /// The last load error, naming the file and column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True while a reload runs.
    pub reloading: bool,
}

/// The answer to the `stats` action.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStats {
    /// This worker's shard index.
    pub shard: u32,
    /// Number of shards.
    pub shards: u32,
    /// Worker version.
    pub version: String,
    /// Queries answered since start.
    pub queries: u64,
    /// When the last query arrived (RFC 3339); the operator's idle signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_query_time: Option<String>,
    /// When the worker started (RFC 3339).
    pub started_at: String,
    /// Per-dataset state.
    pub datasets: Vec<DatasetStats>,
}

impl WorkerStats {
    /// True when every dataset is loaded.
    pub fn all_ready(&self) -> bool {
        self.datasets.iter().all(|d| d.state == LoadState::Ready)
    }
}

/// What `ListFlights` / `GetFlightInfo` say about a dataset (the FlightInfo's
/// `app_metadata`, JSON).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetInfo {
    /// Dataset name.
    pub name: String,
    /// The effective view config (preset defaults applied).
    pub view: crate::spec::ViewConfig,
    /// Load state.
    pub state: LoadState,
    /// Rows held by this shard.
    pub rows: u64,
    /// Bytes held in memory by this shard.
    pub bytes: u64,
    /// Which shard this is.
    pub shard: ShardInfo,
    /// The detail columns samples carry and exports return.
    #[serde(default)]
    pub details: Vec<DetailInfo>,
}

/// What a client needs to show one detail column.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DetailInfo {
    /// Source column (the name in samples and exports).
    pub column: String,
    /// Human title, e.g. `Signal range`.
    pub title: String,
    /// Unit shown after values, e.g. `m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Value type.
    pub kind: crate::spec::DetailKind,
    /// The dimension binning the same column, whose bin this value refines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(views: Vec<View>, viewport: Option<Viewport>) -> Query {
        Query {
            version: PROTOCOL_VERSION,
            dataset: "d".into(),
            filters: BTreeMap::new(),
            viewport,
            viewport_filter: false,
            views,
        }
    }

    #[test]
    fn shape_errors_name_the_part_and_the_limit() {
        let vp = Some(Viewport::WORLD);
        let raster = |width, height| query(vec![View::Raster { width, height }], vp);
        assert_eq!(raster(0, 5).check_shape(), Err(QueryError::RasterEmpty { width: 0, height: 5 }));
        assert_eq!(raster(4097, 5).check_shape(), Err(QueryError::RasterSide { width: 4097, height: 5 }));
        assert_eq!(raster(4096, 4096).check_shape(), Err(QueryError::RasterPixels { width: 4096, height: 4096 }));
        assert_eq!(raster(2048, 2048).check_shape(), Ok(()));
        let no_vp = query(vec![View::Raster { width: 8, height: 8 }], None);
        assert_eq!(no_vp.check_shape(), Err(QueryError::RasterWithoutViewport));
        let sample = query(vec![View::Sample { limit: MAX_SAMPLE_ROWS + 1, all_or_none: false }], None);
        assert_eq!(sample.check_shape(), Err(QueryError::SampleLimit(MAX_SAMPLE_ROWS + 1)));
        assert_eq!(query(vec![], vp).check_shape(), Err(QueryError::NoViews));
        let mut q = query(vec![View::Histogram { dimension: "a".into() }], None);
        q.viewport_filter = true;
        assert_eq!(q.check_shape(), Err(QueryError::ViewportFilterWithoutViewport));
        q.viewport_filter = false;
        q.filters.insert("a".into(), Filter::Range { min: 3.0, max: 1.0 });
        let e = q.check_shape().unwrap_err();
        assert_eq!(e.to_string(), "filter on \"a\": range min 3 is above max 1");
        // The worker's error keeps the message.
        assert_eq!(Error::from(e).to_string(), "invalid query: filter on \"a\": range min 3 is above max 1");
    }

    #[test]
    fn filters_are_checked_for_their_own_bounds_and_sizes() {
        assert_eq!(Filter::Range { min: 1.0, max: 1.0 }.check_shape(), Ok(()), "an empty range is a valid ticket");
        assert_eq!(Filter::Range { min: f64::NAN, max: 1.0 }.check_shape(), Err(FilterProblem::RangeNotNumbers));
        let many = Filter::Bins(vec![0; MAX_FILTER_VALUES + 1]);
        assert_eq!(many.check_shape(), Err(FilterProblem::TooManyBins(MAX_FILTER_VALUES + 1)));
        let many = Filter::Categories(vec![String::new(); MAX_FILTER_VALUES + 1]);
        assert_eq!(many.check_shape(), Err(FilterProblem::TooManyCategories(MAX_FILTER_VALUES + 1)));
    }
}
