//! Helpers shared by the operator's integration tests.
#![allow(dead_code)]

pub mod apiserver;

use std::path::PathBuf;

use quiver_operator::crd::DataCluster;
use quiver_operator::validate::{Defaults, ValidCluster, validate};

/// The operator crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sample DataCluster of `tests/fixtures/datacluster.yaml`.
pub fn fixture() -> DataCluster {
    let text = std::fs::read_to_string(crate_dir().join("tests/fixtures/datacluster.yaml")).unwrap();
    serde_yaml::from_str(&text).expect("the fixture is a DataCluster")
}

/// The fixture, validated with the default images.
pub fn valid_fixture() -> ValidCluster {
    validate(&fixture(), &Defaults::default()).expect("the fixture is valid")
}

/// True when goldens should be rewritten instead of compared.
pub fn blessing() -> bool {
    std::env::var("QUIVER_BLESS").is_ok_and(|v| v == "1")
}

/// Compares `actual` with the golden file, or rewrites it under `QUIVER_BLESS=1`.
pub fn check_golden(path: &std::path::Path, actual: &str) {
    if blessing() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!("{}: {e}; run `QUIVER_BLESS=1 cargo test -p quiver-operator` to create it", path.display())
    });
    if expected != actual {
        panic!(
            "{} is stale; review the diff and run `QUIVER_BLESS=1 cargo test -p quiver-operator`.\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}
