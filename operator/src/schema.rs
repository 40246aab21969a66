//! Schema surgery for the CRD: the parts of the worker's dataset types that a
//! Kubernetes structural schema cannot express as derived.
//!
//! The worker's `Binning` is an internally tagged union whose variants share field
//! names with different docs; Kubernetes wants one object with every field and no
//! `oneOf`. It is replaced by a flat object with `kind` as an enum and CEL rules
//! that say which fields each kind takes, so anything the API server accepts also
//! deserialises in the operator and the worker.

use quiver_worker::spec::{CategoryDef, DatasetSpec};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::crd::{ClusterDataset, CredentialsSecretRef};

// `ClusterDataset` flattens the worker's `DatasetSpec`; its schema is the worker's,
// plus `credentialsSecret`, with the `bins` union rewritten. The impl lives here,
// above `crd`, so the types do not depend on the surgery.
impl JsonSchema for ClusterDataset {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ClusterDataset".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        cluster_dataset_schema(generator)
    }
}

/// Schema of one entry of `spec.datasets`: the worker's `DatasetSpec` plus `credentialsSecret`.
pub(crate) fn cluster_dataset_schema(generator: &mut SchemaGenerator) -> Schema {
    let dataset = DatasetSpec::json_schema(generator).to_value();
    let binning = binning_schema(generator);
    let mut dataset = replace_bins(dataset, &binning);

    let credentials = generator.subschema_for::<CredentialsSecretRef>().to_value();
    let mut credentials = credentials.as_object().cloned().unwrap_or_default();
    credentials.insert(
        "description".into(),
        json!(
            "A Secret holding S3 credentials for this dataset; mounted into the workers and \
             passed as `s3.credentialsDir`."
        ),
    );
    if let Some(obj) = dataset.as_object_mut() {
        // `deny_unknown_fields` on the worker type would reject our extra field.
        obj.remove("additionalProperties");
        let props = obj.entry("properties").or_insert_with(|| Value::Object(Map::new()));
        if let Some(props) = props.as_object_mut() {
            props.insert("credentialsSecret".into(), Value::Object(credentials));
            props.insert(
                "expectedRows".into(),
                json!({"type": "integer", "format": "int64", "minimum": 0,
                       "description": "About how many rows the dataset holds; sizes the workers' default \
                                       memory request when `workers.resources` is not given."}),
            );
        }
        obj.insert(
            "x-kubernetes-validations".into(),
            json!([
                {"rule": "has(self.preset) || has(self.view)",
                 "message": "a dataset needs a preset or a view"},
                {"rule": "!has(self.credentialsSecret) || !has(self.s3) || !has(self.s3.credentialsDir)",
                 "message": "give either credentialsSecret or s3.credentialsDir, not both"}
            ]),
        );
    }
    // The worker's limits (`ViewConfig::validate`), stated so CEL cost estimates stay bounded.
    if let Some(dims) = dataset.pointer_mut("/properties/view/properties/dimensions").and_then(Value::as_object_mut) {
        dims.insert("minItems".into(), json!(1));
        dims.insert("maxItems".into(), json!(16));
    }
    // The worker's limits on detail columns (`details`).
    if let Some(details) = dataset.pointer_mut("/properties/details").and_then(Value::as_object_mut) {
        details.insert("maxItems".into(), json!(quiver_worker::details::MAX_DETAILS));
    }
    if let Some(column) =
        dataset.pointer_mut("/properties/details/items/properties/column").and_then(Value::as_object_mut)
    {
        column.insert("minLength".into(), json!(1));
        column.insert("maxLength".into(), json!(256));
    }
    // Same constraint as `quiver_worker::spec::validate_name`.
    if let Some(name) = dataset.pointer_mut("/properties/name").and_then(Value::as_object_mut) {
        name.insert("pattern".into(), json!("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"));
        name.insert("maxLength".into(), json!(63));
    }
    Schema::try_from(dataset).expect("a JSON object is a schema")
}

/// Replaces the `bins` property of every dimension with the flat binning schema.
fn replace_bins(mut value: Value, binning: &Value) -> Value {
    fn walk(v: &mut Value, binning: &Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get_mut("properties")
                    && props.contains_key("bins")
                    && props.contains_key("column")
                {
                    props.insert("bins".into(), binning.clone());
                }
                for child in map.values_mut() {
                    walk(child, binning);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|c| walk(c, binning)),
            _ => {}
        }
    }
    walk(&mut value, binning);
    value
}

/// The binning union as one structural object.
fn binning_schema(generator: &mut SchemaGenerator) -> Value {
    let category = generator.subschema_for::<CategoryDef>().to_value();
    let absent = |fields: &[&str]| -> String {
        fields.iter().map(|f| format!("!has(self.{f})")).collect::<Vec<_>>().join(" && ")
    };
    json!({
        "type": "object",
        "description": "How the dimension's values become bins. `kind` selects the binning and the fields \
                        that apply: categorical (categories, other), linear and log (min, max, count), \
                        temporal (start, end, interval).",
        "required": ["kind"],
        "properties": {
            "kind": {"type": "string", "maxLength": 16, "enum": ["categorical", "linear", "log", "temporal"],
                     "description": "Binning kind."},
            "categories": {"type": "array", "maxItems": 64, "items": category,
                           "description": "Categorical: named categories in display order (at most 64)."},
            "other": {"type": "string",
                      "description": "Categorical: label of the bucket for values matching no category (default Other)."},
            "min": {"type": "number", "description": "Linear and log: lower edge of the first bin (positive for log)."},
            "max": {"type": "number", "description": "Linear and log: upper edge of the last bin."},
            "count": {"type": "integer", "minimum": 1, "maximum": 255,
                      "description": "Linear and log: number of bins."},
            "start": {"type": "string", "description": "Temporal: first instant, RFC 3339 or YYYY-MM-DD."},
            "end": {"type": "string", "description": "Temporal: end instant (exclusive), RFC 3339 or YYYY-MM-DD."},
            "interval": {"type": "string", "enum": ["year", "month", "day", "hour"],
                         "description": "Temporal: bin width."}
        },
        "x-kubernetes-validations": [
            {"rule": format!("self.kind != 'categorical' || (has(self.categories) && size(self.categories) > 0 && {})",
                             absent(&["min", "max", "count", "start", "end", "interval"])),
             "message": "a categorical dimension takes categories (and other) only"},
            {"rule": format!("!(self.kind in ['linear', 'log']) || (has(self.min) && has(self.max) && has(self.count) && self.min < self.max && {})",
                             absent(&["categories", "other", "start", "end", "interval"])),
             "message": "a linear or log dimension takes min < max and count only"},
            {"rule": "self.kind != 'log' || !has(self.min) || self.min > 0.0",
             "message": "a log dimension needs a positive min"},
            {"rule": format!("self.kind != 'temporal' || (has(self.start) && has(self.end) && has(self.interval) && {})",
                             absent(&["categories", "other", "min", "max", "count"])),
             "message": "a temporal dimension takes start, end and interval only"}
        ]
    })
}
