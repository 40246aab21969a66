//! Bearer-token check for every Flight call, in constant time.

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// A tonic interceptor that demands `authorization: Bearer <token>` when a
/// token is configured.
#[derive(Clone)]
pub struct BearerAuth {
    token: Option<std::sync::Arc<Vec<u8>>>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth").field("enabled", &self.token.is_some()).finish()
    }
}

impl BearerAuth {
    /// Auth with an optional token; `None` lets every call through.
    pub fn new(token: Option<String>) -> BearerAuth {
        BearerAuth { token: token.map(|t| std::sync::Arc::new(t.into_bytes())) }
    }

    /// Checks a raw header value.
    pub fn check(&self, header: Option<&[u8]>) -> Result<(), Status> {
        let Some(expected) = &self.token else { return Ok(()) };
        let Some(value) = header else {
            return Err(Status::unauthenticated("missing bearer token"));
        };
        let presented = value.strip_prefix(b"Bearer ").unwrap_or(b"");
        if bool::from(presented.ct_eq(expected.as_slice())) && !presented.is_empty() {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.check(req.metadata().get("authorization").map(|v| v.as_bytes()))?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked() {
        let a = BearerAuth::new(Some("s3cret".into()));
        assert!(a.check(Some(b"Bearer s3cret")).is_ok());
        assert!(a.check(Some(b"Bearer s3cre")).is_err());
        assert!(a.check(Some(b"s3cret")).is_err());
        assert!(a.check(None).is_err());
        assert!(BearerAuth::new(None).check(None).is_ok());
    }
}
