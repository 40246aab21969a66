//! Who may reach the workers, and how many may be evicted at once.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::workers::workers_name;
use super::{Component, FLIGHT_PORT, OPERATOR_APP_NAME, WORKER_HTTP_PORT, child_meta, selector_labels};
use crate::validate::ValidCluster;

fn select(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(labels), match_expressions: None }
}

/// Only this cluster's dashboard pods and the operator's pods, in the
/// operator's own namespace, reach the worker ports; everything else is
/// denied. (A pod labelled like the operator in any other namespace is not
/// admitted: anyone who can create pods somewhere could wear that label.)
pub fn build_worker_network_policy(c: &ValidCluster) -> NetworkPolicy {
    let operator = [("app.kubernetes.io/name".to_string(), OPERATOR_APP_NAME.to_string())].into_iter().collect();
    let port =
        |p: i32| NetworkPolicyPort { port: Some(IntOrString::Int(p)), protocol: Some("TCP".into()), end_port: None };
    NetworkPolicy {
        metadata: child_meta(c, workers_name(c), Component::Worker),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(select(selector_labels(&c.name, Component::Worker))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    NetworkPolicyPeer {
                        pod_selector: Some(select(selector_labels(&c.name, Component::Dashboard))),
                        ..Default::default()
                    },
                    NetworkPolicyPeer {
                        // Set by the API server on every namespace, and not forgeable.
                        namespace_selector: Some(select(
                            [("kubernetes.io/metadata.name".to_string(), c.defaults.operator_namespace.clone())]
                                .into_iter()
                                .collect(),
                        )),
                        pod_selector: Some(select(operator)),
                        ip_block: None,
                    },
                ]),
                ports: Some(vec![port(FLIGHT_PORT), port(WORKER_HTTP_PORT)]),
            }]),
            egress: None,
        }),
    }
}

/// At most one worker evicted at a time (a drained node takes one shard down,
/// not all; with replicas per shard, one replica of one shard, so the others
/// keep every shard answering). Workers that are not Ready (still loading,
/// crash-looping, failing to pull) may always be evicted: they serve nothing,
/// and counting them would block every node drain for as long as they stay
/// unready. A budget per shard (one replica of each shard at a time) would
/// need a per-shard pod label, which one StatefulSet cannot template.
pub fn build_worker_pdb(c: &ValidCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_meta(c, workers_name(c), Component::Worker),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            selector: Some(select(selector_labels(&c.name, Component::Worker))),
            ..Default::default()
        }),
        status: None,
    }
}
