//! The resource endpoints: path parsing, get/list/create/update/patch/apply/
//! delete, the status and scale subresources, and the write pipeline every
//! change goes through (identity → defaults → admission → generation →
//! managedFields → no-op check → store).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use rand::Rng;
use serde_json::{Value, json};

use crate::Sim;
use crate::error::{ApiError, Cause};
use crate::fields::{self, Schema, Scope};
use crate::patch::{PatchKind, apply_patch};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::Op;
use crate::table::{self, Include};

/// A parsed resource path.
#[derive(Debug, Clone)]
pub struct Target {
    /// The type.
    pub rt: Arc<ResourceType>,
    /// The version in the path.
    pub version: String,
    /// The namespace in the path, if any.
    pub namespace: Option<String>,
    /// The object name, if any.
    pub name: Option<String>,
    /// `status`, `scale`, ...
    pub sub: Option<String>,
}

impl Target {
    /// The namespace key objects are stored under.
    pub fn ns(&self) -> &str {
        if self.rt.namespaced { self.namespace.as_deref().unwrap_or_default() } else { "" }
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }
}

/// Query parameters, decoded.
pub type Query = HashMap<String, String>;

/// Decodes a query string.
pub fn parse_query(q: Option<&str>) -> Query {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect()
}

/// Parses `/api/v1/...` or `/apis/<g>/<v>/...` into a target. `Ok(None)`: the
/// path is a group-version root (discovery).
pub fn parse_target(sim: &Sim, path: &str) -> Result<Option<Target>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::NoRoute),
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let find = |plural: &str| sim.registry.find(group, version, plural);
    let (rt, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if find(plural).is_some_and(|t| t.namespaced)
                && !(group.is_empty() && rest.len() == 3 && (*plural == "status" || *plural == "finalize")) =>
        {
            (find(plural).expect("checked"), Some(ns.to_string()), tail)
        }
        [plural, tail @ ..] => (find(plural).ok_or(ApiError::NoRoute)?, None, tail),
        [] => return Err(ApiError::NoRoute),
    };
    if tail.len() > 2 {
        return Err(ApiError::NoRoute);
    }
    Ok(Some(Target {
        rt,
        version: version.to_string(),
        namespace,
        name: tail.first().map(|s| s.to_string()),
        sub: tail.get(1).map(|s| s.to_string()),
    }))
}

/// RFC 3339 now, in whole seconds as the API server writes it.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn new_uid() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Five characters as the real server appends to generateName.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..5).map(|_| ALPHABET[r.random_range(0..ALPHABET.len())] as char).collect()
}

/// `metadata` as a map (created when absent).
pub fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// A string in `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The JSON response for an object or list.
pub fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn with_type(rt: &ResourceType, version: &str, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version(version)));
        m.insert("kind".into(), json!(rt.kind));
    }
    obj
}

/// Who is writing, for managedFields: `fieldManager`, else the user agent's
/// first word (as the real server derives it).
fn manager_of(q: &Query, headers: &HeaderMap) -> String {
    q.get("fieldManager").cloned().unwrap_or_else(|| {
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
            .unwrap_or_else(|| "unknown".into())
    })
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Entry point for every resource request.
pub async fn handle(
    sim: Arc<Sim>,
    method: Method,
    path: &str,
    query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = parse_query(query);
    let Some(t) = parse_target(&sim, path)? else {
        return Err(ApiError::NoRoute);
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let as_table = table::wants_table(&accept);
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (&method, t.name.is_some(), t.sub.as_deref()) {
        (&Method::GET, false, _) if watch => crate::watch::watch(sim, t, &q, as_table),
        (&Method::GET, false, _) => list(&sim, &t, &q, as_table),
        (&Method::GET, true, None | Some("status")) => get(&sim, &t, &q, as_table),
        (&Method::GET, true, Some("scale")) => get_scale(&sim, &t),
        (&Method::GET, true, Some("log")) if t.rt.group.is_empty() && t.rt.kind == "Pod" => pod_log(&sim, &t, &q),
        (&Method::POST | &Method::PUT | &Method::PATCH | &Method::DELETE, _, _) => {
            // The write handlers are synchronous: what the store records on
            // this thread meanwhile is this request's doing.
            let (result, changes) = crate::store::capturing(|| match (&method, t.name.is_some(), t.sub.as_deref()) {
                (&Method::POST, false, _) => create(&sim, &t, &q, &headers, &body),
                (&Method::PUT, true, _) => update(&sim, &t, &q, &headers, &body),
                (&Method::PATCH, true, _) => patch(&sim, &t, &q, &headers, &body),
                (&Method::DELETE, true, None) => delete(&sim, &t, &q, &body),
                (&Method::DELETE, false, _) => delete_collection(&sim, &t, &q, &body),
                _ => Err(ApiError::MethodNotAllowed),
            });
            log_write(&sim, &method, path, query, &headers, &body, &t, &result, changes);
            result
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Records a write request in the write log: one entry per object of the
/// target's type it changed, or one entry when it changed none.
#[allow(clippy::too_many_arguments)]
fn log_write(
    sim: &Sim,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    t: &Target,
    result: &Result<Response, ApiError>,
    changes: Vec<crate::store::Captured>,
) {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (verb, resource) = crate::accounting::classify(method, path, query.unwrap_or_default(), ct);
    let client = crate::accounting::client_of(headers);
    let code = match result {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.code().as_u16(),
    };
    let at = crate::writes::unix_micros();
    let key = t.rt.qualified();
    let entry = |name: String, changed: bool, version: u64| crate::writes::Write {
        client: client.clone(),
        verb: verb.clone(),
        resource: resource.clone(),
        namespace: t.ns().to_string(),
        name,
        code,
        changed,
        version,
        unix_micros: at,
    };
    let mut writes: Vec<_> = changes
        .into_iter()
        .filter(|c| c.key == key && c.namespace == t.ns())
        .map(|c| entry(c.name, true, c.rv))
        .collect();
    if writes.is_empty() {
        let name = t.name.clone().unwrap_or_else(|| {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|b| b.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default()
        });
        writes.push(entry(name, false, sim.store.current_rv()));
    }
    sim.writes.record(writes);
}

/// `pods/log`: what the process kubelet captured of a container's output
/// (empty for pods no process ran). `follow` is not supported: the log so far
/// is returned; `tailLines` is honoured.
fn pod_log(sim: &Sim, t: &Target, q: &Query) -> Result<Response, ApiError> {
    let pod = sim.store.get(&t.rt.qualified(), t.ns(), t.name()).ok_or_else(|| ApiError::not_found(&t.rt, t.name()))?;
    let container = match q.get("container") {
        Some(c) => c.clone(),
        None => pod.pointer("/spec/containers/0/name").and_then(Value::as_str).unwrap_or_default().to_string(),
    };
    let path = sim.config.runtime.root.join(t.ns()).join(t.name()).join(format!("{container}.log"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = match q.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out
        }
        None => text,
    };
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response())
}

fn check_sub(t: &Target) -> Result<(), ApiError> {
    match t.sub.as_deref() {
        None => Ok(()),
        Some("status") if t.rt.status_subresource => Ok(()),
        Some("scale") if t.rt.scale.is_some() => Ok(()),
        _ => Err(ApiError::NoRoute),
    }
}

fn get(sim: &Sim, t: &Target, q: &Query, as_table: bool) -> Result<Response, ApiError> {
    check_sub(t)?;
    let obj = sim.store.get(&t.rt.qualified(), t.ns(), t.name()).ok_or_else(|| ApiError::not_found(&t.rt, t.name()))?;
    let obj = with_type(&t.rt, &t.version, obj);
    if as_table {
        let rv = sim.store.current_rv();
        let include = Include::parse(q.get("includeObject").map(String::as_str));
        return Ok(json_response(StatusCode::OK, &table::table(&t.rt, &t.version, &[obj], rv, include, true)));
    }
    Ok(json_response(StatusCode::OK, &obj))
}

/// The objects of a list or watch request that pass its selectors.
pub struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    /// From `labelSelector` and `fieldSelector`.
    pub fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(Filter {
            labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())?,
            fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default())?,
        })
    }

    /// Whether an object passes.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

/// The current objects of a list request, filtered, typed, with the list's version.
pub fn current(sim: &Sim, t: &Target, q: &Query) -> Result<(Vec<Value>, u64), ApiError> {
    let filter = Filter::from_query(q)?;
    let ns = if t.rt.namespaced { t.namespace.as_deref() } else { None };
    let (items, rv) = sim.store.list(&t.rt.qualified(), ns);
    Ok((items.into_iter().filter(|o| filter.matches(o)).map(|o| with_type(&t.rt, &t.version, o)).collect(), rv))
}

/// `limit` and `continue` are not implemented: every list is one page.
fn list(sim: &Sim, t: &Target, q: &Query, as_table: bool) -> Result<Response, ApiError> {
    let (items, rv) = current(sim, t, q)?;
    if as_table {
        let include = Include::parse(q.get("includeObject").map(String::as_str));
        return Ok(json_response(StatusCode::OK, &table::table(&t.rt, &t.version, &items, rv, include, true)));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", t.rt.kind),
            "apiVersion": t.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": items,
        }),
    ))
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let v: Value = if ct.starts_with(crate::proto::PROTOBUF) {
        crate::proto::decode(body)?
    } else if ct.contains("yaml") {
        serde_yaml::from_slice(body).map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("error decoding JSON: {e}")))?
    };
    if !v.is_object() {
        return Err(ApiError::BadRequest("the body must be an object".into()));
    }
    Ok(v)
}

fn check_type(t: &Target, obj: &Value) -> Result<(), ApiError> {
    if let Some(k) = obj.get("kind").and_then(Value::as_str)
        && k != t.rt.kind
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({}) does not match the expected API version ({}), or kind {k} is not {}",
            obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default(),
            t.api_version(),
            t.rt.kind
        )));
    }
    Ok(())
}

fn check_namespace(sim: &Sim, t: &Target) -> Result<(), ApiError> {
    if !t.rt.namespaced {
        return Ok(());
    }
    let ns = t.ns();
    match sim.store.get("namespaces", "", ns) {
        None => Err(ApiError::NotFound {
            qualified: "namespaces".into(),
            group: String::new(),
            plural: "namespaces".into(),
            name: ns.to_string(),
        }),
        Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::Forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            t.rt.qualified(),
            meta_str(&n, "name").unwrap_or_default()
        ))),
        Some(_) => Ok(()),
    }
}

/// How a write records field ownership.
enum Tracking {
    /// An update by this manager.
    Update(String),
    /// Server-side apply already computed managedFields.
    Apply,
}

fn scope_of(t: &Target) -> Scope {
    match t.sub.as_deref() {
        Some("status") => Scope::Status,
        _ if t.rt.status_subresource => Scope::Main,
        _ => Scope::Whole,
    }
}

fn schema_of<'a>(t: &'a Target) -> Schema<'a> {
    match &t.rt.crd {
        Some(versions) => Schema::crd(versions.get(&t.version).and_then(|v| v.schema.as_ref())),
        None => Schema::builtin(),
    }
}

fn spec_part(rt: &ResourceType, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if rt.status_subresource {
            m.remove("status");
        }
    }
    o
}

fn without_rv(obj: &Value) -> Value {
    let mut o = fields::without_times(obj);
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    o
}

/// The pipeline from a requested object to what is stored: `new` is the
/// whole object the request asks for (after patching or merging), `old` the
/// stored one. Returns the op for the store.
fn prepare(
    sim: &Sim,
    t: &Target,
    old: Option<&Value>,
    mut new: Value,
    tracking: &Tracking,
) -> Result<(Op, Value), ApiError> {
    let scope = scope_of(t);
    // The subresources and the main resource each touch only their part.
    if let Some(old) = old {
        match scope {
            Scope::Status => {
                let status = new.get("status").cloned();
                let mut merged = old.clone();
                match status {
                    Some(s) => merged["status"] = s,
                    None => {
                        if let Some(m) = merged.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                // managedFields changes travel with the status write.
                if let Some(mf) = new.pointer("/metadata/managedFields").cloned() {
                    meta_mut(&mut merged).insert("managedFields".into(), mf);
                }
                new = merged;
            }
            Scope::Main => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            Scope::Whole => {}
        }
        let m = meta_mut(&mut new);
        for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            match old.get("metadata").and_then(|om| om.get(k)) {
                Some(v) => {
                    m.insert(k.into(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
    } else {
        let m = meta_mut(&mut new);
        m.insert("uid".into(), json!(new_uid()));
        m.insert("creationTimestamp".into(), json!(now()));
        m.remove("deletionTimestamp");
        m.remove("resourceVersion");
        if t.rt.status_subresource
            && !matches!(t.rt.kind.as_str(), "Namespace")
            && let Some(o) = new.as_object_mut()
        {
            o.remove("status");
        }
    }
    {
        let m = meta_mut(&mut new);
        m.insert("name".into(), json!(t.name()));
        if t.rt.namespaced {
            m.insert("namespace".into(), json!(t.ns()));
        } else {
            m.remove("namespace");
        }
    }
    new = with_type(&t.rt, &t.version, new);
    crate::defaults::apply(sim, &t.rt, &mut new);
    crate::admission::admit(sim, t, old, &mut new)?;
    if t.rt.has_generation {
        let gen_ = match old {
            None => 1,
            Some(o) => {
                let g = o.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                if spec_part(&t.rt, o) != spec_part(&t.rt, &new) { g + 1 } else { g }
            }
        };
        meta_mut(&mut new).insert("generation".into(), json!(gen_));
    }
    if let Tracking::Update(manager) = tracking {
        let api_version = t.api_version();
        fields::track_update(old, &mut new, manager, &api_version, scope, schema_of(t), &now());
    }
    if let Some(old) = old {
        if without_rv(old) == without_rv(&new) {
            return Ok((Op::Keep, old.clone()));
        }
        let finalizers_left =
            new.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        if new.pointer("/metadata/deletionTimestamp").is_some() && !finalizers_left {
            return Ok((Op::Remove, new));
        }
    }
    Ok((Op::Put(new.clone()), new))
}

fn dry_run(q: &Query) -> bool {
    q.get("dryRun").is_some_and(|d| d == "All")
}

/// Runs the pipeline under the store lock and stores the outcome.
fn commit(
    sim: &Sim,
    t: &Target,
    q: &Query,
    build: impl FnOnce(Option<&Value>) -> Result<(Value, Tracking), ApiError>,
    create_ok: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let mut created = false;
    let mut result = Value::Null;
    let dry = dry_run(q);
    let stored = sim.store.update(&t.rt.qualified(), t.ns(), t.name(), |cur| {
        if cur.is_none() && !create_ok {
            return Err(ApiError::not_found(&t.rt, t.name()));
        }
        created = cur.is_none();
        let (new, tracking) = build(cur)?;
        let (op, obj) = prepare(sim, t, cur, new, &tracking)?;
        result = obj;
        Ok(if dry { Op::Keep } else { op })
    })?;
    if let Some(stored) = stored {
        result = stored;
    }
    let result = with_type(&t.rt, &t.version, result);
    crate::admission::after_write(sim, t, &result);
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, result))
}

fn create(sim: &Sim, t: &Target, q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    if t.sub.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    let mut obj = parse_body(headers, body)?;
    check_type(t, &obj)?;
    let mut t = t.clone();
    if t.rt.namespaced {
        let body_ns = meta_str(&obj, "namespace").filter(|n| !n.is_empty()).map(str::to_string);
        match (&t.namespace, body_ns) {
            (Some(path_ns), Some(b)) if *path_ns != b => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            (None, Some(b)) => t.namespace = Some(b),
            (None, None) => t.namespace = Some("default".into()),
            _ => {}
        }
    }
    let name = match meta_str(&obj, "name").filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => match meta_str(&obj, "generateName") {
            Some(g) => format!("{g}{}", random_suffix()),
            None => {
                return Err(ApiError::invalid(
                    &t.rt,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
        },
    };
    if !is_dns_subdomain(&name) {
        return Err(ApiError::invalid(
            &t.rt,
            &name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
                field: "metadata.name".into(),
            }],
        ));
    }
    meta_mut(&mut obj).insert("name".into(), json!(name));
    t.name = Some(name.clone());
    check_namespace(sim, &t)?;
    crate::admission::check_quota(sim, &t)?;
    let manager = manager_of(q, headers);
    let rt = t.rt.clone();
    let (code, obj) = commit(
        sim,
        &t,
        q,
        |cur| {
            if cur.is_some() {
                return Err(ApiError::already_exists(&rt, &name));
            }
            Ok((obj, Tracking::Update(manager)))
        },
        true,
    )?;
    Ok(json_response(code, &obj))
}

fn rv_of(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion").filter(|s| !s.is_empty())
}

fn update(sim: &Sim, t: &Target, q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    check_sub(t)?;
    let obj = parse_body(headers, body)?;
    if t.sub.as_deref() == Some("scale") {
        let replicas = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        return set_scale(sim, t, q, headers, replicas, rv_of(&obj).map(str::to_string));
    }
    check_type(t, &obj)?;
    if let Some(n) = meta_str(&obj, "name")
        && n != t.name()
    {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({n}) does not match the name on the URL ({})",
            t.name()
        )));
    }
    let manager = manager_of(q, headers);
    let rt = t.rt.clone();
    let (code, obj) = commit(
        sim,
        t,
        q,
        |cur| {
            let cur = cur.expect("exists");
            if let Some(rv) = rv_of(&obj)
                && Some(rv) != rv_of(cur)
            {
                return Err(ApiError::stale(&rt, t.name()));
            }
            Ok((obj, Tracking::Update(manager)))
        },
        false,
    )?;
    Ok(json_response(code, &obj))
}

fn patch(sim: &Sim, t: &Target, q: &Query, headers: &HeaderMap, body: &[u8]) -> Result<Response, ApiError> {
    check_sub(t)?;
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let kind = PatchKind::from_content_type(ct)?;
    if t.sub.as_deref() == Some("scale") {
        let mut scale = scale_of(sim, t)?;
        let before = rv_of(&scale).map(str::to_string);
        if kind == PatchKind::Apply {
            let applied: Value = serde_yaml::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            fields::merge(&mut scale, &applied, "", Schema::builtin());
        } else {
            apply_patch(kind, &mut scale, body)?;
        }
        let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        let precondition = rv_of(&scale).map(str::to_string).filter(|rv| Some(rv) != before.as_ref());
        return set_scale(sim, t, q, headers, replicas, precondition);
    }
    if kind == PatchKind::Apply {
        return apply(sim, t, q, body);
    }
    let manager = manager_of(q, headers);
    let rt = t.rt.clone();
    let (code, obj) = commit(
        sim,
        t,
        q,
        |cur| {
            let cur = cur.expect("exists");
            let mut target = with_type(&rt, &t.version, cur.clone());
            apply_patch(kind, &mut target, body).map_err(|e| match e {
                ApiError::Invalid { summary, causes, .. } => ApiError::Invalid {
                    kind_group: if rt.group.is_empty() { rt.kind.clone() } else { format!("{}.{}", rt.kind, rt.group) },
                    kind: rt.kind.clone(),
                    group: rt.group.clone(),
                    name: t.name().to_string(),
                    summary,
                    causes,
                },
                other => other,
            })?;
            if let Some(rv) = rv_of(&target)
                && Some(rv) != rv_of(cur)
            {
                return Err(ApiError::stale(&rt, t.name()));
            }
            Ok((target, Tracking::Update(manager)))
        },
        false,
    )?;
    Ok(json_response(code, &obj))
}

fn apply(sim: &Sim, t: &Target, q: &Query, body: &[u8]) -> Result<Response, ApiError> {
    let applied: Value =
        serde_yaml::from_slice(body).map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
    if !applied.is_object() {
        return Err(ApiError::BadRequest("the applied configuration must be an object".into()));
    }
    check_type(t, &applied)?;
    let manager = q
        .get("fieldManager")
        .cloned()
        .ok_or_else(|| ApiError::BadRequest("PATCH /apply requires fieldManager to be set".into()))?;
    if let Some(n) = meta_str(&applied, "name")
        && n != t.name()
    {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({n}) does not match the name on the URL ({})",
            t.name()
        )));
    }
    let force = q.get("force").is_some_and(|f| f == "true");
    let exists = sim.store.get(&t.rt.qualified(), t.ns(), t.name()).is_some();
    if !exists {
        if t.sub.is_some() {
            return Err(ApiError::not_found(&t.rt, t.name()));
        }
        check_namespace(sim, t)?;
    }
    let scope = scope_of(t);
    let rt = t.rt.clone();
    let (code, obj) = commit(
        sim,
        t,
        q,
        |cur| {
            if cur.is_none() && t.sub.is_some() {
                return Err(ApiError::not_found(&rt, t.name()));
            }
            if let (Some(rv), Some(cur)) = (rv_of(&applied), cur)
                && Some(rv) != rv_of(cur)
            {
                return Err(ApiError::stale(&rt, t.name()));
            }
            let api_version = t.api_version();
            let out = fields::apply(cur, &applied, &manager, &api_version, force, scope, schema_of(t), &now())
                .map_err(|conflicts| {
                    let causes: Vec<Cause> = conflicts
                        .iter()
                        .map(|c| Cause {
                            reason: "FieldManagerConflict".into(),
                            message: format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                            field: fields::display_path(&c.path),
                        })
                        .collect();
                    let message = if causes.len() == 1 {
                        format!("Apply failed with 1 conflict: {}: {}", causes[0].message, causes[0].field)
                    } else {
                        format!(
                            "Apply failed with {} conflicts: {}",
                            causes.len(),
                            causes.iter().map(|c| format!("{}: {}", c.message, c.field)).collect::<Vec<_>>().join("\n")
                        )
                    };
                    ApiError::Conflict {
                        message,
                        group: rt.group.clone(),
                        plural: rt.plural.clone(),
                        name: t.name().to_string(),
                        causes,
                    }
                })?;
            Ok((out.object, Tracking::Apply))
        },
        true,
    )?;
    Ok(json_response(code, &obj))
}

fn scale_paths(t: &Target) -> Result<&crate::resources::ScalePaths, ApiError> {
    t.rt.scale.as_ref().ok_or(ApiError::NoRoute)
}

fn dotted(path: &str) -> String {
    path.split('.').filter(|s| !s.is_empty()).map(|s| format!("/{s}")).collect()
}

fn scale_of(sim: &Sim, t: &Target) -> Result<Value, ApiError> {
    let paths = scale_paths(t)?;
    let obj = sim.store.get(&t.rt.qualified(), t.ns(), t.name()).ok_or_else(|| ApiError::not_found(&t.rt, t.name()))?;
    let spec = obj.pointer(&dotted(&paths.spec_replicas)).and_then(Value::as_i64).unwrap_or(0);
    let status = obj.pointer(&dotted(&paths.status_replicas)).and_then(Value::as_i64).unwrap_or(0);
    let selector = paths.label_selector.as_deref().and_then(|p| obj.pointer(&dotted(p))).map(|s| match s {
        Value::String(s) => s.clone(),
        o => LabelSelector::from_object(o).to_query(),
    });
    let mut status_doc = json!({"replicas": status});
    if let Some(s) = selector {
        status_doc["selector"] = json!(s);
    }
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": spec},
        "status": status_doc,
    }))
}

fn get_scale(sim: &Sim, t: &Target) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &scale_of(sim, t)?))
}

fn set_scale(
    sim: &Sim,
    t: &Target,
    q: &Query,
    headers: &HeaderMap,
    replicas: i64,
    rv: Option<String>,
) -> Result<Response, ApiError> {
    let paths = scale_paths(t)?.clone();
    let manager = manager_of(q, headers);
    let rt = t.rt.clone();
    let main = Target { sub: None, ..t.clone() };
    commit(
        sim,
        &main,
        q,
        |cur| {
            let cur = cur.expect("exists");
            if let Some(rv) = &rv
                && Some(rv.as_str()) != rv_of(cur)
            {
                return Err(ApiError::stale(&rt, t.name()));
            }
            let mut new = cur.clone();
            let p = dotted(&paths.spec_replicas);
            set_pointer(&mut new, &p, json!(replicas));
            Ok((new, Tracking::Update(manager)))
        },
        false,
    )?;
    get_scale(sim, t)
}

/// Sets a value at a JSON pointer, creating objects on the way.
pub fn set_pointer(obj: &mut Value, pointer: &str, v: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = pointer.split('/').filter(|s| !s.is_empty()).collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let m = cur.as_object_mut().expect("object");
        if i == parts.len() - 1 {
            m.insert(p.to_string(), v);
            return;
        }
        cur = m.entry(p.to_string()).or_insert_with(|| json!({}));
    }
}

fn delete_options(q: &Query, body: &[u8]) -> Value {
    let mut opts: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    if let Some(p) = q.get("propagationPolicy") {
        opts["propagationPolicy"] = json!(p);
    }
    if let Some(g) = q.get("gracePeriodSeconds") {
        opts["gracePeriodSeconds"] = json!(g.parse::<i64>().unwrap_or(0));
    }
    opts
}

/// Deletes one object: objects with finalizers (including the garbage
/// collector's `orphan` / `foregroundDeletion` ones that `propagationPolicy`
/// adds) get a deletionTimestamp and stay until their finalizers are gone;
/// namespaces are emptied by the garbage collector first. Pods are removed at
/// once unless the kubelet runs them.
pub fn delete_object(sim: &Sim, t: &Target, q: &Query, body: &[u8]) -> Result<Value, ApiError> {
    let opts = delete_options(q, body);
    let policy = opts.get("propagationPolicy").and_then(Value::as_str).map(str::to_string);
    let dry = dry_run(q);
    let rt = t.rt.clone();
    let mut result = Value::Null;
    let stored = sim.store.update(&rt.qualified(), t.ns(), t.name(), |cur| {
        let cur = cur.ok_or_else(|| ApiError::not_found(&rt, t.name()))?;
        if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str)
            && Some(uid) != meta_str(cur, "uid")
        {
            return Err(ApiError::Conflict {
                message: format!(
                    "Operation cannot be fulfilled on {} \"{}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    rt.qualified(),
                    t.name(),
                    meta_str(cur, "uid").unwrap_or_default()
                ),
                group: rt.group.clone(),
                plural: rt.plural.clone(),
                name: t.name().to_string(),
                causes: vec![],
            });
        }
        if let Some(rv) = opts.pointer("/preconditions/resourceVersion").and_then(Value::as_str)
            && Some(rv) != rv_of(cur)
        {
            return Err(ApiError::stale(&rt, t.name()));
        }
        let mut obj = cur.clone();
        let mut finalizers: Vec<Value> = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let gc_finalizer = match policy.as_deref() {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            _ => None,
        };
        if let Some(f) = gc_finalizer
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(json!(f));
        }
        let graceful = rt.kind == "Namespace" || (rt.kind == "Pod" && rt.group.is_empty() && sim.graceful_pods());
        if finalizers.is_empty() && !graceful {
            result = obj;
            return Ok(if dry { Op::Keep } else { Op::Remove });
        }
        if obj.pointer("/metadata/deletionTimestamp").is_some() && gc_finalizer.is_none() {
            result = obj;
            return Ok(Op::Keep);
        }
        let m = meta_mut(&mut obj);
        m.entry("deletionTimestamp").or_insert_with(|| json!(now()));
        let grace = opts.get("gracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        if !finalizers.is_empty() {
            m.insert("finalizers".into(), json!(finalizers));
        }
        if rt.kind == "Namespace" {
            set_pointer(&mut obj, "/status/phase", json!("Terminating"));
        }
        result = obj.clone();
        Ok(if dry { Op::Keep } else { Op::Put(obj) })
    })?;
    if let Some(stored) = stored {
        result = stored;
    }
    crate::admission::after_delete(sim, t, &result);
    Ok(with_type(&rt, &t.version, result))
}

fn delete(sim: &Sim, t: &Target, q: &Query, body: &[u8]) -> Result<Response, ApiError> {
    let obj = delete_object(sim, t, q, body)?;
    let code = if obj.pointer("/metadata/deletionTimestamp").is_some() { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok(json_response(code, &obj))
}

fn delete_collection(sim: &Sim, t: &Target, q: &Query, body: &[u8]) -> Result<Response, ApiError> {
    let (items, rv) = current(sim, t, q)?;
    let mut deleted = Vec::new();
    for item in items {
        let mut one = t.clone();
        one.name = meta_str(&item, "name").map(str::to_string);
        one.namespace = meta_str(&item, "namespace").map(str::to_string);
        match delete_object(sim, &one, q, body) {
            Ok(o) => deleted.push(o),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", t.rt.kind),
            "apiVersion": t.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
            "items": deleted,
        }),
    ))
}

/// The simulator's own clients (controllers, kubelet) write through the same
/// pipeline as API requests, as the named field manager.
pub mod internal {
    use super::*;

    fn target(
        sim: &Sim,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        sub: Option<&str>,
    ) -> Result<Target, ApiError> {
        let rt =
            sim.registry.all().into_iter().find(|t| t.group == group && t.plural == plural).ok_or(ApiError::NoRoute)?;
        Ok(Target {
            version: rt.versions[0].clone(),
            namespace: rt.namespaced.then(|| ns.to_string()),
            name: Some(name.to_string()),
            sub: sub.map(str::to_string),
            rt,
        })
    }

    /// Creates an object (409 when it exists).
    pub fn create(
        sim: &Sim,
        group: &str,
        plural: &str,
        ns: &str,
        obj: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let t = target(sim, group, plural, ns, &name, None)?;
        check_namespace(sim, &t)?;
        crate::admission::check_quota(sim, &t)?;
        let rt = t.rt.clone();
        commit(
            sim,
            &t,
            &Query::new(),
            |cur| {
                if cur.is_some() {
                    return Err(ApiError::already_exists(&rt, &name));
                }
                Ok((obj, Tracking::Update(manager.to_string())))
            },
            true,
        )
        .map(|(_, o)| o)
    }

    /// Rewrites an existing object (or its status with `sub = Some("status")`)
    /// with `f`; a rewrite that changes nothing is not stored.
    #[allow(
        clippy::too_many_arguments,
        reason = "the coordinates of an object and of the write, as the API names them"
    )]
    pub fn modify(
        sim: &Sim,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        manager: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let t = target(sim, group, plural, ns, name, sub)?;
        commit(
            sim,
            &t,
            &Query::new(),
            |cur| {
                let mut obj = cur.expect("exists").clone();
                f(&mut obj);
                Ok((obj, Tracking::Update(manager.to_string())))
            },
            false,
        )
        .map(|(_, o)| o)
    }

    /// Deletes an object as a client would (finalizers, graceful pods).
    pub fn delete(sim: &Sim, group: &str, plural: &str, ns: &str, name: &str) -> Result<Value, ApiError> {
        let t = target(sim, group, plural, ns, name, None)?;
        delete_object(sim, &t, &Query::new(), b"")
    }
}
