//! The flags and environment of `serve`, parsed once at the edge into a validated [`Config`]
//! (the command line around them is the binary's, in `main.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};
pub use crate::secret::Secret;

/// Flags of `quiver-dashboard serve`.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "QUIVER_ADDR", default_value = "0.0.0.0:8050")]
    pub addr: String,
    /// Worker Flight endpoints, comma-separated, e.g. `http://127.0.0.1:8815`.
    #[arg(long, env = "QUIVER_WORKERS", value_delimiter = ',')]
    pub workers: Vec<String>,
    /// Headless Service `HOST:PORT` whose DNS records list the workers; re-resolved periodically.
    #[arg(long, env = "QUIVER_WORKERS_DNS")]
    pub workers_dns: Option<String>,
    /// How often to re-resolve `--workers-dns`.
    #[arg(long, env = "QUIVER_WORKERS_DNS_INTERVAL", default_value = "10s")]
    pub workers_dns_interval: String,
    /// Resolve `--workers-dns` and `--operator-url` by asking this DNS server (`IP:PORT`, UDP)
    /// instead of the system resolver. The simulated control plane (`quiver-kube-sim`) sets it in every pod
    /// it runs as a process, whose system resolver knows no cluster names.
    #[arg(long, env = "QUIVER_SIM_DNS")]
    pub dns_server: Option<String>,
    /// The login token. Prefer `--token-file` (a mounted Secret): flags show in `ps`.
    #[arg(long, env = "QUIVER_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the login token (trailing whitespace ignored).
    #[arg(long, env = "QUIVER_DASHBOARD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Token sent to workers as a Bearer token.
    #[arg(long, env = "QUIVER_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,
    /// File holding the worker token.
    #[arg(long, env = "QUIVER_WORKER_TOKEN_FILE")]
    pub worker_token_file: Option<PathBuf>,
    /// Mark the session cookie `Secure` (serve behind HTTPS).
    #[arg(long, env = "QUIVER_COOKIE_SECURE")]
    pub cookie_secure: bool,
    /// How long a login lasts.
    #[arg(long, env = "QUIVER_SESSION_TTL", default_value = "12h")]
    pub session_ttl: String,
    /// Revocation epoch: changing it invalidates every session without changing the token.
    #[arg(long, env = "QUIVER_SESSION_EPOCH", default_value_t = 0)]
    pub session_epoch: u64,
    /// Per-worker time limit for one call (retry included).
    #[arg(long, env = "QUIVER_WORKER_TIMEOUT", default_value = "5s")]
    pub worker_timeout: String,
    /// With several replicas per shard, a query still unanswered after its
    /// shard's recent p95 latency is also sent to another replica (the first
    /// answer wins): no sooner than this (default 25ms)...
    #[arg(long, env = "QUIVER_HEDGE_MIN")]
    pub hedge_min: Option<String>,
    /// ...and no later than this (default 1s, and at most half the worker timeout);
    /// also the delay while too few latencies are known.
    #[arg(long, env = "QUIVER_HEDGE_MAX")]
    pub hedge_max: Option<String>,
    /// XYZ tile URL template drawn under the data when the browser can reach it
    /// (default: OpenStreetMap's standard tiles, `https://tile.openstreetmap.org/{z}/{x}/{y}.png`);
    /// `none` turns online tiles off. The offline basemap is drawn whenever tiles are off or unreachable.
    #[arg(long, env = "QUIVER_TILE_URL")]
    pub tile_url: Option<String>,
    /// Attribution shown on the map for the tiles (default: the OpenStreetMap
    /// notice for OpenStreetMap's tiles, else the tile server's host name).
    #[arg(long, env = "QUIVER_TILE_ATTRIBUTION")]
    pub tile_attribution: Option<String>,
    /// Most rows one export (`GET /api/export`, CSV or Parquet) may return
    /// (default 1,000,000); a larger selection is refused with its count
    /// before anything is sent.
    #[arg(long, env = "QUIVER_EXPORT_ROW_LIMIT")]
    pub export_row_limit: Option<u64>,
    /// Name of the DataCluster this dashboard belongs to (in Kubernetes).
    #[arg(long, env = "QUIVER_CLUSTER")]
    pub cluster: Option<String>,
    /// Namespace of the DataCluster (in Kubernetes).
    #[arg(long, env = "QUIVER_NAMESPACE")]
    pub namespace: Option<String>,
    /// The operator's resume endpoint, `http://HOST:PORT` (in Kubernetes; set by
    /// the operator): `/api/status` then says whether the cluster is suspended
    /// and `/api/resume` asks to resume it, authenticated by the login token.
    #[arg(long, env = "QUIVER_OPERATOR_URL")]
    pub operator_url: Option<String>,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a trusted
    /// proxy only), for the login rate limit.
    #[arg(long, env = "QUIVER_TRUST_PROXY")]
    pub trust_proxy: bool,
    /// Time a client has to send a request's headers (default 30s); idle keep-alive
    /// connections are closed after it too, so keep a proxy's upstream keep-alive below it.
    #[arg(long, env = "QUIVER_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// Time a client has to send a request's body once its headers arrived (default 30s); `408` beyond.
    #[arg(long, env = "QUIVER_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<String>,
    /// Open connections beyond this are closed as soon as they are accepted (default 4096).
    #[arg(long, env = "QUIVER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

/// Where the list of workers comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerSource {
    /// A fixed list of Flight endpoints.
    Static(Vec<String>),
    /// The A/AAAA records of a headless Service, re-resolved every `interval`.
    Dns {
        /// Host name.
        host: String,
        /// Flight port.
        port: u16,
        /// Re-resolution period.
        interval: Duration,
    },
}

/// The validated configuration of `serve`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address.
    pub addr: SocketAddr,
    /// Worker discovery.
    pub workers: WorkerSource,
    /// Login token.
    pub token: Secret,
    /// Token for the workers.
    pub worker_token: Option<Secret>,
    /// `Secure` cookies.
    pub cookie_secure: bool,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Session revocation epoch.
    pub session_epoch: u64,
    /// Per-worker call time limit.
    pub worker_timeout: Duration,
    /// When to hedge a slow replica.
    pub hedge: crate::replicas::HedgePolicy,
    /// XYZ tile URL template; `None`: online tiles off.
    pub tile_url: Option<String>,
    /// Attribution of the tiles shown on the map.
    pub tile_attribution: Option<String>,
    /// Most rows one export may return.
    pub export_row_limit: u64,
    /// DataCluster name and namespace, when running in Kubernetes.
    pub cluster: Option<(String, String)>,
    /// The operator's resume endpoint (needs `cluster`).
    pub operator_url: Option<String>,
    /// The DNS server that resolves the workers' and the operator's names; `None`: the system's.
    pub dns_server: Option<SocketAddr>,
    /// Trust `X-Forwarded-For`.
    pub trust_proxy: bool,
    /// Header and body read times and the connection cap.
    pub limits: crate::conn::Limits,
}

/// Rows an export may return unless `--export-row-limit` says otherwise: about
/// 100 MB of CSV for the tower preset, a size a browser download and a
/// spreadsheet or pandas still handle.
pub const DEFAULT_EXPORT_ROW_LIMIT: u64 = 1_000_000;

/// The default online tile layer: OpenStreetMap's standard tiles. Their usage
/// policy (operations.osmfoundation.org/policies/tiles) asks for the attribution
/// below on the map, a Referer (the front end sends its origin), browser
/// caching (kept), and no bulk or offline downloading (the front end asks only
/// for the tiles in view).
pub const DEFAULT_TILE_URL: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

/// Values of `--tile-url` that turn online tiles off.
pub const TILES_OFF: &[&str] = &["none", "off"];

/// `--tile-url` as given (absent: the default) to the template to use, or
/// `None` when tiles are off; refuses what is not an http(s) template with
/// `{z}`, `{x}` and `{y}`.
pub fn tile_layer(arg: Option<&str>) -> Result<Option<String>> {
    let t = match arg.map(str::trim) {
        None => return Ok(Some(DEFAULT_TILE_URL.to_string())),
        Some(t) if t.is_empty() || TILES_OFF.iter().any(|o| t.eq_ignore_ascii_case(o)) => return Ok(None),
        Some(t) => t,
    };
    let ok =
        (t.starts_with("https://") || t.starts_with("http://")) && ["{z}", "{x}", "{y}"].iter().all(|p| t.contains(p));
    if !ok {
        return Err(Error::Config(format!(
            "--tile-url {t:?} must be an http(s) URL template with {{z}}, {{x}} and {{y}}, or `none`"
        )));
    }
    Ok(Some(t.to_string()))
}

/// The attribution a known tile server requires: OpenStreetMap's for its tiles.
pub fn default_tile_attribution(url: &str) -> Option<String> {
    let host = url.split_once("://").map_or(url, |(_, r)| r).split('/').next().unwrap_or_default();
    (host == "tile.openstreetmap.org" || host.ends_with(".tile.openstreetmap.org"))
        .then(|| "© OpenStreetMap contributors".to_string())
}

/// Parses a duration flag (`quiver_worker::cli::parse_duration`).
pub fn parse_duration(flag: &str, s: &str) -> Result<Duration> {
    quiver_worker::cli::parse_duration(flag, s).map_err(Error::Config)
}

/// Reads a secret from `--{name}` or `--{name}-file` (`quiver_worker::cli::read_secret`).
fn read_secret(name: &str, value: Option<String>, file: Option<PathBuf>) -> Result<Option<Secret>> {
    Ok(quiver_worker::cli::read_secret(name, value, file.as_deref()).map_err(Error::Config)?.map(Secret::new))
}

/// Checks a worker endpoint URL: `http(s)://host:port`.
pub fn parse_worker_url(s: &str) -> Result<String> {
    let s = s.trim();
    let u = url::Url::parse(s).map_err(|e| Error::Config(format!("worker endpoint {s:?} is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(Error::Config(format!("worker endpoint {s:?} must look like http://host:8815")));
    }
    Ok(s.trim_end_matches('/').to_string())
}

impl TryFrom<ServeArgs> for Config {
    type Error = Error;

    fn try_from(a: ServeArgs) -> Result<Config> {
        let addr: SocketAddr = a
            .addr
            .parse()
            .map_err(|e| Error::Config(format!("--addr {:?} is not an address like 0.0.0.0:8050: {e}", a.addr)))?;
        let workers = match (a.workers.is_empty(), a.workers_dns) {
            (false, Some(_)) => {
                return Err(Error::Config("give --workers or --workers-dns, not both".into()));
            }
            (true, None) => {
                return Err(Error::Config("no workers: give --workers URL,URL or --workers-dns HOST:PORT".into()));
            }
            (false, None) => {
                let mut list = Vec::new();
                for w in a.workers.iter().filter(|w| !w.trim().is_empty()) {
                    let u = parse_worker_url(w)?;
                    if !list.contains(&u) {
                        list.push(u);
                    }
                }
                if list.is_empty() {
                    return Err(Error::Config("--workers lists no endpoint".into()));
                }
                WorkerSource::Static(list)
            }
            (true, Some(dns)) => {
                let (host, port) = dns
                    .rsplit_once(':')
                    .ok_or_else(|| Error::Config(format!("--workers-dns {dns:?} must be HOST:PORT")))?;
                let port: u16 = port
                    .parse()
                    .map_err(|_| Error::Config(format!("--workers-dns {dns:?}: port {port:?} is not a number")))?;
                if host.is_empty() || port == 0 {
                    return Err(Error::Config(format!("--workers-dns {dns:?} must be HOST:PORT")));
                }
                WorkerSource::Dns {
                    host: host.to_string(),
                    port,
                    interval: parse_duration("workers-dns-interval", &a.workers_dns_interval)?,
                }
            }
        };
        let token = read_secret("token", a.token, a.token_file)?.ok_or_else(|| {
            Error::Config("no login token: give --token-file, --token or QUIVER_DASHBOARD_TOKEN".into())
        })?;
        let worker_token = read_secret("worker-token", a.worker_token, a.worker_token_file)?;
        let session_ttl = parse_duration("session-ttl", &a.session_ttl)?;
        if session_ttl > Duration::from_secs(366 * 86400) {
            return Err(Error::Config(format!("--session-ttl {:?} is longer than a year", a.session_ttl)));
        }
        let worker_timeout = parse_duration("worker-timeout", &a.worker_timeout)?;
        let hedge = {
            use crate::replicas::{DEFAULT_HEDGE_MAX, DEFAULT_HEDGE_MIN, HedgePolicy};
            let min = a.hedge_min.as_deref().map(|s| parse_duration("hedge-min", s)).transpose()?;
            let max = a.hedge_max.as_deref().map(|s| parse_duration("hedge-max", s)).transpose()?;
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                return Err(Error::Config(format!(
                    "--hedge-min {:?} is longer than --hedge-max {:?}",
                    a.hedge_min.unwrap_or_default(),
                    a.hedge_max.unwrap_or_default()
                )));
            }
            // A hedge must leave the other replica time to answer within the deadline.
            let max = max.unwrap_or(DEFAULT_HEDGE_MAX).min(worker_timeout / 2);
            HedgePolicy { min: min.unwrap_or(DEFAULT_HEDGE_MIN).min(max), max }
        };
        let tile_url = tile_layer(a.tile_url.as_deref())?;
        let tile_attribution = tile_url.as_deref().and_then(|u| {
            a.tile_attribution.clone().filter(|t| !t.trim().is_empty()).or_else(|| default_tile_attribution(u))
        });
        let defaults = crate::conn::Limits::default();
        let limits = crate::conn::Limits {
            header_read_timeout: match &a.header_read_timeout {
                Some(s) => parse_duration("header-read-timeout", s)?,
                None => defaults.header_read_timeout,
            },
            body_read_timeout: match &a.body_read_timeout {
                Some(s) => parse_duration("body-read-timeout", s)?,
                None => defaults.body_read_timeout,
            },
            max_connections: match a.max_connections {
                Some(0) => return Err(Error::Config("--max-connections must be at least 1".into())),
                Some(n) => n,
                None => defaults.max_connections,
            },
        };
        let cluster = match (a.cluster, a.namespace) {
            (Some(c), Some(n)) => Some((c, n)),
            (Some(c), None) => Some((c, "default".to_string())),
            (None, _) => None,
        };
        let dns_server =
            match a.dns_server.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(s.parse::<SocketAddr>().map_err(|e| {
                    Error::Config(format!("--dns-server {s:?} is not an address like 127.0.0.1:53: {e}"))
                })?),
            };
        let operator_url = match (a.operator_url, &cluster) {
            (Some(u), None) => {
                return Err(Error::Config(format!("--operator-url {u:?} needs --cluster")));
            }
            (Some(u), Some((name, ns))) => {
                crate::operator::Operator::new(&u, ns, name, token.clone())?;
                Some(u)
            }
            (None, _) => None,
        };
        Ok(Config {
            addr,
            workers,
            token,
            worker_token,
            cookie_secure: a.cookie_secure,
            session_ttl,
            session_epoch: a.session_epoch,
            worker_timeout,
            hedge,
            tile_url,
            tile_attribution,
            operator_url,
            dns_server,
            cluster,
            trust_proxy: a.trust_proxy,
            export_row_limit: a
                .export_row_limit
                .unwrap_or(DEFAULT_EXPORT_ROW_LIMIT)
                .min(quiver_worker::protocol::MAX_EXPORT_ROWS),
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs {
            addr: "127.0.0.1:0".into(),
            workers: vec!["http://127.0.0.1:8815".into()],
            workers_dns_interval: "10s".into(),
            token: Some("s3cret-token".into()),
            session_ttl: "12h".into(),
            worker_timeout: "5s".into(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_flags_become_a_config() {
        let c = Config::try_from(args()).unwrap();
        assert_eq!(c.workers, WorkerSource::Static(vec!["http://127.0.0.1:8815".into()]));
        assert_eq!(c.session_ttl, Duration::from_secs(12 * 3600));
        assert_eq!(c.worker_timeout, Duration::from_secs(5));
        assert_eq!(c.token.expose(), "s3cret-token");
    }

    #[test]
    fn hedge_bounds_default_parse_and_stay_within_the_worker_timeout() {
        use crate::replicas::HedgePolicy;
        let c = Config::try_from(args()).unwrap();
        assert_eq!(c.hedge, HedgePolicy::default());
        let c =
            Config::try_from(ServeArgs { hedge_min: Some("5ms".into()), hedge_max: Some("200ms".into()), ..args() })
                .unwrap();
        assert_eq!(c.hedge, HedgePolicy { min: Duration::from_millis(5), max: Duration::from_millis(200) });
        let c = Config::try_from(ServeArgs { worker_timeout: "300ms".into(), ..args() }).unwrap();
        assert_eq!(c.hedge.max, Duration::from_millis(150), "half the deadline");
        let e = Config::try_from(ServeArgs { hedge_min: Some("2s".into()), hedge_max: Some("1s".into()), ..args() })
            .unwrap_err();
        assert!(e.to_string().contains("--hedge-min \"2s\""), "{e}");
        let e = Config::try_from(ServeArgs { hedge_max: Some("soon".into()), ..args() }).unwrap_err();
        assert!(e.to_string().contains("--hedge-max \"soon\""), "{e}");
    }

    #[test]
    fn token_never_shows_in_debug_output() {
        let c = Config::try_from(args()).unwrap();
        assert!(!format!("{c:?}").contains("s3cret-token"));
    }

    #[test]
    fn token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "from-file\n").unwrap();
        let c = Config::try_from(ServeArgs { token: None, token_file: Some(p), ..args() }).unwrap();
        assert_eq!(c.token.expose(), "from-file");
    }

    #[test]
    fn missing_or_double_token_is_refused() {
        let e = Config::try_from(ServeArgs { token: None, ..args() }).unwrap_err();
        assert!(e.to_string().contains("no login token"), "{e}");
        let e = Config::try_from(ServeArgs { token_file: Some("/x".into()), ..args() }).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = Config::try_from(ServeArgs { token: Some(" \n".into()), ..args() }).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn bad_values_are_quoted_in_errors() {
        let e = Config::try_from(ServeArgs { session_ttl: "soon".into(), ..args() }).unwrap_err();
        assert!(e.to_string().contains("\"soon\""), "{e}");
        let e = Config::try_from(ServeArgs { addr: "nowhere".into(), ..args() }).unwrap_err();
        assert!(e.to_string().contains("\"nowhere\""), "{e}");
        let e = Config::try_from(ServeArgs { workers: vec!["ftp://x".into()], ..args() }).unwrap_err();
        assert!(e.to_string().contains("ftp://x"), "{e}");
        let e = Config::try_from(ServeArgs { tile_url: Some("https://t/{z}".into()), ..args() }).unwrap_err();
        assert!(e.to_string().contains("{x}"), "{e}");
    }

    #[test]
    fn tiles_default_to_openstreetmap_with_its_attribution() {
        let c = Config::try_from(ServeArgs { tile_url: None, ..args() }).unwrap();
        assert_eq!(c.tile_url.as_deref(), Some(DEFAULT_TILE_URL));
        assert_eq!(c.tile_attribution.as_deref(), Some("© OpenStreetMap contributors"));
    }

    #[test]
    fn tile_url_none_turns_tiles_off() {
        for off in ["none", "off", "NONE", " "] {
            let c = Config::try_from(ServeArgs { tile_url: Some(off.into()), ..args() }).unwrap();
            assert_eq!(c.tile_url, None, "{off:?}");
            assert_eq!(c.tile_attribution, None, "{off:?}");
        }
    }

    #[test]
    fn another_tile_server_shows_its_given_attribution() {
        let url = "https://tiles.example/{z}/{x}/{y}.png";
        let c = Config::try_from(ServeArgs { tile_url: Some(url.into()), ..args() }).unwrap();
        assert_eq!((c.tile_url.as_deref(), c.tile_attribution), (Some(url), None));
        let c = Config::try_from(ServeArgs {
            tile_url: Some(url.into()),
            tile_attribution: Some("© Example".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(c.tile_attribution.as_deref(), Some("© Example"));
        assert_eq!(
            default_tile_attribution("https://a.tile.openstreetmap.org/{z}/{x}/{y}.png").as_deref(),
            Some("© OpenStreetMap contributors")
        );
        assert!(tile_layer(Some("tiles.example/{z}/{x}/{y}")).unwrap_err().to_string().contains("none"));
    }

    #[test]
    fn connection_limits_default_and_parse() {
        let c = Config::try_from(args()).unwrap();
        assert_eq!(c.limits, crate::conn::Limits::default());
        let c = Config::try_from(ServeArgs {
            header_read_timeout: Some("5s".into()),
            body_read_timeout: Some("250ms".into()),
            max_connections: Some(10),
            ..args()
        })
        .unwrap();
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(5));
        assert_eq!(c.limits.body_read_timeout, Duration::from_millis(250));
        assert_eq!(c.limits.max_connections, 10);
        let e = Config::try_from(ServeArgs { body_read_timeout: Some("slow".into()), ..args() }).unwrap_err();
        assert!(e.to_string().contains("--body-read-timeout \"slow\""), "{e}");
        let e = Config::try_from(ServeArgs { max_connections: Some(0), ..args() }).unwrap_err();
        assert!(e.to_string().contains("--max-connections"), "{e}");
    }

    #[test]
    fn dns_discovery_needs_host_and_port_and_excludes_a_static_list() {
        let c = Config::try_from(ServeArgs {
            workers: vec![],
            workers_dns: Some("demo-workers.ns.svc:8815".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(
            c.workers,
            WorkerSource::Dns { host: "demo-workers.ns.svc".into(), port: 8815, interval: Duration::from_secs(10) }
        );
        let c = Config::try_from(ServeArgs {
            workers: vec![],
            workers_dns: Some("demo-workers.ns.svc:8815".into()),
            dns_server: Some("127.0.0.1:5353".into()),
            ..args()
        })
        .unwrap();
        assert_eq!(c.dns_server, Some("127.0.0.1:5353".parse().unwrap()));
        let e = Config::try_from(ServeArgs {
            workers: vec![],
            workers_dns: Some("demo-workers.ns.svc:8815".into()),
            dns_server: Some("dns.local".into()),
            ..args()
        })
        .unwrap_err();
        assert!(e.to_string().contains("--dns-server \"dns.local\""), "{e}");
        let e = Config::try_from(ServeArgs { workers_dns: Some("h:1".into()), ..args() }).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = Config::try_from(ServeArgs { workers: vec![], workers_dns: Some("h".into()), ..args() }).unwrap_err();
        assert!(e.to_string().contains("HOST:PORT"), "{e}");
        let e = Config::try_from(ServeArgs { workers: vec![], ..args() }).unwrap_err();
        assert!(e.to_string().contains("no workers"), "{e}");
    }
}
