//! Which workers exist: a static list, or the addresses behind a headless
//! Service's DNS name, re-resolved periodically (pods come and go on scaling).
//! The name is resolved by the system resolver, or by asking a given DNS
//! server (the simulated control plane's, whose names the system does not know).
//! A fan-out that finds no worker or a failing one nudges an early
//! re-resolution (at most one a second): replaced pods have new addresses.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::WorkerSource;
use crate::resolve::{LookupError, NameResolver};

/// The current list of worker endpoints, cheap to read on every request.
#[derive(Clone)]
pub struct Discovery {
    current: Arc<RwLock<Arc<Vec<String>>>>,
    source: WorkerSource,
    resolver: NameResolver,
    /// When the last resolution started (for the nudge's rate limit).
    last_refresh: Arc<Mutex<Option<Instant>>>,
}

/// The least time between a resolution and a nudged one.
pub const NUDGE_INTERVAL: Duration = Duration::from_secs(1);

impl Discovery {
    /// A fixed list of endpoints.
    pub fn fixed(endpoints: Vec<String>) -> Discovery {
        Discovery {
            current: Arc::new(RwLock::new(Arc::new(endpoints.clone()))),
            source: WorkerSource::Static(endpoints),
            resolver: NameResolver::system(),
            last_refresh: Arc::default(),
        }
    }

    /// Discovery from configuration. For DNS, resolves once now (with
    /// `resolver`) and then every interval in a background task that ends when
    /// `shutdown` turns true.
    pub async fn start(source: WorkerSource, resolver: NameResolver, shutdown: watch::Receiver<bool>) -> Discovery {
        match source {
            WorkerSource::Static(list) => Discovery::fixed(list),
            WorkerSource::Dns { ref host, port, interval } => {
                let d = Discovery {
                    current: Arc::new(RwLock::new(Arc::new(Vec::new()))),
                    source: source.clone(),
                    resolver,
                    last_refresh: Arc::default(),
                };
                d.refresh().await;
                let d2 = d.clone();
                let (host, mut shutdown) = (host.clone(), shutdown);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(interval);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            _ = tick.tick() => d2.refresh().await,
                            _ = shutdown.changed() => break,
                        }
                    }
                    tracing::debug!(host = %host, port, "worker discovery stopped");
                });
                d
            }
        }
    }

    /// The endpoints known now, sorted.
    pub fn endpoints(&self) -> Arc<Vec<String>> {
        self.current.read().expect("discovery lock").clone()
    }

    /// Describes where workers come from, for messages.
    pub fn describe(&self) -> String {
        match &self.source {
            WorkerSource::Static(l) => format!("static list of {} workers", l.len()),
            WorkerSource::Dns { host, port, .. } => match self.resolver.server() {
                None => format!("DNS name {host}:{port}"),
                Some(s) => format!("DNS name {host}:{port} (server {s})"),
            },
        }
    }

    /// Starts a re-resolution in the background unless one started less than
    /// [`NUDGE_INTERVAL`] ago (or the list is static); true when it started one.
    /// Called when a fan-out found no worker or a failing one.
    pub fn nudge(&self) -> bool {
        if matches!(self.source, WorkerSource::Static(_)) {
            return false;
        }
        {
            let mut last = self.last_refresh.lock().expect("discovery lock");
            if last.is_some_and(|t| t.elapsed() < NUDGE_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        let d = self.clone();
        tokio::spawn(async move { d.refresh().await });
        true
    }

    /// Re-resolves a DNS source now (a static list never changes). On failure the
    /// last known list is kept: a DNS hiccup must not empty the cluster. A name that
    /// does not exist (or has no address) empties it: no worker is ready.
    pub async fn refresh(&self) {
        let WorkerSource::Dns { host, port, .. } = &self.source else { return };
        *self.last_refresh.lock().expect("discovery lock") = Some(Instant::now());
        match tokio::time::timeout(Duration::from_secs(5), self.resolver.lookup(host, *port)).await {
            Ok(Ok(addrs)) => {
                let mut list: Vec<String> = addrs.into_iter().map(|a| format!("http://{a}")).collect();
                list.sort();
                list.dedup();
                self.set(list, host, *port);
            }
            Ok(Err(LookupError::NoSuchName(e))) => {
                // Normal while a cluster is scaled to zero.
                tracing::debug!(host = %host, port, error = %e, "worker DNS name has no address");
                self.set(Vec::new(), host, *port);
            }
            Ok(Err(LookupError::Failed(e))) => {
                tracing::warn!(host = %host, port, error = %e, "worker DNS lookup failed; keeping the last list");
            }
            Err(_) => tracing::warn!(host = %host, port, "worker DNS lookup timed out; keeping the last list"),
        }
    }

    fn set(&self, list: Vec<String>, host: &str, port: u16) {
        let changed = {
            let mut cur = self.current.write().expect("discovery lock");
            let changed = **cur != list;
            if changed {
                *cur = Arc::new(list.clone());
            }
            changed
        };
        if changed {
            tracing::info!(host = %host, port, workers = list.len(), "worker list changed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::tests::{Answer, dns_server};

    #[tokio::test]
    async fn dns_discovery_resolves_localhost() {
        let (_tx, rx) = watch::channel(false);
        let d = Discovery::start(
            WorkerSource::Dns { host: "localhost".into(), port: 8815, interval: Duration::from_secs(10) },
            NameResolver::system(),
            rx,
        )
        .await;
        let eps = d.endpoints();
        assert!(!eps.is_empty(), "localhost resolves");
        assert!(eps.iter().all(|e| e.starts_with("http://") && e.ends_with(":8815")), "{eps:?}");
    }

    #[tokio::test]
    async fn a_given_dns_server_lists_the_workers_and_follows_its_answers() {
        const NAME: &str = "demo-workers.ns.svc.cluster.local";
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        let (answer, rx) = watch::channel(Answer::Addresses(vec![ip("127.0.0.3"), ip("127.0.0.2")]));
        let server = dns_server(NAME, rx).await;
        let (_shutdown, shutdown_rx) = watch::channel(false);
        let d = Discovery::start(
            WorkerSource::Dns { host: NAME.into(), port: 8815, interval: Duration::from_secs(3600) },
            NameResolver::new(Some(server)),
            shutdown_rx,
        )
        .await;
        assert_eq!(*d.endpoints(), vec!["http://127.0.0.2:8815".to_string(), "http://127.0.0.3:8815".to_string()]);
        assert!(d.describe().contains(&server.to_string()), "{}", d.describe());

        // A pod more: the next refresh sees it (nothing cached).
        answer.send(Answer::Addresses(vec![ip("127.0.0.2"), ip("127.0.0.3"), ip("127.0.0.4")])).unwrap();
        d.refresh().await;
        assert_eq!(d.endpoints().len(), 3, "{:?}", d.endpoints());

        // Scaled to zero: the name is gone, and so are the workers.
        answer.send(Answer::NxDomain).unwrap();
        d.refresh().await;
        assert!(d.endpoints().is_empty(), "{:?}", d.endpoints());

        // Back, then the server goes away: the last list is kept.
        answer.send(Answer::Addresses(vec![ip("127.0.0.5")])).unwrap();
        d.refresh().await;
        assert_eq!(*d.endpoints(), vec!["http://127.0.0.5:8815".to_string()]);
        drop(answer);
        d.refresh().await;
        assert_eq!(*d.endpoints(), vec!["http://127.0.0.5:8815".to_string()]);
    }

    #[tokio::test]
    async fn a_nudge_re_resolves_early_at_most_once_a_second() {
        const NAME: &str = "demo-workers.ns.svc.cluster.local";
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        let (answer, rx) = watch::channel(Answer::Addresses(vec![ip("127.0.0.2")]));
        let server = dns_server(NAME, rx).await;
        let (_shutdown, shutdown_rx) = watch::channel(false);
        let d = Discovery::start(
            WorkerSource::Dns { host: NAME.into(), port: 8815, interval: Duration::from_secs(3600) },
            NameResolver::new(Some(server)),
            shutdown_rx,
        )
        .await;
        assert_eq!(*d.endpoints(), vec!["http://127.0.0.2:8815".to_string()]);
        // Just resolved: a nudge now does nothing.
        assert!(!d.nudge());
        // The pod was replaced and has a new address; a second later a nudge finds it.
        answer.send(Answer::Addresses(vec![ip("127.0.0.7")])).unwrap();
        *d.last_refresh.lock().unwrap() = Some(Instant::now() - NUDGE_INTERVAL);
        assert!(d.nudge());
        assert!(!d.nudge(), "one nudge at a time");
        let deadline = Instant::now() + Duration::from_secs(5);
        while *d.endpoints() != vec!["http://127.0.0.7:8815".to_string()] {
            assert!(Instant::now() < deadline, "the nudge did not re-resolve: {:?}", d.endpoints());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A static list is never re-resolved.
        assert!(!Discovery::fixed(vec!["http://a:1".into()]).nudge());
    }

    #[tokio::test]
    async fn a_static_list_is_served_as_given() {
        let d = Discovery::fixed(vec!["http://a:1".into(), "http://b:2".into()]);
        d.refresh().await;
        assert_eq!(*d.endpoints(), vec!["http://a:1".to_string(), "http://b:2".to_string()]);
    }
}
