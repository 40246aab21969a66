//! The Ingress in front of the dashboard, and the URL users open.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend, IngressSpec,
    IngressTLS, ServiceBackendPort,
};

use super::dashboard::dashboard_name;
use super::{Component, DASHBOARD_PORT, child_meta};
use crate::validate::ValidCluster;

/// Ingress `NAME` routing every path to the dashboard Service.
pub fn build_ingress(c: &ValidCluster) -> Ingress {
    let ing = &c.ingress;
    let mut meta = child_meta(c, c.name.clone(), Component::Dashboard);
    if !ing.annotations.is_empty() {
        meta.annotations = Some(ing.annotations.clone());
    }
    Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: ing.class_name.clone(),
            tls: ing.tls.as_ref().map(|t| {
                vec![IngressTLS { hosts: ing.host.clone().map(|h| vec![h]), secret_name: Some(t.secret_name.clone()) }]
            }),
            rules: Some(vec![IngressRule {
                host: ing.host.clone(),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: dashboard_name(c),
                                port: Some(ServiceBackendPort { number: Some(DASHBOARD_PORT), name: None }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            default_backend: None,
        }),
        status: None,
    }
}

/// Where users open the dashboard: the Ingress host (https with TLS), else the
/// Ingress load balancer address once it has one, else the in-cluster Service URL.
pub fn dashboard_url(c: &ValidCluster, ingress_address: Option<&str>) -> String {
    if c.ingress.enabled {
        let scheme = if c.ingress.tls.is_some() { "https" } else { "http" };
        if let Some(h) = &c.ingress.host {
            return format!("{scheme}://{h}/");
        }
        if let Some(a) = ingress_address {
            return format!("{scheme}://{a}/");
        }
    }
    format!("http://{}.{}.svc:{DASHBOARD_PORT}/", dashboard_name(c), c.namespace)
}
