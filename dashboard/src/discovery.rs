//! Which workers exist: a static list, or the addresses behind a headless
//! Service's DNS name, re-resolved periodically (pods come and go on scaling).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::WorkerSource;

/// The current list of worker endpoints, cheap to read on every request.
#[derive(Clone)]
pub struct Discovery {
    current: Arc<RwLock<Arc<Vec<String>>>>,
    source: WorkerSource,
}

impl Discovery {
    /// A fixed list of endpoints.
    pub fn fixed(endpoints: Vec<String>) -> Discovery {
        Discovery {
            current: Arc::new(RwLock::new(Arc::new(endpoints.clone()))),
            source: WorkerSource::Static(endpoints),
        }
    }

    /// Discovery from configuration. For DNS, resolves once now and then every
    /// interval in a background task that ends when `shutdown` turns true.
    pub async fn start(source: WorkerSource, shutdown: watch::Receiver<bool>) -> Discovery {
        match source {
            WorkerSource::Static(list) => Discovery::fixed(list),
            WorkerSource::Dns { ref host, port, interval } => {
                let d = Discovery { current: Arc::new(RwLock::new(Arc::new(Vec::new()))), source: source.clone() };
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
            WorkerSource::Dns { host, port, .. } => format!("DNS name {host}:{port}"),
        }
    }

    /// Re-resolves a DNS source now (a static list never changes). On failure the
    /// last known list is kept: a DNS hiccup must not empty the cluster.
    pub async fn refresh(&self) {
        let WorkerSource::Dns { host, port, .. } = &self.source else { return };
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host.as_str(), *port))).await {
            Ok(Ok(addrs)) => {
                let mut list: Vec<String> = addrs.map(|a| format!("http://{a}")).collect();
                list.sort();
                list.dedup();
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
            Ok(Err(e)) => {
                // NXDOMAIN is normal while a cluster is scaled to zero.
                tracing::debug!(host = %host, port, error = %e, "worker DNS lookup failed; keeping the last list");
                let msg = e.to_string();
                if msg.contains("not known") || msg.contains("No address associated") {
                    *self.current.write().expect("discovery lock") = Arc::new(Vec::new());
                }
            }
            Err(_) => tracing::warn!(host = %host, port, "worker DNS lookup timed out; keeping the last list"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dns_discovery_resolves_localhost() {
        let (_tx, rx) = watch::channel(false);
        let d = Discovery::start(
            WorkerSource::Dns { host: "localhost".into(), port: 8815, interval: Duration::from_secs(10) },
            rx,
        )
        .await;
        let eps = d.endpoints();
        assert!(!eps.is_empty(), "localhost resolves");
        assert!(eps.iter().all(|e| e.starts_with("http://") && e.ends_with(":8815")), "{eps:?}");
    }

    #[tokio::test]
    async fn a_static_list_is_served_as_given() {
        let d = Discovery::fixed(vec!["http://a:1".into(), "http://b:2".into()]);
        d.refresh().await;
        assert_eq!(*d.endpoints(), vec!["http://a:1".to_string(), "http://b:2".to_string()]);
    }
}
