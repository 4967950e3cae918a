//! Measurements (not tests): N sessions for N distinct MCP servers in one
//! host process, with warm tokens: resident memory per session, the time to
//! create a session, and `authorize(silent)` throughput on 1 and 2 threads.
//!
//!     cargo build --workspace --release --examples
//!     target/release/examples/sessions 10000
//!
//! Warm tokens without N logins: one real login against the in-process demo
//! server writes a binding and a token record; the example then writes, for
//! each of the N server URLs, the same two records with the server URL and
//! the resource replaced (the engine's own record types and keys from
//! `mcp_oauth_core::records`). The demo server is stopped before any session
//! is created, so a session that needed HTTP would fail.
//!
//! `authorize(silent)` with a fresh token is answered by the host session
//! without entering the engine; one more server, seeded with a token of
//! unknown lifetime (never served that way), measures the engine path.
//!
//! Prints human-readable lines and one `row` line (tab-separated) for
//! `scripts/bench-sessions`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_oauth_core::records::{self, Binding, TokenRecord};
use mcp_oauth_demo::headless::HeadlessBrowser;
use mcp_oauth_demo::server::{DemoServer, Faults};
use mcp_oauth_host::callback::CallbackOptions;
use mcp_oauth_host::prompts::{ConsentPolicy, TerminalPrompter};
use mcp_oauth_host::{Config, Mode, Runtime, RuntimeOptions, Session, SessionIo};

/// A `Name:  123 kB` field of a /proc file, KiB.
fn proc_kib(file: &str, name: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Memory of this process, KiB.
#[derive(Clone, Copy)]
struct Mem {
    /// Resident set (VmRSS): what the goal is about.
    rss: u64,
    /// Its anonymous part (heap, linear memories, stacks).
    anon: u64,
    /// Proportional set size: shared file pages counted once, not once per mapping.
    pss: u64,
    /// Page tables (not part of RSS).
    pte: u64,
}

fn mem() -> Mem {
    Mem {
        rss: proc_kib("/proc/self/status", "VmRSS:"),
        anon: proc_kib("/proc/self/status", "RssAnon:"),
        pss: proc_kib("/proc/self/smaps_rollup", "Pss:"),
        pte: proc_kib("/proc/self/status", "VmPTE:"),
    }
}

/// CPU time of the calling thread.
#[cfg(unix)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of the calling thread (not measured here).
#[cfg(not(unix))]
fn thread_cpu() -> Duration {
    Duration::ZERO
}

fn read_record(home: &Path, key: &str) -> Vec<u8> {
    std::fs::read(home.join(format!("{key}.json"))).unwrap_or_else(|e| panic!("record {key}: {e}"))
}

/// Writes a record as the store does (0600), without the fsync: seeding
/// 20,000 records is not what is measured.
fn write_record(home: &Path, key: &str, bytes: &[u8]) {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(home.join(format!("{key}.json"))).expect("write record");
    f.write_all(bytes).expect("write record");
}

/// Calls `authorize(silent)` round-robin over `sessions` on `threads`
/// threads (each thread its own slice, so no session lock is contended) for
/// `dur`; returns calls per second of wall time over all threads, and calls
/// per second of CPU time (per core: another process may share the cores).
fn throughput(sessions: &Arc<Vec<Session>>, threads: usize, dur: Duration, op: fn(&Session)) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let sessions = Arc::clone(sessions);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let n = sessions.len();
                let (lo, hi) = if n >= threads {
                    (n * t / threads, n * (t + 1) / threads)
                } else {
                    (0, n)
                };
                let cpu0 = thread_cpu();
                let mut calls = 0u64;
                'run: loop {
                    for s in &sessions[lo..hi] {
                        op(s);
                        calls += 1;
                        if calls.is_multiple_of(1024) && stop.load(Ordering::Relaxed) {
                            break 'run;
                        }
                    }
                }
                (calls, thread_cpu() - cpu0)
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    let (mut calls, mut cpu) = (0u64, Duration::ZERO);
    for h in handles {
        let (c, t) = h.join().expect("thread");
        calls += c;
        cpu += t;
    }
    (
        calls as f64 / start.elapsed().as_secs_f64(),
        calls as f64 / cpu.as_secs_f64(),
    )
}

fn silent(s: &Session) {
    let t = s.authorize(Mode::Silent).expect("silent authorize");
    std::hint::black_box(t);
}

fn retry(s: &Session) {
    s.retry().expect("retry");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.replace([',', '_'], "").parse().expect("N: a number of sessions"))
        .unwrap_or(1000);
    let secs: f64 = std::env::var("SESSIONS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let dur = Duration::from_secs_f64(secs);
    let mut n8 = [0u8; 8];
    getrandom::fill(&mut n8).expect("randomness");
    let home = std::env::temp_dir().join(format!("mcp-oauth-sessions-{:016x}", u64::from_le_bytes(n8)));
    let io = SessionIo {
        prompter: Arc::new(TerminalPrompter::new(ConsentPolicy::Allow, false)),
        browser: Arc::new(HeadlessBrowser),
        callback: CallbackOptions::default(),
        signer: None,
    };
    // SESSIONS_RELEASE=1: idle instances are dropped (RuntimeOptions::release_idle).
    let release_idle = std::env::var("SESSIONS_RELEASE").is_ok_and(|v| v == "1");
    println!("release_idle: {release_idle}");
    let rt = Runtime::new(RuntimeOptions {
        home: home.clone(),
        release_idle,
        ..RuntimeOptions::default()
    })
    .expect("runtime");

    // One real login, then its records templated for N server URLs.
    let t = Instant::now();
    let (base, urls) = {
        let server = DemoServer::start(Faults {
            access_ttl_secs: Some(24 * 3600),
            ..Faults::default()
        })
        .expect("demo server");
        let url = server.mcp_url();
        let login = rt.session(&url, Config::default(), io.clone()).expect("session");
        login.authorize(Mode::Interactive).expect("login");
        let base: Binding = records::decode(Some(&read_record(&home, &records::binding_key(&url)))).expect("binding");
        let tokens_key = records::tokens_key(&base.prm.resource, &base.issuer);
        let tokens: TokenRecord = records::decode(Some(&read_record(&home, &tokens_key))).expect("tokens");
        let mut urls: Vec<String> = (0..n).map(|i| format!("{url}/tenant-{i}")).collect();
        // The last one: the engine path (no known expiry).
        urls.push(format!("{url}/engine-path"));
        for (i, u) in urls.iter().enumerate() {
            let mut b = base.clone();
            b.server_url = u.clone();
            b.prm.resource = u.clone();
            b.resource_metadata_url = None;
            write_record(&home, &records::binding_key(u), &records::encode(&b));
            let mut tr = tokens.clone();
            tr.resource = u.clone();
            if i == n {
                tr.tokens.expires_at = None;
            }
            write_record(&home, &records::tokens_key(u, &b.issuer), &records::encode(&tr));
        }
        (base, urls)
        // The demo server stops here: from now on, any HTTP request fails.
    };
    println!(
        "seeded {n} servers (issuer {}) in {:?}; demo server stopped",
        base.issuer,
        t.elapsed()
    );

    let m0 = mem();
    let engine_path = rt.session(&urls[n], Config::default(), io.clone()).expect("session");
    let mut create = Vec::with_capacity(n);
    let t = Instant::now();
    let sessions: Vec<Session> = urls[..n]
        .iter()
        .map(|u| {
            let t = Instant::now();
            let s = rt.session(u, Config::default(), io.clone()).expect("session");
            create.push(t.elapsed());
            s
        })
        .collect();
    let create_total = t.elapsed();
    let m1 = mem();

    // First authorize: reads binding, metadata, registration, tokens from disk.
    let t = Instant::now();
    for s in &sessions {
        silent(s);
    }
    let first_total = t.elapsed();
    let m2 = mem();
    if let Ok(path) = std::env::var("SESSIONS_SMAPS") {
        let _ = std::fs::copy("/proc/self/smaps", path);
    }

    create.sort();
    let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / n as f64;
    println!(
        "create {n} sessions: {create_total:?} total, mean {:?}, p50 {:?}, p99 {:?}",
        create_total / n as u32,
        percentile(&create, 0.5),
        percentile(&create, 0.99)
    );
    println!(
        "first authorize(silent) (loads 4 records from disk): {:?} per session",
        first_total / n as u32
    );
    println!(
        "VmRSS: {} KiB before, {} after create, {} warm; RssAnon {} -> {} -> {}; Pss {} -> {}; page tables {} -> {}",
        m0.rss, m1.rss, m2.rss, m0.anon, m1.anon, m2.anon, m0.pss, m2.pss, m0.pte, m2.pte
    );
    let warm = per(m2.rss, m0.rss);
    println!(
        "per session: RSS {:.1} KiB after create, {warm:.1} KiB warm (anon {:.1}, PSS {:.1}, page tables {:.1}); \
         10,000 warm sessions: ~{:.0} MB RSS",
        per(m1.rss, m0.rss),
        per(m2.anon, m0.anon),
        per(m2.pss, m0.pss),
        per(m2.pte, m0.pte),
        warm * 10_000.0 / 1024.0
    );

    let sessions = Arc::new(sessions);
    let (_, engine_cpu) = throughput(&Arc::new(vec![engine_path]), 1, dur / 2, silent);
    let (floor, floor_cpu) = throughput(&sessions, 1, dur / 2, retry);
    // `retry` forgets each session's fast-path token: warm them again.
    for s in sessions.iter() {
        silent(s);
    }
    let (t1, t1_cpu) = throughput(&sessions, 1, dur, silent);
    let (t2, t2_cpu) = throughput(&sessions, 2, dur, silent);
    println!(
        "retry() (the boundary floor), 1 thread: {floor:.0}/s ({:.2} us per call on CPU)",
        1e6 / floor_cpu
    );
    println!(
        "authorize(silent), 1 thread: {t1:.0}/s wall, {t1_cpu:.0}/s per CPU-second ({:.2} us per call)",
        1e6 / t1_cpu
    );
    println!("authorize(silent), 2 threads: {t2:.0}/s wall, {t2_cpu:.0}/s per CPU-second");
    println!(
        "authorize(silent) through the engine (a token of unknown lifetime), 1 thread: {engine_cpu:.0}/s per CPU-second ({:.2} us per call)",
        1e6 / engine_cpu
    );
    println!("VmRSS after the throughput runs: {} KiB", mem().rss);
    println!(
        "row\t{n}\t{warm:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{t1:.0}\t{t1_cpu:.0}\t{t2:.0}\t{t2_cpu:.0}\t{floor_cpu:.0}\t{:.1}",
        per(m2.pss, m0.pss),
        per(m2.pte, m0.pte),
        (create_total / n as u32).as_secs_f64() * 1e6,
        percentile(&create, 0.99).as_secs_f64() * 1e6,
        (first_total / n as u32).as_secs_f64() * 1e6,
        m2.rss as f64 / 1024.0
    );
    drop(sessions);
    let _ = std::fs::remove_dir_all(&home);
}
