//! Request bodies in the Kubernetes protobuf encoding, for the kinds clients
//! send that way: helm stores its releases through client-go's typed Secret
//! client, which posts `application/vnd.kubernetes.protobuf`, and
//! `kubectl create namespace` does the same. Secrets, ConfigMaps and
//! Namespaces are decoded (with the ObjectMeta fields clients set); any other
//! kind answers 415 so the client can tell. Responses are always JSON (clients
//! accept it).

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The media type.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn bad(what: &str) -> ApiError {
    ApiError::BadRequest(format!("error decoding protobuf: {what}"))
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ApiError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            2 => {
                let len = self.varint()? as usize;
                let end =
                    self.pos.checked_add(len).filter(|e| *e <= self.buf.len()).ok_or_else(|| bad("truncated field"))?;
                let b = &self.buf[self.pos..end];
                self.pos = end;
                Field::Bytes(b)
            }
            1 => {
                self.pos += 8;
                Field::Other
            }
            5 => {
                self.pos += 4;
                Field::Other
            }
            _ => return Err(bad("unsupported wire type")),
        };
        Ok(Some((num, f)))
    }
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn map_entry(b: &[u8]) -> Result<(String, Vec<u8>), ApiError> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), Vec::new());
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = string(x),
            (2, Field::Bytes(x)) => v = x.to_vec(),
            _ => {}
        }
    }
    Ok((k, v))
}

fn owner_ref(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(b);
    let mut o = Map::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => drop(o.insert("kind".into(), json!(string(x)))),
            (3, Field::Bytes(x)) => drop(o.insert("name".into(), json!(string(x)))),
            (4, Field::Bytes(x)) => drop(o.insert("uid".into(), json!(string(x)))),
            (5, Field::Bytes(x)) => drop(o.insert("apiVersion".into(), json!(string(x)))),
            (6, Field::Varint(x)) => drop(o.insert("controller".into(), json!(x != 0))),
            (7, Field::Varint(x)) => drop(o.insert("blockOwnerDeletion".into(), json!(x != 0))),
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(b);
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    let mut owners = Vec::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(x)) => drop(m.insert("name".into(), json!(string(x)))),
            (2, Field::Bytes(x)) => drop(m.insert("generateName".into(), json!(string(x)))),
            (3, Field::Bytes(x)) => drop(m.insert("namespace".into(), json!(string(x)))),
            (5, Field::Bytes(x)) => drop(m.insert("uid".into(), json!(string(x)))),
            (6, Field::Bytes(x)) => drop(m.insert("resourceVersion".into(), json!(string(x)))),
            (11, Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                labels.insert(k, json!(string(&v)));
            }
            (12, Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                annotations.insert(k, json!(string(&v)));
            }
            (13, Field::Bytes(x)) => owners.push(owner_ref(x)?),
            (14, Field::Bytes(x)) => finalizers.push(json!(string(x))),
            _ => {}
        }
    }
    // The Kubernetes encoder writes empty strings too; absent is what they mean.
    m.retain(|_, v| v.as_str() != Some(""));
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    if !owners.is_empty() {
        m.insert("ownerReferences".into(), Value::Array(owners));
    }
    Ok(Value::Object(m))
}

fn b64(v: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(v))
}

/// Decodes a protobuf request body into the JSON object.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let raw = body.strip_prefix(b"k8s\0").ok_or_else(|| bad("missing the k8s envelope"))?;
    let mut r = Reader::new(raw);
    let (mut api_version, mut kind, mut inner) = (String::new(), String::new(), &[][..]);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while let Some((n, f)) = t.next()? {
                    match (n, f) {
                        (1, Field::Bytes(x)) => api_version = string(x),
                        (2, Field::Bytes(x)) => kind = string(x),
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => inner = x,
            _ => {}
        }
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    let mut r = Reader::new(inner);
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => {
            let mut data = Map::new();
            let mut string_data = Map::new();
            while let Some((n, f)) = r.next()? {
                match (n, f) {
                    (1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
                    (2, Field::Bytes(x)) => {
                        let (k, v) = map_entry(x)?;
                        data.insert(k, b64(&v));
                    }
                    (3, Field::Bytes(x)) => obj["type"] = json!(string(x)),
                    (4, Field::Bytes(x)) => {
                        let (k, v) = map_entry(x)?;
                        string_data.insert(k, json!(string(&v)));
                    }
                    (5, Field::Varint(x)) => obj["immutable"] = json!(x != 0),
                    _ => {}
                }
            }
            if !data.is_empty() {
                obj["data"] = Value::Object(data);
            }
            if !string_data.is_empty() {
                obj["stringData"] = Value::Object(string_data);
            }
        }
        ("v1", "ConfigMap") => {
            let mut data = Map::new();
            let mut binary = Map::new();
            while let Some((n, f)) = r.next()? {
                match (n, f) {
                    (1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
                    (2, Field::Bytes(x)) => {
                        let (k, v) = map_entry(x)?;
                        data.insert(k, json!(string(&v)));
                    }
                    (3, Field::Bytes(x)) => {
                        let (k, v) = map_entry(x)?;
                        binary.insert(k, b64(&v));
                    }
                    (4, Field::Varint(x)) => obj["immutable"] = json!(x != 0),
                    _ => {}
                }
            }
            if !data.is_empty() {
                obj["data"] = Value::Object(data);
            }
            if !binary.is_empty() {
                obj["binaryData"] = Value::Object(binary);
            }
        }
        ("v1", "Namespace") => {
            // `kubectl create namespace` posts one through a typed client.
            let mut finalizers = Vec::new();
            while let Some((n, f)) = r.next()? {
                match (n, f) {
                    (1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
                    (2, Field::Bytes(spec)) => {
                        let mut s = Reader::new(spec);
                        while let Some((n, f)) = s.next()? {
                            if let (1, Field::Bytes(x)) = (n, f) {
                                finalizers.push(json!(string(x)));
                            }
                        }
                    }
                    _ => {}
                }
            }
            if !finalizers.is_empty() {
                obj["spec"] = json!({"finalizers": finalizers});
            }
        }
        _ => return Err(ApiError::UnsupportedMediaType),
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, b: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, b.len() as u8];
        out.extend_from_slice(b);
        out
    }

    #[test]
    fn a_secret_in_the_protobuf_envelope_decodes() {
        let label = [field(1, b"owner"), field(2, b"helm")].concat();
        let meta = [field(1, b"sh.helm.release.v1.q.v1"), field(11, &label)].concat();
        let entry = [field(1, b"release"), field(2, b"abc")].concat();
        let secret = [field(1, &meta), field(2, &entry), field(3, b"helm.sh/release.v1")].concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(obj["metadata"]["name"], "sh.helm.release.v1.q.v1");
        assert_eq!(obj["metadata"]["labels"]["owner"], "helm");
        assert_eq!(obj["data"]["release"], "YWJj");
        assert_eq!(obj["type"], "helm.sh/release.v1");
    }

    #[test]
    fn a_namespace_in_the_protobuf_envelope_decodes() {
        let meta = [field(1, b"team-a"), field(11, &[field(1, b"env"), field(2, b"dev")].concat())].concat();
        let ns = [field(1, &meta), field(2, &field(1, b"kubernetes"))].concat();
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &ns)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(obj["kind"], "Namespace");
        assert_eq!(obj["metadata"]["name"], "team-a");
        assert_eq!(obj["metadata"]["labels"]["env"], "dev");
        assert_eq!(obj["spec"]["finalizers"], json!(["kubernetes"]));
        // A kind the simulator does not decode is refused, not stored half-read.
        let other =
            [b"k8s\0".to_vec(), field(1, &[field(1, b"v1"), field(2, b"Pod")].concat()), field(2, &meta)].concat();
        assert!(matches!(decode(&other), Err(ApiError::UnsupportedMediaType)));
    }
}
