//! The dashboard's identity: a ServiceAccount with no permissions and no
//! mounted token (resume goes through the operator's endpoint). The Role and
//! RoleBinding that once let dashboards patch their DataCluster are no longer
//! built; the reconciler deletes those it owns.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::dashboard::dashboard_name;
use super::{Component, child_meta};
use crate::validate::ValidCluster;

/// `NAME-dashboard` ServiceAccount, whose token is never mounted.
pub fn build_dashboard_service_account(c: &ValidCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: child_meta(c, dashboard_name(c), Component::Dashboard),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}
