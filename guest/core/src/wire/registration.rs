//! Client identity in the order of MCP 2026-07-28 "Client Registration":
//! pre-registered → Client ID Metadata Document → dynamic registration
//! (RFC 7591) → an error that says what the AS offers.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use miniserde::{Deserialize, Serialize};

use crate::effect::{HttpRequest, HttpResponse, Method};
use crate::error::Error;
use crate::primitives::json::oauth_error;
use crate::wire::client_auth::AuthMethod;
use crate::wire::device_authorization::DEVICE_CODE_GRANT;
use crate::wire::metadata::AsMetadata;

/// A dynamic registration, persisted per issuer and never sent to another.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The issuer that issued it (MCP "Authorization Server Binding").
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret, if the AS issued one.
    pub client_secret: Option<String>,
    /// The redirect URIs it was registered with.
    pub redirect_uris: Vec<String>,
    /// The token endpoint auth method the AS assigned.
    pub token_endpoint_auth_method: Option<String>,
    /// The grant types registered (absent in older records: the code grant).
    pub grant_types: Option<Vec<String>>,
}

impl core::fmt::Debug for Registration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Registration")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

impl Registration {
    /// Reusable for this flow: same issuer, and registered for this exact
    /// redirect URI (`None`: for the device grant).
    pub fn usable_for(&self, issuer: &str, redirect_uri: Option<&str>) -> bool {
        self.issuer == issuer
            && match redirect_uri {
                Some(uri) => self.redirect_uris.iter().any(|r| r == uri),
                None => self
                    .grant_types
                    .as_ref()
                    .is_some_and(|g| g.iter().any(|t| t == DEVICE_CODE_GRANT)),
            }
    }
}

/// The auth method to ask for: `none` (a public native client) unless the AS
/// does not offer it.
fn requested_auth_method(md: &AsMetadata) -> AuthMethod {
    match &md.token_endpoint_auth_methods_supported {
        Some(list) if !list.iter().any(|m| m == "none") => {
            if list.iter().any(|m| m == "client_secret_basic") || !list.iter().any(|m| m == "client_secret_post") {
                AuthMethod::ClientSecretBasic
            } else {
                AuthMethod::ClientSecretPost
            }
        }
        _ => AuthMethod::None,
    }
}

/// RFC 7591 §2 client metadata, as sent.
#[derive(Serialize)]
struct RegistrationRequest {
    client_name: String,
    redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    token_endpoint_auth_method: String,
    application_type: String,
}

/// The grant types a registration asks for: the code grant for a loopback
/// redirect URI, the device grant (RFC 8628 §4) without one.
fn grant_types(redirect_uri: Option<&str>) -> Vec<String> {
    let first = if redirect_uri.is_some() {
        "authorization_code"
    } else {
        DEVICE_CODE_GRANT
    };
    alloc::vec![String::from(first), String::from("refresh_token")]
}

/// RFC 7591 §2 / §3.1 registration request for a native client: with its
/// loopback redirect URI, or (`None`) for the device grant, with no
/// redirect URI and no response type.
pub fn registration_request(
    endpoint: &str,
    md: &AsMetadata,
    client_name: &str,
    redirect_uri: Option<&str>,
) -> HttpRequest {
    let body = RegistrationRequest {
        client_name: String::from(client_name),
        redirect_uris: redirect_uri.map(String::from).into_iter().collect(),
        grant_types: grant_types(redirect_uri),
        response_types: redirect_uri.map(|_| String::from("code")).into_iter().collect(),
        token_endpoint_auth_method: String::from(requested_auth_method(md).as_str()),
        application_type: String::from("native"),
    };
    HttpRequest {
        method: Method::Post,
        url: String::from(endpoint),
        headers: alloc::vec![
            (String::from("content-type"), String::from("application/json")),
            (String::from("accept"), String::from("application/json")),
        ],
        body: miniserde::json::to_string(&body).into_bytes(),
    }
}

#[derive(Deserialize)]
struct RawRegistration {
    client_id: Option<String>,
    client_secret: Option<String>,
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
}

/// RFC 7591 §3.2.1 response → a [`Registration`] bound to `issuer`.
pub fn parse_registration(
    resp: &HttpResponse,
    issuer: &str,
    redirect_uri: Option<&str>,
) -> Result<Registration, Error> {
    if !(200..300).contains(&resp.status) {
        let e = oauth_error(&resp.body);
        return Err(Error::RegistrationFailed {
            status: resp.status,
            error: e.error,
            description: e.error_description,
        });
    }
    let raw: RawRegistration =
        crate::primitives::json::from_json(&resp.body).ok_or_else(|| Error::InvalidResponse {
            what: "registration response",
            detail: String::from("not a JSON registration (RFC 7591 §3.2.1)"),
        })?;
    let client_id = raw.client_id.filter(|c| !c.is_empty()).ok_or(Error::InvalidResponse {
        what: "registration response",
        detail: "no client_id".to_string(),
    })?;
    // RFC 7591 §3.2.1: the server returns what it registered. A list without
    // our redirect URI is a registration this flow cannot use (registering
    // again would get the same answer: fail instead of looping).
    let redirect_uris = raw
        .redirect_uris
        .unwrap_or_else(|| redirect_uri.map(String::from).into_iter().collect());
    if let Some(uri) = redirect_uri
        && !redirect_uris.iter().any(|r| r == uri)
    {
        return Err(Error::InvalidResponse {
            what: "registration response",
            detail: "the authorization server registered other redirect URIs than the loopback one sent".to_string(),
        });
    }
    Ok(Registration {
        issuer: String::from(issuer),
        client_id,
        client_secret: raw.client_secret.filter(|s| !s.is_empty()),
        redirect_uris,
        token_endpoint_auth_method: raw.token_endpoint_auth_method,
        grant_types: Some(raw.grant_types.unwrap_or_else(|| grant_types(redirect_uri))),
    })
}

/// Words for the error when no identity path is open.
pub fn offers(md: &AsMetadata, has_metadata_url: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if md.registration_endpoint.is_none() {
        parts.push("it has no registration_endpoint (no dynamic registration)");
    }
    match (md.client_id_metadata_document_supported == Some(true), has_metadata_url) {
        (true, false) => {
            parts.push("it accepts client ID metadata documents, but no client ID metadata document URL is configured")
        }
        (false, true) => parts.push("it does not accept client ID metadata documents"),
        (false, false) => parts.push("it does not advertise client ID metadata documents"),
        (true, true) => {}
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md() -> AsMetadata {
        AsMetadata {
            issuer: "https://a.example".into(),
            authorization_endpoint: "https://a.example/authorize".into(),
            token_endpoint: "https://a.example/token".into(),
            registration_endpoint: Some("https://a.example/register".into()),
            ..<AsMetadata as Default>::default()
        }
    }

    // RFC 7591 + MCP 2026-07-28 "Application Type": native, loopback redirect,
    // both grants, auth method none.
    #[test]
    fn request_is_native_public_client() {
        let r = registration_request(
            "https://a.example/register",
            &md(),
            "mcp-oauth",
            Some("http://127.0.0.1:5000/callback"),
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["application_type"], "native");
        assert_eq!(v["redirect_uris"][0], "http://127.0.0.1:5000/callback");
        assert_eq!(
            v["grant_types"],
            serde_json::json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(v["token_endpoint_auth_method"], "none");
        let mut m = md();
        m.token_endpoint_auth_methods_supported = Some(alloc::vec!["client_secret_post".into()]);
        let r = registration_request("https://a.example/register", &m, "x", Some("http://127.0.0.1:1/cb"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["token_endpoint_auth_method"], "client_secret_post");
    }

    #[test]
    fn response_binds_to_issuer_and_redirect() {
        let resp = HttpResponse {
            status: 201,
            headers: Vec::new(),
            body: br#"{"client_id":"c1","client_secret":"s"}"#.to_vec(),
        };
        let r = parse_registration(&resp, "https://a.example", Some("http://127.0.0.1:1/cb")).unwrap();
        assert!(r.usable_for("https://a.example", Some("http://127.0.0.1:1/cb")));
        assert!(!r.usable_for("https://b.example", Some("http://127.0.0.1:1/cb")));
        assert!(!r.usable_for("https://a.example", Some("http://127.0.0.1:2/cb")));
        assert!(
            !r.usable_for("https://a.example", None),
            "a code-grant client is not a device client"
        );
        assert!(!format!("{r:?}").contains("\"s\""));
        let bad = HttpResponse {
            status: 400,
            headers: Vec::new(),
            body: br#"{"error":"invalid_redirect_uri"}"#.to_vec(),
        };
        assert!(matches!(
            parse_registration(&bad, "i", Some("r")),
            Err(Error::RegistrationFailed { status: 400, .. })
        ));
    }

    // RFC 8628 §4 / RFC 7591 §2: a device client has no redirect URI and no
    // response type, and registers the device grant.
    #[test]
    fn a_device_client_registers_the_device_grant_only() {
        let r = registration_request("https://a.example/register", &md(), "mcp-oauth", None);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["redirect_uris"], serde_json::json!([]));
        assert_eq!(v["response_types"], serde_json::json!([]));
        assert_eq!(
            v["grant_types"],
            serde_json::json!([DEVICE_CODE_GRANT, "refresh_token"])
        );
        let resp = HttpResponse {
            status: 201,
            headers: Vec::new(),
            body: br#"{"client_id":"d1"}"#.to_vec(),
        };
        let reg = parse_registration(&resp, "https://a.example", None).unwrap();
        assert!(reg.usable_for("https://a.example", None));
        assert!(!reg.usable_for("https://a.example", Some("http://127.0.0.1:1/cb")));
    }

    #[test]
    fn offers_names_what_is_missing() {
        let mut m = md();
        m.registration_endpoint = None;
        m.client_id_metadata_document_supported = Some(true);
        let o = offers(&m, false);
        assert!(o.contains("no registration_endpoint") && o.contains("metadata document URL"));
    }
}
