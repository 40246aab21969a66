//! Command-line and environment configuration of `quiver-worker serve`,
//! validated once into a [`WorkerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::error::{Error, Result};
use crate::source::{LoadOptions, S3Defaults, ShardId};
use crate::spec::{DatasetSpec, Preset};
use crate::state::WorkerConfig;

/// S3 settings shared by `serve`, `gen` and `bench`.
#[derive(Args, Clone, Debug, Default)]
pub struct S3Args {
    /// S3 endpoint for S3-compatible stores (MinIO...).
    #[arg(long, env = "QUIVER_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "QUIVER_S3_REGION")]
    pub s3_region: Option<String>,
    /// Allow plain-HTTP S3 endpoints.
    #[arg(long, env = "QUIVER_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
    /// S3 access key id (else AWS_ACCESS_KEY_ID).
    #[arg(long, env = "QUIVER_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (else AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "QUIVER_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
}

impl S3Args {
    /// The defaults these flags give.
    pub fn defaults(&self) -> S3Defaults {
        S3Defaults {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            session_token: None,
            allow_http: self.s3_allow_http.then_some(true),
        }
    }
}

/// `quiver-worker serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Arrow Flight listen address.
    #[arg(long, env = "QUIVER_FLIGHT_ADDR", default_value = "0.0.0.0:8815")]
    pub flight_addr: SocketAddr,
    /// HTTP listen address (/healthz, /readyz, /metrics).
    #[arg(long, env = "QUIVER_HTTP_ADDR", default_value = "0.0.0.0:9090")]
    pub http_addr: SocketAddr,
    /// JSON or YAML file holding a list of dataset specs.
    #[arg(long, env = "QUIVER_DATASETS_FILE")]
    pub datasets_file: Option<PathBuf>,
    /// JSON list of dataset specs.
    #[arg(long, env = "QUIVER_DATASETS")]
    pub datasets: Option<String>,
    /// A dataset as NAME=PRESET:URL, e.g. celltowers=celltowers:s3://bucket/towers/ (repeatable).
    #[arg(long = "dataset")]
    pub dataset: Vec<String>,
    /// This worker's shard index (default: the ordinal suffix of --pod-name
    /// modulo --shards, so with r replicas per shard pods i, i+n, i+2n... of
    /// n shards serve shard i; else 0).
    #[arg(long, env = "QUIVER_SHARD_INDEX")]
    pub shard_index: Option<u32>,
    /// StatefulSet pod name, e.g. demo-workers-3.
    #[arg(long, env = "QUIVER_POD_NAME")]
    pub pod_name: Option<String>,
    /// Number of shards.
    #[arg(long, env = "QUIVER_SHARDS", default_value_t = 1)]
    pub shards: u32,
    /// Bearer token every Flight call must carry.
    #[arg(long, env = "QUIVER_WORKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, env = "QUIVER_WORKER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Memory limit in bytes (default: the cgroup's limit).
    #[arg(long, env = "QUIVER_MEMORY_LIMIT")]
    pub memory_limit: Option<u64>,
    /// Threads for the kernels (default: all cores).
    #[arg(long, env = "QUIVER_THREADS")]
    pub threads: Option<usize>,
    /// MiB of recent answers kept for identical queries (per dataset
    /// generation; 0 keeps none, identical concurrent queries still share one scan).
    #[arg(long, env = "QUIVER_RESULT_CACHE_MB", default_value_t = 32)]
    pub result_cache_mb: usize,
    /// S3 settings.
    #[command(flatten)]
    pub s3: S3Args,
}

/// Parses `NAME=PRESET:URL`.
pub fn parse_dataset_arg(s: &str) -> Result<DatasetSpec> {
    let bad = || Error::InvalidSpec(format!("--dataset {s:?} must look like NAME=PRESET:URL"));
    let (name, rest) = s.split_once('=').ok_or_else(bad)?;
    let (preset, url) = rest.split_once(':').ok_or_else(bad)?;
    let preset: Preset = preset.parse()?;
    Ok(DatasetSpec {
        name: name.to_string(),
        source: url.to_string(),
        preset: Some(preset),
        format: None,
        s3: None,
        view: None,
        details: None,
    })
}

/// The ordinal suffix of a StatefulSet pod name.
pub fn ordinal_of(pod: &str) -> Option<u32> {
    pod.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// The shard a worker serves: `--shard-index` when given, else its pod
/// ordinal modulo the shard count (a StatefulSet of `shards × replicas` pods
/// where ordinal `i` serves shard `i mod shards`), else 0. An explicit index
/// is taken as is, so `ShardId::new` still refuses one out of range.
pub fn default_shard_index(explicit: Option<u32>, pod_name: Option<&str>, shards: u32) -> Result<u32> {
    match (explicit, pod_name) {
        (Some(i), _) => Ok(i),
        (None, Some(pod)) => {
            let ordinal = ordinal_of(pod).ok_or_else(|| {
                Error::InvalidSpec(format!("pod name {pod:?} has no ordinal suffix; set --shard-index"))
            })?;
            if shards == 0 {
                return Err(Error::InvalidSpec("--shards must be at least 1".into()));
            }
            Ok(ordinal % shards)
        }
        (None, None) => Ok(0),
    }
}

impl TryFrom<ServeArgs> for WorkerConfig {
    type Error = Error;
    fn try_from(a: ServeArgs) -> Result<WorkerConfig> {
        let mut datasets: Vec<DatasetSpec> = vec![];
        if let Some(path) = &a.datasets_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::InvalidSpec(format!("cannot read {}: {e}", path.display())))?;
            let list: Vec<DatasetSpec> = if text.trim_start().starts_with('[') {
                serde_json::from_str(&text).map_err(|e| Error::InvalidSpec(format!("{}: {e}", path.display())))?
            } else {
                return Err(Error::InvalidSpec(format!("{}: expected a JSON list of dataset specs", path.display())));
            };
            datasets.extend(list);
        }
        if let Some(json) = &a.datasets {
            let list: Vec<DatasetSpec> = serde_json::from_str(json)
                .map_err(|e| Error::InvalidSpec(format!("QUIVER_DATASETS is not a JSON list of dataset specs: {e}")))?;
            datasets.extend(list);
        }
        for d in &a.dataset {
            datasets.push(parse_dataset_arg(d)?);
        }
        if datasets.is_empty() {
            return Err(Error::InvalidSpec(
                "no datasets: give --dataset NAME=PRESET:URL, --datasets JSON or --datasets-file".into(),
            ));
        }
        let index = default_shard_index(a.shard_index, a.pod_name.as_deref(), a.shards)?;
        let shard = ShardId::new(index, a.shards)?;
        let token = crate::cli::read_secret("token", a.token, a.token_file.as_deref()).map_err(Error::InvalidSpec)?;
        let memory_limit = a.memory_limit.or_else(crate::source::cgroup_memory_limit);
        let cfg = WorkerConfig {
            datasets,
            shard,
            token,
            load: LoadOptions { s3: a.s3.defaults(), memory_limit },
            result_cache_bytes: a.result_cache_mb.saturating_mul(1 << 20),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_args_parse() {
        let d = parse_dataset_arg("towers=celltowers:s3://b/p/").unwrap();
        assert_eq!(d.name, "towers");
        assert_eq!(d.source, "s3://b/p/");
        assert_eq!(d.preset, Some(Preset::Celltowers));
        assert!(parse_dataset_arg("towers").is_err());
        assert!(parse_dataset_arg("towers=nope:file:///x").is_err());
    }

    #[test]
    fn ordinals_come_from_pod_names() {
        assert_eq!(ordinal_of("demo-workers-3"), Some(3));
        assert_eq!(ordinal_of("demo"), None);
    }

    #[test]
    fn a_pod_serves_its_ordinal_modulo_the_shard_count() {
        // 2 shards × 2 replicas: pods 0 and 2 serve shard 0, pods 1 and 3 shard 1.
        let shard = |pod: &str| default_shard_index(None, Some(pod), 2).unwrap();
        assert_eq!(["demo-workers-0", "demo-workers-1", "demo-workers-2", "demo-workers-3"].map(shard), [0, 1, 0, 1]);
        // One replica per shard: the ordinal is the shard, as before.
        assert_eq!(default_shard_index(None, Some("demo-workers-5"), 8).unwrap(), 5);
        // An explicit index wins (and is range-checked by ShardId later).
        assert_eq!(default_shard_index(Some(7), Some("demo-workers-1"), 2).unwrap(), 7);
        assert_eq!(default_shard_index(None, None, 4).unwrap(), 0);
        assert!(default_shard_index(None, Some("demo"), 2).is_err());
        assert!(default_shard_index(None, Some("demo-workers-3"), 0).is_err());
    }

    #[test]
    fn the_serve_config_takes_the_replica_pods_shard() {
        let cli = clap::Command::new("t");
        let cli = <ServeArgs as clap::Args>::augment_args(cli);
        let m = cli
            .try_get_matches_from([
                "t",
                "--dataset",
                "towers=celltowers:file:///d/",
                "--pod-name",
                "demo-workers-3",
                "--shards",
                "2",
            ])
            .unwrap();
        let args = <ServeArgs as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        let cfg = WorkerConfig::try_from(args).unwrap();
        assert_eq!(cfg.shard, ShardId { index: 1, count: 2 });
    }
}
