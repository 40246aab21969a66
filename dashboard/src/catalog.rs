//! What datasets the cluster serves and how to draw them, learned from the
//! workers (`ListFlights`) and cached briefly: the `/api/datasets` answer, the
//! legend colours the shader uses, and what queries are validated against.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use quiver_worker::bins::{DimBins, Kind};
use quiver_worker::protocol::DatasetInfo;
use quiver_worker::spec::{Binning, ViewConfig};
use serde::Serialize;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::fanout::Fanout;
use crate::merge::Reply;
use crate::shade::hex_color;

/// One bin as `/api/datasets` shows it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct BinView {
    /// Label.
    pub label: String,
    /// Legend and map colour (categorical dimensions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Lower edge (numeric; unix seconds for temporal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lo: Option<f64>,
    /// Upper edge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hi: Option<f64>,
}

/// One dimension as `/api/datasets` shows it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct DimensionView {
    /// Name used in queries.
    pub name: String,
    /// Chart title.
    pub title: String,
    /// `categorical | linear | log | temporal`.
    pub kind: Kind,
    /// Bins in order.
    pub bins: Vec<BinView>,
}

/// One dataset as `/api/datasets` shows it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct DatasetView {
    /// Name.
    pub name: String,
    /// Rows over the shards that agree on one sharding.
    pub rows: u64,
    /// Longitude column.
    pub x: String,
    /// Latitude column.
    pub y: String,
    /// The dimension colouring the map.
    pub category: String,
    /// Histogram dimensions.
    pub dimensions: Vec<DimensionView>,
}

/// A dataset with its compiled bins.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// What `/api/datasets` shows.
    pub view: DatasetView,
    /// The view config the workers use.
    pub config: ViewConfig,
    /// Compiled bins per dimension, in view order.
    pub bins: Vec<DimBins>,
}

impl Dataset {
    /// Builds the entry for a view config.
    pub fn new(name: &str, rows: u64, config: ViewConfig) -> Result<Dataset> {
        let mut bins = Vec::with_capacity(config.dimensions.len());
        let mut dims = Vec::with_capacity(config.dimensions.len());
        for d in &config.dimensions {
            let b = DimBins::from_spec(d).map_err(|e| {
                Error::Internal(format!(
                    "dataset {name:?}: workers serve a view config this dashboard cannot read: {e}"
                ))
            })?;
            let colors = match &d.bins {
                Binning::Categorical { .. } => Some(b.colors()),
                _ => None,
            };
            let edges = b.edges();
            dims.push(DimensionView {
                name: d.name.clone(),
                title: b.title().to_string(),
                kind: b.kind(),
                bins: b
                    .labels()
                    .iter()
                    .enumerate()
                    .map(|(i, label)| BinView {
                        label: label.clone(),
                        color: colors.as_ref().and_then(|c| c.get(i)).map(|&c| hex_color(c)),
                        lo: edges.and_then(|e| e.get(i).copied()),
                        hi: edges.and_then(|e| e.get(i + 1).copied()),
                    })
                    .collect(),
            });
            bins.push(b);
        }
        Ok(Dataset {
            view: DatasetView {
                name: name.to_string(),
                rows,
                x: config.x.clone(),
                y: config.y.clone(),
                category: config.category.clone(),
                dimensions: dims,
            },
            config,
            bins,
        })
    }

    /// The compiled bins of a dimension.
    pub fn dimension(&self, name: &str) -> Option<&DimBins> {
        self.bins.iter().find(|b| b.name() == name)
    }

    /// Labels and colours of the map's category dimension, as in the legend.
    pub fn legend(&self) -> (Vec<String>, Vec<[u8; 3]>) {
        match self.dimension(&self.config.category) {
            Some(b) => (b.labels().to_vec(), b.colors()),
            None => (Vec::new(), Vec::new()),
        }
    }
}

/// Every dataset the cluster serves.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// By name.
    pub datasets: BTreeMap<String, Dataset>,
    /// Names in the order the workers declare them (the UI opens the first).
    pub order: Vec<String>,
}

impl Catalog {
    /// Builds the catalogue from every worker's `ListFlights` answer. Rows are
    /// summed over one sharding (the one most shards agree on), once per shard.
    pub fn from_replies(replies: &[Reply<Vec<DatasetInfo>>]) -> Result<Catalog> {
        let mut by_name: BTreeMap<String, Vec<&DatasetInfo>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut answered = 0;
        for r in replies {
            if let Ok(infos) = &r.result {
                answered += 1;
                for i in infos {
                    if !order.contains(&i.name) {
                        order.push(i.name.clone());
                    }
                    by_name.entry(i.name.clone()).or_default().push(i);
                }
            }
        }
        if answered == 0 {
            let why = replies
                .iter()
                .filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {}", r.endpoint, e.public_message())))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Error::Unavailable(if why.is_empty() {
                "no workers are known (none configured or discovered yet)".into()
            } else {
                format!("no worker answered: {why}")
            }));
        }
        let mut datasets = BTreeMap::new();
        for (name, infos) in by_name {
            let mut groups: BTreeMap<(u32, &str), Vec<&DatasetInfo>> = BTreeMap::new();
            for i in &infos {
                let g = groups.entry((i.shard.shards, i.shard.generation.as_str())).or_default();
                if !g.iter().any(|o| o.shard.shard == i.shard.shard) {
                    g.push(i);
                }
            }
            let best = groups.values().max_by_key(|g| g.len()).expect("a dataset has at least one info");
            let rows = best.iter().map(|i| i.rows).sum();
            datasets.insert(name.clone(), Dataset::new(&name, rows, best[0].view.clone())?);
        }
        Ok(Catalog { datasets, order })
    }

    /// The `/api/datasets` answer, in the workers' order.
    pub fn views(&self) -> Vec<&DatasetView> {
        self.order.iter().filter_map(|n| self.datasets.get(n)).map(|d| &d.view).collect()
    }
}

/// A briefly cached catalogue, refreshed on demand (never in the background:
/// asking the workers is only worth it while someone uses the dashboard). Once
/// one is known, an expired catalogue is served while a fresh one is fetched
/// behind it: the refresh asks every worker, and a frozen one would otherwise
/// hold every query for the worker timeout.
pub struct CatalogCache {
    current: Arc<Slot>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
    ttl: Duration,
}

impl CatalogCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> CatalogCache {
        CatalogCache { current: Arc::default(), refreshing: Arc::default(), ttl }
    }

    fn fresh(&self, max_age: Duration) -> Option<Arc<Catalog>> {
        let cur = self.current.read().expect("catalog lock");
        cur.as_ref().filter(|(at, _)| at.elapsed() < max_age).map(|(_, c)| c.clone())
    }

    /// The catalogue, at most `ttl` old, or an older one while a refresh runs behind it.
    pub async fn get(&self, fanout: &Arc<Fanout>) -> Result<Arc<Catalog>> {
        if let Some(c) = self.fresh(self.ttl) {
            return Ok(c);
        }
        let stale = self.current.read().expect("catalog lock").as_ref().map(|(_, c)| c.clone());
        let Some(stale) = stale else { return self.get_within(fanout, self.ttl).await };
        if let Ok(guard) = self.refreshing.clone().try_lock_owned() {
            let (current, fanout) = (self.current.clone(), fanout.clone());
            tokio::spawn(async move {
                let _one_at_a_time = guard;
                refresh(&current, &fanout).await
            });
        }
        Ok(stale)
    }

    /// The catalogue, at most `max_age` old (a query naming an unknown dataset
    /// asks for a fresher one before refusing it).
    pub async fn get_within(&self, fanout: &Arc<Fanout>, max_age: Duration) -> Result<Arc<Catalog>> {
        if let Some(c) = self.fresh(max_age) {
            return Ok(c);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(c) = self.fresh(max_age) {
            return Ok(c);
        }
        refresh(&self.current, fanout).await
    }

    /// Forgets the cached catalogue (after a reload).
    pub fn invalidate(&self) {
        *self.current.write().expect("catalog lock") = None;
    }
}

type Slot = RwLock<Option<(Instant, Arc<Catalog>)>>;

/// Asks every worker for its datasets and caches the catalogue; on failure
/// keeps (and returns) the last one.
async fn refresh(current: &Slot, fanout: &Arc<Fanout>) -> Result<Arc<Catalog>> {
    let replies = fanout.datasets().await;
    match Catalog::from_replies(&replies) {
        Ok(c) => {
            let c = Arc::new(c);
            *current.write().expect("catalog lock") = Some((Instant::now(), c.clone()));
            Ok(c)
        }
        Err(e) => {
            // Better a stale catalogue than none while workers restart.
            let stale = current.read().expect("catalog lock").as_ref().map(|(_, c)| c.clone());
            match stale {
                Some(c) => {
                    tracing::warn!(error = %e, "catalogue refresh failed; serving the last one");
                    Ok(c)
                }
                None => Err(e),
            }
        }
    }
}

/// The celltowers preset as a catalogue entry of `rows` rows, for tests.
#[cfg(test)]
pub(crate) fn celltowers_for_tests(rows: u64) -> Dataset {
    Dataset::new(
        "celltowers",
        rows,
        quiver_worker::source::presets::default_view(quiver_worker::spec::Preset::Celltowers),
    )
    .expect("the preset's view is valid")
}
