//! The command-line tools built on the server: `demo` (workers and dashboard
//! in one process), `bench` (latency of `/api/query`) and `load` (bounded load
//! with checked answers).
//!
//! They stand above the server: a tool may use any server module, and no server
//! module uses a tool.

pub mod bench;
pub mod demo;
pub mod load;
