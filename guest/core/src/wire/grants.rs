//! The grants that need no user: client credentials (OAuth 2.1 §4.2, SEP-1046)
//! and enterprise-managed authorization (SEP-990: an RFC 8693 token exchange
//! at the IdP for an ID-JAG, then the RFC 7523 jwt-bearer grant at the AS),
//! and the RFC 7523 `private_key_jwt` client assertion they may use. The
//! assertion is built here and signed by the host (`Effect::Sign`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use miniserde::{Deserialize, Serialize};

use crate::effect::{HttpRequest, HttpResponse};
use crate::error::Error;
use crate::wire::client_auth::{ClientAuth, ClientCredentials, form_post};
use crate::wire::token::token_error;
/// RFC 7523 §2.1 grant type.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 §2.1 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3 token type of an OIDC ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// SEP-990 token type of an identity assertion authorization grant.
pub const ID_JAG_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

#[derive(Serialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: String,
}

/// The JWS signing input of a `private_key_jwt` assertion (RFC 7523 §3):
/// issuer and subject the client id, audience the AS issuer, five minutes.
pub fn assertion_signing_input(client_id: &str, audience: &str, now_ms: u64, jti: &[u8; 32]) -> Vec<u8> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    let now = now_ms / 1000;
    let claims = AssertionClaims {
        iss: String::from(client_id),
        sub: String::from(client_id),
        aud: String::from(audience),
        iat: now,
        exp: now + 300,
        jti: URL_SAFE_NO_PAD.encode(&jti[..16]),
    };
    let claims = URL_SAFE_NO_PAD.encode(miniserde::json::to_string(&claims));
    format!("{header}.{claims}").into_bytes()
}

/// The compact JWS: signing input, `.`, the base64url signature.
pub fn finish_assertion(input: &[u8], signature: &[u8]) -> Result<String, Error> {
    if signature.len() != 64 {
        return Err(Error::InvalidConfig {
            reason: format!(
                "the host's ES256 signature has {} bytes, expected 64 (r || s)",
                signature.len()
            ),
        });
    }
    Ok(format!(
        "{}.{}",
        String::from_utf8_lossy(input),
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// How the client authenticates a machine grant.
pub fn client_auth<'a>(client: &'a ClientCredentials, assertion: Option<&'a str>) -> ClientAuth<'a> {
    match assertion {
        Some(a) => ClientAuth::Assertion {
            client_id: &client.client_id,
            assertion: a,
        },
        None => ClientAuth::Credentials(client),
    }
}

/// OAuth 2.1 §4.2.1 client credentials request, with `resource` (RFC 8707).
pub fn client_credentials_request(
    token_endpoint: &str,
    resource: &str,
    scope: Option<&str>,
    auth: ClientAuth<'_>,
) -> HttpRequest {
    let mut form = alloc::vec![
        ("grant_type", String::from("client_credentials")),
        ("resource", String::from(resource)),
    ];
    if let Some(s) = scope {
        form.push(("scope", String::from(s)));
    }
    form_post(token_endpoint, form, auth)
}

/// RFC 8693 token exchange at the IdP: the user's ID token for an ID-JAG
/// addressed to the AS (`audience`) for this resource.
pub fn token_exchange_request(
    idp_token_endpoint: &str,
    id_token: &str,
    audience: &str,
    resource: &str,
    scope: Option<&str>,
    idp_client_id: Option<&str>,
) -> HttpRequest {
    let mut form = alloc::vec![
        ("grant_type", String::from(TOKEN_EXCHANGE_GRANT)),
        ("requested_token_type", String::from(ID_JAG_TYPE)),
        ("subject_token", String::from(id_token)),
        ("subject_token_type", String::from(ID_TOKEN_TYPE)),
        ("audience", String::from(audience)),
        ("resource", String::from(resource)),
    ];
    if let Some(s) = scope {
        form.push(("scope", String::from(s)));
    }
    let auth = match idp_client_id {
        Some(id) => ClientAuth::PublicId(id),
        None => ClientAuth::None,
    };
    form_post(idp_token_endpoint, form, auth)
}

#[derive(Deserialize)]
struct ExchangeResponse {
    access_token: Option<String>,
    issued_token_type: Option<String>,
}

/// The ID-JAG from the IdP's answer (RFC 8693 §2.2.1).
pub fn parse_token_exchange(resp: &HttpResponse) -> Result<String, Error> {
    if !(200..300).contains(&resp.status) {
        return Err(token_error(resp));
    }
    let invalid = |detail: &str| Error::InvalidResponse {
        what: "token exchange response",
        detail: String::from(detail),
    };
    let r: ExchangeResponse = crate::primitives::json::from_json(&resp.body).ok_or_else(|| invalid("not JSON"))?;
    if r.issued_token_type.as_deref().is_some_and(|t| t != ID_JAG_TYPE) {
        return Err(invalid("the IdP issued another token type than an ID-JAG"));
    }
    r.access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("no access_token"))
}

/// RFC 7523 §2.1 jwt-bearer grant at the AS with an assertion: the ID-JAG
/// (SEP-990) or the workload's own JWT (SEP-1933).
pub fn jwt_bearer_request(
    token_endpoint: &str,
    id_jag: &str,
    resource: &str,
    scope: Option<&str>,
    auth: ClientAuth<'_>,
) -> HttpRequest {
    let mut form = alloc::vec![
        ("grant_type", String::from(JWT_BEARER_GRANT)),
        ("assertion", String::from(id_jag)),
        ("resource", String::from(resource)),
    ];
    if let Some(s) = scope {
        form.push(("scope", String::from(s)));
    }
    form_post(token_endpoint, form, auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::client_auth::{AuthMethod, ClientSource};

    fn form(r: &HttpRequest) -> Vec<(String, String)> {
        form_urlencoded::parse(&r.body).into_owned().collect()
    }

    fn get(f: &[(String, String)], k: &str) -> Option<String> {
        f.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone())
    }

    // RFC 7523 §3: iss = sub = client id, aud, exp; compact JWS.
    #[test]
    fn assertion_claims_and_shape() {
        let input = assertion_signing_input("cid", "https://as.example", 1_700_000_000_123, &[9; 32]);
        let text = String::from_utf8(input.clone()).unwrap();
        let (h, c) = text.split_once('.').unwrap();
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
        assert_eq!(header, r#"{"alg":"ES256","typ":"JWT"}"#);
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c).unwrap()).unwrap();
        assert_eq!(claims["iss"], "cid");
        assert_eq!(claims["sub"], "cid");
        assert_eq!(claims["aud"], "https://as.example");
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 300);
        let jws = finish_assertion(&input, &[1; 64]).unwrap();
        assert_eq!(jws.matches('.').count(), 2);
        assert!(finish_assertion(&input, &[1; 70]).is_err());
    }

    #[test]
    fn client_credentials_with_basic_or_assertion() {
        let client = ClientCredentials {
            client_id: "cid".into(),
            client_secret: Some("sec".into()),
            method: AuthMethod::ClientSecretBasic,
            source: ClientSource::PreRegistered,
        };
        let r = client_credentials_request(
            "https://as.example/token",
            "https://mcp.example/mcp",
            Some("a b"),
            client_auth(&client, None),
        );
        let f = form(&r);
        assert_eq!(get(&f, "grant_type").as_deref(), Some("client_credentials"));
        assert_eq!(get(&f, "resource").as_deref(), Some("https://mcp.example/mcp"));
        assert!(r.header("authorization").unwrap().starts_with("Basic "));
        let r = client_credentials_request(
            "https://as.example/token",
            "r",
            None,
            client_auth(&client, Some("h.c.s")),
        );
        let f = form(&r);
        assert_eq!(
            get(&f, "client_assertion_type").as_deref(),
            Some(crate::wire::client_auth::JWT_BEARER_ASSERTION)
        );
        assert_eq!(get(&f, "client_assertion").as_deref(), Some("h.c.s"));
        assert!(r.header("authorization").is_none());
        assert!(get(&f, "client_secret").is_none());
    }

    // SEP-990: token exchange parameters, then the jwt-bearer grant.
    #[test]
    fn identity_assertion_requests() {
        let r = token_exchange_request(
            "https://idp.example/token",
            "idtok",
            "https://as.example",
            "https://mcp.example/mcp",
            None,
            Some("idp-client"),
        );
        let f = form(&r);
        assert_eq!(get(&f, "grant_type").as_deref(), Some(TOKEN_EXCHANGE_GRANT));
        assert_eq!(get(&f, "requested_token_type").as_deref(), Some(ID_JAG_TYPE));
        assert_eq!(get(&f, "subject_token_type").as_deref(), Some(ID_TOKEN_TYPE));
        assert_eq!(get(&f, "audience").as_deref(), Some("https://as.example"));
        assert_eq!(get(&f, "client_id").as_deref(), Some("idp-client"));
        let ok = HttpResponse { status: 200, headers: Vec::new(), body: br#"{"access_token":"jag","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag","token_type":"N_A"}"#.to_vec() };
        assert_eq!(parse_token_exchange(&ok).unwrap(), "jag");
        let wrong = HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: br#"{"access_token":"x","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#
                .to_vec(),
        };
        assert!(parse_token_exchange(&wrong).is_err());
        let client = ClientCredentials {
            client_id: "c".into(),
            client_secret: Some("s".into()),
            method: AuthMethod::ClientSecretBasic,
            source: ClientSource::PreRegistered,
        };
        let r = jwt_bearer_request(
            "https://as.example/token",
            "jag",
            "res",
            None,
            client_auth(&client, None),
        );
        let f = form(&r);
        assert_eq!(get(&f, "grant_type").as_deref(), Some(JWT_BEARER_GRANT));
        assert_eq!(get(&f, "assertion").as_deref(), Some("jag"));
    }
}
