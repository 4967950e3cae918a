//! Token requests and responses (OAuth 2.1 §3.2 / RFC 6749 §5): the
//! authorization-code and refresh grants, both carrying the same `resource`
//! string (RFC 8707; MCP "Resource Parameter Implementation").

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use miniserde::{Deserialize, Serialize};

use crate::effect::{AccessToken, HttpRequest, HttpResponse};
use crate::error::Error;
use crate::primitives::scope;
use crate::wire::client_auth::{ClientAuth, ClientCredentials, form_post};

/// What the engine keeps of a grant (persisted in the token record).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: String,
    /// Absolute expiry, unix ms.
    pub expires_at: Option<u64>,
    /// The refresh token, if the AS issued one.
    pub refresh_token: Option<String>,
    /// Granted scopes, space-separated.
    pub scope: Option<String>,
    /// The client the grant was issued to (refresh must use the same one).
    pub client_id: String,
    /// The DPoP key pair the grant is bound to (RFC 9449), if any: every use
    /// of the access and refresh token needs a proof made with it. Right
    /// after parsing, [`DPOP_BOUND`] says "bound, key not yet recorded".
    pub dpop_key: Option<String>,
    /// The lifetime the AS gave (`expires_in`), ms: the refresh margin is at
    /// most half of it, so a short-lived token is not stale on arrival.
    pub lifetime_ms: Option<u64>,
}

/// Marks a freshly parsed `token_type: DPoP` grant until the session
/// records which key it asked for (`store_tokens`).
pub const DPOP_BOUND: &str = "";

impl core::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "<redacted>"))
            .field("scope", &self.scope)
            .field("client_id", &self.client_id)
            .field("dpop_key", &self.dpop_key)
            .field("lifetime_ms", &self.lifetime_ms)
            .finish()
    }
}

impl TokenSet {
    /// How long before expiry the token counts as stale: the configured
    /// skew, but at most half the token's lifetime (a 20 s token is not
    /// stale on arrival under a 60 s skew).
    pub fn margin_ms(&self, skew_ms: u64) -> u64 {
        self.lifetime_ms.map_or(skew_ms, |l| skew_ms.min(l / 2))
    }

    /// From when (unix ms) the token counts as stale and is refreshed;
    /// `None` for a token of unknown lifetime.
    pub fn refresh_at(&self, skew_ms: u64) -> Option<u64> {
        self.expires_at.map(|e| e.saturating_sub(self.margin_ms(skew_ms)))
    }

    /// Usable now: before [`Self::refresh_at`] (or of unknown lifetime).
    pub fn is_fresh(&self, now: u64, skew_ms: u64) -> bool {
        self.refresh_at(skew_ms).is_none_or(|r| r > now)
    }

    /// The scopes as a list.
    pub fn scopes(&self) -> Vec<String> {
        self.scope.as_deref().map(scope::split).unwrap_or_default()
    }

    /// The token for the caller; `skew_ms` sets when it is refreshed.
    pub fn access(&self, skew_ms: u64) -> AccessToken {
        AccessToken::new(
            self.access_token.clone(),
            self.expires_at,
            self.refresh_at(skew_ms),
            self.scopes(),
            self.dpop_key.is_some(),
        )
    }
}

/// `expires_in` as ASes send it: a JSON number, or (some servers) a numeric
/// string. Read by its own small visitor rather than through
/// `miniserde::json::Value`, whose map support costs the component ~8 KB.
#[derive(Default)]
enum Lifetime {
    #[default]
    Absent,
    Seconds(u64),
    NotANumber,
}

impl Deserialize for Lifetime {
    fn begin(out: &mut Option<Self>) -> &mut dyn miniserde::de::Visitor {
        out.insert(Lifetime::Absent)
    }
}

impl miniserde::de::Visitor for Lifetime {
    fn null(&mut self) -> miniserde::Result<()> {
        Ok(())
    }
    fn nonnegative(&mut self, n: u64) -> miniserde::Result<()> {
        *self = Lifetime::Seconds(n);
        Ok(())
    }
    fn negative(&mut self, _: i64) -> miniserde::Result<()> {
        *self = Lifetime::Seconds(0);
        Ok(())
    }
    fn float(&mut self, f: f64) -> miniserde::Result<()> {
        *self = Lifetime::Seconds(f.max(0.0) as u64);
        Ok(())
    }
    fn string(&mut self, s: &str) -> miniserde::Result<()> {
        *self = s.trim().parse().map_or(Lifetime::NotANumber, Lifetime::Seconds);
        Ok(())
    }
    fn boolean(&mut self, _: bool) -> miniserde::Result<()> {
        *self = Lifetime::NotANumber;
        Ok(())
    }
}

#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<Lifetime>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

/// The token endpoint refused: status plus the OAuth error, if any.
pub fn token_error(resp: &HttpResponse) -> Error {
    let e = crate::primitives::json::oauth_error(&resp.body);
    Error::TokenRequestFailed {
        status: resp.status,
        error: e.error,
        description: e.error_description,
    }
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Parses a successful token response into a [`TokenSet`].
///
/// `previous` supplies what the AS may leave out on refresh: the refresh token
/// (RFC 6749 §6: a new one is optional) and the scope (§5.1: omitted means
/// "as requested").
pub fn parse_token_response(
    resp: &HttpResponse,
    now: u64,
    client_id: &str,
    requested_scope: Option<&str>,
    previous_refresh: Option<&str>,
) -> Result<TokenSet, Error> {
    if !(200..300).contains(&resp.status) {
        return Err(token_error(resp));
    }
    let invalid = |detail: &str| Error::InvalidResponse {
        what: "token response",
        detail: detail.to_string(),
    };
    let raw: RawTokenResponse = crate::primitives::json::from_json(&resp.body)
        .ok_or_else(|| invalid("the body is not a JSON token response"))?;
    let access_token = raw
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("no access_token"))?;
    // It goes into an HTTP header and onto a terminal: RFC 6750 §2.1 syntax
    // only (no CR/LF, no controls, no spaces).
    if !is_b64token(&access_token) {
        return Err(invalid("access_token is not an RFC 6750 b64token"));
    }
    let refresh_token = raw.refresh_token.filter(|t| !t.is_empty());
    if refresh_token
        .as_deref()
        .is_some_and(|t| !t.bytes().all(|b| (0x20..=0x7e).contains(&b)))
    {
        return Err(invalid("refresh_token has characters outside RFC 6749 VSCHAR"));
    }
    let dpop = match raw.token_type.as_deref() {
        Some(t) if t.eq_ignore_ascii_case("bearer") => false,
        Some(t) if t.eq_ignore_ascii_case("dpop") => true,
        Some(_) => return Err(invalid("token_type is neither Bearer nor DPoP")),
        None => return Err(invalid("no token_type")),
    };
    let expires_in: Option<u64> = match raw.expires_in.unwrap_or_default() {
        Lifetime::Absent => None,
        Lifetime::Seconds(n) => Some(n),
        // Not "never expires": a value nobody can read is an error.
        Lifetime::NotANumber => return Err(invalid("expires_in is not a number")),
    };
    Ok(TokenSet {
        access_token,
        expires_at: expires_in.map(|s| now.saturating_add(s.saturating_mul(1000))),
        refresh_token: refresh_token.or_else(|| previous_refresh.map(String::from)),
        // A scope outside RFC 6749 §3.3 syntax is as good as none said.
        scope: raw
            .scope
            .filter(|s| {
                s.bytes()
                    .all(|b| b == b' ' || (b >= 0x21 && b != b'"' && b != b'\\' && b <= 0x7e))
            })
            .or_else(|| requested_scope.map(String::from)),
        client_id: String::from(client_id),
        dpop_key: dpop.then(|| String::from(DPOP_BOUND)),
        lifetime_ms: expires_in.map(|s| s.saturating_mul(1000)),
    })
}

/// The parts of an authorization-code exchange.
pub struct CodeExchange<'a> {
    /// Token endpoint URL.
    pub token_endpoint: &'a str,
    /// The authorization code.
    pub code: &'a str,
    /// The exact redirect URI of the authorization request.
    pub redirect_uri: &'a str,
    /// The PKCE verifier.
    pub verifier: &'a str,
    /// The resource, verbatim.
    pub resource: &'a str,
    /// The client.
    pub client: &'a ClientCredentials,
}

/// OAuth 2.1 §4.1.3 token request, with `resource` (RFC 8707 §2.2).
pub fn code_request(x: &CodeExchange<'_>) -> HttpRequest {
    let form = alloc::vec![
        ("grant_type", String::from("authorization_code")),
        ("code", String::from(x.code)),
        ("redirect_uri", String::from(x.redirect_uri)),
        ("code_verifier", String::from(x.verifier)),
        ("resource", String::from(x.resource)),
    ];
    form_post(x.token_endpoint, form, ClientAuth::Credentials(x.client))
}

/// OAuth 2.1 §4.3.1 refresh request, with the same `resource` (RFC 8707 §2.2).
/// No `scope`: the grant keeps the scope it had.
pub fn refresh_request(
    token_endpoint: &str,
    refresh_token: &str,
    resource: &str,
    client: &ClientCredentials,
) -> HttpRequest {
    let form = alloc::vec![
        ("grant_type", String::from("refresh_token")),
        ("refresh_token", String::from(refresh_token)),
        ("resource", String::from(resource)),
    ];
    form_post(token_endpoint, form, ClientAuth::Credentials(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn parses_bearer_case_insensitively_and_computes_expiry() {
        let t = parse_token_response(
            &resp(
                200,
                r#"{"access_token":"A","token_type":"bEaReR","expires_in":3600,"refresh_token":"R","scope":"a b"}"#,
            ),
            1_000,
            "cid",
            None,
            None,
        )
        .unwrap();
        assert_eq!(t.expires_at, Some(1_000 + 3_600_000));
        assert_eq!(t.refresh_token.as_deref(), Some("R"));
        assert_eq!(t.scopes(), ["a", "b"]);
        assert!(!format!("{t:?}").contains("\"A\"") && !format!("{:?}", t.access(0)).contains('R'));
    }

    #[test]
    fn keeps_previous_refresh_token_and_requested_scope_when_omitted() {
        let t = parse_token_response(
            &resp(200, r#"{"access_token":"A","token_type":"Bearer","expires_in":"60"}"#),
            0,
            "c",
            Some("x"),
            Some("OLD"),
        )
        .unwrap();
        assert_eq!(t.refresh_token.as_deref(), Some("OLD"));
        assert_eq!(t.scope.as_deref(), Some("x"));
        assert_eq!(t.expires_at, Some(60_000));
    }

    #[test]
    fn rejects_bad_responses() {
        for body in [
            r#"{"token_type":"Bearer"}"#,
            r#"{"access_token":"A","token_type":"mac"}"#,
            r#"{"access_token":"A"}"#,
            "not json",
        ] {
            assert!(
                matches!(
                    parse_token_response(&resp(200, body), 0, "c", None, None),
                    Err(Error::InvalidResponse { .. })
                ),
                "{body}"
            );
        }
        let e = parse_token_response(
            &resp(400, r#"{"error":"invalid_grant","error_description":"used"}"#),
            0,
            "c",
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e,
            Error::TokenRequestFailed {
                status: 400,
                error: Some("invalid_grant".into()),
                description: Some("used".into())
            }
        );
    }

    #[test]
    fn fresh_respects_skew() {
        let t = TokenSet {
            access_token: "a".into(),
            expires_at: Some(100_000),
            refresh_token: None,
            scope: None,
            client_id: "c".into(),
            dpop_key: None,
            lifetime_ms: None,
        };
        assert!(t.is_fresh(0, 60_000));
        assert!(!t.is_fresh(40_001, 60_000));
        assert!(
            TokenSet {
                expires_at: None,
                ..t.clone()
            }
            .is_fresh(u64::MAX, 60_000)
        );
        // A 20 s token: the margin is 10 s, not the 60 s skew.
        let short = TokenSet {
            expires_at: Some(20_000),
            lifetime_ms: Some(20_000),
            ..t
        };
        assert_eq!(short.refresh_at(60_000), Some(10_000));
        assert!(short.is_fresh(0, 60_000) && short.is_fresh(9_999, 60_000));
        assert!(!short.is_fresh(10_000, 60_000));
        assert_eq!(short.access(60_000).refresh_at, Some(10_000));
    }

    #[test]
    fn hostile_token_fields_are_refused() {
        let parse = |body: &str| parse_token_response(&resp(200, body), 0, "c", None, None);
        for bad in [
            r#"{"access_token":"a\r\nX-Injected: 1","token_type":"Bearer"}"#,
            r#"{"access_token":"a b","token_type":"Bearer"}"#,
            r#"{"access_token":"\u001b[31m","token_type":"Bearer"}"#,
            r#"{"access_token":"===","token_type":"Bearer"}"#,
            r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r\n"}"#,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":"soon"}"#,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":[1]}"#,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":{"s":1}}"#,
            r#"{"access_token":"a","token_type":"Bearer","expires_in":true}"#,
        ] {
            assert!(matches!(parse(bad), Err(Error::InvalidResponse { .. })), "{bad}");
        }
        let at = |lifetime: &str| {
            parse(&format!(
                r#"{{"access_token":"a","token_type":"Bearer","expires_in":{lifetime}}}"#
            ))
            .unwrap()
            .expires_at
        };
        assert_eq!(at("3600"), Some(3_600_000));
        assert_eq!(at("\" 60 \""), Some(60_000));
        assert_eq!(at("1.9"), Some(1_000));
        assert_eq!(at("-5"), Some(0));
        assert_eq!(at("null"), None);
        let ok = parse(r#"{"access_token":"eyJ.a-b_c~d+e/f==","token_type":"Bearer","scope":"a \u001b]0;x"}"#).unwrap();
        assert_eq!(ok.scope, None, "a scope with controls is dropped");
        assert!(is_b64token("abc=") && !is_b64token("") && !is_b64token("a=b"));
    }
}
