//! Token Secrets: generated once when absent, never overwritten, never logged.

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::RngCore;

use super::{Component, child_meta};
use crate::validate::ValidCluster;

/// Key of the token in generated Secrets.
pub const TOKEN_KEY: &str = "token";

/// 32 random bytes from the OS-seeded generator, as unpadded URL-safe base64
/// (43 characters, safe in headers and files).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token Secret owned by the cluster.
pub fn build_token_secret(c: &ValidCluster, name: &str, component: Component, token: &str) -> Secret {
    Secret {
        metadata: child_meta(c, name.to_string(), component),
        type_: Some("Opaque".into()),
        data: Some([(TOKEN_KEY.to_string(), ByteString(token.as_bytes().to_vec()))].into_iter().collect()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_32_random_bytes() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&a).unwrap();
        assert_eq!(raw.len(), 32);
    }
}
