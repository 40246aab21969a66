//! Where the replicas of each shard run: a shard all of whose replicas share
//! one node is lost with that node, whatever the anti-affinity preferred.
//! Pure, from the worker pods' `spec.nodeName`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

/// A shard all of whose replicas run on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Colocated {
    /// Shard index.
    pub shard: u32,
    /// The node they share.
    pub node: String,
    /// Their pod names, by ordinal.
    pub pods: Vec<String>,
}

impl Colocated {
    /// `shard 1 (demo-workers-1, demo-workers-3) on node-a`, for a condition message.
    pub fn describe(&self) -> String {
        format!("shard {} ({}) on {}", self.shard, self.pods.join(", "), self.node)
    }
}

/// The shards of StatefulSet `sts_name` (pods `sts_name-<ordinal>`, ordinal
/// `i` serving shard `i mod shards`) whose `replicas_per_shard` replicas are
/// all scheduled on the same node. Only pods below `desired` that are not
/// terminating count, and only shards whose every replica is scheduled: a
/// replica still pending may land elsewhere. Nothing with one replica per
/// shard (there is no spread to lose).
pub fn colocated_shards(
    pods: &[Pod],
    sts_name: &str,
    shards: i32,
    replicas_per_shard: i32,
    desired: i32,
) -> Vec<Colocated> {
    if replicas_per_shard <= 1 || shards <= 0 {
        return Vec::new();
    }
    let prefix = format!("{sts_name}-");
    // shard → [(ordinal, pod, node)]
    let mut by_shard: BTreeMap<u32, Vec<(u32, String, Option<String>)>> = BTreeMap::new();
    for p in pods {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(name) = p.metadata.name.as_deref() else { continue };
        let Some(ordinal) = name.strip_prefix(&prefix).and_then(|o| o.parse::<u32>().ok()) else { continue };
        if ordinal as i64 >= i64::from(desired) {
            continue;
        }
        let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
        by_shard.entry(ordinal % shards as u32).or_default().push((ordinal, name.to_string(), node));
    }
    let mut out = Vec::new();
    for (shard, mut replicas) in by_shard {
        if replicas.len() < replicas_per_shard as usize {
            continue;
        }
        replicas.sort();
        let Some(Some(first)) = replicas.first().map(|r| r.2.clone()) else { continue };
        if replicas.iter().all(|r| r.2.as_deref() == Some(first.as_str())) {
            out.push(Colocated { shard, node: first, pods: replicas.into_iter().map(|r| r.1).collect() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"containers": [], "nodeName": node}
        }))
        .unwrap()
    }

    #[test]
    fn a_shard_whose_replicas_share_a_node_is_reported() {
        // 2 shards × 2 replicas: shard 0 = pods 0 and 2, shard 1 = pods 1 and 3.
        let pods = vec![
            pod("demo-workers-0", Some("node-a")),
            pod("demo-workers-1", Some("node-a")),
            pod("demo-workers-2", Some("node-a")),
            pod("demo-workers-3", Some("node-b")),
        ];
        let c = colocated_shards(&pods, "demo-workers", 2, 2, 4);
        assert_eq!(
            c,
            vec![Colocated {
                shard: 0,
                node: "node-a".into(),
                pods: vec!["demo-workers-0".into(), "demo-workers-2".into()]
            }]
        );
        assert_eq!(c[0].describe(), "shard 0 (demo-workers-0, demo-workers-2) on node-a");
    }

    #[test]
    fn spread_pending_missing_and_unreplicated_shards_are_not_reported() {
        let spread = vec![
            pod("demo-workers-0", Some("node-a")),
            pod("demo-workers-1", Some("node-a")),
            pod("demo-workers-2", Some("node-b")),
            pod("demo-workers-3", Some("node-b")),
        ];
        assert!(colocated_shards(&spread, "demo-workers", 2, 2, 4).is_empty());
        // Replica 3 not scheduled yet, replica 2 not created yet.
        let pending = vec![
            pod("demo-workers-0", Some("node-a")),
            pod("demo-workers-1", Some("node-a")),
            pod("demo-workers-3", None),
        ];
        assert!(colocated_shards(&pending, "demo-workers", 2, 2, 4).is_empty());
        // One replica per shard: nothing to spread.
        let single = vec![pod("demo-workers-0", Some("node-a")), pod("demo-workers-1", Some("node-a"))];
        assert!(colocated_shards(&single, "demo-workers", 2, 1, 2).is_empty());
        // The surge StatefulSet's pods and pods beyond the desired count are not ours to judge.
        let other = vec![
            pod("demo-surge-0", Some("node-a")),
            pod("demo-surge-2", Some("node-a")),
            pod("demo-workers-0", Some("node-a")),
            pod("demo-workers-2", Some("node-b")),
            pod("demo-workers-4", Some("node-a")),
        ];
        assert!(colocated_shards(&other, "demo-workers", 2, 2, 4).is_empty());
    }

    #[test]
    fn three_replicas_count_as_colocated_only_when_all_three_share_the_node() {
        let pods = vec![
            pod("demo-workers-0", Some("node-a")),
            pod("demo-workers-1", Some("node-a")),
            pod("demo-workers-2", Some("node-b")),
        ];
        assert!(colocated_shards(&pods, "demo-workers", 1, 3, 3).is_empty());
        let pods = vec![
            pod("demo-workers-0", Some("node-a")),
            pod("demo-workers-1", Some("node-a")),
            pod("demo-workers-2", Some("node-a")),
        ];
        assert_eq!(colocated_shards(&pods, "demo-workers", 1, 3, 3).len(), 1);
    }
}
