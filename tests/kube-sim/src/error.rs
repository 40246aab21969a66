//! API errors, answered as `Status` objects shaped like the real API server's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::resources::ResourceType;

/// One field-level cause of an Invalid or Conflict answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldManagerConflict`, ...
    pub reason: String,
    /// Human-readable.
    pub message: String,
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
}

/// Every failure the API answers.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404.
    #[error("{qualified} \"{name}\" not found")]
    NotFound {
        /// e.g. `deployments.apps`.
        qualified: String,
        /// The group, for details.
        group: String,
        /// The plural, for details.
        plural: String,
        /// The name asked for.
        name: String,
    },
    /// 404 for a path that names no resource.
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// 409 AlreadyExists.
    #[error("{qualified} \"{name}\" already exists")]
    AlreadyExists {
        /// e.g. `pods`.
        qualified: String,
        /// The group, for details.
        group: String,
        /// The plural, for details.
        plural: String,
        /// The name.
        name: String,
    },
    /// 409 Conflict on a stale resourceVersion or a conflicting apply.
    #[error("{message}")]
    Conflict {
        /// The message.
        message: String,
        /// The group, for details.
        group: String,
        /// The plural, for details.
        plural: String,
        /// The name.
        name: String,
        /// Per-field conflicts (server-side apply).
        causes: Vec<Cause>,
    },
    /// 422 Invalid.
    #[error("{kind_group} \"{name}\" is invalid: {summary}")]
    Invalid {
        /// `Kind.group`, e.g. `DataCluster.quiver.dev`.
        kind_group: String,
        /// Kind, for details.
        kind: String,
        /// Group, for details.
        group: String,
        /// The name.
        name: String,
        /// The causes joined, as the real server does.
        summary: String,
        /// The causes.
        causes: Vec<Cause>,
    },
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 405.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 415.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )]
    UnsupportedMediaType,
    /// 410 (a list's continue token or a too-old version).
    #[error("too old resource version: {requested} ({oldest})")]
    Gone {
        /// Asked for.
        requested: u64,
        /// Oldest available.
        oldest: u64,
    },
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// NotFound for a type and name.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        ApiError::NotFound {
            qualified: rt.qualified(),
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            name: name.to_string(),
        }
    }

    /// AlreadyExists for a type and name.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        ApiError::AlreadyExists {
            qualified: rt.qualified(),
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            name: name.to_string(),
        }
    }

    /// The optimistic-concurrency conflict.
    pub fn stale(rt: &ResourceType, name: &str) -> Self {
        ApiError::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.qualified(),
                name
            ),
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            name: name.to_string(),
            causes: vec![],
        }
    }

    /// 422 with field causes.
    pub fn invalid(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> Self {
        let summary = if causes.len() == 1 {
            causes[0].message_with_field()
        } else {
            format!("[{}]", causes.iter().map(Cause::message_with_field).collect::<Vec<_>>().join(", "))
        };
        ApiError::Invalid {
            kind_group: if rt.group.is_empty() { rt.kind.clone() } else { format!("{}.{}", rt.kind, rt.group) },
            kind: rt.kind.clone(),
            group: rt.group.clone(),
            name: name.to_string(),
            summary,
            causes,
        }
    }

    /// The HTTP code.
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `reason` of the Status.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType => "UnsupportedMediaType",
            ApiError::Gone { .. } => "Expired",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The Status object.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound { group, plural, name, .. } | ApiError::AlreadyExists { group, plural, name, .. } => {
                Some(details(name, group, plural, &[]))
            }
            ApiError::Conflict { group, plural, name, causes, .. } => Some(details(name, group, plural, causes)),
            ApiError::Invalid { kind, group, name, causes, .. } => Some(details(name, group, kind, causes)),
            _ => None,
        };
        if let Some(d) = details {
            s["details"] = d;
        }
        s
    }
}

impl Cause {
    fn message_with_field(&self) -> String {
        if self.field.is_empty() { self.message.clone() } else { format!("{}: {}", self.field, self.message) }
    }
}

fn details(name: &str, group: &str, kind: &str, causes: &[Cause]) -> Value {
    let mut d = json!({ "name": name, "kind": kind });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    if !causes.is_empty() {
        d["causes"] =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
    }
    d
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(code = self.code().as_u16(), reason = self.reason(), "api error");
        let body = self.status().to_string();
        (self.code(), [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
