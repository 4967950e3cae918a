//! Session configuration, validated once in `Session::new`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Error;
use crate::primitives::url_safety::check_url;

/// How the engine obtains tokens.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Grant {
    /// A user authorizes in the browser (authorization code + PKCE).
    #[default]
    AuthorizationCode,
    /// The client acts on its own behalf (OAuth 2.1 client credentials),
    /// with the pre-registered client id; no user, no browser.
    ClientCredentials,
    /// Enterprise-managed authorization (SEP-990): the user's identity
    /// assertion from their IdP is exchanged for an ID-JAG (RFC 8693), which
    /// the AS exchanges for an access token (RFC 7523 jwt-bearer).
    IdentityAssertion {
        /// The IdP's token endpoint.
        idp_token_endpoint: String,
        /// The user's ID token (a secret).
        id_token: String,
        /// This client's id at the IdP.
        idp_client_id: Option<String>,
    },
    /// Workload identity federation (SEP-1933): a JWT the workload's
    /// platform issued (a Kubernetes service account token, a cloud
    /// identity token) presented to the AS with the RFC 7523 jwt-bearer
    /// grant. Repeated with the same assertion when the token expires.
    WorkloadIdentity {
        /// The workload's JWT (a secret).
        assertion: String,
    },
}

impl core::fmt::Debug for Grant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Grant::AuthorizationCode => f.write_str("AuthorizationCode"),
            Grant::ClientCredentials => f.write_str("ClientCredentials"),
            Grant::IdentityAssertion { idp_token_endpoint, .. } => f
                .debug_struct("IdentityAssertion")
                .field("idp_token_endpoint", idp_token_endpoint)
                .field("id_token", &"<redacted>")
                .finish_non_exhaustive(),
            Grant::WorkloadIdentity { .. } => f.write_str("WorkloadIdentity { assertion: <redacted> }"),
        }
    }
}

impl Grant {
    /// True for the grants that need no user.
    pub fn is_machine(&self) -> bool {
        !matches!(self, Grant::AuthorizationCode)
    }
}

/// How a session identifies itself and how long it waits.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// A pre-registered client id (highest priority in "Client Registration").
    pub client_id: Option<String>,
    /// Its secret, for a confidential pre-registered client.
    pub client_secret: Option<String>,
    /// The issuer the pre-registered client belongs to; when set and the server
    /// points elsewhere, the engine stops instead of sending the credentials
    /// ("Authorization Server Binding").
    pub client_issuer: Option<String>,
    /// A Client ID Metadata Document URL (https with a path).
    pub client_metadata_url: Option<String>,
    /// `client_name` for dynamic registration.
    pub client_name: String,
    /// Scopes to request instead of the spec's selection.
    pub scope: Option<String>,
    /// Pin the callback port (`None`: any free port).
    pub callback_port: Option<u16>,
    /// How long to wait for the user: the browser to come back, or the
    /// device code to be approved (at most as long as the code lives).
    pub callback_timeout_ms: u64,
    /// Sign in with the device authorization grant (RFC 8628) when the AS
    /// offers it: set when no browser can reach this machine's loopback
    /// listener (a remote shell, a container) or the user asks. Without a
    /// `device_authorization_endpoint` the usual flow runs.
    pub device_grant: bool,
    /// A token expiring within this margin counts as expired.
    pub expiry_skew_ms: u64,
    /// Step-up authorizations allowed per session before giving up.
    pub max_step_ups: u8,
    /// Ask for `offline_access` when the AS lists it.
    pub request_offline_access: bool,
    /// Issuers allowed to omit S256 from `code_challenge_methods_supported`
    /// (S256 is still used). Off by default; each use is reported.
    pub allow_missing_s256: Vec<String>,
    /// How tokens are obtained.
    pub grant: Grant,
    /// Authenticate at the token endpoint with a JWT the host signs (RFC 7523
    /// `private_key_jwt`, ES256); the key never enters the engine.
    pub private_key_jwt: bool,
    /// Extra parameters for the authorization request (Google's
    /// `access_type`, Auth0's `audience`): added after the engine's own,
    /// never replacing one ([`RESERVED_AUTHORIZE_PARAMS`]).
    pub authorize_params: Vec<(String, String)>,
}

/// Parameters the engine sets on the authorization request itself: an extra
/// parameter may not name one (nor `request`/`request_uri`, which would
/// replace them all).
pub const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "state",
    "resource",
    "scope",
    "request",
    "request_uri",
];

/// At most this many extra authorization parameters, each value at most
/// [`MAX_AUTHORIZE_PARAM_LEN`] bytes.
pub const MAX_AUTHORIZE_PARAMS: usize = 16;
/// The longest extra parameter value accepted.
pub const MAX_AUTHORIZE_PARAM_LEN: usize = 1024;

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            client_issuer: None,
            client_metadata_url: None,
            client_name: String::from("mcp-oauth"),
            scope: None,
            callback_port: None,
            callback_timeout_ms: 5 * 60 * 1000,
            device_grant: false,
            expiry_skew_ms: 60 * 1000,
            max_step_ups: 3,
            request_offline_access: true,
            allow_missing_s256: Vec::new(),
            grant: Grant::AuthorizationCode,
            private_key_jwt: false,
            authorize_params: Vec::new(),
        }
    }
}

impl core::fmt::Debug for Config {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Config")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("client_issuer", &self.client_issuer)
            .field("client_metadata_url", &self.client_metadata_url)
            .field("scope", &self.scope)
            .field("callback_port", &self.callback_port)
            .field("callback_timeout_ms", &self.callback_timeout_ms)
            .field("device_grant", &self.device_grant)
            .field("grant", &self.grant)
            .field("private_key_jwt", &self.private_key_jwt)
            .field("authorize_params", &self.authorize_params)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Rejects combinations that cannot work, with a reason.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |reason: &str| {
            Err(Error::InvalidConfig {
                reason: String::from(reason),
            })
        };
        if self.client_secret.is_some() && self.client_id.is_none() {
            return bad("a client secret needs a client id");
        }
        if self.client_id.as_deref().is_some_and(str::is_empty) {
            return bad("the client id is empty");
        }
        if let Some(u) = &self.client_metadata_url {
            let url = check_url(u, "client metadata document")?;
            if url.scheme() != "https" || url.path().trim_matches('/').is_empty() {
                return bad(
                    "a client metadata URL must be https and have a path (e.g. https://app.example/client.json)",
                );
            }
        }
        if self.grant.is_machine() && self.client_id.is_none() {
            return bad("client credentials and identity assertions need a pre-registered client id");
        }
        if let Grant::WorkloadIdentity { assertion } = &self.grant
            && (assertion.split('.').count() != 3 || assertion.len() > 16 * 1024)
        {
            return bad("the workload identity assertion is not a JWT");
        }
        if let Grant::IdentityAssertion { idp_token_endpoint, .. } = &self.grant {
            check_url(idp_token_endpoint, "IdP token endpoint")?;
        }
        if self.callback_timeout_ms == 0 {
            return bad("the callback timeout must be more than zero");
        }
        check_authorize_params(&self.authorize_params)
    }
}

/// Extra authorization parameters: few, short, token-like names that the
/// engine does not set itself, values without control characters.
fn check_authorize_params(params: &[(String, String)]) -> Result<(), Error> {
    for (i, (name, value)) in params.iter().enumerate() {
        if RESERVED_AUTHORIZE_PARAMS.contains(&name.as_str()) {
            return Err(Error::InvalidConfig {
                reason: alloc::format!(
                    "the authorization parameter '{name}' is set by the engine and cannot be overridden"
                ),
            });
        }
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        let value_ok = value.len() <= MAX_AUTHORIZE_PARAM_LEN && !value.chars().any(char::is_control);
        if !name_ok || !value_ok || i >= MAX_AUTHORIZE_PARAMS || params[..i].iter().any(|(n, _)| n == name) {
            // One message for every shape rule keeps the component small.
            return Err(Error::InvalidConfig {
                reason: String::from(
                    "extra authorization parameters: at most 16, each named once with letters, digits, '_', '.' \
                     or '-' (up to 64), values up to 1 KiB without control characters",
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_params(params: &[(&str, &str)]) -> Result<(), Error> {
        Config {
            authorize_params: params
                .iter()
                .map(|(k, v)| (String::from(*k), String::from(*v)))
                .collect(),
            ..Config::default()
        }
        .validate()
    }

    fn reason(r: Result<(), Error>) -> String {
        match r {
            Err(Error::InvalidConfig { reason }) => reason,
            other => panic!("expected an invalid configuration, got {other:?}"),
        }
    }

    #[test]
    fn extra_authorization_parameters_never_override_the_engines() {
        assert!(with_params(&[("audience", "https://api.example/"), ("access_type", "offline")]).is_ok());
        for name in RESERVED_AUTHORIZE_PARAMS {
            let why = reason(with_params(&[(name, "x")]));
            assert!(why.contains("cannot be overridden") && why.contains(name), "{why}");
        }
        let shape = "extra authorization parameters: at most 16";
        assert!(reason(with_params(&[("a", "1"), ("a", "2")])).starts_with(shape));
        assert!(reason(with_params(&[("", "1")])).starts_with(shape));
        assert!(reason(with_params(&[("a b", "1")])).starts_with(shape));
        assert!(reason(with_params(&[("a", "x\ny")])).starts_with(shape));
        let long = "v".repeat(MAX_AUTHORIZE_PARAM_LEN + 1);
        assert!(reason(with_params(&[("a", &long)])).starts_with(shape));
        assert!(with_params(&[("a", &long[1..])]).is_ok());
        let many: Vec<(String, String)> = (0..=MAX_AUTHORIZE_PARAMS)
            .map(|i| (alloc::format!("p{i}"), String::new()))
            .collect();
        let cfg = Config {
            authorize_params: many,
            ..Config::default()
        };
        assert!(reason(cfg.validate()).starts_with(shape));
    }
}
