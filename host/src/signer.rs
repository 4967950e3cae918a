//! The `signer` import: ES256 signatures for RFC 7523 client assertions
//! (`private_key_jwt`), and DPoP proofs (RFC 9449) with key pairs this host
//! makes and keeps in the store, one per issuer and resource. Keys live
//! here, in the host; the engine only ever sees signatures and proofs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

use crate::storage::Store;

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

/// A DPoP proof with the key pair stored under `key_id` (made on first use,
/// saved 0600 through the store before it signs anything): the JOSE header
/// `{"typ":"dpop+jwt","alg":"ES256","jwk":...}` over the engine's claims.
pub fn dpop_proof(store: &dyn Store, key_id: &str, claims: &str) -> Result<String, String> {
    let key = dpop_key(store, key_id)?;
    let point = VerifyingKey::from(&key).to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err("the DPoP key has no affine coordinates".into());
    };
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.as_bytes()),
        URL_SAFE_NO_PAD.encode(claims.as_bytes())
    );
    let sig: Signature = key.sign(input.as_bytes());
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes())))
}

/// The key pair for `key_id`: `<store>/<key_id>.pem` (PKCS#8, 0600, the
/// same file the Node and Python packages use), or made from fresh OS
/// randomness and written once (a bound token is useless without it).
fn dpop_key(store: &dyn Store, key_id: &str) -> Result<SigningKey, String> {
    // A key file that cannot be used is refused, never replaced: a token
    // bound to it is useless without it (docs/store.md); the user decides.
    let file = format!("{}/{key_id}.pem", store.id());
    let refuse = |what: &str| {
        format!("the DPoP key file {file} is {what}; it is left as it is: restore it, or remove it and sign in again")
    };
    let parse = |pem: Vec<u8>| {
        let pem = String::from_utf8(pem).map_err(|_| refuse("not PEM"))?;
        SigningKey::from_pkcs8_pem(&pem).map_err(|_| refuse("not a P-256 PKCS#8 private key"))
    };
    if let Some(pem) = store
        .get_key_file(key_id)
        .map_err(|e| format!("reading the DPoP key: {e}"))?
    {
        return parse(pem);
    }
    // A random scalar is valid but with negligible odds; a few tries bound it.
    for _ in 0..4 {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a DPoP key: {e}"))?;
        if let Ok(key) = SigningKey::from_slice(&seed) {
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|_| "could not encode the DPoP key".to_string())?;
            let kept = store
                .create_key_file_once(key_id, pem.as_bytes())
                .map_err(|e| format!("saving the DPoP key: {e}"))?;
            return parse(kept);
        }
    }
    Err("could not make a DPoP key".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FileStore;
    use p256::ecdsa::signature::Verifier;

    #[test]
    fn dpop_proofs_verify_with_their_jwk_and_keys_persist() {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-dpop-{}", std::process::id()));
        let store = FileStore::open(&dir).unwrap();
        let claims = r#"{"jti":"x","htm":"POST","htu":"https://a/t","iat":1}"#;
        let p1 = dpop_proof(&store, "dpop-aa", claims).unwrap();
        let parts: Vec<&str> = p1.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["jwk"]["d"].is_null(), "no private part in the header");
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[1]).unwrap(), claims.as_bytes());
        // Verify with the public key the header carries.
        let coord = |k: &str| URL_SAFE_NO_PAD.decode(header["jwk"][k].as_str().unwrap()).unwrap();
        let mut sec1 = vec![4u8];
        sec1.extend(coord("x"));
        sec1.extend(coord("y"));
        let vk = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        assert!(vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).is_ok());
        // The same key id after a restart: the same key; another id: another.
        let again = FileStore::open(&dir).unwrap();
        let h2 = dpop_proof(&again, "dpop-aa", claims).unwrap();
        assert_eq!(h2.split('.').next(), Some(parts[0]));
        let other = dpop_proof(&again, "dpop-bb", claims).unwrap();
        assert_ne!(other.split('.').next(), Some(parts[0]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("dpop-aa.pem")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

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
