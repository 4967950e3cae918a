//! One browser flow per server across processes: desktop clients often start
//! two proxies for the same server at once. The one that takes this lock
//! runs the flow; the other waits, then finds the first one's tokens in the
//! store. The store's record locks are no use here: they are broken after
//! 60 s, and a person may take minutes in the browser. An advisory `flock`
//! is released by the kernel when its holder dies, so it is never stale.
//!
//! A failed flow leaves a note (time and message) next to the lock, so a
//! proxy that waited through someone's "Cancel" does not open a second tab.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A held login lock; released on drop.
pub struct LoginLock {
    _file: Option<File>,
    outcome: PathBuf,
}

/// A failed flow, as noted by whoever ran it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// When it failed (ms since the epoch).
    pub at_ms: u64,
    /// The error kind (`declined`, `timed-out`, `failed`).
    pub kind: String,
    /// What to tell the client.
    pub message: String,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The lock's name for `server_url` under `home`.
pub fn lock_path(home: &Path, server_url: &str) -> PathBuf {
    use sha2::Digest;
    let d = sha2::Sha256::digest(server_url.as_bytes());
    let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    home.join("locks").join(format!("proxy-login-{hex}.lock"))
}

impl LoginLock {
    /// Waits for the lock at most `deadline`.
    pub fn acquire(path: &Path, deadline: Duration) -> Result<Self, String> {
        let outcome = path.with_extension("outcome");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let file = open_lock_file(path)?;
        let started = Instant::now();
        loop {
            match try_lock(&file) {
                Ok(true) => {
                    return Ok(Self {
                        _file: Some(file),
                        outcome,
                    });
                }
                Ok(false) if started.elapsed() < deadline => std::thread::sleep(Duration::from_millis(100)),
                Ok(false) => {
                    return Err(format!(
                        "another mcp-oauth process has been signing in to this server for {} s; try again when it is done",
                        deadline.as_secs()
                    ));
                }
                Err(e) => return Err(format!("locking {}: {e}", path.display())),
            }
        }
    }

    /// The failure another process noted at or after `since_ms`, if any.
    pub fn failure_since(&self, since_ms: u64) -> Option<Outcome> {
        let bytes = std::fs::read(&self.outcome).ok()?;
        let o: Outcome = serde_json::from_slice(&bytes).ok()?;
        (o.at_ms >= since_ms).then_some(o)
    }

    /// Notes a failed flow for processes waiting on this lock.
    pub fn note_failure(&self, kind: &str, message: &str) {
        let o = Outcome {
            at_ms: now_ms(),
            kind: kind.to_string(),
            message: message.to_string(),
        };
        let _ = std::fs::write(&self.outcome, serde_json::to_vec(&o).unwrap_or_default());
    }
}

fn open_lock_file(path: &Path) -> Result<File, String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path).map_err(|e| format!("opening {}: {e}", path.display()))
}

/// `File::try_lock` is `flock` on Unix and `LockFileEx` on Windows: both
/// are released when the holder exits, however it exits.
fn try_lock(file: &File) -> std::io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_and_sees_the_first_ones_failure() {
        let dir = std::env::temp_dir().join(format!("mcp-oauth-lock-{}", now_ms()));
        let path = lock_path(&dir, "https://mcp.example.com/mcp");
        let first = LoginLock::acquire(&path, Duration::from_secs(1)).unwrap();
        let since = now_ms();
        assert!(LoginLock::acquire(&path, Duration::from_millis(200)).is_err());
        first.note_failure("declined", "no");
        drop(first);
        let second = LoginLock::acquire(&path, Duration::from_secs(1)).unwrap();
        assert_eq!(second.failure_since(since).unwrap().kind, "declined");
        assert!(second.failure_since(now_ms() + 1000).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
