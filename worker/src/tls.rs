//! The TLS backend every Quiver binary uses.

/// Installs aws-lc-rs as the process's rustls provider (once; later calls do
/// nothing). rustls picks a provider by itself only when exactly one backend
/// is compiled in, and a workspace build links both (reqwest's ring and
/// object_store's aws-lc-rs): without this, the first TLS client built (the
/// operator's API connection, an S3 client) panics.
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is all we need.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_provider_is_installed_and_a_second_call_is_harmless() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
