//! A lock holder on the shared store that is stopped (SIGSTOP) past its
//! lease, or killed (SIGKILL), while it holds the lock to refresh: the
//! other replicas go on after the lease, the stopped one sends nothing when
//! it wakes (its lease is renewed before every request, and it is gone), and
//! the authorization server never sees a refresh token twice.
//! `MCP_OAUTH_TEST_HOLD_LOCK_MS` makes the holder pause, having read the
//! record under the lock, just before it sends the refresh, and say so on
//! stderr; the tests signal it on that line, so the signal lands there.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mcp_oauth_demo::server::{DemoServer, Faults};
use support::{Cli, RedisServer, TempFile, TempHome, key_file, temp_home};

const LEASE_MS: u64 = 2000;
/// The holder's pause: under the lease, so only a stop makes it lose it.
const HOLD_MS: u64 = 1500;
const TTL_S: u64 = 4;

struct Fleet {
    demo: DemoServer,
    redis: RedisServer,
    key: TempFile,
}

impl Fleet {
    fn start(tag: &str) -> Self {
        let demo = DemoServer::start(Faults {
            access_ttl_secs: Some(TTL_S),
            ..Faults::default()
        })
        .unwrap();
        let redis = RedisServer::start();
        let key = key_file(tag);
        let f = Self { demo, redis, key };
        let home = temp_home(tag);
        let out = f.cli(&home, None).arg("login").arg(f.demo.mcp_url()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        f
    }

    /// A replica: the CLI on its own home, on the shared store.
    fn cli(&self, home: &Path, hold_ms: Option<u64>) -> Command {
        let mut cli = Cli::new(home)
            .env("MCP_OAUTH_STORE", self.redis.url(&format!("/0?lease_ms={LEASE_MS}")))
            .env("MCP_OAUTH_STORE_KEY_FILE", &self.key);
        if let Some(ms) = hold_ms {
            cli = cli.env("MCP_OAUTH_TEST_HOLD_LOCK_MS", ms.to_string());
        }
        let mut c = cli.command(&[]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    fn token(&self, home: &Path, hold_ms: Option<u64>) -> Command {
        let mut c = self.cli(home, hold_ms);
        c.arg("token").arg(self.demo.mcp_url());
        c
    }

    /// A replica that refreshes and pauses under the lock, once it says it
    /// is in the pause (and the lock on the store is its own).
    fn holding(&self, tag: &str) -> Holder {
        let home = temp_home(tag);
        let mut child = self.token(&home, Some(HOLD_MS)).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr);
            let mut seen = String::new();
            let mut line = String::new();
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                if line.contains("holding a lock") {
                    let _ = tx.send(());
                }
                seen.push_str(&line);
                line.clear();
            }
            let _ = lines.read_to_string(&mut seen);
            seen
        });
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the replica never paused under a lock: {}", reader.join().unwrap());
        }
        assert_eq!(self.lock_owner(), Some(child.id()));
        Holder {
            child,
            reader,
            _home: home,
        }
    }

    /// The PID of the process that holds a lock on the store, if any.
    fn lock_owner(&self) -> Option<u32> {
        let mut c = redis::Client::open(self.redis.url(""))
            .unwrap()
            .get_connection()
            .unwrap();
        let locks: Vec<String> = redis::cmd("KEYS").arg("*:lock").query(&mut c).unwrap();
        let owner: Option<String> = redis::cmd("GET").arg(locks.first()?).query(&mut c).unwrap();
        owner?.split(':').next()?.parse().ok()
    }

    /// Refreshes so far (each token request after the one sign-in).
    fn refreshes(&self) -> usize {
        self.demo.count("/token") - self.demo.count("/authorize")
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: a signal to a child this test started, by its PID.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

/// A replica paused under the lock; its stderr is read as it goes.
struct Holder {
    child: Child,
    reader: std::thread::JoinHandle<String>,
    _home: TempHome,
}

impl Holder {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit code and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        (status.code(), self.reader.join().unwrap())
    }
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Lets the stored token go stale, so the next `token` refreshes.
fn until_stale() {
    std::thread::sleep(Duration::from_millis(TTL_S * 1000 / 2 + 300));
}

#[test]
fn a_holder_stopped_past_its_lease_sends_nothing_and_nothing_is_revoked() {
    let f = Fleet::start("fault-stop");
    until_stale();
    let refreshes = f.refreshes();
    let slow = f.holding("fault-stop-slow");
    signal(slow.pid(), libc::SIGSTOP);

    // Another replica waits out the lease, then refreshes once.
    let other_home = temp_home("fault-stop-other");
    let t = Instant::now();
    let other = f.token(&other_home, None).output().unwrap();
    assert!(other.status.success(), "{}", text(&other));
    assert!(t.elapsed() >= Duration::from_millis(LEASE_MS / 2), "{:?}", t.elapsed());
    assert_eq!(f.refreshes(), refreshes + 1);

    // Woken, the stopped one renews its lease before sending its refresh:
    // lost, so it sends nothing and says so.
    signal(slow.pid(), libc::SIGCONT);
    let (code, said) = slow.finish();
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("was lost"), "{said}");
    assert_eq!(f.refreshes(), refreshes + 1, "the stopped holder sent its refresh");
    assert!(!f.demo.reuse_detected(), "a refresh token was used twice");

    // Everyone goes on with the rotation the other replica stored.
    let again_home = temp_home("fault-stop-again");
    let again = f.token(&again_home, None).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(again.stdout, other.stdout);
    assert_eq!(f.demo.count("/authorize"), 1, "nobody signed in again");
}

#[test]
fn a_holder_killed_frees_the_lock_after_its_lease() {
    let f = Fleet::start("fault-kill");
    until_stale();
    let refreshes = f.refreshes();
    let doomed = f.holding("fault-kill-doomed");
    signal(doomed.pid(), libc::SIGKILL);
    let _ = doomed.finish();

    let other_home = temp_home("fault-kill-other");
    let t = Instant::now();
    let other = f.token(&other_home, None).output().unwrap();
    assert!(other.status.success(), "{}", text(&other));
    assert!(
        t.elapsed() < Duration::from_millis(LEASE_MS + 3000),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(f.refreshes(), refreshes + 1);
    assert!(!f.demo.reuse_detected());
    assert_eq!(f.demo.count("/authorize"), 1);
}
