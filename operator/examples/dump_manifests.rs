//! Writes every child the operator would apply, as JSON, for each DataCluster
//! YAML given, into OUT_DIR (used by `validate-manifests.sh`):
//!
//! `cargo run -p quiver-operator --example dump_manifests -- OUT_DIR cluster.yaml...`
//!
//! Each cluster is rendered running and suspended (workers at zero). Token
//! Secrets carry a placeholder instead of a generated token.

use anyhow::Context;
use quiver_operator::children::{Component, build_all, build_token_secret};
use quiver_operator::crd::DataCluster;
use quiver_operator::validate::{Defaults, ValidCluster, validate};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(
        args.next()
            .context("usage: dump_manifests OUT_DIR cluster.yaml...")?,
    );
    std::fs::create_dir_all(&out)?;
    let mut written = 0;
    for file in args {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
        let dc: DataCluster =
            serde_yaml::from_str(&text).with_context(|| format!("{file} is not a DataCluster"))?;
        let c = validate(&dc, &Defaults::default()).with_context(|| format!("{file}"))?;
        for (variant, replicas) in [("running", c.worker_replicas), ("suspended", 0)] {
            let mut objects: Vec<(String, String, serde_json::Value)> = build_all(&c, replicas)
                .manifests()
                .into_iter()
                .map(|m| (m.kind, m.name, m.json))
                .collect();
            for (name, component) in secrets(&c) {
                let s = build_token_secret(&c, &name, component, "placeholder-token");
                objects.push(("Secret".into(), name, serde_json::to_value(&s)?));
            }
            for (kind, name, json) in objects {
                let path = out.join(format!(
                    "{}-{variant}-{}-{name}.json",
                    c.name,
                    kind.to_lowercase()
                ));
                std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
                written += 1;
            }
        }
    }
    eprintln!("wrote {written} manifests to {}", out.display());
    Ok(())
}

fn secrets(c: &ValidCluster) -> Vec<(String, Component)> {
    let mut v = vec![(c.worker_token_secret(), Component::Worker)];
    if c.generate_dashboard_token {
        v.push((c.dashboard_token.name.clone(), Component::Dashboard));
    }
    v
}
