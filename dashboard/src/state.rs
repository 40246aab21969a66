//! What every request handler shares. Nothing here is per-session: sessions
//! live in signed cookies, so any replica answers any request.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Auth, LoginLimiter};
use crate::catalog::CatalogCache;
use crate::config::Config;
use crate::discovery::Discovery;
use crate::fanout::{Connector, Fanout};
use crate::metrics::Metrics;
use crate::shade::ShadeOptions;

/// Settings the handlers read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `Secure` cookies.
    pub cookie_secure: bool,
    /// Trust `X-Forwarded-For` for the client address.
    pub trust_proxy: bool,
    /// XYZ tile URL template.
    pub tile_url: Option<String>,
    /// Attribution of the tiles.
    pub tile_attribution: Option<String>,
    /// Shading parameters.
    pub shade: ShadeOptions,
    /// Most rows one export may return.
    pub export_row_limit: u64,
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The shared parts.
pub struct Inner {
    /// Settings.
    pub settings: Settings,
    /// Token and session checks.
    pub auth: Auth,
    /// Failed-login rate limit.
    pub limiter: LoginLimiter,
    /// Calls to the workers.
    pub fanout: Arc<Fanout>,
    /// Datasets and their views.
    pub catalog: CatalogCache,
    /// Metrics.
    pub metrics: Metrics,
    /// The operator's resume endpoint, in Kubernetes.
    pub operator: Option<crate::operator::Operator>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Failed logins allowed at once per client...
pub const LOGIN_BURST: u32 = 5;
/// ...then one more per this period.
pub const LOGIN_REFILL: Duration = Duration::from_secs(12);

impl AppState {
    /// State for a configuration, workers found by `discovery` and reached through `connector`.
    pub fn new(config: &Config, discovery: Discovery, connector: Arc<dyn Connector>) -> AppState {
        let metrics = Metrics::new();
        AppState(Arc::new(Inner {
            settings: Settings {
                cookie_secure: config.cookie_secure,
                trust_proxy: config.trust_proxy,
                tile_url: config.tile_url.clone(),
                tile_attribution: config.tile_attribution.clone(),
                shade: ShadeOptions::default(),
                export_row_limit: config.export_row_limit,
            },
            auth: Auth::new(&config.token, config.session_epoch, config.session_ttl),
            limiter: LoginLimiter::new(LOGIN_BURST, LOGIN_REFILL),
            fanout: Arc::new(
                Fanout::new(discovery, connector, config.worker_timeout, metrics.clone()).with_hedge(config.hedge),
            ),
            catalog: CatalogCache::new(Duration::from_secs(10)),
            metrics,
            operator: match (&config.operator_url, &config.cluster) {
                (Some(url), Some((name, namespace))) => {
                    crate::operator::Operator::new(url, namespace, name, config.token.clone())
                        .ok()
                        .map(|o| o.resolve_with(crate::resolve::NameResolver::new(config.dns_server)))
                }
                _ => None,
            },
        }))
    }
}
