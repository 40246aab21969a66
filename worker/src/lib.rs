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

// Always built: what any crate that talks to workers needs (the operator builds
// only these, with `default-features = false`).
pub mod bins;
pub mod cli;
pub mod details;
pub mod encode;
pub mod error;
pub mod flight;
pub mod geo;
pub mod protocol;
pub mod spec;
pub mod tls;

// The worker itself: loading, store, kernels, servers, generator (feature `server`).
#[cfg(feature = "server")]
pub mod bench;
#[cfg(feature = "server")]
pub mod cache;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod export;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
#[cfg(feature = "server")]
pub mod health;
#[cfg(feature = "server")]
pub mod kernel;
#[cfg(feature = "server")]
pub mod mem;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod query;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod source;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
// `gen` is a reserved word in edition 2024: the generator lives in gen/ and is
// named `synth` in paths (`quiver_worker::synth::generate`, `crate::synth::...`).
#[cfg(feature = "server")]
#[path = "gen/mod.rs"]
pub mod synth;

pub use error::{Error, Result};
