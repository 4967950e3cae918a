//! The `storage` import: one file per record under `$MCP_OAUTH_HOME`.
//!
//! - the directory is 0700, files 0600 (tokens and secrets live here);
//! - writes are atomic: temp file, fsync, rename, fsync of the directory, so a
//!   crash leaves the old record or the new one, never a mix;
//! - keys are flat (`[A-Za-z0-9_-]`, what the engine produces): no key can name
//!   a path outside the directory;
//! - a record that is not valid JSON reads as absent, with a warning;
//! - `lock` creates `locks/<key>.lock` exclusively (lock protocol 2 in
//!   `docs/store.md`, shared with the Node and Python hosts, which cannot
//!   `flock`): two processes refreshing the same server take turns, a lock
//!   left by a dead process is broken, and waiting has a deadline.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// How long `lock` waits for another process before giving up.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// A lock older than this is stale whoever holds it (no engine call holds a
/// lock for longer than its HTTP deadlines).
const LOCK_MAX_AGE: Duration = Duration::from_secs(60);

/// A lock file with no readable pid is stale after this (a crash between
/// create and write, or a protocol 1 file).
const LOCK_UNREADABLE_AGE: Duration = Duration::from_secs(5);

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// What a lock file says about its holder.
struct Holder {
    pid: Option<u32>,
    age: Option<Duration>,
}

impl Holder {
    fn is_stale(&self) -> bool {
        let age = self.age.unwrap_or_default();
        match self.pid {
            Some(pid) => age > LOCK_MAX_AGE || !process_alive(pid),
            None => age > LOCK_UNREADABLE_AGE,
        }
    }
}

fn lock_holder(path: &Path) -> Holder {
    let age = fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok());
    // The file is tiny; read at most a little of it whatever it holds.
    let mut text = String::new();
    if let Ok(f) = File::open(path) {
        let _ = io::Read::read_to_string(&mut io::Read::take(f, 256), &mut text);
    }
    let pid = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0);
    Holder { pid, age }
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

/// Moves a stale lock aside, then removes it; if another process broke it
/// first, the rename fails and nothing happens.
fn break_stale(path: &Path) {
    let mut n = [0u8; 8];
    let _ = getrandom::fill(&mut n);
    let aside = path.with_extension(format!(
        "lock.stale-{}-{:016x}",
        std::process::id(),
        u64::from_le_bytes(n)
    ));
    if fs::rename(path, &aside).is_ok() {
        let _ = fs::remove_file(aside);
    }
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
    /// Lock files this handle created (removed on unlock and on drop).
    held: HashMap<String, PathBuf>,
}

impl Drop for FileStore {
    fn drop(&mut self) {
        self.unlock_all();
    }
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

    /// Takes the exclusive cross-process lock on `key` (waits while another
    /// process holds it, at most [`LOCK_WAIT`]).
    pub fn lock(&mut self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        if self.held.contains_key(key) {
            return Ok(());
        }
        let path = self.dir.join("locks").join(format!("{key}.lock"));
        let started = Instant::now();
        // Bounded by the deadline below; each round sleeps 10-30 ms.
        loop {
            match create_private(&path) {
                Ok(mut f) => {
                    let stamp = format!("{{\"pid\":{},\"created_ms\":{}}}", std::process::id(), unix_ms());
                    f.write_all(stamp.as_bytes()).map_err(io_err("writing", &path))?;
                    self.held.insert(key.to_string(), path);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating", &path)(e)),
            }
            let holder = lock_holder(&path);
            if holder.is_stale() {
                break_stale(&path);
                continue;
            }
            if started.elapsed() >= LOCK_WAIT {
                return Err(StoreError::LockTimeout {
                    path: path.display().to_string(),
                    holder: holder.pid.map_or_else(|| "unknown".into(), |p| p.to_string()),
                    secs: LOCK_WAIT.as_secs(),
                });
            }
            let mut jitter = [0u8; 1];
            let _ = getrandom::fill(&mut jitter);
            std::thread::sleep(Duration::from_millis(10 + u64::from(jitter[0]) % 21));
        }
    }

    /// Releases the lock on `key`.
    pub fn unlock(&mut self, key: &str) {
        if let Some(path) = self.held.remove(key) {
            let _ = fs::remove_file(path);
        }
    }

    /// Releases every lock (the end of a call).
    pub fn unlock_all(&mut self) {
        for (_, path) in self.held.drain() {
            let _ = fs::remove_file(path);
        }
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

    #[test]
    fn a_lock_left_by_a_dead_process_is_broken() {
        let dir = temp();
        let mut a = FileStore::open(&dir).unwrap();
        // A pid that cannot be running (beyond Linux's pid_max).
        fs::write(dir.join("locks/tokens-x.lock"), br#"{"pid":2147483000,"created_ms":1}"#).unwrap();
        let t = Instant::now();
        a.lock("tokens-x").unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        let text = fs::read_to_string(dir.join("locks/tokens-x.lock")).unwrap();
        assert!(text.contains(&format!("\"pid\":{}", std::process::id())), "{text}");
        a.unlock("tokens-x");
        assert!(!dir.join("locks/tokens-x.lock").exists());
    }

    #[test]
    fn a_live_holder_is_waited_for_and_an_old_empty_file_is_not() {
        let dir = temp();
        let mut a = FileStore::open(&dir).unwrap();
        // Held by this (live) process: a second handle must wait.
        fs::write(
            dir.join("locks/tokens-y.lock"),
            format!("{{\"pid\":{},\"created_ms\":1}}", std::process::id()),
        )
        .unwrap();
        assert!(lock_holder(&dir.join("locks/tokens-y.lock")).pid.is_some());
        assert!(!lock_holder(&dir.join("locks/tokens-y.lock")).is_stale());
        // A protocol 1 file: empty, from long ago.
        let old = dir.join("locks/tokens-z.lock");
        fs::write(&old, b"").unwrap();
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        a.lock("tokens-z").unwrap();
        a.unlock_all();
        assert!(!old.exists());
    }

    #[test]
    fn dropping_the_store_releases_its_locks() {
        let dir = temp();
        let mut a = FileStore::open(&dir).unwrap();
        a.lock("tokens-w").unwrap();
        assert!(dir.join("locks/tokens-w.lock").exists());
        drop(a);
        assert!(!dir.join("locks/tokens-w.lock").exists());
    }
}
