//! Dataset declarations: where a dataset lives and how it is viewed.
//!
//! These types are the contract shared with the operator (they appear inside the
//! `DataCluster` spec) and with the dashboard (which reads the view config to
//! draw its charts). Presets fill in the view config for the two published
//! schemas; custom datasets declare their own.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod presets;
pub mod time;

/// Largest number of bins a dimension may have. Bin codes are one byte and the
/// code `bins` is reserved for rows whose value is missing.
pub const MAX_BINS: u32 = 255;

/// A dataset: a name, a source URL, and how to view it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatasetSpec {
    /// Name used in queries: lowercase letters, digits and dashes, 1 to 63 characters.
    pub name: String,
    /// Any object_store URL of a file or a prefix: `s3://bucket/prefix/`, `file:///data/towers/`.
    pub source: String,
    /// Schema preset: `celltowers` (OpenCelliD CSV schema) or `ais` (MarineCadastre AIS schema).
    /// Without a preset, `view` must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// File format; by default taken from each file's extension (`.parquet`, `.csv`, `.csv.gz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// S3 settings for `s3://` sources. Credentials default to the standard AWS
    /// environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Options>,
    /// View config; overrides the preset's defaults when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<ViewConfig>,
    /// Detail columns: the exact values a point's tooltip shows and an export
    /// returns, held compressed beside the bin codes (a few bytes a row).
    /// Absent: the preset's (the view's dimension columns for a custom
    /// dataset); `[]` keeps none, for memory-tight clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<DetailSpec>>,
}

/// One detail column.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetailSpec {
    /// Source column.
    pub column: String,
    /// Human title; defaults to the title of a dimension over the column, else the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Unit shown after values, e.g. `m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Value type; defaults to the preset schema's type of the column, else
    /// what a dimension over it bins (temporal: time, numeric: float,
    /// categorical: text), else text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DetailKind>,
}

/// The schema presets Quiver knows.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Preset {
    /// OpenCelliD cell towers:
    /// `radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal`.
    Celltowers,
    /// US Coast Guard / MarineCadastre AIS positions:
    /// `MMSI,BaseDateTime,LAT,LON,SOG,COG,Heading,VesselName,IMO,CallSign,VesselType,Status,Length,Width,Draft,Cargo,TransceiverClass`.
    Ais,
}

impl Preset {
    /// The preset's name as written in specs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Celltowers => "celltowers",
            Preset::Ais => "ais",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "celltowers" => Ok(Preset::Celltowers),
            "ais" => Ok(Preset::Ais),
            other => Err(Error::InvalidSpec(format!("unknown preset {other:?}: expected celltowers or ais"))),
        }
    }
}

/// File formats the loader reads.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row.
    Csv,
    /// gzip-compressed CSV with a header row.
    CsvGz,
}

impl Format {
    /// Format implied by a file name, if any.
    pub fn from_path(path: &str) -> Option<Format> {
        let p = path.to_ascii_lowercase();
        if p.ends_with(".parquet") || p.ends_with(".pq") {
            Some(Format::Parquet)
        } else if p.ends_with(".csv.gz") || p.ends_with(".csv.gzip") {
            Some(Format::CsvGz)
        } else if p.ends_with(".csv") {
            Some(Format::Csv)
        } else {
            None
        }
    }

    /// The conventional file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::CsvGz => "csv.gz",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "parquet" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "csv.gz" | "csvGz" | "csv-gz" => Ok(Format::CsvGz),
            other => Err(Error::InvalidSpec(format!("unknown format {other:?}: expected parquet, csv or csv.gz"))),
        }
    }
}

/// Settings for S3 and S3-compatible stores (MinIO, Ceph, R2...).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Options {
    /// Region, e.g. `us-east-1`. Defaults to `AWS_REGION` / `AWS_DEFAULT_REGION`, then `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint URL for S3-compatible stores, e.g. `http://minio.storage:9000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow plain `http://` endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// Use path-style requests (`endpoint/bucket/key`), as most S3-compatible stores expect.
    /// Defaults to true when an endpoint is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// Read credentials from a directory holding files `accessKeyId`, `secretAccessKey`
    /// and optionally `sessionToken` (a mounted Kubernetes Secret). Without it, the
    /// worker's `--s3-*` flags, then the standard AWS environment variables apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_dir: Option<String>,
    /// Make unsigned requests (public buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<bool>,
}

/// How a dataset is drawn: map coordinates, the colouring category, histograms.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewConfig {
    /// Column holding longitude in degrees (WGS84).
    pub x: String,
    /// Column holding latitude in degrees (WGS84).
    pub y: String,
    /// Name of the categorical dimension whose categories colour the map.
    pub category: String,
    /// Histogram dimensions, in display order.
    pub dimensions: Vec<DimensionSpec>,
}

/// One histogram dimension.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DimensionSpec {
    /// Identifier used in queries, e.g. `range`.
    pub name: String,
    /// Source column.
    pub column: String,
    /// Human title for charts; defaults to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Binning.
    pub bins: Binning,
}

/// How a dimension's values become bins.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum Binning {
    /// Named categories; each matches a set of source values. Values matching no
    /// category fall in `other`.
    #[serde(rename_all = "camelCase")]
    Categorical {
        /// Categories in display order (at most 64).
        categories: Vec<CategoryDef>,
        /// Label of the bucket for values that match no category.
        #[serde(default = "default_other")]
        other: String,
    },
    /// Equal-width bins over `[min, max)`; values outside are counted in the first or last bin.
    #[serde(rename_all = "camelCase")]
    Linear {
        /// Lower edge of the first bin.
        min: f64,
        /// Upper edge of the last bin.
        max: f64,
        /// Number of bins (1 to 255).
        count: u32,
    },
    /// Bins of equal width in log10 space over `[min, max)`; `min` must be positive.
    #[serde(rename_all = "camelCase")]
    Log {
        /// Lower edge of the first bin (positive).
        min: f64,
        /// Upper edge of the last bin.
        max: f64,
        /// Number of bins (1 to 255).
        count: u32,
    },
    /// Calendar bins between two instants. Source values may be unix seconds,
    /// RFC 3339 timestamps, or `YYYY-MM-DD[ T]HH:MM:SS` (UTC).
    #[serde(rename_all = "camelCase")]
    Temporal {
        /// First instant, RFC 3339 or `YYYY-MM-DD`.
        start: String,
        /// End instant (exclusive), RFC 3339 or `YYYY-MM-DD`.
        end: String,
        /// Bin width.
        interval: Interval,
    },
}

fn default_other() -> String {
    "Other".to_string()
}

/// Calendar interval of a temporal dimension.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Interval {
    /// Calendar years.
    Year,
    /// Calendar months.
    Month,
    /// Days (UTC).
    Day,
    /// Hours.
    Hour,
}

/// A named category and the source values it collects.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CategoryDef {
    /// Label shown in charts and used in filters.
    pub label: String,
    /// Source values (text as written in the file) that belong to this category.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Inclusive integer ranges `[lo, hi]` of source values that belong to this category.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<[i64; 2]>,
    /// Colour for the map and the legend, `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

impl DatasetSpec {
    /// The effective view config: the explicit one, else the preset's.
    pub fn effective_view(&self) -> Result<ViewConfig> {
        match (&self.view, self.preset) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(p)) => Ok(presets::default_view(p)),
            (None, None) => {
                Err(Error::InvalidSpec(format!("dataset {:?} has neither a preset nor a view config", self.name)))
            }
        }
    }

    /// Checks what a schema cannot: name syntax, URL, binning parameters.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        url::Url::parse(&self.source).map_err(|e| {
            Error::InvalidSpec(format!("dataset {:?}: source {:?} is not a URL: {e}", self.name, self.source))
        })?;
        self.effective_view()?.validate(&self.name)
    }
}

/// Checks a dataset name: `[a-z0-9-]{1,63}`, not starting or ending with a dash.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "dataset name {:?} must be 1-63 lowercase letters, digits or dashes",
            truncate(name, 80)
        )))
    }
}

/// Shortens user-supplied text before quoting it in an error.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

impl ViewConfig {
    /// Checks binning parameters and that the category dimension exists and is categorical.
    pub fn validate(&self, dataset: &str) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidSpec(format!("dataset {dataset:?}: {msg}")));
        if self.dimensions.is_empty() {
            return bad("view has no dimensions".into());
        }
        if self.dimensions.len() > 16 {
            return bad(format!("view has {} dimensions; at most 16", self.dimensions.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.dimensions {
            if !seen.insert(d.name.as_str()) {
                return bad(format!("dimension {:?} is declared twice", d.name));
            }
            if d.name.is_empty() || d.column.is_empty() {
                return bad("a dimension has an empty name or column".into());
            }
            match &d.bins {
                Binning::Categorical { categories, .. } => {
                    if categories.is_empty() || categories.len() > 64 {
                        return bad(format!(
                            "dimension {:?} has {} categories; 1 to 64 allowed",
                            d.name,
                            categories.len()
                        ));
                    }
                    for c in categories {
                        if let Some(col) = &c.color
                            && crate::spec::parse_color(col).is_none()
                        {
                            return bad(format!(
                                "category {:?} of {:?} has colour {col:?}; expected #rrggbb",
                                c.label, d.name
                            ));
                        }
                    }
                }
                Binning::Linear { min, max, count } | Binning::Log { min, max, count } => {
                    if !(min.is_finite() && max.is_finite() && min < max) {
                        return bad(format!("dimension {:?}: min {min} must be below max {max}", d.name));
                    }
                    if *count == 0 || *count > MAX_BINS {
                        return bad(format!("dimension {:?} has {count} bins; 1 to {MAX_BINS} allowed", d.name));
                    }
                    if matches!(d.bins, Binning::Log { .. }) && *min <= 0.0 {
                        return bad(format!("log dimension {:?} needs a positive min, got {min}", d.name));
                    }
                }
                Binning::Temporal { start, end, interval } => {
                    // Worded as the bins' own check words it.
                    time::temporal_bins(start, end, *interval).map_err(|m| {
                        let e = Error::InvalidSpec(format!("dimension {:?}: {m}", d.name));
                        Error::InvalidSpec(format!("dataset {dataset:?}: {e}"))
                    })?;
                }
            }
        }
        match self.dimensions.iter().find(|d| d.name == self.category) {
            Some(DimensionSpec { bins: Binning::Categorical { .. }, .. }) => Ok(()),
            Some(_) => bad(format!("category dimension {:?} is not categorical", self.category)),
            None => bad(format!("category dimension {:?} is not declared", self.category)),
        }
    }
}

/// Parses `#rrggbb` into RGB.
pub fn parse_color(s: &str) -> Option<[u8; 3]> {
    let h = s.strip_prefix('#')?;
    if h.len() != 6 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(h, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// How a detail column's values are typed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum DetailKind {
    /// Whole numbers (Arrow `Int64`).
    Int,
    /// Floating point numbers, kept bit for bit (Arrow `Float64`).
    Float,
    /// Instants in unix seconds (Arrow `Timestamp(Second)`); read from
    /// timestamps, dates, integers or text such as `2024-01-15T13:45:07`.
    Time,
    /// Text (Arrow `Utf8`).
    Text,
}

impl DetailKind {
    /// The Arrow type a column of this kind is answered as.
    pub fn arrow_type(self) -> arrow_schema::DataType {
        match self {
            DetailKind::Int => arrow_schema::DataType::Int64,
            DetailKind::Float => arrow_schema::DataType::Float64,
            DetailKind::Time => arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Second, None),
            DetailKind::Text => arrow_schema::DataType::Utf8,
        }
    }
}
