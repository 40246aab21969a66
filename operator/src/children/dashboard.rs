//! The dashboard Deployment, its Service and its HorizontalPodAutoscaler.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, PodTemplateSpec, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::workers::{http_probe, mount, secret_volume, tmp_volume};
use super::{
    Component, DASHBOARD_PORT, DASHBOARD_TOKEN_DIR, FLIGHT_PORT, TOKEN_KEY, WORKER_TOKEN_DIR, apply_pod_settings,
    child_meta, container_security, labels, pod_security, selector_labels,
};
use crate::validate::ValidCluster;

/// Name of the dashboard Deployment, Service, HPA and ServiceAccount.
pub fn dashboard_name(c: &ValidCluster) -> String {
    format!("{}-dashboard", c.name)
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// The dashboard Deployment. Its replica count is left to the HPA when autoscaling is on.
pub fn build_dashboard_deployment(c: &ValidCluster) -> Deployment {
    let workers_dns = format!("{}-workers.{}.svc.{}:{FLIGHT_PORT}", c.name, c.namespace, c.defaults.cluster_domain);
    let mut env_vars = vec![
        env("QUIVER_ADDR", format!("0.0.0.0:{DASHBOARD_PORT}")),
        env("QUIVER_WORKERS_DNS", workers_dns),
        env("QUIVER_DASHBOARD_TOKEN_FILE", format!("{DASHBOARD_TOKEN_DIR}/{TOKEN_KEY}")),
        env("QUIVER_WORKER_TOKEN_FILE", format!("{WORKER_TOKEN_DIR}/{TOKEN_KEY}")),
        env("QUIVER_CLUSTER", c.name.clone()),
        EnvVar {
            name: "QUIVER_NAMESPACE".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: "metadata.namespace".into(), api_version: None }),
                ..Default::default()
            }),
        },
        env("QUIVER_LOG_FORMAT", "json"),
    ];
    if c.ingress.enabled && c.ingress.tls.is_some() {
        env_vars.push(env("QUIVER_COOKIE_SECURE", "true"));
    }
    if let Some(t) = &c.tile_url {
        env_vars.push(env("QUIVER_TILE_URL", t.clone()));
    }
    if let Some(u) = &c.defaults.resume_url {
        // Resume goes through the operator, authenticated by the login token.
        env_vars.push(env("QUIVER_OPERATOR_URL", u.clone()));
    }

    let (tmp, tmp_mount) = tmp_volume();
    let volumes = vec![
        secret_volume(
            "dashboard-token",
            &c.dashboard_token.name,
            vec![(c.dashboard_token.key.clone(), TOKEN_KEY.into())],
        ),
        secret_volume("worker-token", &c.worker_token_secret(), vec![(TOKEN_KEY.into(), TOKEN_KEY.into())]),
        tmp,
    ];
    let mounts =
        vec![mount("dashboard-token", DASHBOARD_TOKEN_DIR), mount("worker-token", WORKER_TOKEN_DIR), tmp_mount];

    let container = Container {
        name: "dashboard".into(),
        image: Some(c.dashboard_image.clone()),
        image_pull_policy: c.dashboard_pull_policy.map(|p| p.as_str().into()),
        args: Some(vec!["serve".into()]),
        env: Some(env_vars),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: DASHBOARD_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        // Readiness uses /healthz, not /readyz: a suspended cluster has no workers,
        // and its dashboard must still serve the "resume" page.
        readiness_probe: Some(http_probe("/healthz", "http", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", "http", 10, 6)),
        resources: Some(c.dashboard_resources.clone()),
        security_context: Some(container_security()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };

    Deployment {
        metadata: child_meta(c, dashboard_name(c), Component::Dashboard),
        spec: DeploymentSpec {
            replicas: (!c.autoscaling.enabled).then_some(c.dashboard_replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&c.name, Component::Dashboard)),
                match_expressions: None,
            },
            template: apply_pod_settings(
                PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&c.name, Component::Dashboard)),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        volumes: Some(volumes),
                        security_context: Some(pod_security()),
                        // Internet-facing: no API credential at all. Resume goes
                        // through the operator's endpoint (crate::resume).
                        service_account_name: Some(dashboard_name(c)),
                        automount_service_account_token: Some(false),
                        enable_service_links: Some(false),
                        image_pull_secrets: (!c.image_pull_secrets.is_empty()).then(|| c.image_pull_secrets.clone()),
                        ..Default::default()
                    }),
                },
                &c.dashboard_pod,
                &selector_labels(&c.name, Component::Dashboard),
            ),
            ..Default::default()
        },
        status: None,
    }
}

/// The dashboard's ClusterIP Service.
pub fn build_dashboard_service(c: &ValidCluster) -> Service {
    Service {
        metadata: child_meta(c, dashboard_name(c), Component::Dashboard),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(&c.name, Component::Dashboard)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: DASHBOARD_PORT,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The dashboard's CPU autoscaler.
pub fn build_dashboard_hpa(c: &ValidCluster) -> HorizontalPodAutoscaler {
    let a = &c.autoscaling;
    HorizontalPodAutoscaler {
        metadata: child_meta(c, dashboard_name(c), Component::Dashboard),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: dashboard_name(c),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas.max(a.min_replicas),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu_utilization_percentage),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            behavior: None,
        },
        status: None,
    }
}
