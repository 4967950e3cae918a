//! The `storage` import: one file per record under `$MCP_OAUTH_HOME`.
//!
//! - the directory is 0700, files 0600 (tokens and secrets live here);
//! - writes are atomic: temp file, fsync, rename, fsync of the directory, so a
//!   crash leaves the old record or the new one, never a mix;
//! - keys are flat (`[A-Za-z0-9_-]`, what the engine produces): no key can name
//!   a path outside the directory;
//! - a record that is not valid JSON reads as absent, with a warning;
//! - `lock` takes an exclusive OS file lock (`flock`), so two processes
//!   refreshing the same server take turns.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key is not a flat name.
    #[error("refused storage key {0:?}: keys are letters, digits, '-' and '_' only")]
    BadKey(String),
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

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    move |source| StoreError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The store directory and the locks this process holds in it.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    held: HashMap<String, File>,
}

/// The default store directory: `$MCP_OAUTH_HOME`, else `<data dir>/mcp-oauth`.
pub fn default_home() -> PathBuf {
    match std::env::var_os("MCP_OAUTH_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("mcp-oauth"),
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    let ok =
        !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadKey(key.chars().take(64).collect()))
    }
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

fn create_private(path: &Path) -> io::Result<File> {
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
    /// Opens (creating, 0700) the store at `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        restrict_dir(&dir).map_err(io_err("restricting", &dir))?;
        let locks = dir.join("locks");
        fs::create_dir_all(&locks).map_err(io_err("creating", &locks))?;
        restrict_dir(&locks).map_err(io_err("restricting", &locks))?;
        Ok(Self {
            dir,
            held: HashMap::new(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.dir.join(format!("{key}.json")))
    }

    /// Reads a record. Absent, unreadable or corrupt (not JSON): `None`; the
    /// last two with a warning on stderr.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(bytes) => {
                if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() {
                    Ok(Some(bytes))
                } else {
                    eprintln!(
                        "mcp-oauth: warning: {} is corrupt and is ignored (it will be rewritten)",
                        path.display()
                    );
                    Ok(None)
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                eprintln!(
                    "mcp-oauth: warning: cannot read {}: {e}; treating it as absent",
                    path.display()
                );
                Ok(None)
            }
        }
    }

    /// Writes a record atomically (temp file, fsync, rename, fsync dir).
    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Io {
            what: "randomness for",
            path: path.display().to_string(),
            source: io::Error::other(e.to_string()),
        })?;
        let tmp = self.dir.join(format!(
            ".{key}.{}.{:016x}.tmp",
            std::process::id(),
            u64::from_le_bytes(nonce)
        ));
        let result = (|| {
            let mut f = create_private(&tmp).map_err(io_err("creating", &tmp))?;
            f.write_all(value).map_err(io_err("writing", &tmp))?;
            f.sync_all().map_err(io_err("syncing", &tmp))?;
            drop(f);
            fs::rename(&tmp, &path).map_err(io_err("replacing", &path))?;
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes a record; absent is fine.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("removing", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Takes the exclusive cross-process lock on `key` (blocks while another
    /// process holds it).
    pub fn lock(&mut self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        if self.held.contains_key(key) {
            return Ok(());
        }
        let path = self.dir.join("locks").join(format!("{key}.lock"));
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let f = o.open(&path).map_err(io_err("opening", &path))?;
        f.lock().map_err(io_err("locking", &path))?;
        self.held.insert(key.to_string(), f);
        Ok(())
    }

    /// Releases the lock on `key` (closing the file releases it).
    pub fn unlock(&mut self, key: &str) {
        self.held.remove(key);
    }

    /// Releases every lock (the end of a call).
    pub fn unlock_all(&mut self) {
        self.held.clear();
    }

    /// Server URLs with a stored binding (for `status` with no URL).
    pub fn known_servers(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return out;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !(name.starts_with("binding-") && name.ends_with(".json")) {
                continue;
            }
            let Ok(bytes) = fs::read(e.path()) else { continue };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            if let Some(url) = v["record"]["server_url"].as_str() {
                out.push(url.to_string());
            }
        }
        out.sort();
        out
    }
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

    #[test]
    fn lock_is_exclusive_across_handles() {
        let dir = temp();
        let mut a = FileStore::open(&dir).unwrap();
        let mut b = FileStore::open(&dir).unwrap();
        a.lock("tokens-x").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            b.lock("tokens-x").unwrap();
            tx.send(()).unwrap();
            b.unlock("tokens-x");
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(),
            "second lock must wait"
        );
        a.unlock("tokens-x");
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }
}
