//! Custom resources against their CRD's structural schema: defaults applied,
//! unknown fields pruned, types / enums / bounds / required fields checked,
//! and `x-kubernetes-validations` CEL rules evaluated (see `cel.rs`), each
//! failure reported as the real server words it in a 422 Invalid Status.

use serde_json::{Value, json};

use crate::api::Target;
use crate::error::{ApiError, Cause};

/// Defaults, prunes and validates a custom resource in place.
pub fn validate(t: &Target, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    let Some(schema) = t.rt.crd.as_ref().and_then(|v| v.get(&t.version)).and_then(|v| v.schema.clone()) else {
        return Ok(());
    };
    default_and_prune(&schema, obj, true);
    let mut causes = Vec::new();
    check(&schema, obj, old, "", &mut causes, true);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&t.rt, t.name.as_deref().unwrap_or_default(), causes))
    }
}

fn preserves_unknown(s: &Value) -> bool {
    s.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
}

/// Applies `default`s of absent properties and removes fields the schema does
/// not declare (unless it preserves unknown fields).
pub fn default_and_prune(schema: &Value, v: &mut Value, root: bool) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (k, ps) in props {
                    if !m.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown =
                preserves_unknown(schema) || schema.get("additionalProperties").and_then(Value::as_bool) == Some(true);
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if root && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k)).or(additional);
                match child_schema {
                    Some(cs) => {
                        if let Some(child) = m.get_mut(&k) {
                            default_and_prune(cs, child, false);
                        }
                    }
                    None if !keep_unknown => {
                        m.remove(&k);
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for i in items {
                    default_and_prune(is, i, false);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn invalid(path: &str, v: &Value, msg: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {msg}", shown(v)),
        field: path.to_string(),
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() { k.to_string() } else { format!("{path}.{k}") }
}

fn check(schema: &Value, v: &Value, old: Option<&Value>, path: &str, causes: &mut Vec<Cause>, root: bool) {
    let body_path = if path.is_empty() { "body".to_string() } else { path.to_string() };
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) && schema.get("type").is_some() {
            let ty = schema["type"].as_str().unwrap_or_default();
            causes.push(invalid(path, &json!("null"), format!("{body_path} in body must be of type {ty}: \"null\"")));
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true);
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let got = type_name(v);
        let ok =
            got == ty || (ty == "number" && got == "integer") || int_or_string && (got == "integer" || got == "string");
        if !ok {
            causes.push(invalid(path, v, format!("{body_path} in body must be of type {ty}: \"{got}\"")));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!("Unsupported value: {}: supported values: {}", v, list.join(", ")),
            field: path.to_string(),
        });
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            causes.push(invalid(path, v, format!("{body_path} in body should be greater than or equal to {min}")));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            causes.push(invalid(path, v, format!("{body_path} in body should be less than or equal to {max}")));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            causes.push(invalid(path, v, format!("{body_path} in body should be at least {min} chars long")));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            causes.push(Cause {
                reason: "FieldValueTooLong".into(),
                message: format!("Too long: may not be more than {max} bytes"),
                field: path.to_string(),
            });
        }
        if let Some(p) = schema.get("pattern").and_then(Value::as_str)
            && let Ok(re) = regex::Regex::new(p)
            && !re.is_match(s)
        {
            causes.push(invalid(path, v, format!("{body_path} in body should match '{p}'")));
        }
    }
    match v {
        Value::Object(m) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !m.contains_key(r) {
                        causes.push(Cause {
                            reason: "FieldValueRequired".into(),
                            message: "Required value".into(),
                            field: join(path, r),
                        });
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in m {
                if root && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    let old_child = old.and_then(|o| o.get(k));
                    check(cs, child, old_child, &join(path, k), causes, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                causes.push(invalid(path, v, format!("{body_path} in body should have at least {min} items")));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooMany".into(),
                    message: format!("Too many: {}: must have at most {max} items", items.len()),
                    field: path.to_string(),
                });
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    // Old items are matched by position (correlation by key is not simulated).
                    let old_item = old.and_then(|o| o.get(i));
                    check(is, item, old_item, &format!("{path}[{i}]"), causes, false);
                }
            }
        }
        _ => {}
    }
    if let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array) {
        for rule in rules {
            if let Some(c) = crate::cel::check_rule(rule, v, old, path) {
                causes.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        })
    }

    #[test]
    fn defaults_fill_and_unknown_fields_are_pruned() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"size": 1, "junk": 1, "free": {"any": 1}}});
        default_and_prune(&schema(), &mut o, true);
        assert_eq!(o["spec"]["mode"], "a");
        assert!(o["spec"].get("junk").is_none());
        assert_eq!(o["spec"]["free"]["any"], 1);
        assert_eq!(o["metadata"]["name"], "n");
    }

    #[test]
    fn bounds_enums_and_required_fields_are_reported_per_field() {
        let o = json!({"spec": {"size": 0, "mode": "c"}});
        let mut causes = Vec::new();
        check(&schema(), &o, None, "", &mut causes, true);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.mode", "spec.size"]);
        assert!(causes[1].message.contains("should be greater than or equal to 1"));
        let mut causes = Vec::new();
        check(&schema(), &json!({"spec": {}}), None, "", &mut causes, true);
        assert_eq!(causes[0].field, "spec.size");
        assert_eq!(causes[0].message, "Required value");
    }
}
