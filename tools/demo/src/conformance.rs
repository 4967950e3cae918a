//! What the official conformance suites hand a client, as the engine's
//! configuration: one rule for every Rust conformance client (the host's
//! `conformance-client`, rmcp's `examples/conformance_client.rs`).

use std::sync::Arc;

use mcp_oauth_host::Config;
use mcp_oauth_host::bindings::mcp::oauth::engine_types::{Grant, IdentityAssertion};
use mcp_oauth_host::signer::{Es256Signer, Signer};

/// The client ID metadata document URL the suites expect.
pub const CLIENT_METADATA_URL: &str = "https://conformance-test.local/client-metadata.json";

/// The configuration and signer for `MCP_CONFORMANCE_CONTEXT` (`context`)
/// and `MCP_CONFORMANCE_SCENARIO` (`scenario`). The grant follows what the
/// scenario hands the application: a signing key means private_key_jwt
/// client credentials, an ID token the enterprise flow, a workload JWT
/// workload identity; the client-credentials scenarios otherwise carry
/// their credentials as pre-registration, so their name decides.
pub fn config_for(
    context: &serde_json::Value,
    scenario: &str,
    client_name: &str,
) -> Result<(Config, Option<Arc<dyn Signer>>), String> {
    let text = |k: &str| context[k].as_str().map(String::from);
    let signer: Option<Arc<dyn Signer>> = match text("private_key_pem") {
        Some(pem) => Some(Arc::new(Es256Signer::from_pkcs8_pem(&pem)?)),
        None => None,
    };
    let grant = if let Some(id_token) = text("idp_id_token") {
        Some(Grant::IdentityAssertion(IdentityAssertion {
            idp_token_endpoint: text("idp_token_endpoint").ok_or("the context has no idp_token_endpoint")?,
            id_token,
            idp_client_id: text("idp_client_id"),
        }))
    } else if let Some(jwt) = text("valid_jwt") {
        // Workload identity (SEP-1933): the platform-issued JWT.
        Some(Grant::WorkloadIdentity(jwt))
    } else if signer.is_some() || scenario.contains("client-credentials") {
        Some(Grant::ClientCredentials)
    } else {
        None
    };
    let config = Config {
        client_id: text("client_id"),
        client_secret: text("client_secret"),
        grant,
        private_key_jwt: signer.is_some(),
        client_metadata_url: Some(CLIENT_METADATA_URL.into()),
        client_name: Some(client_name.into()),
        callback_timeout_ms: Some(20_000),
        ..Config::default()
    };
    Ok((config, signer))
}
