//! The profile record: what `login` was given (client id, secret, metadata
//! URL, scope), kept 0600 in the store so that `token`, `status` and
//! `logout` use the same client identity as the login did.

use mcp_oauth_host::Config;
use mcp_oauth_host::storage::FileStore;

/// What `login` was given, kept (0600, in the store) so that `token`,
/// `status` and `logout` use the same client identity.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(crate) struct Profile {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_metadata_url: Option<String>,
    pub scope: Option<String>,
}

pub(crate) fn profile_key(url: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(url.as_bytes());
    format!(
        "cli-profile-{}",
        d.iter().take(20).map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub(crate) fn load_profile(store: &FileStore, url: &str) -> Profile {
    store
        .get(&profile_key(url))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(crate) fn config_from(p: &Profile) -> Config {
    Config {
        client_id: p.client_id.clone(),
        client_secret: p.client_secret.clone(),
        client_metadata_url: p.client_metadata_url.clone(),
        scope: p.scope.clone(),
        ..Config::default()
    }
}

/// Saves the profile for `url` (best effort: the login itself succeeded).
pub(crate) fn save_profile(store: &FileStore, url: &str, p: &Profile) {
    if let Err(e) = store.set(&profile_key(url), &serde_json::to_vec(p).unwrap_or_default()) {
        eprintln!("mcp-oauth: warning: could not save the login profile: {e}");
    }
}
