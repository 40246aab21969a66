//! Quiver operator (work in progress).
#![warn(missing_docs)]

pub mod children;
pub mod crd;
pub mod error;
pub mod lifecycle;
mod schema;
pub mod validate;

pub use error::{Error, Result};
