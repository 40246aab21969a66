//! `x-kubernetes-validations` rules, evaluated with the `cel` crate: `self` is
//! the value at the rule's node, `oldSelf` the stored value at the same place
//! (rules that mention `oldSelf` are transition rules and are skipped on
//! create, as the real server does). Kubernetes' own CEL libraries beyond the
//! CEL standard library (`quantity()`, `url()`, `format` ...) are not
//! available; a rule that uses one fails with the evaluation error.

use serde_json::Value;

use crate::error::Cause;

fn shown(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

/// Evaluates one rule; `Some(cause)` when it does not hold.
pub fn check_rule(rule: &Value, v: &Value, old: Option<&Value>, path: &str) -> Option<Cause> {
    let src = rule.get("rule").and_then(Value::as_str)?;
    let transition = src.contains("oldSelf");
    if transition && old.is_none() {
        return None;
    }
    let message = rule
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("failed rule: {src}"));
    let field = match rule.get("fieldPath").and_then(Value::as_str) {
        Some(fp) if path.is_empty() => fp.trim_start_matches('.').to_string(),
        Some(fp) => format!("{path}{fp}"),
        None => path.to_string(),
    };
    let reason = rule.get("reason").and_then(Value::as_str).unwrap_or("FieldValueInvalid").to_string();
    let fail = |msg: String| Cause {
        reason: reason.clone(),
        message: format!("Invalid value: {}: {msg}", shown(v)),
        field: field.clone(),
    };
    let program = match cel::Program::compile(src) {
        Ok(p) => p,
        Err(e) => return Some(fail(format!("compilation failed: {e}"))),
    };
    let mut ctx = cel::Context::default();
    match cel::to_value(v) {
        Ok(val) => ctx.add_variable_from_value("self", val),
        Err(e) => return Some(fail(format!("cannot evaluate: {e}"))),
    }
    if let Some(o) = old
        && let Ok(val) = cel::to_value(o)
    {
        ctx.add_variable_from_value("oldSelf", val);
    }
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(true)) => None,
        Ok(cel::Value::Bool(false)) => Some(fail(message)),
        Ok(other) => Some(fail(format!("rule did not evaluate to a bool: {other:?}"))),
        Err(e) => Some(fail(format!("{message} (evaluation error: {e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(r: &str) -> Value {
        json!({"rule": r, "message": "nope"})
    }

    #[test]
    fn rules_of_the_datacluster_crd_evaluate() {
        let auto = json!({"minReplicas": 2, "maxReplicas": 1});
        let c = check_rule(&rule("self.maxReplicas >= self.minReplicas"), &auto, None, "spec.dashboard.autoscaling")
            .unwrap();
        assert_eq!(c.field, "spec.dashboard.autoscaling");
        assert_eq!(c.message, "Invalid value: \"object\": nope");
        assert!(
            check_rule(&rule("!has(self.tls) || has(self.host)"), &json!({"host": "h", "tls": {}}), None, "").is_none()
        );
        assert!(check_rule(&rule("!has(self.tls) || has(self.host)"), &json!({"tls": {}}), None, "").is_some());
        let named = json!({"metadata": {"name": "Bad_Name"}});
        assert!(
            check_rule(
                &rule("self.metadata.name.size() <= 44 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"),
                &named,
                None,
                ""
            )
            .is_some()
        );
        let ok = json!({"metadata": {"name": "good-name"}});
        assert!(
            check_rule(
                &rule("self.metadata.name.size() <= 44 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"),
                &ok,
                None,
                ""
            )
            .is_none()
        );
        let list = json!([{"name": "a"}, {"name": "a"}]);
        assert!(check_rule(&rule("self.all(a, self.exists_one(b, b.name == a.name))"), &list, None, "").is_some());
        assert!(check_rule(&rule("duration(self) >= duration('1m')"), &json!("30s"), None, "").is_some());
        assert!(check_rule(&rule("duration(self) >= duration('1m')"), &json!("10m"), None, "").is_none());
    }

    #[test]
    fn transition_rules_skip_creates_and_compare_with_the_old_value() {
        let r = rule("self == oldSelf");
        assert!(check_rule(&r, &json!("a"), None, "spec.x").is_none());
        assert!(check_rule(&r, &json!("b"), Some(&json!("a")), "spec.x").is_some());
        assert!(check_rule(&r, &json!("a"), Some(&json!("a")), "spec.x").is_none());
    }
}
