//! Token revocation (RFC 7009) at logout: the refresh token first (a
//! compliant AS then drops the access tokens of the grant too, §2.1), then
//! the access token, each with the client's token endpoint authentication.

use alloc::string::String;

use crate::effect::{HttpRequest, HttpResponse};
use crate::primitives::json::oauth_error;
use crate::wire::client_auth::{ClientAuth, ClientCredentials, form_post};

/// RFC 7009 §2.1: `token` and its `token_type_hint`.
pub fn revocation_request(endpoint: &str, token: &str, hint: &str, client: &ClientCredentials) -> HttpRequest {
    let form = alloc::vec![("token", String::from(token)), ("token_type_hint", String::from(hint)),];
    form_post(endpoint, form, ClientAuth::Credentials(client))
}

/// What the AS said to one revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// 200: revoked (or already invalid, which is as good).
    Yes,
    /// `unsupported_token_type` (§2.2.1): the AS does not revoke this kind
    /// of token (a self-contained access token, say); it lives out its
    /// expiry.
    NotSupported,
    /// Anything else, in words with no secret in them.
    Refused(String),
}

/// RFC 7009 §2.2: what a revocation's answer means.
pub fn revocation_answer(resp: &HttpResponse) -> Revoked {
    if resp.status == 200 {
        return Revoked::Yes;
    }
    let e = oauth_error(&resp.body);
    if e.error.as_deref() == Some("unsupported_token_type") {
        return Revoked::NotSupported;
    }
    let mut why = alloc::format!("HTTP {}", resp.status);
    if let Some(code) = e.error {
        why.push_str(": ");
        why.push_str(&crate::primitives::url_safety::printable(&code));
    }
    if let Some(d) = e.error_description {
        why.push_str(" (");
        why.push_str(&crate::primitives::url_safety::printable(&d));
        why.push(')');
    }
    Revoked::Refused(why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::client_auth::ClientSource;

    #[test]
    fn request_carries_token_hint_and_client() {
        let client = ClientCredentials::new(ClientSource::Dynamic, "cid", None, None, None);
        let req = revocation_request("https://as.example/revoke", "RT", "refresh_token", &client);
        let body = String::from_utf8(req.body).unwrap();
        assert_eq!(body, "token=RT&token_type_hint=refresh_token&client_id=cid");
    }

    #[test]
    fn only_200_is_revoked() {
        let r = |status: u16, body: &str| HttpResponse {
            status,
            headers: alloc::vec![],
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(revocation_answer(&r(200, "")), Revoked::Yes);
        let e = revocation_answer(&r(400, r#"{"error":"unsupported_token_type"}"#));
        assert_eq!(e, Revoked::NotSupported);
        let e = revocation_answer(&r(
            401,
            r#"{"error":"invalid_client","error_description":"who\u001b[2J"}"#,
        ));
        assert_eq!(e, Revoked::Refused("HTTP 401: invalid_client (who\u{fffd}[2J)".into()));
        assert_eq!(revocation_answer(&r(503, "")), Revoked::Refused("HTTP 503".into()));
    }
}
