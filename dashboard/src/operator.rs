//! The dashboard's only line to the control plane: the operator's resume
//! endpoint, authenticated with this cluster's login token. The dashboard pod
//! holds no Kubernetes credential, so this is all it can do: ask whether the
//! cluster is suspended, and ask to resume it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::resolve::NameResolver;
use crate::secret::Secret;

/// Time limit of one call to the operator.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the operator says about the cluster.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The workers are stopped.
    pub suspended: bool,
    /// `Idle` or `Spec` when suspended; only an idle suspension can be resumed from here.
    pub suspend_reason: Option<String>,
}

/// The operator's resume endpoint for one DataCluster.
pub struct Operator {
    authority: String,
    base_path: String,
    token: Secret,
    resolver: NameResolver,
}

impl Operator {
    /// `url` is `http://host:port`; the cluster is `name` in `namespace`.
    pub fn new(url: &str, namespace: &str, name: &str, token: Secret) -> Result<Operator> {
        let authority = url
            .strip_prefix("http://")
            .map(|a| a.trim_end_matches('/').to_string())
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| Error::Config(format!("--operator-url {url:?} must be http://HOST:PORT")))?;
        Ok(Operator {
            authority,
            base_path: format!("/v1/namespaces/{namespace}/dataclusters/{name}"),
            token,
            resolver: NameResolver::system(),
        })
    }

    /// Resolves the operator's host name with `resolver` (the system resolver by default).
    pub fn resolve_with(self, resolver: NameResolver) -> Operator {
        Operator { resolver, ..self }
    }

    async fn call(&self, method: &str, path: &str) -> Result<(u16, Bytes)> {
        let go = async {
            let stream = self.resolver.connect(&self.authority).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| Error::Unavailable(format!("operator: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let req = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base_path))
                .header(header::HOST, &self.authority)
                .header(header::AUTHORIZATION, format!("Bearer {}", self.token.expose()))
                .body(Full::new(Bytes::new()))
                .map_err(|e| Error::Internal(e.to_string()))?;
            let resp = sender.send_request(req).await.map_err(|e| Error::Unavailable(format!("operator: {e}")))?;
            let code = resp.status().as_u16();
            let body =
                resp.into_body().collect().await.map_err(|e| Error::Unavailable(format!("operator: {e}")))?.to_bytes();
            Ok::<_, Error>((code, body))
        };
        match tokio::time::timeout(TIMEOUT, go).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(Error::Io(e))) => Err(Error::Unavailable(format!("operator unreachable: {e}"))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Unavailable("the operator did not answer in time".into())),
        }
    }

    fn check(code: u16) -> Result<()> {
        match code {
            200..=299 => Ok(()),
            401 | 404 => Err(Error::Unavailable(format!(
                "the operator refused this dashboard (HTTP {code}); check its login token and cluster name"
            ))),
            _ => Err(Error::Unavailable(format!("the operator answered HTTP {code}"))),
        }
    }

    /// Whether the cluster is suspended, and why.
    pub async fn status(&self) -> Result<ClusterStatus> {
        let (code, body) = self.call("GET", "/status").await?;
        Self::check(code)?;
        serde_json::from_slice(&body).map_err(|e| Error::Unavailable(format!("operator status: {e}")))
    }

    /// Asks the operator to resume the cluster.
    pub async fn resume(&self) -> Result<()> {
        let (code, _) = self.call("POST", "/resume").await?;
        Self::check(code)
    }
}
