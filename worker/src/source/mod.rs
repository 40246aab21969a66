//! Reading datasets from object storage: listing, sharding, decoding, presets.

pub mod objstore;
pub mod presets;
