//! The authorization request (OAuth 2.1 §4.1.1) the browser is sent with:
//! `response_type=code`, PKCE S256 (RFC 7636), `state`, the `resource`
//! verbatim (RFC 8707) and the scope, never a forced `prompt`. Built only
//! from parts already validated.

use alloc::string::String;

use crate::primitives::http_url::HttpUrl;

/// What goes into the authorization URL.
pub struct AuthorizationRequest<'a> {
    /// The AS's authorization endpoint, checked by `url_safety`.
    pub endpoint: &'a HttpUrl,
    /// The client id in use for this issuer.
    pub client_id: &'a str,
    /// The loopback redirect URI the listener answers on.
    pub redirect_uri: &'a str,
    /// The S256 code challenge.
    pub code_challenge: &'a str,
    /// The CSRF `state` (single use).
    pub state: &'a str,
    /// The protected resource, exactly as its metadata spelled it.
    pub resource: &'a str,
    /// Space-separated scopes; `None` leaves the choice to the AS.
    pub scope: Option<&'a str>,
    /// Extra parameters from the configuration, appended after the engine's
    /// (which the configuration check keeps them from naming).
    pub extra: &'a [(String, String)],
}

impl AuthorizationRequest<'_> {
    /// The URL to open.
    pub fn url(&self) -> String {
        let mut params = alloc::vec![
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("code_challenge", self.code_challenge),
            ("code_challenge_method", "S256"),
            ("state", self.state),
            ("resource", self.resource),
        ];
        if let Some(s) = self.scope {
            params.push(("scope", s));
        }
        params.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.endpoint.with_query_pairs(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_pkce_state_resource_and_no_prompt() {
        let endpoint = HttpUrl::parse("https://as.example/authorize?x=1").unwrap();
        let url = AuthorizationRequest {
            endpoint: &endpoint,
            client_id: "c",
            redirect_uri: "http://127.0.0.1:5/callback",
            code_challenge: "ch",
            state: "st",
            resource: "https://MCP.example/mcp/",
            scope: Some("a b"),
            extra: &[],
        }
        .url();
        assert!(
            url.starts_with("https://as.example/authorize?x=1&response_type=code&client_id=c"),
            "{url}"
        );
        assert!(url.contains("code_challenge_method=S256"));
        assert!(url.contains("&state=st&"));
        assert!(url.contains("resource=https%3A%2F%2FMCP.example%2Fmcp%2F"));
        assert!(url.ends_with("&scope=a+b"));
        assert!(!url.contains("prompt"));
    }

    #[test]
    fn extra_parameters_come_after_the_engines() {
        let endpoint = HttpUrl::parse("https://as.example/authorize").unwrap();
        let extra = [
            (String::from("audience"), String::from("https://api.example/")),
            (String::from("access_type"), String::from("offline")),
        ];
        let url = AuthorizationRequest {
            endpoint: &endpoint,
            client_id: "c",
            redirect_uri: "http://127.0.0.1:5/callback",
            code_challenge: "ch",
            state: "st",
            resource: "https://mcp.example/",
            scope: None,
            extra: &extra,
        }
        .url();
        assert!(
            url.ends_with(
                "&resource=https%3A%2F%2Fmcp.example%2F&audience=https%3A%2F%2Fapi.example%2F&access_type=offline"
            ),
            "{url}"
        );
    }
}
