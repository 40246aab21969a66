//! JSON patch, JSON merge patch and an approximation of strategic merge patch.

use serde_json::Value;

use crate::error::ApiError;
use crate::fields::{ListType, canonical};

/// Which patch a `Content-Type` names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatchKind {
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

impl PatchKind {
    /// From the request's content type.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let ct = ct.split(';').next().unwrap_or_default().trim();
        match ct {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            _ => Err(ApiError::UnsupportedMediaType),
        }
    }
}

/// Applies a JSON or merge patch to `target`.
pub fn apply_patch(kind: PatchKind, target: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
            json_patch::patch(target, &p).map_err(|e| ApiError::Invalid {
                kind_group: String::new(),
                kind: String::new(),
                group: String::new(),
                name: String::new(),
                summary: e.to_string(),
                causes: vec![],
            })
        }
        PatchKind::Merge => {
            json_patch::merge(target, &patch);
            Ok(())
        }
        PatchKind::Strategic => {
            strategic(target, &patch, "");
            Ok(())
        }
        PatchKind::Apply => Err(ApiError::Internal("apply is not a plain patch".into())),
    }
}

/// Strategic merge patch, approximated: a JSON merge patch, except that lists
/// the Kubernetes types declare as merged by a key (containers, env, ports,
/// volumes, volumeMounts, conditions, ...; see `fields::builtin_list_type`) are
/// merged item by item, `$patch: delete` items are removed, `$patch: replace`
/// replaces, and the other directives (`$setElementOrder`, `$retainKeys`,
/// `$deleteFromPrimitiveList`) are ignored.
pub fn strategic(target: &mut Value, patch: &Value, name: &str) {
    match patch {
        Value::Object(p) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut v = patch.clone();
                if let Some(m) = v.as_object_mut() {
                    m.remove("$patch");
                }
                *target = v;
                return;
            }
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let t = target.as_object_mut().expect("made an object");
            for (k, v) in p {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(tv) if v.is_object() || v.is_array() => strategic(tv, v, k),
                    _ => {
                        let mut clean = v.clone();
                        strip_directives(&mut clean);
                        t.insert(k.clone(), clean);
                    }
                }
            }
        }
        Value::Array(items) => {
            let Some(t) = target.as_array_mut() else {
                *target = patch.clone();
                strip_directives(target);
                return;
            };
            let live_items: Vec<Value> = t.clone();
            let probe: Vec<Value> = items.iter().chain(live_items.iter()).cloned().collect();
            match crate::fields::builtin_list_type_pub(name, &probe) {
                ListType::Map(keys) => {
                    for item in items {
                        let key_of = |v: &Value| {
                            canonical(&Value::Object(
                                keys.iter().filter_map(|k| v.get(k).map(|x| (k.clone(), x.clone()))).collect(),
                            ))
                        };
                        let key = key_of(item);
                        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                        let pos = t.iter().position(|it| key_of(it) == key);
                        match (pos, delete) {
                            (Some(i), true) => {
                                t.remove(i);
                            }
                            (None, true) => {}
                            (Some(i), false) => strategic(&mut t[i], item, ""),
                            (None, false) => {
                                let mut clean = item.clone();
                                strip_directives(&mut clean);
                                t.push(clean);
                            }
                        }
                    }
                }
                ListType::Set => {
                    for item in items {
                        if !t.contains(item) {
                            t.push(item.clone());
                        }
                    }
                }
                ListType::Atomic => {
                    *t = items.clone();
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            for (_, c) in m.iter_mut() {
                strip_directives(c);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name_and_deletes_with_directive() {
        let mut t = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let p = json!({"spec": {"containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}]}});
        strategic(&mut t, &p, "");
        assert_eq!(t, json!({"spec": {"containers": [{"name": "a", "image": "z"}]}}));
    }

    #[test]
    fn strategic_null_removes_a_field_and_atomic_lists_replace() {
        let mut t = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"args": ["x", "y"]}});
        strategic(&mut t, &json!({"metadata": {"labels": {"a": null}}, "spec": {"args": ["z"]}}), "");
        assert_eq!(t, json!({"metadata": {"labels": {"b": "2"}}, "spec": {"args": ["z"]}}));
    }

    #[test]
    fn json_patch_test_op_failure_is_refused() {
        let mut t = json!({"a": 1});
        let body = br#"[{"op":"test","path":"/a","value":2},{"op":"replace","path":"/a","value":3}]"#;
        assert!(apply_patch(PatchKind::Json, &mut t, body).is_err());
        assert_eq!(t, json!({"a": 1}));
    }
}
