//! Which store a host opens: the file store at `MCP_OAUTH_HOME` (a user's
//! under `users/<user>/`), or a shared store named by `MCP_OAUTH_STORE`
//! (docs/store.md, "Selection" and "Users"). A new backend is a new arm here
//! and a new file beside this one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::mode::{SecretsChoice, open_store};
use super::{Store, StoreError};

/// Where the store is, as the operator named it.
#[derive(Clone, Default)]
pub struct StorePlace {
    /// `MCP_OAUTH_STORE` / `--store`: a `redis://` or `rediss://` URL, or
    /// `None` for the file store.
    pub url: Option<String>,
    /// `MCP_OAUTH_USER` / `--user`: the principal whose records these are.
    pub user: Option<String>,
    /// PEM roots for `rediss://` (`--ca-file`; else `MCP_OAUTH_CA_FILE`, else
    /// `SSL_CERT_FILE`).
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for StorePlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only its shown form.
        f.debug_struct("StorePlace")
            .field("url", &self.url.as_deref().map(shown))
            .field("user", &self.user)
            .finish()
    }
}

fn non_empty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl StorePlace {
    /// `MCP_OAUTH_STORE`, `MCP_OAUTH_USER` and `SSL_CERT_FILE`.
    pub fn from_env() -> Self {
        Self {
            url: non_empty("MCP_OAUTH_STORE"),
            user: non_empty("MCP_OAUTH_USER"),
            ca_file: None,
        }
    }

    /// Checks the URL and the user without connecting: a usage error says
    /// what is wrong (never the password).
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(u) = &self.user {
            check_user(u)?;
        }
        if let Some(url) = &self.url {
            parse_url(url)?;
        }
        Ok(())
    }

    /// How the store is shown: the URL without its password, or `None` for
    /// the file store.
    pub fn shown(&self) -> Option<String> {
        self.url.as_deref().map(shown)
    }
}

fn shown(url: &str) -> String {
    #[cfg(feature = "redis")]
    if let Ok(u) = super::redis::url::StoreUrl::parse(url, None) {
        return u.display();
    }
    let _ = url;
    "(a store URL that cannot be read)".into()
}

pub(crate) fn check_user(user: &str) -> Result<(), StoreError> {
    // `.` and `..` would name `users/` itself or the store above it.
    let ok = user.len() <= 128
        && !user.is_empty()
        && user != "."
        && user != ".."
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(
            "the user (MCP_OAUTH_USER, --user) must be 1 to 128 letters, digits, '.', '_', '@', '+' or '-'".into(),
        ))
    }
}

#[cfg(feature = "redis")]
fn parse_url(url: &str) -> Result<super::redis::url::StoreUrl, StoreError> {
    let password = non_empty("MCP_OAUTH_STORE_PASSWORD");
    super::redis::url::StoreUrl::parse(url, password.as_deref())
        .map_err(|e| StoreError::Config(format!("MCP_OAUTH_STORE: {e}")))
}

#[cfg(not(feature = "redis"))]
const NO_REDIS: &str =
    "MCP_OAUTH_STORE names a shared store, and this build has no Redis support (the `redis` feature)";

#[cfg(not(feature = "redis"))]
fn parse_url(_: &str) -> Result<(), StoreError> {
    Err(StoreError::Config(NO_REDIS.into()))
}

/// Opens the store `place` names: a shared one by its URL, else the file
/// store at `home` (the user's directory inside it when a user is given).
pub fn open(home: &Path, place: &StorePlace, secrets: SecretsChoice) -> Result<Arc<dyn Store>, StoreError> {
    place.check()?;
    if let Some(url) = &place.url {
        return open_shared(url, place, secrets);
    }
    let dir = match &place.user {
        Some(u) => home.join("users").join(u),
        None => home.to_path_buf(),
    };
    if place.user.is_some() {
        super::private_dir_checked(&home.join("users"))?;
    }
    open_store(&dir, secrets)
}

#[cfg(feature = "redis")]
fn open_shared(url: &str, place: &StorePlace, secrets: SecretsChoice) -> Result<Arc<dyn Store>, StoreError> {
    let url = parse_url(url)?;
    // --ca-file, else MCP_OAUTH_CA_FILE (as the packages), else SSL_CERT_FILE.
    let ca_file = place.ca_file.clone().or_else(|| {
        ["MCP_OAUTH_CA_FILE", "SSL_CERT_FILE"]
            .iter()
            .find_map(|v| std::env::var_os(v).filter(|v| !v.is_empty()))
            .map(PathBuf::from)
    });
    let ca_pem = match ca_file.filter(|_| url.tls) {
        Some(path) => Some(std::fs::read(&path).map_err(|e| {
            StoreError::Config(format!(
                "the CA file {} for the store cannot be read: {e}",
                path.display()
            ))
        })?),
        None => None,
    };
    let store = super::redis::RedisStore::open(super::redis::RedisOptions {
        url,
        user: place.user.clone(),
        secrets,
        key_file: std::env::var_os("MCP_OAUTH_STORE_KEY_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        ca_pem,
    })?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "redis"))]
fn open_shared(_: &str, _: &StorePlace, _: SecretsChoice) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::Config(NO_REDIS.into()))
}
