//! The Arrow Flight face of the worker: service, client, auth, answer encoding.

pub mod auth;
pub mod client;
/// The answer's Arrow form (below the Flight service and client, and the export).
pub use crate::encode;
#[cfg(feature = "server")]
pub mod service;
