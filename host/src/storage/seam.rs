//! The storage seam: what every backend offers the host (the rustls
//! session-store model: the embedder supplies storage through a trait). The
//! file store, the sealed store over it, and any other backend implement
//! [`Store`]; the runtime, the signer and the CLI see only this trait, and
//! one contract suite (`host/tests/store_contract.rs`) runs against each.

use super::StoreError;

/// Where a store keeps its secrets, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secrets {
    /// Plain files (0600).
    Plain,
    /// Sealed with the store key, which lives here (e.g. "the keychain
    /// (Secret Service)", "the key file /run/secrets/mcp-oauth-key").
    Sealed {
        /// Where the key came from.
        key_from: String,
        /// Records that could not be opened with it (a lost or changed key).
        unreadable: usize,
    },
}

/// A held lock: released when dropped, so a release cannot be forgotten.
#[must_use = "the lock is released when this is dropped"]
pub struct LockGuard {
    release: Option<Box<dyn FnOnce() + Send>>,
    renew: Option<Box<dyn Fn() -> Result<(), StoreError> + Send>>,
}

impl LockGuard {
    /// A guard that runs `release` once, when dropped.
    pub fn new(release: impl FnOnce() + Send + 'static) -> Self {
        Self {
            release: Some(Box::new(release)),
            renew: None,
        }
    }

    /// A lease: `renew` extends it, or fails when it was lost (a network
    /// store's lock that expired while its holder was stopped or slow).
    pub fn with_renew(
        release: impl FnOnce() + Send + 'static,
        renew: impl Fn() -> Result<(), StoreError> + Send + 'static,
    ) -> Self {
        Self {
            release: Some(Box::new(release)),
            renew: Some(Box::new(renew)),
        }
    }

    /// Called before every request sent while the lock is held: a lock
    /// that cannot be lost (a file lock) always answers `Ok`.
    pub fn renew(&self) -> Result<(), StoreError> {
        self.renew.as_ref().map_or(Ok(()), |r| r())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            r();
        }
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

/// One store: records by key, the cross-process lock, and DPoP key files.
/// Keys are flat names (`[A-Za-z0-9_-]{1,128}`), chosen by the engine.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A record, or `None` when absent or unreadable (never an error for
    /// bad content: the engine rewrites it).
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a record atomically.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes a record; absent is fine.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// The keys of the records whose key starts with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Takes the exclusive cross-process lock on `key`, waiting a bounded
    /// time for another holder.
    fn lock(&self, key: &str) -> Result<LockGuard, StoreError>;
    /// A DPoP key file's content, `None` when absent.
    fn get_key_file(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a key file unless one exists, and returns what is stored now:
    /// of two writers the first wins and both use its key.
    fn create_key_file_once(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError>;
    /// Removes a key file; absent is fine.
    fn delete_key_file(&self, key: &str) -> Result<(), StoreError>;
    /// A stable name for this store (caches are kept per store).
    fn id(&self) -> String;
    /// Where its secrets live.
    fn secrets(&self) -> Secrets;
}
