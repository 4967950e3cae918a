//! DPoP (RFC 9449, MCP SEP-1932) as the engine takes part in it: it builds
//! each proof's claims (§4.2) and the host signs them with a key pair the
//! engine never sees, stored per issuer and resource (the key lives as long
//! as the grant bound to it). Here: the claims, the `htu` rule (no query, no
//! fragment), `ath` for requests to the resource server, the nonce signals
//! of the AS (§8: 400 `use_dpop_nonce` + `DPoP-Nonce`) and of the resource
//! server (§9: a `DPoP` challenge with `use_dpop_nonce` + `DPoP-Nonce`), the
//! key id, and the check of the proof a host hands back.
//!
//! The session does not use DPoP yet (issue 8 part 3): these are the wire
//! rules it will be built on, tested on their own.

use alloc::format;
use alloc::string::String;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::effect::HttpResponse;
use crate::primitives::http_url::HttpUrl;
use crate::primitives::www_authenticate::parse;

/// The one algorithm the engine asks hosts to sign with.
pub const ALG: &str = "ES256";

/// The longest nonce or proof accepted (a server could send anything).
const MAX_NONCE: usize = 512;
const MAX_PROOF: usize = 8 * 1024;

/// What one proof asserts (RFC 9449 §4.2).
pub struct ProofClaims<'a> {
    /// The HTTP method, upper case.
    pub htm: &'a str,
    /// The request URL; query and fragment are left out by [`claims`].
    pub url: &'a HttpUrl,
    /// Issued at, unix seconds.
    pub iat_s: u64,
    /// At least 16 fresh random bytes: the proof's unique `jti`.
    pub jti: &'a [u8],
    /// The access token the request carries (resource requests only): its
    /// hash becomes `ath`.
    pub access_token: Option<&'a str>,
    /// The server's latest `DPoP-Nonce`, if it gave one.
    pub nonce: Option<&'a str>,
}

/// The claims as compact JSON, for the host to sign.
pub fn claims(c: &ProofClaims<'_>) -> String {
    let q = |s: &str| miniserde::json::to_string(s);
    let mut out = format!(
        "{{\"jti\":{},\"htm\":{},\"htu\":{},\"iat\":{}",
        q(&URL_SAFE_NO_PAD.encode(c.jti)),
        q(c.htm),
        q(&htu(c.url)),
        c.iat_s
    );
    if let Some(t) = c.access_token {
        out.push_str(&format!(",\"ath\":{}", q(&ath(t))));
    }
    if let Some(n) = c.nonce {
        out.push_str(&format!(",\"nonce\":{}", q(n)));
    }
    out.push('}');
    out
}

/// `htu`: the URL without query and fragment (§4.2).
pub fn htu(url: &HttpUrl) -> String {
    format!("{}{}", url.origin(), url.path())
}

/// `ath`: base64url of the SHA-256 of the access token (§4.2).
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// The id a host keeps the key pair under: one per (issuer, resource), a
/// hash so that it is a safe storage key whatever the URLs hold.
pub fn key_id(issuer: &str, resource: &str) -> String {
    let d = Sha256::digest(format!("{issuer}\n{resource}").as_bytes());
    let hex: String = d.iter().take(20).map(|b| format!("{b:02x}")).collect();
    format!("dpop-{hex}")
}

/// A nonce as §8.1 allows it (`1*NQCHAR`), bounded.
pub fn valid_nonce(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NONCE
        && n.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// The AS asks for a nonce (§8): 400, `use_dpop_nonce`, and a valid
/// `DPoP-Nonce` header. Returns the nonce to retry with.
pub fn as_nonce_challenge(resp: &HttpResponse) -> Option<String> {
    if resp.status != 400 {
        return None;
    }
    let e = crate::primitives::json::oauth_error(&resp.body);
    if e.error.as_deref() != Some("use_dpop_nonce") {
        return None;
    }
    resp.header("dpop-nonce").filter(|n| valid_nonce(n)).map(String::from)
}

/// The resource server asks for a nonce (§9): 401 with a `DPoP` challenge
/// whose error is `use_dpop_nonce`, and a valid `DPoP-Nonce` header.
pub fn rs_nonce_challenge<S: AsRef<str>>(
    status: u16,
    www_authenticate: &[S],
    dpop_nonce: Option<&str>,
) -> Option<String> {
    if status != 401 {
        return None;
    }
    let asked = www_authenticate.iter().any(|v| {
        parse(v.as_ref())
            .iter()
            .any(|c| c.scheme.eq_ignore_ascii_case("dpop") && c.param("error") == Some("use_dpop_nonce"))
    });
    dpop_nonce.filter(|n| asked && valid_nonce(n)).map(String::from)
}

/// True when a challenge names the `DPoP` scheme (the resource server wants
/// DPoP-bound tokens).
pub fn challenges_dpop<S: AsRef<str>>(www_authenticate: &[S]) -> bool {
    www_authenticate
        .iter()
        .any(|v| parse(v.as_ref()).iter().any(|c| c.scheme.eq_ignore_ascii_case("dpop")))
}

/// The AS can bind tokens with a key the host makes (`ES256` advertised).
pub fn as_supports_es256(dpop_signing_alg_values_supported: Option<&[String]>) -> bool {
    dpop_signing_alg_values_supported.is_some_and(|a| a.iter().any(|x| x == ALG))
}

/// What the host hands back must be a compact JWS (three base64url parts)
/// of sane size: it goes into a header as is.
pub fn check_proof(jws: &str) -> bool {
    jws.len() <= MAX_PROOF
        && jws.split('.').count() == 3
        && jws
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn url(s: &str) -> HttpUrl {
        HttpUrl::parse(s).unwrap()
    }

    #[test]
    fn claims_follow_section_4_2() {
        let u = url("https://MCP.example:443/mcp?x=1#f");
        let c = claims(&ProofClaims {
            htm: "POST",
            url: &u,
            iat_s: 1_700_000_000,
            jti: &[1u8; 16],
            access_token: Some("tok"),
            nonce: Some("n-1"),
        });
        let v: serde_json::Value = serde_json::from_str(&c).unwrap();
        assert_eq!(
            v["htu"], "https://mcp.example/mcp",
            "no query, no fragment, default port dropped"
        );
        assert_eq!(v["htm"], "POST");
        assert_eq!(v["iat"], 1_700_000_000u64);
        assert_eq!(v["jti"], "AQEBAQEBAQEBAQEBAQEBAQ");
        // RFC 9449 §4.2 example pair: ath of "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".
        assert_eq!(
            ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
        assert_eq!(v["ath"], ath("tok"));
        assert_eq!(v["nonce"], "n-1");
        let bare = claims(&ProofClaims {
            htm: "POST",
            url: &u,
            iat_s: 1,
            jti: &[0u8; 16],
            access_token: None,
            nonce: None,
        });
        assert!(
            !bare.contains("ath") && !bare.contains("nonce") && !bare.contains("null"),
            "{bare}"
        );
    }

    #[test]
    fn nonce_signals_from_the_as_and_the_resource_server() {
        let resp = |status, body: &str, nonce: Option<&str>| HttpResponse {
            status,
            headers: nonce
                .map(|n| vec![(String::from("DPoP-Nonce"), String::from(n))])
                .unwrap_or_default(),
            body: body.as_bytes().to_vec(),
        };
        let ask = r#"{"error":"use_dpop_nonce"}"#;
        assert_eq!(
            as_nonce_challenge(&resp(400, ask, Some("eyJ7S_zG"))).as_deref(),
            Some("eyJ7S_zG")
        );
        assert_eq!(
            as_nonce_challenge(&resp(400, ask, None)),
            None,
            "no nonce, nothing to retry with"
        );
        assert_eq!(
            as_nonce_challenge(&resp(400, r#"{"error":"invalid_grant"}"#, Some("n"))),
            None
        );
        assert_eq!(as_nonce_challenge(&resp(401, ask, Some("n"))), None);
        assert_eq!(as_nonce_challenge(&resp(400, ask, Some("bad\"nonce"))), None);
        let dpop =
            ["DPoP error=\"use_dpop_nonce\", error_description=\"Resource server requires nonce in DPoP proof\""];
        assert_eq!(rs_nonce_challenge(401, &dpop, Some("n2")).as_deref(), Some("n2"));
        assert_eq!(
            rs_nonce_challenge(401, &["Bearer error=\"use_dpop_nonce\""], Some("n2")),
            None
        );
        assert_eq!(rs_nonce_challenge(403, &dpop, Some("n2")), None);
        assert_eq!(rs_nonce_challenge(401, &dpop, None), None);
        assert!(challenges_dpop(&["Bearer realm=\"x\", DPoP algs=\"ES256\""]));
        assert!(!challenges_dpop(&["Bearer realm=\"x\""]));
        assert!(!valid_nonce("") && !valid_nonce(&"n".repeat(MAX_NONCE + 1)) && valid_nonce("!#[]~"));
        assert!(!valid_nonce("a\\b") && !valid_nonce("a b"));
    }

    #[test]
    fn keys_proofs_and_algorithms() {
        let k = key_id("https://as.example", "https://mcp.example/mcp");
        assert!(k.starts_with("dpop-") && k.len() == 45 && k[5..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(k, key_id("https://as.example", "https://other.example/mcp"));
        assert!(check_proof("eyJh.eyJj.c2ln"));
        assert!(!check_proof("eyJh.eyJj") && !check_proof("a.b.c\r\nX: y") && !check_proof("a..c"));
        assert!(!check_proof(&format!("a.b.{}", "c".repeat(MAX_PROOF))));
        assert!(as_supports_es256(Some(&[String::from("RS256"), String::from("ES256")])));
        assert!(!as_supports_es256(Some(&[String::from("RS256")])) && !as_supports_es256(None));
    }
}
