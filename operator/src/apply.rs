//! Writes to the API server: server-side apply of children under one field
//! manager, removal of children the spec no longer asks for, token Secrets
//! created once, and the status. Nothing is applied over an object this
//! DataCluster does not own: a forced apply would take it over, and garbage
//! collection would later delete it with the cluster.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::cache::owned_by;
use crate::children::{Component, FIELD_MANAGER, build_token_secret, generate_token};
use crate::crd::{DataCluster, DataClusterStatus};
use crate::error::{Error, Result, is_status};
use crate::validate::ValidCluster;

fn kind<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}

/// Who holds a child's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No object has the name yet.
    Free,
    /// This DataCluster owns the object.
    Ours,
    /// Someone else's object, described for the condition (`Service demo-workers`).
    Foreign(String),
}

/// Children known to be ours, so steady-state passes skip the ownership read.
/// An entry lasts [`OWNERSHIP_TTL`]: an object deleted and recreated by
/// someone else under the same name is noticed within that time.
#[derive(Debug, Default)]
pub struct OwnedChildren {
    seen: Mutex<HashMap<(String, String, String, String), Instant>>,
}

/// How long a child's ownership, once read, is trusted.
pub const OWNERSHIP_TTL: Duration = Duration::from_secs(600);

impl OwnedChildren {
    fn key(kind: &str, namespace: &str, name: &str, uid: &str) -> (String, String, String, String) {
        (kind.into(), namespace.into(), name.into(), uid.into())
    }

    fn known(&self, kind: &str, namespace: &str, name: &str, uid: &str) -> bool {
        let seen = self.seen.lock().expect("owned children lock");
        seen.get(&Self::key(kind, namespace, name, uid)).is_some_and(|at| at.elapsed() < OWNERSHIP_TTL)
    }

    fn remember(&self, kind: &str, namespace: &str, name: &str, uid: &str) {
        let mut seen = self.seen.lock().expect("owned children lock");
        seen.retain(|_, at| at.elapsed() < OWNERSHIP_TTL);
        seen.insert(Self::key(kind, namespace, name, uid), Instant::now());
    }
}

/// Who holds the name of child `obj` of cluster `c`: decided from `cached`
/// (the object as the operator's watch last saw it) when there is one, else
/// read from the API server unless it is known to be ours. (A watch sees only
/// labelled children, so an object it does not show may still be someone
/// else's: that is read.)
pub async fn holder<K>(
    client: &Client,
    c: &ValidCluster,
    obj: &K,
    cached: Option<&kube::core::ObjectMeta>,
    owned: &OwnedChildren,
) -> Result<Holder>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let name = obj.meta().name.clone().ok_or(Error::MissingField("child name"))?;
    let kind = kind::<K>();
    if let Some(meta) = cached {
        return Ok(if owned_by(meta, &c.owner.uid) { Holder::Ours } else { Holder::Foreign(format!("{kind} {name}")) });
    }
    if owned.known(&kind, &c.namespace, &name, &c.owner.uid) {
        return Ok(Holder::Ours);
    }
    let api: Api<K> = Api::namespaced(client.clone(), &c.namespace);
    let existing = api.get_opt(&name).await.map_err(|e| Error::kube(format!("reading {kind} {name}"), e))?;
    Ok(match existing {
        None => Holder::Free,
        Some(o) if owned_by(o.meta(), &c.owner.uid) => {
            owned.remember(&kind, &c.namespace, &name, &c.owner.uid);
            Holder::Ours
        }
        Some(_) => Holder::Foreign(format!("{kind} {name}")),
    })
}

/// Server-side applies one child (forcing ownership of the fields we set) and
/// returns the object as the API server now holds it, status included.
pub async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = obj.meta().name.clone().ok_or(Error::MissingField("child name"))?;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await
        .map_err(|e| Error::kube(format!("applying {} {name}", kind::<K>()), e))
}

/// Server-side applies `obj` with its [`APPLIED_HASH_ANNOTATION`], unless
/// `cached` (the child as last seen, `None` when unknown or when a full
/// re-apply is due) shows it was applied from this very object by this
/// cluster: then nothing is sent and `None` is returned. Otherwise returns the
/// object as the API server now holds it.
///
/// [`APPLIED_HASH_ANNOTATION`]: crate::cache::APPLIED_HASH_ANNOTATION
pub async fn apply_if_changed<K>(
    client: &Client,
    c: &ValidCluster,
    obj: &K,
    cached: Option<&kube::core::ObjectMeta>,
) -> Result<Option<K>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let (stamped, hash) = crate::cache::stamped(obj);
    if cached.is_some_and(|m| crate::cache::up_to_date(m, &c.owner.uid, &hash)) {
        return Ok(None);
    }
    let name = obj.meta().name.clone().ok_or(Error::MissingField("child name"))?;
    let api: Api<K> = Api::namespaced(client.clone(), &c.namespace);
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&stamped))
        .await
        .map(Some)
        .map_err(|e| Error::kube(format!("applying {} {name}", kind::<K>()), e))
}

/// Deletes a child the spec no longer asks for, if it exists and this cluster owns it
/// (an object of the same name made by someone else is left alone).
pub async fn delete_owned<K>(client: &Client, c: &ValidCluster, name: &str) -> Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), &c.namespace);
    let existing = api.get_opt(name).await.map_err(|e| Error::kube(format!("reading {} {name}", kind::<K>()), e))?;
    let Some(obj) = existing else {
        return Ok(false);
    };
    if !owned_by(obj.meta(), &c.owner.uid) {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(Error::kube(format!("deleting {} {name}", kind::<K>()), e)),
    }
}

/// A generated token Secret as found.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSecret {
    /// Ours (existing or just created): its token (never logged).
    Ours(Option<String>),
    /// A Secret of that name this cluster does not own (e.g. left by an earlier
    /// DataCluster of the same name): described for the condition.
    Foreign(String),
}

impl Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSecret::Ours(_) => f.write_str("Ours(<redacted>)"),
            TokenSecret::Foreign(d) => write!(f, "Foreign({d:?})"),
        }
    }
}

/// Returns the token in Secret `name` (key `token`), creating the Secret with a
/// fresh random token when it does not exist. An existing Secret is never
/// changed, and one this cluster does not own is never used. The token is
/// returned to the caller and never logged. `cached` is the Secret as the
/// operator's watch last saw it: when given, nothing is read.
pub async fn ensure_token_secret(
    client: &Client,
    c: &ValidCluster,
    name: &str,
    component: Component,
    cached: Option<&Secret>,
) -> Result<TokenSecret> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &c.namespace);
    let read = |s: Secret| -> Option<String> {
        let bytes = s.data?.remove(crate::children::TOKEN_KEY)?.0;
        String::from_utf8(bytes).ok()
    };
    if let Some(s) = cached {
        if !owned_by(&s.metadata, &c.owner.uid) {
            return Ok(TokenSecret::Foreign(format!("Secret {name}")));
        }
        return Ok(TokenSecret::Ours(read(s.clone())));
    }
    if let Some(s) = api.get_opt(name).await.map_err(|e| Error::kube(format!("reading Secret {name}"), e))? {
        if !owned_by(&s.metadata, &c.owner.uid) {
            return Ok(TokenSecret::Foreign(format!("Secret {name}")));
        }
        return Ok(TokenSecret::Ours(read(s)));
    }
    let fresh = build_token_secret(c, name, component, &generate_token());
    match api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &fresh).await {
        Ok(s) => {
            tracing::info!(cluster = %c.name, namespace = %c.namespace, secret = name, "generated token Secret");
            Ok(TokenSecret::Ours(read(s).or_else(|| read(fresh))))
        }
        // Created concurrently by someone else: theirs wins.
        Err(e) if is_status(&e, 409) => {
            let s = api.get(name).await.map_err(|e| Error::kube(format!("reading Secret {name}"), e))?;
            if !owned_by(&s.metadata, &c.owner.uid) {
                return Ok(TokenSecret::Foreign(format!("Secret {name}")));
            }
            Ok(TokenSecret::Ours(read(s)))
        }
        Err(e) => Err(Error::kube(format!("creating Secret {name}"), e)),
    }
}

/// Server-side applies the status subresource: fields this manager no longer
/// sets (e.g. `suspendedAt` after a resume) are removed.
pub async fn apply_status(client: &Client, name: &str, namespace: &str, status: &DataClusterStatus) -> Result<()> {
    let api: Api<DataCluster> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": format!("{}/{}", crate::crd::GROUP, crate::crd::VERSION),
        "kind": "DataCluster",
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(|e| Error::kube(format!("updating the status of DataCluster {name}"), e))?;
    Ok(())
}
