//! The `signer` import: ES256 signatures for RFC 7523 client assertions
//! (`private_key_jwt`). The key lives here, in the host; the engine only
//! ever sees signatures.

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;

/// Something that signs JWS signing inputs with ES256.
pub trait Signer: Send + Sync {
    /// The 64-byte `r || s` signature of `input`.
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String>;
}

/// An ES256 key from a PKCS#8 PEM.
pub struct Es256Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Es256Signer(<key redacted>)")
    }
}

impl Es256Signer {
    /// Reads a `-----BEGIN PRIVATE KEY-----` P-256 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, String> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|key| Self { key })
            .map_err(|_| "not a P-256 private key in PKCS#8 PEM".to_string())
    }
}

impl Signer for Es256Signer {
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        let sig: Signature = self.key.sign(input);
        Ok(sig.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::{EncodePrivateKey, LineEnding};

    #[test]
    fn signs_verifiably_and_refuses_bad_pem() {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        let key = SigningKey::from_slice(&seed).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let s = Es256Signer::from_pkcs8_pem(&pem).unwrap();
        let sig = s.sign(b"header.claims").unwrap();
        assert_eq!(sig.len(), 64);
        let sig = Signature::from_slice(&sig).unwrap();
        assert!(VerifyingKey::from(&key).verify(b"header.claims", &sig).is_ok());
        assert!(Es256Signer::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
        assert!(!format!("{s:?}").contains(&*pem));
    }
}
