//! The profile record: what `login` was given (client id, secret, metadata
//! URL, scope, extra authorization parameters, a machine grant), kept 0600 in
//! the store so that `token`, `status`, `logout` and `proxy` use the same
//! client identity as the login did. Key files are kept as paths, never
//! copied: the key stays where the user put it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp_oauth_host::Config;
use mcp_oauth_host::bindings::mcp::oauth::engine_types::{AuthorizeParam, Grant, IdentityAssertion};
use mcp_oauth_host::signer::{Es256Signer, Signer};
use mcp_oauth_host::storage::Store;

use super::Failure;

/// What `login` was given, kept (0600, in the store) so that `token`,
/// `status` and `logout` use the same client identity.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
pub(crate) struct Profile {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_metadata_url: Option<String>,
    pub scope: Option<String>,
    /// `--authorize-param` pairs, in order.
    #[serde(default)]
    pub authorize_params: Vec<(String, String)>,
    /// A machine grant instead of the browser.
    #[serde(default)]
    pub grant: Option<MachineGrant>,
    /// The PKCS#8 PEM key for `private_key_jwt`.
    #[serde(default)]
    pub private_key: Option<PathBuf>,
}

/// A grant with no user at a browser.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub(crate) enum MachineGrant {
    /// OAuth client credentials (the MCP client-credentials extension).
    ClientCredentials,
    /// Enterprise-managed authorization: an IdP ID token, read from a file
    /// each time (it is short-lived and renewed by whoever wrote it).
    IdentityAssertion {
        idp_token_endpoint: String,
        id_token_file: PathBuf,
        idp_client_id: Option<String>,
    },
    /// Workload identity federation (SEP-1933): the workload's JWT, read
    /// from its file each time (platforms rotate it in place).
    WorkloadIdentity { token_file: PathBuf },
}

impl Profile {
    /// What was given now, falling back to what was stored field by field.
    pub(crate) fn or(self, stored: Profile) -> Profile {
        Profile {
            client_id: self.client_id.or(stored.client_id),
            client_secret: self.client_secret.or(stored.client_secret),
            client_metadata_url: self.client_metadata_url.or(stored.client_metadata_url),
            scope: self.scope.or(stored.scope),
            authorize_params: if self.authorize_params.is_empty() {
                stored.authorize_params
            } else {
                self.authorize_params
            },
            grant: self.grant.or(stored.grant),
            private_key: self.private_key.or(stored.private_key),
        }
    }
}

pub(crate) fn profile_key(url: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(url.as_bytes());
    format!(
        "cli-profile-{}",
        d.iter().take(20).map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub(crate) fn load_profile(store: &dyn Store, url: &str) -> Profile {
    store
        .get(&profile_key(url))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The engine configuration and the signer (for `private_key_jwt`) of a
/// profile. Reading a key or ID token file that is missing or wrong is the
/// user's to fix: a usage error naming the file.
pub(crate) fn config_from(p: &Profile) -> Result<(Config, Option<Arc<dyn Signer>>), Failure> {
    let signer: Option<Arc<dyn Signer>> = match &p.private_key {
        Some(path) => {
            let pem = read_small(path, "private key")?;
            let s =
                Es256Signer::from_pkcs8_pem(&pem).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            Some(Arc::new(s))
        }
        None => None,
    };
    let grant = match &p.grant {
        None => None,
        Some(MachineGrant::ClientCredentials) => Some(Grant::ClientCredentials),
        Some(MachineGrant::IdentityAssertion {
            idp_token_endpoint,
            id_token_file,
            idp_client_id,
        }) => Some(Grant::IdentityAssertion(IdentityAssertion {
            idp_token_endpoint: idp_token_endpoint.clone(),
            id_token: read_small(id_token_file, "ID token")?.trim().to_string(),
            idp_client_id: idp_client_id.clone(),
        })),
        Some(MachineGrant::WorkloadIdentity { token_file }) => Some(Grant::WorkloadIdentity(
            read_small(token_file, "workload token")?.trim().to_string(),
        )),
    };
    let config = Config {
        authorize_params: p
            .authorize_params
            .iter()
            .map(|(name, value)| AuthorizeParam {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        grant,
        private_key_jwt: signer.is_some(),
        ..records_config(p)
    };
    Ok((config, signer))
}

/// The configuration for reading and removing a server's records (`status`,
/// `logout`): the client identity without the grant, so a key or ID token
/// file that has gone away never stops a logout.
pub(crate) fn records_config(p: &Profile) -> Config {
    Config {
        client_id: p.client_id.clone(),
        client_secret: p.client_secret.clone(),
        client_metadata_url: p.client_metadata_url.clone(),
        scope: p.scope.clone(),
        ..Config::default()
    }
}

/// A key or token file: a regular file of at most 64 KiB, as text.
fn read_small(path: &Path, what: &str) -> Result<String, Failure> {
    let bad = |why: String| Failure::Usage(format!("the {what} file {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() || meta.len() > 64 * 1024 {
        return Err(bad("not a regular file of at most 64 KiB".into()));
    }
    std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))
}

/// `--authorize-param name=value`, checked for the shape only (the engine
/// refuses names it sets itself, with its reason).
pub(crate) fn parse_authorize_param(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "expected name=value, e.g. audience=https://api.example/ (got {raw:?})"
        )),
    }
}

/// Saves the profile for `url` (best effort: the login itself succeeded).
pub(crate) fn save_profile(store: &dyn Store, url: &str, p: &Profile) {
    if let Err(e) = store.set(&profile_key(url), &serde_json::to_vec(p).unwrap_or_default()) {
        eprintln!("mcp-oauth: warning: could not save the login profile: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_params_parse_as_name_equals_value() {
        assert_eq!(
            parse_authorize_param("audience=https://a.example/?x=1").unwrap(),
            ("audience".into(), "https://a.example/?x=1".into())
        );
        assert_eq!(parse_authorize_param("k=").unwrap(), ("k".into(), String::new()));
        assert!(parse_authorize_param("novalue").is_err());
        assert!(parse_authorize_param("=v").is_err());
    }

    #[test]
    fn given_values_win_field_by_field() {
        let stored = Profile {
            client_id: Some("old".into()),
            scope: Some("s".into()),
            authorize_params: vec![("a".into(), "1".into())],
            grant: Some(MachineGrant::ClientCredentials),
            ..Profile::default()
        };
        let now = Profile {
            client_id: Some("new".into()),
            ..Profile::default()
        }
        .or(stored);
        assert_eq!(now.client_id.as_deref(), Some("new"));
        assert_eq!(now.scope.as_deref(), Some("s"));
        assert_eq!(now.authorize_params, [("a".to_string(), "1".to_string())]);
        assert_eq!(now.grant, Some(MachineGrant::ClientCredentials));
    }

    #[test]
    fn a_missing_key_file_is_a_usage_error_naming_it() {
        let p = Profile {
            private_key: Some("/nonexistent/key.pem".into()),
            ..Profile::default()
        };
        match config_from(&p) {
            Err(Failure::Usage(m)) => assert!(m.contains("/nonexistent/key.pem"), "{m}"),
            _ => panic!("expected a usage error"),
        }
    }
}
