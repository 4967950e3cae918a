//! The crypto provider of the Redis store's TLS. rustls takes its crypto
//! from one provider per process, and redis builds its TLS config with
//! `ClientConfig::builder()`, which panics when the binary holds two
//! providers and none was chosen: an embedder whose tree enables aws-lc
//! beside the ring that ureq uses would meet that panic at its first
//! `rediss://` connection.

/// Chooses ring (ureq's provider too) for the process, unless the process
/// has chosen already (an embedder's choice stands).
pub(super) fn choose_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use rustls::crypto::CryptoProvider;

    use crate::storage::redis::url::StoreUrl;

    /// Making the client of a `rediss://` store chooses the provider, before
    /// redis builds a TLS config at its first connection. (redis's own
    /// `builder()` would also install one, but only in a binary with a
    /// single provider; nothing else in this test binary installs one:
    /// ureq names its provider explicitly.)
    #[test]
    fn a_tls_store_chooses_ring_before_it_connects() {
        assert!(CryptoProvider::get_default().is_none(), "installed before");
        let plain = StoreUrl::parse("redis://127.0.0.1:1", None).unwrap();
        super::super::conn::client(&plain, None).unwrap();
        assert!(
            CryptoProvider::get_default().is_none(),
            "a plain store leaves the choice alone"
        );
        let tls = StoreUrl::parse("rediss://127.0.0.1:1", None).unwrap();
        super::super::conn::client(&tls, None).unwrap();
        let chosen = CryptoProvider::get_default().expect("a provider is chosen");
        let ring = rustls::crypto::ring::default_provider();
        let suites = |p: &CryptoProvider| p.cipher_suites.iter().map(|s| s.suite()).collect::<Vec<_>>();
        assert_eq!(suites(chosen), suites(&ring));
    }
}
