//! The Arrow Flight face of the worker: service, client, auth, answer encoding.

pub mod auth;
pub mod client;
pub mod encode;
pub mod service;
