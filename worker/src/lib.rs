//! Quiver worker: holds a shard of each dataset in memory and answers
//! crossfilter queries over Arrow Flight.
//!
//! ```text
//! object store ──list/shard──▶ source (csv | csv.gz | parquet, presets)
//!        ──decode──▶ store::Builder (quantise x/y, bin codes, Hilbert order, blocks)
//!        ──▶ store::Registry (datasets by name, swapped atomically on reload)
//! Flight DoGet(ticket JSON) ──▶ protocol::Query ──plan──▶ kernel::scan (one pass,
//!        parallel over blocks: histograms + raster + sample) ──▶ Arrow batches
//! ```
#![warn(missing_docs)]

pub mod bins;
pub mod error;
pub mod geo;
pub mod protocol;
pub mod source;
pub mod spec;

pub use error::{Error, Result};
