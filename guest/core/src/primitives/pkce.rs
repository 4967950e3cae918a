//! PKCE (RFC 7636) with S256 only, as OAuth 2.1 and MCP 2025-11-25
//! "Authorization Code Protection" require. The verifier comes from entropy the
//! caller passes in; the core has no randomness of its own.

use alloc::string::String;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A PKCE verifier and its S256 challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    verifier: String,
    challenge: String,
}

impl core::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &"<redacted>")
            .field("challenge", &self.challenge)
            .finish()
    }
}

impl Pkce {
    /// Builds a verifier from 32 random bytes: 43 characters of the unreserved
    /// alphabet (RFC 7636 §4.1 asks for 43..=128), 256 bits of entropy.
    pub fn from_entropy(bytes: &[u8; 32]) -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = s256(&verifier);
        Self { verifier, challenge }
    }

    /// The secret `code_verifier`, sent only on the token request.
    pub fn verifier(&self) -> &str {
        &self.verifier
    }

    /// The `code_challenge` sent on the authorization request.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

/// RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B test vector.
    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifier_has_the_rfc_shape() {
        let p = Pkce::from_entropy(&[7u8; 32]);
        assert_eq!(p.verifier().len(), 43);
        assert!(
            p.verifier()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
        assert_eq!(p.challenge(), s256(p.verifier()));
        assert!(!alloc::format!("{p:?}").contains(p.verifier()));
    }
}
