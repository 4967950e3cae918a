//! Token endpoint client authentication (RFC 6749 §2.3.1; OAuth 2.1 §2.4):
//! `none`, `client_secret_basic`, `client_secret_post`, chosen from what the
//! AS supports and what the registration says.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::effect::{HttpRequest, Method};

/// RFC 7523 §2.2 client assertion type (`private_key_jwt`).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client proves its identity at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Public client: `client_id` in the body only.
    None,
    /// HTTP Basic with the form-encoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    /// Parses an RFC 7591 name the engine implements.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(AuthMethod::None),
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            _ => None,
        }
    }

    /// Chooses the method: a client without a secret is public (`none`); with
    /// a secret, the registration's own method wins when it is one we
    /// implement, then the AS's list (RFC 8414 §2: absent means
    /// `client_secret_basic`), preferring basic over post.
    pub fn choose(has_secret: bool, registered: Option<&str>, supported: Option<&[String]>) -> Self {
        if !has_secret {
            return AuthMethod::None;
        }
        if let Some(m) = registered.and_then(Self::parse).filter(|m| *m != AuthMethod::None) {
            return m;
        }
        let supports = |m: AuthMethod| supported.is_none_or(|s| s.iter().any(|x| x == m.as_str()));
        if supports(AuthMethod::ClientSecretBasic) {
            AuthMethod::ClientSecretBasic
        } else if supports(AuthMethod::ClientSecretPost) {
            AuthMethod::ClientSecretPost
        } else {
            AuthMethod::ClientSecretBasic
        }
    }
}

/// The identity the engine presents to one authorization server.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The client id (may be a CIMD URL).
    pub client_id: String,
    /// The client secret, for confidential clients.
    pub client_secret: Option<String>,
    /// How to authenticate at the token endpoint.
    pub method: AuthMethod,
    /// Where the identity came from (decides what `invalid_client` means).
    pub source: ClientSource,
}

/// Where a client identity came from (MCP "Client Registration" priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    /// Configured by the user.
    PreRegistered,
    /// A Client ID Metadata Document URL.
    MetadataDocument,
    /// RFC 7591 dynamic registration (persisted per issuer).
    Dynamic,
}

impl core::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("method", &self.method)
            .field("source", &self.source)
            .finish()
    }
}

impl ClientCredentials {
    /// The one way to build a client identity: the method follows from the
    /// secret, the registration's own method and the AS's list
    /// ([`AuthMethod::choose`]); a client without a secret is public.
    pub fn new(
        source: ClientSource,
        client_id: &str,
        client_secret: Option<&str>,
        registered_method: Option<&str>,
        supported: Option<&[String]>,
    ) -> Self {
        Self {
            client_id: String::from(client_id),
            client_secret: client_secret.map(String::from),
            method: AuthMethod::choose(client_secret.is_some(), registered_method, supported),
            source,
        }
    }

    /// Adds client authentication to a token request: form fields and/or an
    /// `Authorization` header.
    pub fn apply(&self, form: &mut Vec<(&'static str, String)>, headers: &mut Vec<(String, String)>) {
        match (self.method, &self.client_secret) {
            (AuthMethod::ClientSecretBasic, Some(secret)) => {
                // RFC 6749 §2.3.1: each part form-urlencoded before base64.
                let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let raw = format!("{}:{}", enc(&self.client_id), enc(secret));
                headers.push((String::from("authorization"), format!("Basic {}", STANDARD.encode(raw))));
            }
            (AuthMethod::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.clone()));
            }
            _ => form.push(("client_id", self.client_id.clone())),
        }
    }
}

/// How a token request authenticates the client.
#[derive(Clone, Copy)]
pub enum ClientAuth<'a> {
    /// Secret or public client (`none`, basic, post).
    Credentials(&'a ClientCredentials),
    /// RFC 7523 `private_key_jwt`: a signed client assertion.
    Assertion {
        /// The client id.
        client_id: &'a str,
        /// The compact JWS.
        assertion: &'a str,
    },
    /// A public client id only (e.g. at an IdP).
    PublicId(&'a str),
    /// No client authentication.
    None,
}

/// A form-encoded POST to a token endpoint with client authentication.
pub(crate) fn form_post(url: &str, mut form: Vec<(&'static str, String)>, auth: ClientAuth<'_>) -> HttpRequest {
    let mut headers = alloc::vec![
        (
            String::from("content-type"),
            String::from("application/x-www-form-urlencoded")
        ),
        (String::from("accept"), String::from("application/json")),
    ];
    match auth {
        ClientAuth::Credentials(client) => client.apply(&mut form, &mut headers),
        ClientAuth::Assertion { client_id, assertion } => {
            form.push(("client_id", String::from(client_id)));
            form.push(("client_assertion_type", String::from(JWT_BEARER_ASSERTION)));
            form.push(("client_assertion", String::from(assertion)));
        }
        ClientAuth::PublicId(id) => form.push(("client_id", String::from(id))),
        ClientAuth::None => {}
    }
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &form {
        ser.append_pair(k, v);
    }
    HttpRequest {
        method: Method::Post,
        url: String::from(url),
        headers,
        body: ser.finish().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| String::from(*x)).collect()
    }

    #[test]
    fn choice_follows_secret_registration_and_as() {
        assert_eq!(
            AuthMethod::choose(false, Some("client_secret_basic"), None),
            AuthMethod::None
        );
        assert_eq!(AuthMethod::choose(true, None, None), AuthMethod::ClientSecretBasic);
        assert_eq!(
            AuthMethod::choose(true, None, Some(&s(&["client_secret_post"]))),
            AuthMethod::ClientSecretPost
        );
        assert_eq!(
            AuthMethod::choose(
                true,
                Some("client_secret_post"),
                Some(&s(&["client_secret_basic", "client_secret_post"]))
            ),
            AuthMethod::ClientSecretPost
        );
    }

    // RFC 6749 §2.3.1: form-encode, then base64.
    #[test]
    fn basic_header_encodes_parts() {
        let c = ClientCredentials {
            client_id: "my client".into(),
            client_secret: Some("p:ss&".into()),
            method: AuthMethod::ClientSecretBasic,
            source: ClientSource::PreRegistered,
        };
        let (mut form, mut headers) = (vec![], vec![]);
        c.apply(&mut form, &mut headers);
        assert!(form.is_empty());
        let decoded = STANDARD.decode(headers[0].1.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(decoded, b"my+client:p%3Ass%26");
        assert!(!format!("{c:?}").contains("p:ss"));
    }

    #[test]
    fn post_and_none_put_client_id_in_body() {
        let mut c = ClientCredentials {
            client_id: "id".into(),
            client_secret: Some("sec".into()),
            method: AuthMethod::ClientSecretPost,
            source: ClientSource::PreRegistered,
        };
        let (mut form, mut headers) = (vec![], vec![]);
        c.apply(&mut form, &mut headers);
        assert_eq!(form, vec![("client_id", "id".into()), ("client_secret", "sec".into())]);
        assert!(headers.is_empty());
        c.method = AuthMethod::None;
        c.client_secret = None;
        let mut form = vec![];
        c.apply(&mut form, &mut headers);
        assert_eq!(form, vec![("client_id", String::from("id"))]);
    }
}
