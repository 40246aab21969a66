//! Field ownership for server-side apply: field sets, `managedFields`, the
//! apply merge and its conflicts.
//!
//! A field set is a set of paths. A path is a list of elements: an object
//! field, a keyed item of an associative list (`k:{"name":"x"}`), or a value
//! of a set-list (`v:"x"`). Leaves are owned; a keyed item's own path is in the
//! set too (the real `"."` entry). The set is stored in `managedFields` in the
//! real `FieldsV1` encoding, so `kubectl get --show-managed-fields` reads
//! naturally. What is simplified (see the README): list types of built-in kinds
//! come from a small table of merge keys instead of the Go types, and versions
//! are not converted (one version per group here).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathEl {
    /// An object field.
    Field(String),
    /// An associative-list item, by its key fields (canonical JSON).
    Key(String),
    /// A set-list value (canonical JSON).
    Value(String),
}

/// A path from the object root.
pub type FieldPath = Vec<PathEl>;
/// A set of owned paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list merges.
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    /// Replaced whole; owned as one leaf.
    Atomic,
    /// Items merged by these key fields.
    Map(Vec<String>),
    /// Scalars merged as a set.
    Set,
}

/// Where list types come from: the CRD's schema, or (for built-in kinds) a
/// table of the merge keys the Kubernetes types declare.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    node: Option<&'a Value>,
    crd: bool,
}

impl<'a> Schema<'a> {
    /// For a built-in kind (no schema: merge keys from the table).
    pub fn builtin() -> Self {
        Schema { node: None, crd: false }
    }

    /// For a custom resource with this `openAPIV3Schema`.
    pub fn crd(root: Option<&'a Value>) -> Self {
        Schema { node: root, crd: root.is_some() }
    }

    fn field(self, name: &str, under_metadata: bool) -> Schema<'a> {
        if under_metadata {
            return Schema::builtin();
        }
        let node = self.node.and_then(|n| {
            n.get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
        });
        Schema { node, crd: self.crd && node.is_some() }
    }

    fn items(self) -> Schema<'a> {
        let node = self.node.and_then(|n| n.get("items"));
        Schema { node, crd: self.crd && node.is_some() }
    }

    fn list_type(self, field: &str, items: &[Value]) -> ListType {
        if self.crd {
            let n = self.node.expect("crd schema node");
            return match n.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("map") => ListType::Map(
                    n.get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                ),
                Some("set") => ListType::Set,
                _ => ListType::Atomic,
            };
        }
        builtin_list_type(field, items)
    }
}

/// The list type of a built-in kind's list field (from the merge keys the
/// Kubernetes types declare for the common fields).
pub fn builtin_list_type_pub(field: &str, items: &[Value]) -> ListType {
    builtin_list_type(field, items)
}

fn builtin_list_type(field: &str, items: &[Value]) -> ListType {
    let all_have = |k: &str| !items.is_empty() && items.iter().all(|i| i.get(k).is_some());
    let keys: &[&str] = match field {
        "finalizers" => return ListType::Set,
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => &["name"],
        "ports" if all_have("containerPort") => &["containerPort", "protocol"],
        "ports" if all_have("port") => &["port", "protocol"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "hostAliases" => &["ip"],
        "managedFields" => return ListType::Atomic,
        _ => return ListType::Atomic,
    };
    // A key field missing from every item (`protocol` defaulted) is dropped.
    let keys: Vec<String> = keys
        .iter()
        .enumerate()
        .filter(|(i, k)| *i == 0 || items.iter().any(|it| it.get(**k).is_some()))
        .map(|(_, k)| k.to_string())
        .collect();
    if items.iter().all(|i| i.is_object() && i.get(&keys[0]).is_some()) {
        ListType::Map(keys)
    } else {
        ListType::Atomic
    }
}

/// Canonical JSON with sorted keys (independent of serde_json's map order).
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k]))).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        _ => v.to_string(),
    }
}

fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    canonical(&Value::Object(m))
}

/// Metadata fields that nobody owns.
const SYSTEM_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The paths an object (an applied configuration or a live object) sets.
pub fn field_set(obj: &Value, schema: Schema<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" {
                continue;
            }
            if k == "metadata" {
                if let Some(meta) = v.as_object() {
                    for (mk, mv) in meta {
                        if SYSTEM_META.contains(&mk.as_str()) {
                            continue;
                        }
                        let p = vec![PathEl::Field("metadata".into()), PathEl::Field(mk.clone())];
                        walk(mv, mk, p, Schema::builtin(), &mut out);
                    }
                }
                continue;
            }
            walk(v, k, vec![PathEl::Field(k.clone())], schema.field(k, false), &mut out);
        }
    }
    out
}

fn walk(v: &Value, name: &str, path: FieldPath, schema: Schema<'_>, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(PathEl::Field(k.clone()));
                walk(child, k, p, schema.field(k, false), out);
            }
        }
        Value::Array(items) => match schema.list_type(name, items) {
            ListType::Map(keys) => {
                for item in items {
                    let mut p = path.clone();
                    p.push(PathEl::Key(item_key(item, &keys)));
                    out.insert(p.clone());
                    if let Some(m) = item.as_object() {
                        for (k, child) in m {
                            let mut cp = p.clone();
                            cp.push(PathEl::Field(k.clone()));
                            walk(child, k, cp, schema.items().field(k, false), out);
                        }
                    }
                }
                if items.is_empty() {
                    out.insert(path);
                }
            }
            ListType::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(PathEl::Value(canonical(item)));
                    out.insert(p);
                }
                if items.is_empty() {
                    out.insert(path);
                }
            }
            ListType::Atomic => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

/// The value at a path.
pub fn get_at<'a>(obj: &'a Value, path: &[PathEl]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = match el {
            PathEl::Field(f) => cur.get(f)?,
            PathEl::Key(k) => {
                let key: Value = serde_json::from_str(k).ok()?;
                let km = key.as_object()?;
                cur.as_array()?.iter().find(|it| km.iter().all(|(kk, kv)| it.get(kk) == Some(kv)))?
            }
            PathEl::Value(v) => {
                let val: Value = serde_json::from_str(v).ok()?;
                cur.as_array()?.iter().find(|it| **it == val)?
            }
        };
    }
    Some(cur)
}

/// Removes the value at a path (a field, a keyed item or a set value).
pub fn remove_at(obj: &mut Value, path: &[PathEl]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parent_path {
        let next = match el {
            PathEl::Field(f) => cur.get_mut(f),
            PathEl::Key(k) => {
                let Ok(key) = serde_json::from_str::<Value>(k) else {
                    return;
                };
                let Some(km) = key.as_object().cloned() else {
                    return;
                };
                cur.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|it| km.iter().all(|(kk, kv)| it.get(kk) == Some(kv))))
            }
            PathEl::Value(_) => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        PathEl::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        PathEl::Key(k) => {
            if let (Ok(Value::Object(km)), Some(a)) = (serde_json::from_str::<Value>(k), cur.as_array_mut()) {
                a.retain(|it| !km.iter().all(|(kk, kv)| it.get(kk) == Some(kv)));
            }
        }
        PathEl::Value(v) => {
            if let (Ok(val), Some(a)) = (serde_json::from_str::<Value>(v), cur.as_array_mut()) {
                a.retain(|it| *it != val);
            }
        }
    }
}

/// Merges an applied configuration into a live object: objects merge field by
/// field, associative lists by key, sets by value, everything else is replaced.
pub fn merge(live: &mut Value, applied: &Value, name: &str, schema: Schema<'_>) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                let under_meta = name == "metadata";
                let child_schema = if under_meta { Schema::builtin() } else { schema.field(k, false) };
                match l.get_mut(k) {
                    Some(lv) if !av.is_null() => merge(lv, av, k, child_schema),
                    _ => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match schema.list_type(name, a) {
            ListType::Map(keys) => {
                for item in a {
                    let key = item_key(item, &keys);
                    match l.iter_mut().find(|it| item_key(it, &keys) == key) {
                        Some(li) => merge(li, item, "", schema.items()),
                        None => l.push(item.clone()),
                    }
                }
            }
            ListType::Set => {
                for item in a {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListType::Atomic => *l = a.clone(),
        },
        (l, a) => *l = a.clone(),
    }
}

/// Encodes a field set in the `FieldsV1` format.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for el in path {
            let k = match el {
                PathEl::Field(f) => format!("f:{f}"),
                PathEl::Key(k) => format!("k:{k}"),
                PathEl::Value(v) => format!("v:{v}"),
            };
            node = node
                .entry(k)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("fields node is an object");
        }
        if matches!(path.last(), Some(PathEl::Key(_))) {
            node.insert(".".into(), json!({}));
        }
    }
    Value::Object(root)
}

/// Decodes `FieldsV1`.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn rec(node: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = node.as_object() else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            let el = if let Some(f) = k.strip_prefix("f:") {
                PathEl::Field(f.to_string())
            } else if let Some(f) = k.strip_prefix("k:") {
                PathEl::Key(f.to_string())
            } else if let Some(f) = k.strip_prefix("v:") {
                PathEl::Value(f.to_string())
            } else {
                continue;
            };
            path.push(el);
            rec(child, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    rec(v, &mut Vec::new(), &mut out);
    out
}

/// A path as the real server prints it in conflicts: `.spec.replicas`,
/// `.spec.containers[name="w"].image`.
pub fn display_path(path: &[PathEl]) -> String {
    let mut s = String::new();
    for el in path {
        match el {
            PathEl::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            PathEl::Key(k) => {
                let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
                let parts: Vec<String> =
                    key.as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect()).unwrap_or_default();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            PathEl::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Managed {
    /// The field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `status` or empty.
    pub subresource: String,
    /// apiVersion the fields were set through.
    pub api_version: String,
    /// When.
    pub time: String,
    /// What it owns.
    pub fields: FieldSet,
}

/// Reads an object's `managedFields`.
pub fn read_managed(obj: &Value) -> Vec<Managed> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| Managed {
                    manager: e.get("manager").and_then(Value::as_str).unwrap_or_default().into(),
                    operation: e.get("operation").and_then(Value::as_str).unwrap_or_default().into(),
                    subresource: e.get("subresource").and_then(Value::as_str).unwrap_or_default().into(),
                    api_version: e.get("apiVersion").and_then(Value::as_str).unwrap_or_default().into(),
                    time: e.get("time").and_then(Value::as_str).unwrap_or_default().into(),
                    fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `managedFields` (entries owning nothing are dropped).
pub fn write_managed(obj: &mut Value, managed: &[Managed]) {
    let entries: Vec<Value> = managed
        .iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut e = json!({
                "manager": m.manager,
                "operation": m.operation,
                "apiVersion": m.api_version,
                "time": m.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&m.fields),
            });
            if !m.subresource.is_empty() {
                e["subresource"] = json!(m.subresource);
            }
            e
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// A field owned by another manager that an apply would change.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// Its apiVersion.
    pub api_version: String,
    /// The field.
    pub path: FieldPath,
}

/// The outcome of an apply on the object (before it is stored).
pub struct Applied {
    /// The merged object with its new managedFields.
    pub object: Value,
}

/// Which part of the object a request may touch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// Everything (for kinds without a status subresource).
    Whole,
    /// Everything but `.status` (main resource of a kind with a status subresource).
    Main,
    /// Only `.status`.
    Status,
}

impl Scope {
    /// Whether a path is inside this scope.
    pub fn contains(self, path: &[PathEl]) -> bool {
        let is_status = path.first() == Some(&PathEl::Field("status".into()));
        match self {
            Scope::Whole => true,
            Scope::Main => !is_status,
            Scope::Status => is_status,
        }
    }

    /// The managedFields subresource name.
    pub fn subresource(self) -> &'static str {
        if self == Scope::Status { "status" } else { "" }
    }
}

/// Server-side apply of `applied` by `manager` onto `live` (None: a create).
/// Returns the conflicts when there are some and `force` is off.
#[allow(clippy::too_many_arguments, reason = "the inputs of one server-side apply, as the API names them")]
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
    scope: Scope,
    schema: Schema<'_>,
    now: &str,
) -> Result<Applied, Vec<Conflict>> {
    let new_set: FieldSet = field_set(applied, schema).into_iter().filter(|p| scope.contains(p)).collect();
    let mut managed = live.map(read_managed).unwrap_or_default();
    let sub = scope.subresource();
    let mut conflicts = Vec::new();
    let base = live.cloned().unwrap_or_else(|| json!({}));
    for m in managed.iter_mut() {
        if m.manager == manager && m.operation == "Apply" {
            continue;
        }
        let mut lost = Vec::new();
        for p in m.fields.intersection(&new_set) {
            if matches!(p.last(), Some(PathEl::Key(_))) {
                continue;
            }
            if get_at(applied, p) != get_at(&base, p) {
                lost.push(p.clone());
            }
        }
        if !force {
            conflicts.extend(lost.iter().map(|p| Conflict {
                manager: m.manager.clone(),
                api_version: m.api_version.clone(),
                path: p.clone(),
            }));
        } else {
            for p in lost {
                m.fields.remove(&p);
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let old_set = managed
        .iter()
        .find(|m| m.manager == manager && m.operation == "Apply" && m.subresource == sub)
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let mut object = base;
    // Fields this manager applied before and no longer does, and that nobody
    // else owns, are removed (deepest first, so items go after their fields).
    let others: Vec<&FieldSet> = managed
        .iter()
        .filter(|m| !(m.manager == manager && m.operation == "Apply" && m.subresource == sub))
        .map(|m| &m.fields)
        .collect();
    let mut dropped: Vec<&FieldPath> = old_set
        .iter()
        .filter(|p| !new_set.contains(*p))
        .filter(|p| !others.iter().any(|o| o.iter().any(|q| q.starts_with(p))))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        remove_at(&mut object, p);
    }
    let mut to_merge = applied.clone();
    if let Some(m) = to_merge.as_object_mut() {
        match scope {
            Scope::Main => {
                m.remove("status");
            }
            Scope::Status => {
                let status = m.remove("status");
                m.retain(|k, _| k == "apiVersion" || k == "kind" || k == "metadata");
                if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.retain(|k, _| k == "name" || k == "namespace");
                }
                if let Some(s) = status {
                    m.insert("status".into(), s);
                }
            }
            Scope::Whole => {}
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in ["resourceVersion", "uid", "generation", "creationTimestamp", "managedFields"] {
                meta.remove(k);
            }
        }
    }
    merge(&mut object, &to_merge, "", schema);
    managed.retain(|m| !(m.manager == manager && m.operation == "Apply" && m.subresource == sub));
    let entry = Managed {
        manager: manager.to_string(),
        operation: "Apply".into(),
        subresource: sub.into(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        fields: new_set,
    };
    // Keep the manager's place in the list (the real server appends new ones).
    managed.push(entry);
    write_managed(&mut object, &managed);
    Ok(Applied { object })
}

/// Records the fields an update (PUT, non-apply PATCH) changed as owned by
/// `manager`, taking them from other managers; fields it removed are owned by
/// nobody anymore.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    scope: Scope,
    schema: Schema<'_>,
    now: &str,
) {
    let mut managed = old.map(read_managed).unwrap_or_default();
    let empty = json!({});
    let old_obj = old.unwrap_or(&empty);
    let new_set = field_set(new, schema);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| scope.contains(p))
        .filter(|p| {
            get_at(old_obj, p) != get_at(new, p)
                || matches!(p.last(), Some(PathEl::Key(_))) && get_at(old_obj, p).is_none()
        })
        .cloned()
        .collect();
    for m in managed.iter_mut() {
        m.fields.retain(|p| !changed.contains(p) && (new_set.contains(p) || !scope.contains(p)));
    }
    let sub = scope.subresource();
    if !changed.is_empty() {
        match managed.iter_mut().find(|m| m.manager == manager && m.operation == "Update" && m.subresource == sub) {
            Some(m) => {
                m.fields.extend(changed);
                m.time = now.to_string();
                m.api_version = api_version.to_string();
            }
            None => managed.push(Managed {
                manager: manager.to_string(),
                operation: "Update".into(),
                subresource: sub.into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                fields: changed,
            }),
        }
    }
    write_managed(new, &managed);
}

/// An object with the managedFields times blanked, to tell no-op writes.
pub fn without_times(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(Value::Array(a)) = o.pointer_mut("/metadata/managedFields") {
        for e in a {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"a": "b"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}
        })
    }

    #[test]
    fn fields_v1_round_trips_with_keyed_items() {
        let set = field_set(&dep(1, "x"), Schema::builtin());
        let v1 = to_fields_v1(&set);
        assert!(v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["."].is_object());
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_by_another_manager_conflicts_unless_forced() {
        let first =
            apply(None, &dep(1, "x"), "a", "apps/v1", false, Scope::Main, Schema::builtin(), "t").unwrap().object;
        let err = apply(Some(&first), &dep(2, "x"), "b", "apps/v1", false, Scope::Main, Schema::builtin(), "t")
            .err()
            .unwrap();
        assert_eq!(err.len(), 1);
        assert_eq!(display_path(&err[0].path), ".spec.replicas");
        let forced = apply(Some(&first), &dep(2, "x"), "b", "apps/v1", true, Scope::Main, Schema::builtin(), "t")
            .unwrap()
            .object;
        assert_eq!(forced["spec"]["replicas"], 2);
        let managed = read_managed(&forced);
        let a = managed.iter().find(|m| m.manager == "a").unwrap();
        assert!(!a.fields.contains(&vec![PathEl::Field("spec".into()), PathEl::Field("replicas".into())]));
    }

    #[test]
    fn same_value_from_two_managers_is_shared_not_a_conflict() {
        let first =
            apply(None, &dep(1, "x"), "a", "apps/v1", false, Scope::Main, Schema::builtin(), "t").unwrap().object;
        let both = apply(Some(&first), &dep(1, "x"), "b", "apps/v1", false, Scope::Main, Schema::builtin(), "t")
            .unwrap()
            .object;
        assert_eq!(read_managed(&both).len(), 2);
    }

    #[test]
    fn a_field_dropped_from_the_applied_config_is_removed() {
        let first =
            apply(None, &dep(1, "x"), "a", "apps/v1", false, Scope::Main, Schema::builtin(), "t").unwrap().object;
        let mut cfg = dep(1, "x");
        cfg["metadata"].as_object_mut().unwrap().remove("labels");
        let second =
            apply(Some(&first), &cfg, "a", "apps/v1", false, Scope::Main, Schema::builtin(), "t").unwrap().object;
        assert!(second["metadata"].get("labels").is_none_or(|l| l.get("a").is_none()));
        assert_eq!(second["spec"]["template"]["spec"]["containers"][0]["image"], "x");
    }

    #[test]
    fn keyed_list_items_merge_by_name() {
        let mut live = dep(1, "x");
        let add = json!({"spec": {"template": {"spec": {"containers": [{"name": "d", "image": "y"}]}}}});
        merge(&mut live, &add, "", Schema::builtin());
        assert_eq!(live["spec"]["template"]["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn crd_list_types_follow_the_schema() {
        let schema = json!({"properties": {"spec": {"properties": {
            "xs": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}},
            "ys": {"type": "array", "items": {"type": "object"}}
        }}}});
        let obj = json!({"spec": {"xs": [{"name": "a", "v": 1}], "ys": [{"name": "a"}]}});
        let set = field_set(&obj, Schema::crd(Some(&schema)));
        assert!(set.contains(&vec![PathEl::Field("spec".into()), PathEl::Field("ys".into())]));
        assert!(set.contains(&vec![
            PathEl::Field("spec".into()),
            PathEl::Field("xs".into()),
            PathEl::Key("{\"name\":\"a\"}".into()),
            PathEl::Field("v".into())
        ]));
    }
}
