//! Drives one reconcile: validate → secrets → observe the workers → decide the
//! lifecycle → apply the children → status and events. Also the error policy
//! and the controller wiring.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{PredicateConfig, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tracing::{Instrument, info, warn};

use crate::activity::{ActivitySource, Target, summarize};
use crate::apply::{
    Holder, OwnedChildren, TokenSecret, apply_if_changed, apply_status, delete_owned, ensure_token_secret, holder,
};
use crate::cache::{Cache, Caches, RESYNC, Seen, cached_meta_of};
use crate::children::{Children, Component, build_all, managed_by_selector, selector_labels, worker_selector_string};
use crate::crd::{DataCluster, DataClusterStatus, RESTART_ANNOTATION, RESUME_ANNOTATION};
use crate::error::{Error, Result};
use crate::failures::{PodFailure, failed_create, pod_failures};
use crate::lifecycle::{Action, Clock, Observation, Policy, decide};
use crate::metrics::Metrics;
use crate::rollout;
use crate::status::{self, Inputs, Note, Severity, memory_of};
use crate::validate::{Defaults, ValidCluster, validate};

/// What every reconcile shares.
pub struct Context {
    /// API client.
    pub client: Client,
    /// The workers' stats.
    pub activity: Arc<dyn ActivitySource>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Default images and cluster domain.
    pub defaults: Defaults,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// How often a running cluster is re-examined (worker load progress, activity).
    pub poll_interval: Duration,
    /// Most DataClusters reconciled at once.
    pub concurrency: u16,
    /// Children known to be owned (skips the ownership read).
    pub owned: OwnedChildren,
    /// Consecutive failures per object, for the error backoff.
    failures: Mutex<HashMap<ObjectRef<DeserializeGuard<DataCluster>>, u32>>,
    /// The children, pods and Secrets as the watches last saw them (set by
    /// [`run`]; without them every pass reads and applies everything).
    caches: OnceLock<Arc<Caches>>,
    /// When each cluster (by uid) is next re-applied in full.
    next_resync: Mutex<HashMap<String, Instant>>,
    /// Clusters (by uid) whose leftovers of earlier releases were removed.
    legacy_removed: Mutex<HashSet<String>>,
}

/// Default of [`Context::concurrency`]: reconciles mostly wait on the network
/// (API server, workers' `stats`), so a few run at once; a thousand clusters
/// polled every 30 s need about 33 passes a second at most.
pub const DEFAULT_CONCURRENCY: u16 = 8;

impl Context {
    /// A context; `poll_interval` bounds how stale the status gets.
    pub fn new(
        client: Client,
        activity: Arc<dyn ActivitySource>,
        clock: Arc<dyn Clock>,
        defaults: Defaults,
        metrics: Arc<Metrics>,
        poll_interval: Duration,
    ) -> Context {
        let reporter = Reporter { controller: "quiver-operator".into(), instance: std::env::var("POD_NAME").ok() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            activity,
            clock,
            defaults,
            metrics,
            poll_interval,
            concurrency: DEFAULT_CONCURRENCY,
            owned: OwnedChildren::default(),
            failures: Mutex::new(HashMap::new()),
            caches: OnceLock::new(),
            next_resync: Mutex::new(HashMap::new()),
            legacy_removed: Mutex::new(HashSet::new()),
        }
    }

    /// The watch caches, once [`run`] started them.
    pub fn caches(&self) -> Option<&Caches> {
        self.caches.get().map(|c| &**c)
    }

    /// Reads children, pods and Secrets from `caches` from now on (once).
    pub fn use_caches(&self, caches: Arc<Caches>) {
        let _ = self.caches.set(caches);
    }

    /// True when cluster `uid` is due a full re-apply (every child sent, even
    /// those whose cached copy matches). A cluster first seen is not: its
    /// children carry the hash of what was last applied.
    fn resync_due(&self, uid: &str) -> bool {
        let now = Instant::now();
        let mut next = self.next_resync.lock().expect("resync lock");
        match next.get(uid) {
            Some(at) => *at <= now,
            None => {
                next.insert(uid.to_string(), now + resync_period());
                false
            }
        }
    }

    /// Cluster `uid` was just re-applied in full.
    fn resynced(&self, uid: &str) {
        let mut next = self.next_resync.lock().expect("resync lock");
        next.insert(uid.to_string(), Instant::now() + resync_period());
    }
}

/// [`RESYNC`] stretched by up to a tenth at random.
fn resync_period() -> Duration {
    RESYNC + RESYNC.mul_f64(rand::random::<f64>() / 10.0)
}

/// How long a suspended cluster waits between checks (resume comes through watch events).
const SUSPENDED_POLL: Duration = Duration::from_secs(300);
/// First retry after an error; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(5);
/// Longest retry delay after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Reconciles one DataCluster. An object that does not even deserialize gets
/// a `SpecValid=False` condition; so does a spec that does not validate. Neither
/// is retried until it changes.
pub async fn reconcile(obj: Arc<DeserializeGuard<DataCluster>>, ctx: Arc<Context>) -> Result<Requeue> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    let span = tracing::info_span!("reconcile", cluster = %name, namespace = %namespace);
    let result = async {
        match &obj.0 {
            Ok(dc) => reconcile_cluster(dc, &ctx).await,
            Err(invalid) => {
                let message = format!("the DataCluster cannot be read: {}", invalid.error);
                let previous = raw_status(&ctx.client, &name, &namespace).await?;
                let next = status::invalid(previous.as_ref(), invalid.metadata.generation, &message, ctx.clock.now());
                if previous.as_ref() != Some(&next) {
                    apply_status(&ctx.client, &name, &namespace, &next).await?;
                    warn!(error = %invalid.error, "DataCluster does not deserialize");
                    publish_raw(&ctx, &obj.object_ref(&()), Severity::Warning, "InvalidSpec", &message).await;
                }
                Ok(Requeue::await_change())
            }
        }
    }
    .instrument(span)
    .await;
    ctx.metrics.duration.observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures.lock().expect("failures lock").remove(&ObjectRef::from_obj(&*obj));
    }
    result
}

/// The status of a DataCluster whose spec does not deserialize, read on its own.
async fn raw_status(client: &Client, name: &str, namespace: &str) -> Result<Option<DataClusterStatus>> {
    let resource = kube::core::ApiResource::erase::<DataCluster>(&());
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let obj = api.get_opt(name).await.map_err(|e| Error::kube(format!("reading DataCluster {name}"), e))?;
    Ok(obj.and_then(|o| o.data.get("status").cloned()).and_then(|s| serde_json::from_value(s).ok()))
}

async fn reconcile_cluster(dc: &DataCluster, ctx: &Context) -> Result<Requeue> {
    let now = ctx.clock.now();
    let previous = dc.status.as_ref();

    // 0. Being deleted (a finalizer holds it): report, touch nothing. Garbage
    // collection is removing the children; re-applying them would fight it.
    if dc.metadata.deletion_timestamp.is_some() {
        let finalizers = dc.metadata.finalizers.clone().unwrap_or_default();
        let next = status::deleting(previous, dc.metadata.generation, &finalizers, now);
        if previous != Some(&next) {
            apply_status(&ctx.client, &dc.name_any(), &dc.namespace().unwrap_or_default(), &next).await?;
        }
        return Ok(Requeue::await_change());
    }

    // 1. Validate: a bad spec is reported, nothing else is written.
    let c = match validate(dc, &ctx.defaults) {
        Ok(c) => c,
        Err(Error::InvalidSpec(message)) => {
            let next = status::invalid(previous, dc.metadata.generation, &message, now);
            if previous != Some(&next) {
                apply_status(&ctx.client, &dc.name_any(), &dc.namespace().unwrap_or_default(), &next).await?;
            }
            let changed = previous
                .and_then(|p| p.conditions.iter().find(|c| c.type_ == status::condition::SPEC_VALID))
                .is_none_or(|c| c.message != message);
            if changed {
                warn!(reason = %message, "invalid spec");
                publish(
                    ctx,
                    dc,
                    &Note {
                        severity: Severity::Warning,
                        reason: "InvalidSpec",
                        action: "Validate",
                        message: message.clone(),
                    },
                )
                .await;
            }
            return Ok(Requeue::await_change());
        }
        Err(e) => return Err(e),
    };

    // 2. Token Secrets, generated once; every child name free or ours.
    let mut foreign = Vec::new();
    let cached_secret = |name: &str| ctx.caches().and_then(|k| k.secrets.seen(&c.namespace, name).present());
    let worker_token = match ensure_token_secret(
        &ctx.client,
        &c,
        &c.worker_token_secret(),
        Component::Worker,
        cached_secret(&c.worker_token_secret()).as_deref(),
    )
    .await?
    {
        TokenSecret::Ours(t) => t,
        TokenSecret::Foreign(what) => {
            foreign.push(what);
            None
        }
    };
    if c.generate_dashboard_token
        && let TokenSecret::Foreign(what) = ensure_token_secret(
            &ctx.client,
            &c,
            &c.dashboard_token.name,
            Component::Dashboard,
            cached_secret(&c.dashboard_token.name).as_deref(),
        )
        .await?
    {
        foreign.push(what);
    }
    foreign.extend(foreign_children(ctx, &c, &build_all(&c, c.worker_pods())).await?);
    if !foreign.is_empty() {
        return refuse_foreign(ctx, dc, &c, &foreign, now).await;
    }

    // 3. Observe the workers that should be running now.
    let memory = memory_of(previous);
    let expected = if memory.suspended.is_some() { 0 } else { c.worker_pods() };
    let target =
        Target { cluster: c.name.clone(), namespace: c.namespace.clone(), replicas: expected, token: worker_token };
    let pods = if expected > 0 { worker_pods(ctx, &c).await } else { Vec::new() };
    let reports = ctx.activity.observe(&target, &pods).await;
    let activity = summarize(expected, &reports);

    // 4. Decide.
    let policy = Policy { idle_timeout: c.idle_timeout, on_idle: c.on_idle, suspend: c.suspend };
    let observation = Observation {
        generation: c.generation,
        created_at: c.created_at,
        resume_requested_at: c.resume_requested_at,
        activity: activity.clone(),
    };
    let decision = decide(&policy, &memory, &observation, now);
    if decision.action == Action::Delete {
        info!(idle_since = %decision.last_activity, "idle past the timeout; deleting the DataCluster");
        ctx.metrics.action("delete");
        let unchanged = previous.cloned().unwrap_or_default();
        for n in status::events(previous, &unchanged, Action::Delete) {
            publish(ctx, dc, &n).await;
        }
        let api: Api<DataCluster> = Api::namespaced(ctx.client.clone(), &c.namespace);
        api.delete(&c.name, &DeleteParams::foreground())
            .await
            .map_err(|e| Error::kube(format!("deleting DataCluster {}", c.name), e))?;
        return Ok(Requeue::await_change());
    }

    // 5. Apply every child.
    let desired = if decision.action.workers_stopped() { 0 } else { c.worker_pods() };
    let surge = plan_surge(ctx, &c, &pods, desired, previous, now).await;
    let pin = surge.plan.pin.as_ref().map(|revision| rollout::Pin {
        revision: revision.clone(),
        since: surge.pin.as_ref().filter(|p| &p.revision == revision).map_or(now, |p| p.since),
    });
    if let Some(stage) = &surge.plan.stage
        && surge.previous_reason.as_deref() != Some(status::surge_reason(stage))
    {
        info!(stage = ?stage, pin = ?pin, "surge re-shard");
        ctx.metrics.action("surge");
    }
    let (workers, ingress_address) = apply_children(ctx, &c, desired, &surge.plan, pin.as_ref()).await?;
    delete_pods(ctx, &c, &surge.plan.delete_surge, "surge worker").await?;
    let rollout = if desired > 0 {
        let surge_answers = surge.plan.stage == Some(rollout::SurgeStage::Reloading);
        let mut plan = drive_rollout(ctx, &c, &workers, &pods, desired, surge_answers).await?;
        plan.in_progress |= surge.plan.stage.is_some();
        plan.surge = surge.plan.stage.clone();
        Some(plan)
    } else {
        None
    };
    let colocated = if desired > 0 {
        crate::placement::colocated_shards(
            &pods,
            &format!("{}-workers", c.name),
            c.shards(),
            c.replicas_per_shard,
            desired,
        )
    } else {
        Vec::new()
    };
    let mut failures = pod_failures(&pods);
    if desired > 0
        && let Some(f) = failed_creates(ctx, &c, &workers, desired).await
    {
        failures.insert(0, f);
    }

    // 6. Status and events.
    let next = status::compute(&Inputs {
        cluster: &c,
        decision: &decision,
        desired,
        workers: Some(&workers),
        reports: &reports,
        activity: &activity,
        ingress_address,
        failures: &failures,
        colocated: &colocated,
        rollout: rollout.as_ref(),
        previous,
        now,
    });
    if previous != Some(&next) {
        apply_status(&ctx.client, &c.name, &c.namespace, &next).await?;
    }
    match decision.action {
        Action::Suspend(_) => {
            info!(reason = ?decision.action, "workers scaled to zero");
            ctx.metrics.action("suspend");
        }
        Action::Resume(trigger) => {
            info!(?trigger, "resuming the workers");
            ctx.metrics.action("resume");
        }
        _ => {}
    }
    for n in status::events(previous, &next, decision.action) {
        publish(ctx, dc, &n).await;
    }

    // 7. Come back when something may have changed that no watch event reports.
    let wait = if decision.action.workers_stopped() {
        SUSPENDED_POLL
    } else {
        let deadline = decision.idle_deadline_in.map(|d| d + Duration::from_secs(1));
        let wait = deadline.map_or(ctx.poll_interval, |d| d.min(ctx.poll_interval));
        // A surge's drain ends with no watch event.
        surge.plan.wait.map_or(wait, |d| wait.min(d + Duration::from_millis(500)))
    };
    Ok(Requeue::requeue(wait))
}

/// A surge re-shard's plan, with what it was planned from.
struct Surge {
    plan: rollout::SurgePlan,
    /// The worker Service's pin as last applied.
    pin: Option<rollout::Pin>,
    /// The `RollingOut` reason the status reported last.
    previous_reason: Option<String>,
}

/// Gathers what [`rollout::surge`] decides from (the StatefulSets, pods and
/// worker Service as the caches last saw them) and plans. Without the caches
/// (tests driving single passes) there is no surge.
async fn plan_surge(
    ctx: &Context,
    c: &ValidCluster,
    pods: &[Pod],
    desired: i32,
    previous: Option<&DataClusterStatus>,
    now: k8s_openapi::jiff::Timestamp,
) -> Surge {
    let none = Surge { plan: rollout::SurgePlan::none(), pin: None, previous_reason: None };
    let Some(k) = ctx.caches() else { return none };
    let ns = &c.namespace;
    let main_name = format!("{}-workers", c.name);
    let surge_name = rollout::surge_name(&c.name);
    let pin = match k.services.seen(ns, &main_name) {
        Seen::Present(s) => crate::children::pin_of(&s.metadata),
        _ => None,
    };
    let rolling = previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == status::condition::ROLLING_OUT));
    let fell_back =
        rolling.is_some_and(|r| r.reason == status::SURGE_FELL_BACK && r.observed_generation == Some(c.generation));
    if desired == 0 {
        return Surge { pin, ..none };
    }
    let revision = |sts: &StatefulSet| {
        let st = sts.status.as_ref()?;
        (st.observed_generation >= sts.metadata.generation).then(|| st.update_revision.clone()).flatten()
    };
    let main_sts = k.stateful_sets.seen(ns, &main_name).present();
    let surge_sts = match k.stateful_sets.seen(ns, &surge_name) {
        Seen::Present(s) => Some(s),
        Seen::Absent => None,
        // Not synced yet: decide nothing this pass.
        Seen::Unknown => return Surge { pin, ..none },
    };
    let main: Vec<rollout::WorkerPod> =
        pods.iter().filter_map(|p| rollout::WorkerPod::from_pod(&main_name, p)).collect();
    let surge_raw: Vec<Pod> = pods
        .iter()
        .filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with(&format!("{surge_name}-"))))
        .cloned()
        .collect();
    let surge_pods: Vec<rollout::WorkerPod> =
        surge_raw.iter().filter_map(|p| rollout::WorkerPod::from_pod(&surge_name, p)).collect();
    // Surge pods that cannot be created or scheduled: the capacity is not there.
    let mut failure = pod_failures(&surge_raw).into_iter().find(|f| f.reason == "Unschedulable").map(|f| f.describe());
    if failure.is_none()
        && let Some(sts) = &surge_sts
        && let Some(f) = failed_creates(ctx, c, sts, desired).await
    {
        failure = Some(f.describe());
    }
    let plan = rollout::surge(&rollout::SurgeInputs {
        strategy: c.rollout_strategy,
        main: &main,
        main_revision: main_sts.as_deref().and_then(revision).as_deref(),
        surge: surge_sts.as_ref().map(|_| surge_pods.as_slice()),
        surge_revision: surge_sts.as_deref().and_then(revision).as_deref(),
        desired,
        shards: c.shards(),
        template: &crate::children::worker_template_hash(c),
        pin: pin.as_ref(),
        surge_failure: failure.as_deref(),
        fell_back,
        now,
    });
    Surge { plan, pin, previous_reason: rolling.map(|r| r.reason.clone()) }
}

/// The worker pods of a cluster, from the pod cache once it is synced. A
/// failed list is logged and yields none: workers are then reached by their
/// DNS names and no pod failure is reported.
async fn worker_pods(ctx: &Context, c: &ValidCluster) -> Vec<Pod> {
    if let Some(pods) =
        ctx.caches().and_then(|k| k.pods.matching(&c.namespace, &selector_labels(&c.name, Component::Worker)))
    {
        return pods.iter().map(|p| (**p).clone()).collect();
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let params = ListParams::default().labels(&worker_selector_string(&c.name));
    match api.list(&params).await {
        Ok(l) => l.items,
        Err(e) => {
            warn!(error = %e, "listing worker pods failed; using per-pod DNS names");
            Vec::new()
        }
    }
}

/// When the StatefulSet has fewer pods than it should, why: its latest
/// `FailedCreate` event (quota, policy, admission webhook). Read only then.
async fn failed_creates(ctx: &Context, c: &ValidCluster, sts: &StatefulSet, desired: i32) -> Option<PodFailure> {
    let existing = sts.status.as_ref().map_or(0, |s| s.replicas);
    if existing >= desired {
        return None;
    }
    let name = sts.metadata.name.clone().unwrap_or_default();
    let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let params = ListParams::default()
        .fields(&format!("involvedObject.kind=StatefulSet,involvedObject.name={name},reason=FailedCreate"));
    match api.list(&params).await {
        Ok(l) => failed_create(&l.items, &name),
        Err(e) => {
            warn!(error = %e, "listing the StatefulSet's events failed");
            None
        }
    }
}

/// One step of the workers' rollout: deletes the outdated pods the plan
/// allows (the StatefulSet recreates them from the new template). Nothing is
/// deleted until the StatefulSet controller has seen the current template.
async fn drive_rollout(
    ctx: &Context,
    c: &ValidCluster,
    sts: &StatefulSet,
    pods: &[Pod],
    desired: i32,
    surge_answers: bool,
) -> Result<rollout::Plan> {
    let name = sts.metadata.name.clone().unwrap_or_default();
    let st = sts.status.clone().unwrap_or_default();
    let observed = st.observed_generation >= sts.metadata.generation;
    let not_created = st.updated_replicas.unwrap_or(0) < desired;
    let worker_pods: Vec<rollout::WorkerPod> =
        pods.iter().filter_map(|p| rollout::WorkerPod::from_pod(&name, p)).collect();
    let max_unavailable =
        rollout::resolve_max_unavailable(&c.rollout_max_unavailable, desired).map_err(Error::InvalidSpec)?;
    let mut plan = rollout::plan(
        &worker_pods,
        st.update_revision.as_deref().filter(|_| observed),
        desired,
        c.shards(),
        max_unavailable,
        surge_answers,
    );
    plan.in_progress |= not_created || !observed;
    if !plan.delete.is_empty() {
        info!(pods = ?plan.delete, outdated = plan.outdated, "replacing outdated workers");
        ctx.metrics.action("replace_workers");
    }
    delete_pods(ctx, c, &plan.delete, "worker").await?;
    Ok(plan)
}

/// Deletes pods (one already gone is fine).
async fn delete_pods(ctx: &Context, c: &ValidCluster, pods: &[String], what: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &c.namespace);
    for pod in pods {
        match api.delete(pod, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if crate::error::is_status(&e, 404) => {}
            Err(e) => return Err(Error::kube(format!("deleting {what} pod {pod}"), e)),
        }
    }
    Ok(())
}

/// The children whose names are taken by objects this cluster does not own
/// (decided from the caches where they show the child).
async fn foreign_children(ctx: &Context, c: &ValidCluster, ch: &Children) -> Result<Vec<String>> {
    let (client, owned, k, ns) = (&ctx.client, &ctx.owned, ctx.caches(), &c.namespace);
    let mut holders = vec![
        holder::<ServiceAccount>(
            client,
            c,
            &ch.service_account,
            cached_meta_of(k.map(|k| &k.service_accounts), ns, &ch.service_account).as_ref(),
            owned,
        )
        .await?,
        holder::<Service>(
            client,
            c,
            &ch.worker_service,
            cached_meta_of(k.map(|k| &k.services), ns, &ch.worker_service).as_ref(),
            owned,
        )
        .await?,
        holder::<ConfigMap>(
            client,
            c,
            &ch.datasets,
            cached_meta_of(k.map(|k| &k.config_maps), ns, &ch.datasets).as_ref(),
            owned,
        )
        .await?,
        holder::<StatefulSet>(
            client,
            c,
            &ch.workers,
            cached_meta_of(k.map(|k| &k.stateful_sets), ns, &ch.workers).as_ref(),
            owned,
        )
        .await?,
        holder::<NetworkPolicy>(
            client,
            c,
            &ch.network_policy,
            cached_meta_of(k.map(|k| &k.network_policies), ns, &ch.network_policy).as_ref(),
            owned,
        )
        .await?,
        holder::<PodDisruptionBudget>(
            client,
            c,
            &ch.pdb,
            cached_meta_of(k.map(|k| &k.disruption_budgets), ns, &ch.pdb).as_ref(),
            owned,
        )
        .await?,
        holder::<Deployment>(
            client,
            c,
            &ch.dashboard,
            cached_meta_of(k.map(|k| &k.deployments), ns, &ch.dashboard).as_ref(),
            owned,
        )
        .await?,
        holder::<Service>(
            client,
            c,
            &ch.dashboard_service,
            cached_meta_of(k.map(|k| &k.services), ns, &ch.dashboard_service).as_ref(),
            owned,
        )
        .await?,
    ];
    if let Some(h) = &ch.hpa {
        let cached = cached_meta_of(k.map(|k| &k.autoscalers), ns, h);
        holders.push(holder::<HorizontalPodAutoscaler>(client, c, h, cached.as_ref(), owned).await?);
    }
    if let Some(i) = &ch.ingress {
        let cached = cached_meta_of(k.map(|k| &k.ingresses), ns, i);
        holders.push(holder::<Ingress>(client, c, i, cached.as_ref(), owned).await?);
    }
    Ok(holders
        .into_iter()
        .filter_map(|h| match h {
            Holder::Foreign(what) => Some(what),
            Holder::Free | Holder::Ours => None,
        })
        .collect())
}

/// Reports child names taken by objects this cluster does not own; writes nothing else.
async fn refuse_foreign(
    ctx: &Context,
    dc: &DataCluster,
    c: &ValidCluster,
    foreign: &[String],
    now: k8s_openapi::jiff::Timestamp,
) -> Result<Requeue> {
    let previous = dc.status.as_ref();
    let next = status::not_owned(previous, c.generation, foreign, now);
    if previous != Some(&next) {
        apply_status(&ctx.client, &c.name, &c.namespace, &next).await?;
    }
    let message = |s: Option<&DataClusterStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == status::condition::CHILDREN_OWNED))
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    if message(previous) != message(Some(&next)) {
        warn!(objects = ?foreign, "child names taken by objects this DataCluster does not own");
        let text = message(Some(&next)).map(|(_, m)| m).unwrap_or_default();
        publish(ctx, dc, &Note { severity: Severity::Warning, reason: "NotOwned", action: "Apply", message: text })
            .await;
    }
    // Nothing announces that the other object went away: look again later.
    Ok(Requeue::requeue(ctx.poll_interval))
}

/// Applies every child whose cached copy was not applied from the object the
/// spec asks for now (every child when there is no cache or a full re-apply
/// is due); removes the optional ones the spec turned off. Returns the
/// StatefulSet as applied or last seen (with its status) and the Ingress
/// address.
async fn apply_children(
    ctx: &Context,
    c: &ValidCluster,
    desired: i32,
    surge: &rollout::SurgePlan,
    pin: Option<&rollout::Pin>,
) -> Result<(StatefulSet, Option<String>)> {
    let ns = &c.namespace;
    let client = &ctx.client;
    let mut ch = build_all(c, desired);
    if let Some(pin) = pin {
        ch.worker_service = crate::children::pin_worker_service(ch.worker_service, pin);
    }
    let full = ctx.resync_due(&c.owner.uid);
    let k = ctx.caches().filter(|_| !full);
    // Caches even during a full re-apply: whether an optional child exists.
    let all = ctx.caches();
    let name = |m: &kube::core::ObjectMeta| m.name.clone().unwrap_or_default();

    apply_if_changed::<ServiceAccount>(
        client,
        c,
        &ch.service_account,
        cached_meta_of(k.map(|k| &k.service_accounts), ns, &ch.service_account).as_ref(),
    )
    .await?;
    remove_legacy(ctx, c).await?;
    apply_if_changed::<Service>(
        client,
        c,
        &ch.worker_service,
        cached_meta_of(k.map(|k| &k.services), ns, &ch.worker_service).as_ref(),
    )
    .await?;
    // Before the StatefulSet: new pods mount the list they were rolled for.
    apply_if_changed::<ConfigMap>(
        client,
        c,
        &ch.datasets,
        cached_meta_of(k.map(|k| &k.config_maps), ns, &ch.datasets).as_ref(),
    )
    .await?;
    let cached_sts = k.and_then(|k| k.stateful_sets.seen(ns, &name(&ch.workers.metadata)).present());
    // A surge re-shard holds NAME-workers on its old template while its
    // generation answers (the caches always show it then).
    let held =
        all.filter(|_| surge.hold_main).and_then(|k| k.stateful_sets.seen(ns, &name(&ch.workers.metadata)).present());
    let workers = match held {
        Some(sts) => (*sts).clone(),
        None => match apply_if_changed::<StatefulSet>(client, c, &ch.workers, cached_sts.as_ref().map(|s| &s.metadata))
            .await?
        {
            Some(applied) => applied,
            None => (*cached_sts.expect("skipped only when cached")).clone(),
        },
    };
    let surge_name = rollout::surge_name(&c.name);
    if surge.keep_surge {
        let sts = crate::children::build_surge_statefulset(c, desired);
        let cached = k.and_then(|k| k.stateful_sets.seen(ns, &surge_name).present());
        apply_if_changed::<StatefulSet>(client, c, &sts, cached.as_ref().map(|s| &s.metadata)).await?;
    } else if matches!(all.map(|k| k.stateful_sets.seen(ns, &surge_name)), Some(Seen::Present(_))) {
        delete_owned::<StatefulSet>(client, c, &surge_name).await?;
    }
    apply_if_changed::<NetworkPolicy>(
        client,
        c,
        &ch.network_policy,
        cached_meta_of(k.map(|k| &k.network_policies), ns, &ch.network_policy).as_ref(),
    )
    .await?;
    apply_if_changed::<PodDisruptionBudget>(
        client,
        c,
        &ch.pdb,
        cached_meta_of(k.map(|k| &k.disruption_budgets), ns, &ch.pdb).as_ref(),
    )
    .await?;
    apply_if_changed::<Deployment>(
        client,
        c,
        &ch.dashboard,
        cached_meta_of(k.map(|k| &k.deployments), ns, &ch.dashboard).as_ref(),
    )
    .await?;
    apply_if_changed::<Service>(
        client,
        c,
        &ch.dashboard_service,
        cached_meta_of(k.map(|k| &k.services), ns, &ch.dashboard_service).as_ref(),
    )
    .await?;
    let dashboard = format!("{}-dashboard", c.name);
    match &ch.hpa {
        Some(h) => {
            apply_if_changed::<HorizontalPodAutoscaler>(
                client,
                c,
                h,
                cached_meta_of(k.map(|k| &k.autoscalers), ns, h).as_ref(),
            )
            .await?;
        }
        None => {
            if !matches!(all.map(|k| k.autoscalers.seen(ns, &dashboard)), Some(Seen::Absent)) {
                delete_owned::<HorizontalPodAutoscaler>(client, c, &dashboard).await?;
            }
        }
    }
    let ingress_address = match &ch.ingress {
        Some(i) => {
            let cached = k.and_then(|k| k.ingresses.seen(ns, &name(&i.metadata)).present());
            let ingress = match apply_if_changed::<Ingress>(client, c, i, cached.as_ref().map(|i| &i.metadata)).await? {
                Some(applied) => applied,
                None => (*cached.expect("skipped only when cached")).clone(),
            };
            ingress
                .status
                .and_then(|s| s.load_balancer)
                .and_then(|lb| lb.ingress)
                .and_then(|v| v.into_iter().next())
                .and_then(|i| i.hostname.or(i.ip))
        }
        None => {
            if !matches!(all.map(|k| k.ingresses.seen(ns, &c.name)), Some(Seen::Absent)) {
                delete_owned::<Ingress>(client, c, &c.name).await?;
            }
            None
        }
    };
    if full {
        ctx.resynced(&c.owner.uid);
    }
    Ok((workers, ingress_address))
}

/// Dashboards no longer hold a Role (resume goes through the operator):
/// removes the ones earlier releases made, once per cluster and process.
async fn remove_legacy(ctx: &Context, c: &ValidCluster) -> Result<()> {
    if ctx.legacy_removed.lock().expect("legacy lock").contains(&c.owner.uid) {
        return Ok(());
    }
    let dashboard_identity = format!("{}-dashboard", c.name);
    delete_owned::<RoleBinding>(&ctx.client, c, &dashboard_identity).await?;
    delete_owned::<Role>(&ctx.client, c, &dashboard_identity).await?;
    ctx.legacy_removed.lock().expect("legacy lock").insert(c.owner.uid.clone());
    Ok(())
}

async fn publish(ctx: &Context, dc: &DataCluster, n: &Note) {
    publish_raw(ctx, &dc.object_ref(&()), n.severity, n.reason, &n.message).await;
}

async fn publish_raw(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    severity: Severity,
    reason: &str,
    message: &str,
) {
    let event = Event {
        type_: match severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        },
        reason: reason.into(),
        note: Some(message.chars().take(1000).collect()),
        action: reason.into(),
        secondary: None,
    };
    // An event that cannot be published must not fail the reconcile; it is logged.
    if let Err(e) = ctx.recorder.publish(&event, reference).await {
        warn!(reason, error = %e, "publishing an event failed");
    }
}

/// Requeues a failed reconcile with exponential backoff per object.
pub fn error_policy(obj: Arc<DeserializeGuard<DataCluster>>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.error(error.category());
    let key = ObjectRef::from_obj(&*obj);
    let n = {
        let mut f = ctx.failures.lock().expect("failures lock");
        let n = f.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let wait = backoff(n);
    warn!(cluster = %obj.name_any(), namespace = %obj.namespace().unwrap_or_default(),
          error = %error, category = error.category(), retry_in = ?wait, "reconcile failed");
    Requeue::requeue(wait)
}

/// Delay before retry number `attempt` (1-based): 5 s, 10 s, 20 s... capped at 5 min.
pub fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    (MIN_BACKOFF * factor).min(MAX_BACKOFF)
}

/// What makes a DataCluster event worth a reconcile: its generation (the
/// spec), the restart and resume annotations, and the start of its deletion.
/// Status writes (ours included) and other metadata do not: a reconcile's own
/// status write must not schedule the next one.
pub fn trigger_hash(obj: &DeserializeGuard<DataCluster>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let m = obj.meta();
    let annotation = |k: &str| m.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        m.uid.as_deref(),
        m.generation,
        annotation(RESTART_ANNOTATION),
        annotation(RESUME_ANNOTATION),
        m.deletion_timestamp.is_some(),
    )
        .hash(&mut h);
    Some(h.finish())
}

/// A label-selected watch of `K` feeding a cache; its stream of changed
/// objects triggers reconciles of their owners.
fn watched<K>(
    client: &Client,
    config: &watcher::Config,
) -> (Cache<K>, impl futures::Stream<Item = std::result::Result<K, watcher::Error>> + Send + 'static)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream =
        watcher(Api::<K>::all(client.clone()), config.clone()).default_backoff().reflect(writer).touched_objects();
    (Cache::new(reader), stream)
}

/// The same, watching metadata only.
fn watched_meta<K>(
    client: &Client,
    config: &watcher::Config,
) -> (
    Cache<PartialObjectMeta<K>>,
    impl futures::Stream<Item = std::result::Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    // An `Api` of `PartialObjectMeta` lists and watches metadata only.
    watched::<PartialObjectMeta<K>>(client, config)
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let clusters: Api<DeserializeGuard<DataCluster>> = Api::all(client.clone());
    // The store sees every change; only the changes `trigger_hash` cares about
    // start a reconcile (status writes do not).
    let (reader, writer) = reflector::store();
    let triggers = watcher(clusters, watcher::Config::default().any_semantic())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger_hash, PredicateConfig::default());
    // Only our children: a watch without a selector would stream every
    // StatefulSet, Service... of the whole cluster into this pod. Each watch
    // both fills the cache a reconcile reads and triggers the owner's
    // reconcile when a child changes or goes away.
    let children = watcher::Config::default().labels(&managed_by_selector()).any_semantic();
    let worker_pods = watcher::Config::default()
        .labels(&format!("{},app.kubernetes.io/component={}", managed_by_selector(), Component::Worker.as_str()))
        .any_semantic();
    let (stateful_sets, sts_events) = watched::<StatefulSet>(&client, &children);
    let (deployments, deployment_events) = watched_meta::<Deployment>(&client, &children);
    let (services, service_events) = watched_meta::<Service>(&client, &children);
    let (ingresses, ingress_events) = watched::<Ingress>(&client, &children);
    let (autoscalers, hpa_events) = watched_meta::<HorizontalPodAutoscaler>(&client, &children);
    let (config_maps, config_map_events) = watched_meta::<ConfigMap>(&client, &children);
    let (service_accounts, sa_events) = watched_meta::<ServiceAccount>(&client, &children);
    let (network_policies, np_events) = watched_meta::<NetworkPolicy>(&client, &children);
    let (disruption_budgets, pdb_events) = watched_meta::<PodDisruptionBudget>(&client, &children);
    // Secrets and pods fill caches only: a pod's changes reach the status at
    // the next poll (its StatefulSet's ready count triggers at once).
    let (secrets, secret_events) = watched::<k8s_openapi::api::core::v1::Secret>(&client, &children);
    let (pods, pod_events) = watched::<Pod>(&client, &worker_pods);
    ctx.use_caches(Arc::new(Caches {
        stateful_sets,
        deployments,
        services,
        ingresses,
        autoscalers,
        config_maps,
        service_accounts,
        network_policies,
        disruption_budgets,
        secrets,
        pods,
    }));
    let caches_only = tokio::spawn(async move {
        futures::join!(secret_events.for_each(|_| async {}), pod_events.for_each(|_| async {}));
    });
    Controller::for_stream(triggers, reader)
        .with_config(
            kube::runtime::controller::Config::default().debounce(Duration::from_secs(1)).concurrency(ctx.concurrency),
        )
        .owns_stream(sts_events)
        .owns_stream(deployment_events)
        .owns_stream(service_events)
        .owns_stream(ingress_events)
        .owns_stream(hpa_events)
        .owns_stream(config_map_events)
        .owns_stream(sa_events)
        .owns_stream(np_events)
        .owns_stream(pdb_events)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(cluster = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "controller event"),
            }
        })
        .await;
    caches_only.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc(generation: i64, annotations: &[(&str, &str)], resource_version: &str) -> DeserializeGuard<DataCluster> {
        let mut v = serde_json::json!({
            "apiVersion": "quiver.dev/v1alpha1", "kind": "DataCluster",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u", "generation": generation,
                         "resourceVersion": resource_version,
                         "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()},
            "spec": {"datasets": [{"name": "t", "preset": "celltowers", "source": "file:///d/"}]}
        });
        v["status"] = serde_json::json!({"phase": "Ready", "lastActivityTime": format!("2026-01-05T09:{:02}:00Z", resource_version.len())});
        DeserializeGuard(Ok(serde_json::from_value(v).unwrap()))
    }

    #[test]
    fn status_writes_and_unrelated_annotations_trigger_no_reconcile() {
        let base = trigger_hash(&dc(3, &[], "100"));
        assert!(base.is_some());
        // Our own status write: a new resourceVersion, same generation.
        assert_eq!(trigger_hash(&dc(3, &[], "1001")), base);
        // kubectl's bookkeeping annotation.
        assert_eq!(trigger_hash(&dc(3, &[("kubectl.kubernetes.io/last-applied-configuration", "{}")], "102")), base);
    }

    #[test]
    fn spec_changes_restart_and_resume_requests_and_deletion_trigger_a_reconcile() {
        let base = trigger_hash(&dc(3, &[], "100"));
        assert_ne!(trigger_hash(&dc(4, &[], "100")), base);
        assert_ne!(trigger_hash(&dc(3, &[(crate::crd::RESTART_ANNOTATION, "2026-01-06T00:00:00Z")], "100")), base);
        assert_ne!(trigger_hash(&dc(3, &[(crate::crd::RESUME_ANNOTATION, "2026-01-06T00:00:00Z")], "100")), base);
        let mut deleting = dc(3, &[], "100");
        if let Ok(d) = deleting.0.as_mut() {
            d.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-06T00:00:00Z".parse().unwrap()));
        }
        assert_ne!(trigger_hash(&deleting), base);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }
}
