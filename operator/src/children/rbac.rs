//! The dashboard's identity: it may read and patch its own DataCluster (to resume it), nothing else.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::dashboard::dashboard_name;
use super::{Component, child_meta};
use crate::crd::GROUP;
use crate::validate::ValidCluster;

/// `NAME-dashboard` ServiceAccount.
pub fn build_dashboard_service_account(c: &ValidCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: child_meta(c, dashboard_name(c), Component::Dashboard),
        ..Default::default()
    }
}

/// `NAME-dashboard` Role: get and patch this one DataCluster.
pub fn build_dashboard_role(c: &ValidCluster) -> Role {
    Role {
        metadata: child_meta(c, dashboard_name(c), Component::Dashboard),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![GROUP.into()]),
            resources: Some(vec!["dataclusters".into()]),
            resource_names: Some(vec![c.name.clone()]),
            verbs: vec!["get".into(), "patch".into()],
            non_resource_urls: None,
        }]),
    }
}

/// Binds the Role to the ServiceAccount.
pub fn build_dashboard_role_binding(c: &ValidCluster) -> RoleBinding {
    RoleBinding {
        metadata: child_meta(c, dashboard_name(c), Component::Dashboard),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: dashboard_name(c),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: dashboard_name(c),
            namespace: Some(c.namespace.clone()),
            api_group: None,
        }]),
    }
}
