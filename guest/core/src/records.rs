//! Layer 3, persisted records: versioned JSON, one key per kind. Keys are hashes, so no
//! key is a path whatever the server URL or issuer looks like. A record that
//! does not decode, has another version, or belongs to another server counts
//! as absent.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use miniserde::json;
use miniserde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::primitives::json::from_json;
use crate::wire::metadata::{AsMetadata, ResourceMetadata};
use crate::wire::registration::Registration;
use crate::wire::token::TokenSet;

/// Version of every record this engine writes.
pub const RECORD_VERSION: u32 = 1;

/// A storage key: `<kind>-<40 hex chars of SHA-256 over the parts>`.
pub fn key(kind: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
    format!("{kind}-{hex}")
}

/// Where the server's authorization lives: its PRM and the issuer chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The server URL the record is for (verbatim).
    pub server_url: String,
    /// The protected resource metadata (resource kept verbatim).
    pub prm: ResourceMetadata,
    /// Where the PRM was found.
    pub resource_metadata_url: Option<String>,
    /// The authorization server in use.
    pub issuer: String,
    /// A 2025-03-26 server without PRM.
    pub legacy: bool,
}

impl Binding {
    /// Key of the tokens issued for this binding's resource by its issuer.
    pub fn tokens_key(&self) -> String {
        tokens_key(&self.prm.resource, &self.issuer)
    }
}

/// Tokens for one (resource, issuer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The resource they were issued for.
    pub resource: String,
    /// The issuer that issued them.
    pub issuer: String,
    /// The grant.
    pub tokens: TokenSet,
}

/// Serializes a record inside its envelope: `{"v":1,"record":{...}}`.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    format!("{{\"v\":{RECORD_VERSION},\"record\":{}}}", json::to_string(record)).into_bytes()
}

/// Deserializes a record; anything unreadable, or of another version, is
/// `None`. The envelope is matched exactly as [`encode`] writes it (records
/// are only ever written by the engine), which spares the component a
/// generic JSON value type.
pub fn decode<T: Deserialize>(bytes: Option<&[u8]>) -> Option<T> {
    let head = format!("{{\"v\":{RECORD_VERSION},\"record\":");
    let inner = bytes?.strip_prefix(head.as_bytes())?.strip_suffix(b"}")?;
    from_json(inner)
}

/// Key of the binding record for a server URL.
pub fn binding_key(server_url: &str) -> String {
    key("binding", &[server_url])
}
/// Key of the validated AS metadata for an issuer.
pub fn metadata_key(issuer: &str) -> String {
    key("metadata", &[issuer])
}
/// Key of the dynamic registration for an issuer.
pub fn registration_key(issuer: &str) -> String {
    key("registration", &[issuer])
}
/// Key of the tokens for a (resource, issuer).
pub fn tokens_key(resource: &str, issuer: &str) -> String {
    key("tokens", &[resource, issuer])
}

/// Decoders that also check the record belongs where it was found.
pub fn decode_binding(bytes: Option<&[u8]>, server_url: &str) -> Option<Binding> {
    decode::<Binding>(bytes).filter(|b| b.server_url == server_url)
}
/// See [`decode_binding`].
pub fn decode_metadata(bytes: Option<&[u8]>, issuer: &str) -> Option<AsMetadata> {
    decode::<AsMetadata>(bytes).filter(|m| m.issuer == issuer)
}
/// See [`decode_binding`].
pub fn decode_registration(bytes: Option<&[u8]>, issuer: &str) -> Option<Registration> {
    decode::<Registration>(bytes).filter(|r| r.issuer == issuer)
}
/// See [`decode_binding`].
pub fn decode_tokens(bytes: Option<&[u8]>, resource: &str, issuer: &str) -> Option<TokenSet> {
    decode::<TokenRecord>(bytes)
        .filter(|t| t.resource == resource && t.issuer == issuer)
        .map(|t| t.tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_round_trips_and_nothing_else_decodes() {
        let reg = Registration {
            issuer: String::from("https://as.example"),
            client_id: String::from("c"),
            client_secret: None,
            redirect_uris: Vec::new(),
            token_endpoint_auth_method: None,
            grant_types: None,
        };
        let bytes = encode(&reg);
        assert!(bytes.starts_with(b"{\"v\":1,\"record\":{"));
        let back: Registration = decode(Some(&bytes)).unwrap();
        assert_eq!(back.client_id, "c");
        let text = String::from_utf8(bytes).unwrap();
        for bad in [
            text.replace("\"v\":1", "\"v\":2"),
            text.replace(",\"record\"", ", \"record\""),
            format!("{text} "),
            format!("{text}}}"),
            String::from("{\"v\":1,\"record\":}"),
            String::new(),
        ] {
            assert!(decode::<Registration>(Some(bad.as_bytes())).is_none(), "{bad}");
        }
    }

    #[test]
    fn keys_are_flat_and_distinct() {
        for k in [
            binding_key("https://x/../../etc/passwd"),
            tokens_key("https://r", "https://i"),
            metadata_key("https://i"),
        ] {
            assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{k}");
        }
        assert_ne!(tokens_key("a", "bc"), tokens_key("ab", "c"));
        assert_ne!(metadata_key("i"), registration_key("i"));
    }

    #[test]
    fn corrupt_or_foreign_records_read_as_absent() {
        let rec = TokenRecord {
            resource: "r".into(),
            issuer: "i".into(),
            tokens: TokenSet {
                access_token: "a".into(),
                expires_at: None,
                refresh_token: None,
                scope: None,
                client_id: "c".into(),
                dpop_key: None,
                lifetime_ms: None,
            },
        };
        let bytes = encode(&rec);
        assert!(decode_tokens(Some(&bytes), "r", "i").is_some());
        assert!(decode_tokens(Some(&bytes), "r", "other").is_none());
        assert!(decode_tokens(Some(&bytes[..bytes.len() / 2]), "r", "i").is_none());
        assert!(decode_tokens(Some(b"\xff\xfe"), "r", "i").is_none());
        assert!(decode_tokens(None, "r", "i").is_none());
        let v2 = String::from_utf8(bytes).unwrap().replace("\"v\":1", "\"v\":2");
        assert!(decode_tokens(Some(v2.as_bytes()), "r", "i").is_none());
    }
}
