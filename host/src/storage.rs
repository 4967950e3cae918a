//! The `storage` import: one file per record under `$MCP_OAUTH_HOME`.
//!
//! - the directory is 0700, files 0600 (tokens and secrets live here);
//! - writes are atomic: temp file, fsync, rename, fsync of the directory, so a
//!   crash leaves the old record or the new one, never a mix;
//! - keys are flat (`[A-Za-z0-9_-]`, what the engine produces): no key can name
//!   a path outside the directory;
//! - a record that is not valid JSON reads as absent, with a warning; so does
//!   one that is a symlink, a FIFO, another user's, or over 1 MiB
//!   (`private.rs`); the directories are checked the same way;
//! - `lock` creates `locks/<key>.lock` exclusively (lock protocol 2 in
//!   `docs/store.md`, shared with the Node and Python hosts, which cannot
//!   `flock`): two processes refreshing the same server take turns, a lock
//!   left by a dead process is broken, and waiting has a deadline.

pub mod key;
pub mod lock;
pub mod mode;
pub mod private;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sealed;
pub mod seam;
pub mod select;

pub use lock::LOCK_WAIT;
pub use seam::{LockGuard, Secrets, Store};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key is not a flat name.
    #[error("refused storage key {0:?}: keys are letters, digits, '-' and '_' only")]
    BadKey(String),
    /// Another process held the lock past the deadline.
    #[error(
        "timed out after {secs} s waiting for the lock {path} (held by process {holder}); if no mcp-oauth program is running, remove that file"
    )]
    LockTimeout {
        /// The lock file.
        path: String,
        /// Its holder's pid, as the file says ("unknown" if it says none).
        holder: String,
        /// How long we waited.
        secs: u64,
    },
    /// A directory of the store must not be trusted.
    #[error("refusing to use {path}: {why}; remove it (mcp-oauth creates it again, private to you)")]
    Unsafe {
        /// The directory.
        path: String,
        /// Why.
        why: String,
    },
    /// Where secrets live cannot be settled (a mode mismatch, no keychain,
    /// an unusable key file): the message says what to do.
    #[error("{0}")]
    Secrets(String),
    /// What the operator must fix before the store can be used (a store
    /// URL, a user name, a password, TLS, a missing key file): a usage error.
    #[error("{0}")]
    Config(String),
    /// A network store failed or cannot be reached (the message names it).
    #[error("{0}")]
    Remote(String),
    /// A lease lock was lost before its holder was done.
    #[error("the lock {lock} was lost: this process was stopped or slow past its lease; nothing was sent, try again")]
    LeaseLost {
        /// The lock's key.
        lock: String,
    },
    /// A write refused by its fence: the record stays as another replica left it.
    #[error("not written to {record}: {why}; the newer record stands")]
    Fenced {
        /// The record's key.
        record: String,
        /// Why.
        why: &'static str,
    },
    /// The filesystem failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

pub(crate) fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The store directory: records and key files as plain files (0600).
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

/// The default store directory: `$MCP_OAUTH_HOME`, else `<data dir>/mcp-oauth`.
pub fn default_home() -> PathBuf {
    match std::env::var_os("MCP_OAUTH_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("mcp-oauth"),
    }
}

pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    let ok =
        !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadKey(key.chars().take(64).collect()))
    }
}

/// [`private::private_dir`] with the store's error.
pub fn private_dir_checked(dir: &Path) -> Result<(), StoreError> {
    private::private_dir(dir).map_err(|r| match r {
        private::Refusal::Io(e) => io_err("creating", dir)(e),
        private::Refusal::Unsafe(why) => StoreError::Unsafe {
            path: dir.display().to_string(),
            why: why.to_string(),
        },
    })
}

pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

impl FileStore {
    /// Opens (creating, 0700) the store at `dir`, refusing directories that
    /// are symlinks or another user's.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        private_dir_checked(&dir)?;
        private_dir_checked(&dir.join("locks"))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.dir.join(format!("{key}.json")))
    }

    /// Reads a record. Absent, unreadable, unsafe (see `private.rs`) or
    /// corrupt (not JSON): `None`; all but the first with a warning on stderr.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        match private::read_small(&path, private::MAX_RECORD_BYTES) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() => Ok(Some(bytes)),
            Ok(Some(_)) => {
                eprintln!(
                    "mcp-oauth: warning: {} is corrupt and is ignored (it will be rewritten)",
                    path.display()
                );
                Ok(None)
            }
            Err(why) => {
                eprintln!(
                    "mcp-oauth: warning: ignoring {}: {why}; treating it as absent",
                    path.display()
                );
                Ok(None)
            }
        }
    }

    /// A private temp file in the store holding `value`, synced: the first
    /// half of every write (a record is renamed into place, a key file
    /// hard-linked). The caller removes it.
    fn write_temp(&self, key: &str, value: &[u8]) -> Result<PathBuf, StoreError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| io_err("randomness for", &self.dir)(io::Error::other(e.to_string())))?;
        let tmp = self.dir.join(format!(
            ".{key}.{}.{:016x}.tmp",
            std::process::id(),
            u64::from_le_bytes(nonce)
        ));
        let written = (|| {
            let mut f = create_private(&tmp).map_err(io_err("creating", &tmp))?;
            f.write_all(value).map_err(io_err("writing", &tmp))?;
            f.sync_all().map_err(io_err("syncing", &tmp))
        })();
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Writes a record atomically (temp file, fsync, rename, fsync dir).
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if key == "store" {
            return Err(StoreError::BadKey(key.into()));
        }
        let path = self.path(key)?;
        let tmp = self.write_temp(key, value)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("replacing", &path)(e));
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// A key file `<key>.pem` (a DPoP key pair; not a JSON record), read
    /// with the same no-follow, regular-file and size rules as records.
    pub fn get_key_file(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let path = self.dir.join(format!("{key}.pem"));
        private::read_small(&path, 64 * 1024).map_err(|r| StoreError::Unsafe {
            path: path.display().to_string(),
            why: r.to_string(),
        })
    }

    /// Writes `<key>.pem` (0600) unless it exists, and returns what is there
    /// now: of two processes making the same key, the first one wins and
    /// both use it (a temp file hard-linked into place, never replaced).
    pub fn create_key_file_once(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        let path = self.dir.join(format!("{key}.pem"));
        let tmp = self.write_temp(key, value)?;
        let linked = match fs::hard_link(&tmp, &path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(io_err("linking", &path)(e)),
            _ => Ok(()),
        };
        let _ = fs::remove_file(&tmp);
        linked?;
        self.get_key_file(key)?.ok_or_else(|| StoreError::Unsafe {
            path: path.display().to_string(),
            why: "the key file vanished as it was written".into(),
        })
    }

    /// Removes a record; absent is fine.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Replaces a key file's content (converting a store between plain and
    /// sealed only: key files are otherwise written once).
    pub fn replace_key_file(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        let path = self.dir.join(format!("{key}.pem"));
        let tmp = self.write_temp(key, value)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("replacing", &path)(e));
        }
        Ok(())
    }

    /// Writes `name` (a file directly in the store, not a record) unless it
    /// exists, atomically; returns whether this call created it.
    pub fn create_file_once(&self, name: &str, value: &[u8]) -> Result<bool, StoreError> {
        let path = self.dir.join(name);
        let tmp = self.write_temp("file", value)?;
        let created = match fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err("linking", &path)(e)),
        };
        let _ = fs::remove_file(&tmp);
        created
    }

    /// Replaces `name` (a file directly in the store) atomically.
    pub fn replace_file(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let tmp = self.write_temp("file", value)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("replacing", &path)(e));
        }
        Ok(())
    }

    /// Removes a key file; absent is fine.
    pub fn delete_key_file(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let path = self.dir.join(format!("{key}.pem"));
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &path)(e)),
            _ => Ok(()),
        }
    }

    /// The names of the files `<name><suffix>` in the store that are keys, sorted.
    fn names_with(&self, suffix: &str) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = fs::read_dir(&self.dir)
            .map_err(io_err("listing", &self.dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_suffix(suffix)?.to_string();
                check_key(&key).is_ok().then_some(key)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The record keys starting with `prefix` (files `<key>.json`), sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = self.names_with(".json")?;
        // `store.json` describes the store; it is not a record.
        keys.retain(|k| k != "store" && k.starts_with(prefix));
        Ok(keys)
    }

    /// The key files (`<key>.pem`), sorted.
    pub fn list_key_files(&self) -> Result<Vec<String>, StoreError> {
        self.names_with(".pem")
    }
}

impl Store for FileStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        FileStore::get(self, key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        FileStore::set(self, key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        FileStore::delete(self, key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        FileStore::list(self, prefix)
    }
    fn lock(&self, key: &str) -> Result<LockGuard, StoreError> {
        self.lock_file(key)
    }
    fn get_key_file(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        FileStore::get_key_file(self, key)
    }
    fn create_key_file_once(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        FileStore::create_key_file_once(self, key, value)
    }
    fn delete_key_file(&self, key: &str) -> Result<(), StoreError> {
        FileStore::delete_key_file(self, key)
    }
    fn id(&self) -> String {
        fs::canonicalize(&self.dir)
            .unwrap_or_else(|_| self.dir.clone())
            .display()
            .to_string()
    }
    fn secrets(&self) -> Secrets {
        Secrets::Plain
    }
}

/// Server URLs with a stored binding (for `status` with no URL): the
/// `server_url` of each `binding-*` record the store can read.
pub fn known_servers(store: &dyn Store) -> Vec<String> {
    let mut out: Vec<String> = store
        .list("binding-")
        .unwrap_or_default()
        .iter()
        .filter_map(|k| store.get(k).ok().flatten())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter_map(|v| v["record"]["server_url"].as_str().map(String::from))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let mut n = [0u8; 8];
        getrandom::fill(&mut n).unwrap();
        std::env::temp_dir().join(format!("mcp-oauth-store-{:016x}", u64::from_le_bytes(n)))
    }

    #[test]
    fn round_trip_and_delete() {
        let s = FileStore::open(temp()).unwrap();
        assert_eq!(s.get("tokens-ab").unwrap(), None);
        s.set("tokens-ab", b"{\"v\":1}").unwrap();
        assert_eq!(s.get("tokens-ab").unwrap().unwrap(), b"{\"v\":1}");
        s.delete("tokens-ab").unwrap();
        s.delete("tokens-ab").unwrap();
        assert_eq!(s.get("tokens-ab").unwrap(), None);
    }

    #[test]
    fn keys_cannot_escape() {
        let s = FileStore::open(temp()).unwrap();
        for bad in ["../x", "a/b", "", ".hidden", "a.json", "x\0y", "..", "/etc/passwd"] {
            assert!(matches!(s.set(bad, b"{}"), Err(StoreError::BadKey(_))), "{bad:?}");
            assert!(s.get(bad).is_err());
        }
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp();
        let s = FileStore::open(&dir).unwrap();
        s.set("k", b"{}").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("k.json")), 0o600);
    }

    #[test]
    fn corrupt_reads_as_absent() {
        let dir = temp();
        let s = FileStore::open(&dir).unwrap();
        fs::write(dir.join("k.json"), b"{\"v\":1, trunc").unwrap();
        assert_eq!(s.get("k").unwrap(), None);
    }

    // A crash mid-write leaves a stray temp file, never a half record.
    #[test]
    fn leftover_temp_files_do_not_disturb() {
        let dir = temp();
        let s = FileStore::open(&dir).unwrap();
        s.set("k", b"{\"old\":true}").unwrap();
        fs::write(dir.join(".k.123.0000000000000001.tmp"), b"{\"new\":tr").unwrap();
        assert_eq!(s.get("k").unwrap().unwrap(), b"{\"old\":true}");
        s.set("k", b"{\"new\":true}").unwrap();
        assert_eq!(s.get("k").unwrap().unwrap(), b"{\"new\":true}");
    }
}
