//! Writes every child the operator would apply, as JSON, for each DataCluster
//! found in the YAML files given, into OUT_DIR (used by `validate-manifests.sh`):
//!
//! `cargo run -p quiver-operator --example dump_manifests -- OUT_DIR cluster.yaml...`
//!
//! Files may hold several YAML documents; those that are not DataClusters are
//! skipped. A DataCluster without a namespace or uid (an example manifest) gets
//! placeholders, as the API server would assign them. Each cluster is rendered
//! running and suspended (workers at zero). Token Secrets carry a placeholder
//! instead of a generated token.

use anyhow::Context;
use quiver_operator::children::{Component, build_all, build_token_secret};
use quiver_operator::crd::DataCluster;
use quiver_operator::validate::{Defaults, ValidCluster, validate};
use serde::Deserialize;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(args.next().context("usage: dump_manifests OUT_DIR cluster.yaml...")?);
    std::fs::create_dir_all(&out)?;
    let (mut written, mut clusters) = (0, 0);
    for file in args {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).with_context(|| format!("{file} is not YAML"))?;
            if value.get("kind").and_then(|k| k.as_str()) != Some("DataCluster") {
                continue;
            }
            let mut dc: DataCluster =
                serde_yaml::from_value(value).with_context(|| format!("{file}: not a valid DataCluster"))?;
            dc.metadata.namespace.get_or_insert_with(|| "default".into());
            dc.metadata.uid.get_or_insert_with(|| "00000000-0000-0000-0000-000000000000".into());
            written += dump(&out, clusters, &dc).with_context(|| file.clone())?;
            clusters += 1;
        }
    }
    eprintln!("wrote {written} manifests of {clusters} DataClusters to {}", out.display());
    Ok(())
}

fn dump(out: &std::path::Path, index: usize, dc: &DataCluster) -> anyhow::Result<usize> {
    let c = validate(dc, &Defaults::default())?;
    let mut written = 0;
    for (variant, replicas) in [("running", c.worker_pods()), ("suspended", 0)] {
        let mut objects: Vec<(String, String, serde_json::Value)> =
            build_all(&c, replicas).manifests().into_iter().map(|m| (m.kind, m.name, m.json)).collect();
        for (name, component) in secrets(&c) {
            let s = build_token_secret(&c, &name, component, "placeholder-token");
            objects.push(("Secret".into(), name, serde_json::to_value(&s)?));
        }
        for (kind, name, json) in objects {
            let file = format!("{index:02}-{}-{variant}-{}-{name}.json", c.name, kind.to_lowercase());
            std::fs::write(out.join(file), serde_json::to_string_pretty(&json)?)?;
            written += 1;
        }
    }
    Ok(written)
}

fn secrets(c: &ValidCluster) -> Vec<(String, Component)> {
    let mut v = vec![(c.worker_token_secret(), Component::Worker)];
    if c.generate_dashboard_token {
        v.push((c.dashboard_token.name.clone(), Component::Dashboard));
    }
    v
}
