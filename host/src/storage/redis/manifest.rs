//! Where a shared store's secrets live, settled once per store (docs/store.md):
//! the manifest record names the mode (sealed with a key id, or plain); the
//! first replica writes it, every later one must agree or is told what to fix.

use super::Inner;
use crate::storage::StoreError;
use crate::storage::key::StoreKey;
use crate::storage::mode::{self, SecretsChoice};

/// Plain records on a shared store: said once per process.
static PLAIN_NOTICE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Inner {
    /// Reads the manifest and the key; writes the manifest on first use.
    pub(super) fn settle_secrets(
        &self,
        choice: SecretsChoice,
        key_file: Option<&std::path::Path>,
    ) -> Result<Option<(StoreKey, String)>, StoreError> {
        let shown = self.url.display();
        let manifest_key = self.keys().manifest();
        let key = match (choice, key_file) {
            (SecretsChoice::File, _) => None,
            (_, Some(path)) => Some((
                crate::storage::key::read_key_file(path).map_err(StoreError::Config)?,
                format!("the key file {}", path.display()),
            )),
            (_, None) => {
                return Err(StoreError::Config(format!(
                    "the shared store {shown} seals its records with a key from MCP_OAUTH_STORE_KEY_FILE, which is not set: give every replica the same key file (32 random bytes in base64, mode 0600), or set MCP_OAUTH_SECRETS=file to keep plain records"
                )));
            }
        };
        let wanted = match &key {
            Some((k, _)) => mode::Manifest::Sealed { key_id: k.id() },
            None => mode::Manifest::Plain,
        };
        let bytes = mode::manifest_bytes(&wanted);
        let mk = manifest_key.clone();
        let mut now: Option<Vec<u8>> = self.run(|c| redis::cmd("GET").arg(&mk).query(c))?;
        if now.is_none() {
            // The first user of the store writes it; of two, one wins.
            let _: Option<String> =
                self.run(|c| redis::cmd("SET").arg(&mk).arg(bytes.as_slice()).arg("NX").query(c))?;
            now = self.run(|c| redis::cmd("GET").arg(&mk).query(c))?;
        }
        let found = mode::parse_manifest(now.as_deref().unwrap_or_default()).map_err(|why| {
            StoreError::Secrets(format!(
                "the store {shown} has a manifest {manifest_key} that cannot be used: {why}"
            ))
        })?;
        match (&found, &wanted) {
            (a, b) if a == b => {}
            (mode::Manifest::Sealed { key_id }, mode::Manifest::Sealed { key_id: mine }) => {
                return Err(StoreError::Config(format!(
                    "the shared store {shown} is sealed with the key {key_id}, and MCP_OAUTH_STORE_KEY_FILE holds the key {mine}: give this replica the fleet's key file"
                )));
            }
            (mode::Manifest::Sealed { .. }, _) => {
                return Err(StoreError::Secrets(format!(
                    "the shared store {shown} keeps its records sealed: set MCP_OAUTH_STORE_KEY_FILE to the fleet's key file (not MCP_OAUTH_SECRETS=file)"
                )));
            }
            _ => {
                return Err(StoreError::Secrets(format!(
                    "the shared store {shown} keeps its records plain: set MCP_OAUTH_SECRETS=file on every replica, or empty the store's prefix to start it sealed"
                )));
            }
        }
        if key.is_none() && !PLAIN_NOTICE.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "mcp-oauth: the shared store {shown} keeps tokens unsealed (MCP_OAUTH_SECRETS=file); set MCP_OAUTH_STORE_KEY_FILE to seal them"
            );
        }
        Ok(key)
    }
}
