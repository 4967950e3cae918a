//! Lock protocol 2 (`docs/store.md`), shared with the Node and Python hosts:
//! an exclusive-create lock file per key, its holder's pid inside; a lock
//! whose holder is dead (or that is too old) is broken; waiting has a
//! deadline.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{FileStore, LockGuard, StoreError, check_key, create_private, io_err, private};

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

/// Whether a lock file's holder may still be working (`docs/store.md`,
/// protocol 2, step 2; pinned for every host by `tests/vectors/lock_verdicts.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Wait for it.
    Busy,
    /// Break it.
    Stale,
}

/// The holder's pid in a lock file's content: a JSON integer in
/// 1..=2147483647 (a `pid_t`), else none.
fn holder_pid(content: &[u8]) -> Option<u32> {
    serde_json::from_slice::<serde_json::Value>(content)
        .ok()
        .and_then(|v| v["pid"].as_u64())
        .filter(|p| (1..=i32::MAX as u64).contains(p))
        .and_then(|p| u32::try_from(p).ok())
}

/// The verdict on a lock file with `content`, `age` old (`None`: its mtime
/// is in the future or unknown, counted as 0), asking `alive` about its pid.
pub fn verdict(content: &[u8], age: Option<Duration>, alive: impl Fn(u32) -> bool) -> Verdict {
    let age = age.unwrap_or_default();
    let stale = match holder_pid(content) {
        Some(pid) => age > LOCK_MAX_AGE || !alive(pid),
        None => age > LOCK_UNREADABLE_AGE,
    };
    if stale { Verdict::Stale } else { Verdict::Busy }
}

/// Which lock file was judged: its device and inode, and its content (an
/// inode number can be reused at once by the lock that replaced it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    identity: Option<(u64, u64)>,
    content: Vec<u8>,
}

/// What a lock file says about its holder, as read from disk.
struct Holder {
    pid: Option<u32>,
    verdict: Verdict,
    /// The file judged: breaking it must not break another.
    judged: Judged,
}

impl Holder {
    fn is_stale(&self) -> bool {
        self.verdict == Verdict::Stale
    }
}

#[cfg(unix)]
fn identity(m: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

fn lock_holder(path: &Path) -> Holder {
    let meta = fs::symlink_metadata(path).ok();
    let age = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.elapsed().ok());
    // The file is tiny; read at most a little of it whatever it holds.
    // A FIFO or symlink planted here must not block or mislead us.
    let text = private::read_small(path, 256).ok().flatten().unwrap_or_default();
    Holder {
        pid: holder_pid(&text),
        verdict: verdict(&text, age, process_alive),
        judged: Judged {
            identity: meta.as_ref().and_then(identity),
            content: text,
        },
    }
}

/// True unless `kill(pid, 0)` says no such process (ESRCH).
#[cfg(unix)]
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// No way to tell here: every holder counts as alive.
#[cfg(not(unix))]
pub fn process_alive(_pid: u32) -> bool {
    true
}

/// Moves a stale lock aside, then removes it; if another process broke it
/// first, the rename fails and nothing happens. If the file moved is not the
/// one judged (another device and inode, or other content), another process
/// broke the judged lock and took a fresh one in between: that lock is put
/// back (a hard link, which fails if a lock exists again by then) before the
/// moved name goes.
pub fn break_stale(path: &Path, judged: &Judged) {
    let mut n = [0u8; 8];
    let _ = getrandom::fill(&mut n);
    let aside = path.with_extension(format!(
        "lock.stale-{}-{:016x}",
        std::process::id(),
        u64::from_le_bytes(n)
    ));
    if fs::rename(path, &aside).is_err() {
        return;
    }
    let moved = Judged {
        identity: fs::symlink_metadata(&aside).ok().as_ref().and_then(identity),
        content: private::read_small(&aside, 256).ok().flatten().unwrap_or_default(),
    };
    if moved != *judged {
        let _ = fs::hard_link(&aside, path);
    }
    let _ = fs::remove_file(aside);
}

/// The verdict on the lock file at `path`, and the identity of the file
/// judged (what [`break_stale`] compares against).
pub fn judge(path: &Path) -> (Verdict, Judged) {
    let h = lock_holder(path);
    (h.verdict, h.judged)
}

impl FileStore {
    /// Takes the exclusive cross-process lock on `key` (waits while another
    /// process holds it, at most [`LOCK_WAIT`]); released when the guard is
    /// dropped.
    pub fn lock_file(&self, key: &str) -> Result<LockGuard, StoreError> {
        check_key(key)?;
        let path = self.dir.join("locks").join(format!("{key}.lock"));
        let started = Instant::now();
        // Bounded by the deadline below; each round sleeps 10-30 ms.
        loop {
            match create_private(&path) {
                Ok(mut f) => {
                    let stamp = format!("{{\"pid\":{},\"created_ms\":{}}}", std::process::id(), unix_ms());
                    f.write_all(stamp.as_bytes()).map_err(io_err("writing", &path))?;
                    return Ok(LockGuard::new(move || {
                        let _ = fs::remove_file(path);
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating", &path)(e)),
            }
            let holder = lock_holder(&path);
            if holder.is_stale() {
                break_stale(&path, &holder.judged);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn temp() -> std::path::PathBuf {
        let mut n = [0u8; 8];
        getrandom::fill(&mut n).unwrap();
        std::env::temp_dir().join(format!("mcp-oauth-lock-{:016x}", u64::from_le_bytes(n)))
    }

    #[test]
    fn lock_is_exclusive_across_handles() {
        let dir = temp();
        let a = FileStore::open(&dir).unwrap();
        let b = FileStore::open(&dir).unwrap();
        let held = a.lock_file("tokens-x").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _g = b.lock_file("tokens-x").unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(),
            "second lock must wait"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn a_lock_left_by_a_dead_process_is_broken() {
        let dir = temp();
        let a = FileStore::open(&dir).unwrap();
        // A pid that cannot be running (beyond Linux's pid_max).
        fs::write(dir.join("locks/tokens-x.lock"), br#"{"pid":2147483000,"created_ms":1}"#).unwrap();
        let t = Instant::now();
        let g = a.lock_file("tokens-x").unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        let text = fs::read_to_string(dir.join("locks/tokens-x.lock")).unwrap();
        assert!(text.contains(&format!("\"pid\":{}", std::process::id())), "{text}");
        drop(g);
        assert!(!dir.join("locks/tokens-x.lock").exists());
    }

    #[test]
    fn a_live_holder_is_waited_for_and_an_old_empty_file_is_not() {
        let dir = temp();
        let a = FileStore::open(&dir).unwrap();
        // Held by this (live) process: a second handle must wait.
        fs::write(
            dir.join("locks/tokens-y.lock"),
            format!("{{\"pid\":{},\"created_ms\":1}}", std::process::id()),
        )
        .unwrap();
        assert!(lock_holder(&dir.join("locks/tokens-y.lock")).pid.is_some());
        assert_eq!(judge(&dir.join("locks/tokens-y.lock")).0, Verdict::Busy);
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
        drop(a.lock_file("tokens-z").unwrap());
        assert!(!old.exists());
    }

    #[test]
    fn dropping_the_guard_releases_the_lock() {
        let dir = temp();
        let a = FileStore::open(&dir).unwrap();
        let g = a.lock_file("tokens-w").unwrap();
        assert!(dir.join("locks/tokens-w.lock").exists());
        drop(g);
        assert!(!dir.join("locks/tokens-w.lock").exists());
    }
}
