//! Writes to the API server: server-side apply of children under one field
//! manager, removal of children the spec no longer asks for, token Secrets
//! created once, and the status.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::children::{Component, FIELD_MANAGER, build_token_secret, generate_token};
use crate::crd::{DataCluster, DataClusterStatus};
use crate::error::{Error, Result, is_status};
use crate::validate::ValidCluster;

fn kind<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}

/// Server-side applies one child (forcing ownership of the fields we set) and
/// returns the object as the API server now holds it, status included.
pub async fn apply<K>(client: &Client, namespace: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("child name"))?;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| Error::kube(format!("applying {} {name}", kind::<K>()), e))
}

/// Deletes a child the spec no longer asks for, if it exists and this cluster owns it
/// (an object of the same name made by someone else is left alone).
pub async fn delete_owned<K>(client: &Client, c: &ValidCluster, name: &str) -> Result<bool>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), &c.namespace);
    let existing = api
        .get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("reading {} {name}", kind::<K>()), e))?;
    let Some(obj) = existing else {
        return Ok(false);
    };
    let owned = obj
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == c.owner.uid);
    if !owned {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(Error::kube(format!("deleting {} {name}", kind::<K>()), e)),
    }
}

/// Returns the token in Secret `name` (key `token`), creating the Secret with a
/// fresh random token when it does not exist. An existing Secret is never
/// changed. The token is returned to the caller and never logged.
pub async fn ensure_token_secret(
    client: &Client,
    c: &ValidCluster,
    name: &str,
    component: Component,
) -> Result<Option<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &c.namespace);
    let read = |s: Secret| -> Option<String> {
        let bytes = s.data?.remove(crate::children::TOKEN_KEY)?.0;
        String::from_utf8(bytes).ok()
    };
    if let Some(s) = api
        .get_opt(name)
        .await
        .map_err(|e| Error::kube(format!("reading Secret {name}"), e))?
    {
        return Ok(read(s));
    }
    let fresh = build_token_secret(c, name, component, &generate_token());
    match api
        .create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &fresh,
        )
        .await
    {
        Ok(s) => {
            tracing::info!(cluster = %c.name, namespace = %c.namespace, secret = name, "generated token Secret");
            Ok(read(s).or_else(|| read(fresh)))
        }
        // Created concurrently by someone else: theirs wins.
        Err(e) if is_status(&e, 409) => {
            let s = api
                .get(name)
                .await
                .map_err(|e| Error::kube(format!("reading Secret {name}"), e))?;
            Ok(read(s))
        }
        Err(e) => Err(Error::kube(format!("creating Secret {name}"), e)),
    }
}

/// Server-side applies the status subresource: fields this manager no longer
/// sets (e.g. `suspendedAt` after a resume) are removed.
pub async fn apply_status(
    client: &Client,
    name: &str,
    namespace: &str,
    status: &DataClusterStatus,
) -> Result<()> {
    let api: Api<DataCluster> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": format!("{}/{}", crate::crd::GROUP, crate::crd::VERSION),
        "kind": "DataCluster",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| Error::kube(format!("updating the status of DataCluster {name}"), e))?;
    Ok(())
}
