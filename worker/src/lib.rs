//! Quiver worker: holds a shard of each dataset in memory and answers
//! crossfilter queries over Arrow Flight.
//!
//! ```text
//! object store ──list/shard──▶ source (csv | csv.gz | parquet, presets)
//!        ──decode──▶ store::Builder (quantise x/y, bin codes, Hilbert order, blocks)
//!        ──▶ store::Registry (datasets by name, swapped atomically on reload)
//! Flight DoGet(ticket JSON) ──▶ protocol::Query ──▶ kernel::Plan ──▶ kernel::scan
//!        (one pass, parallel over blocks: histograms + raster + sample)
//!        ──▶ query::run (QueryResult) ──▶ encode (one batch per view)
//! ```
#![warn(missing_docs)]

pub mod bench;
pub mod bins;
pub mod cache;
pub mod config;
pub mod encode;
pub mod error;
pub mod export;
pub mod flight;
pub mod fuzzing;
// `gen` is a reserved word in edition 2024: the generator lives in gen/ and is
// named `synth` in paths (`quiver_worker::synth::generate`, `crate::synth::...`).
pub mod geo;
pub mod health;
pub mod kernel;
pub mod mem;
pub mod metrics;
pub mod protocol;
pub mod query;
pub mod server;
pub mod source;
pub mod spec;
pub mod state;
pub mod store;
#[path = "gen/mod.rs"]
pub mod synth;
pub mod tls;

pub use error::{Error, Result};
