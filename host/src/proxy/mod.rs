//! `mcp-oauth proxy <url>`: a stdio MCP server for desktop clients (Claude
//! Desktop, Cursor, ...) that relays to a remote MCP server over Streamable
//! HTTP (or the 2024-11-05 HTTP+SSE transport), authorized by the engine.
//!
//! - stdin/stdout: newline-delimited JSON-RPC; stdout carries nothing else.
//! - [`upstream`]: streaming HTTP with the engine's token, 401/403 handled.
//! - [`auth`] + [`login_lock`]: one browser flow across processes; a failed
//!   flow latches (later requests fail fast, no new tab).
//! - [`streamable`] / [`legacy`]: the two HTTP transports.
//!
//! Requests run concurrently (a slow tool call does not hold up a ping);
//! `initialize`, notifications and responses go in order on the reading thread.

pub mod auth;
pub mod headers;
pub mod legacy;
pub mod log;
pub mod login_lock;
pub mod relay;
pub mod sse;
pub mod stdio;
pub mod streamable;
pub mod upstream;

use std::io::BufRead;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::Value;

use legacy::Legacy;
use relay::answer_all;
use stdio::{ClientWriter, Kind, Line, classify, read_line};
use streamable::{FirstPost, Streamable};
use upstream::Upstream;

/// Which HTTP transport to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportMode {
    /// Streamable HTTP; HTTP+SSE if the server refuses the initialize as an
    /// old server would (400/404/405).
    HttpFirst,
    /// HTTP+SSE; Streamable HTTP if the SSE stream does not open.
    SseFirst,
    /// Streamable HTTP only.
    HttpOnly,
    /// HTTP+SSE only.
    SseOnly,
}

/// Requests in flight at once; beyond that, reading waits for one to end.
const MAX_IN_FLIGHT: usize = 64;

/// How long the session's DELETE may take at exit.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

enum Active {
    Http(Arc<Streamable>),
    Sse(Arc<Legacy>),
}

impl Active {
    fn handle(&self, msg: &Value, kind: &Kind) {
        match self {
            Active::Http(s) => s.handle(msg, kind),
            Active::Sse(l) => l.handle(msg, kind),
        }
    }
}

struct Shared {
    up: Arc<Upstream>,
    url: String,
    mode: TransportMode,
    out: ClientWriter,
    input: Mutex<Box<dyn BufRead + Send>>,
    active: Mutex<Option<Arc<Active>>>,
    pool: Mutex<Pool>,
    turn: Condvar,
    done: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

/// Leader/followers: one thread reads stdin (the leader); on a request it
/// hands the reading to an idle thread and runs the request itself, so the
/// request's path has no thread wake-up and no thread creation (a handoff
/// cost about 1 ms per request here).
#[derive(Default)]
struct Pool {
    leader: bool,
    idle: usize,
    threads: usize,
}

/// Relays between `input`/`out` and the server at `url` until `input` ends.
pub fn run(up: Arc<Upstream>, url: &str, mode: TransportMode, input: Box<dyn BufRead + Send>, out: ClientWriter) {
    let (done, finished) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        up: up.clone(),
        url: url.to_string(),
        mode,
        out,
        input: Mutex::new(input),
        active: Mutex::new(None),
        pool: Mutex::new(Pool {
            threads: 1,
            ..Pool::default()
        }),
        turn: Condvar::new(),
        done: Mutex::new(Some(done)),
    });
    let first = shared.clone();
    std::thread::spawn(move || worker(first));
    let _ = finished.recv();
    up.log().debug("stdin closed; ending the session");
    let active = shared.active.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(a) = active
        && let Active::Http(s) = &*a
    {
        s.close(CLOSE_DEADLINE);
    }
}

fn worker(sh: Arc<Shared>) {
    loop {
        {
            let mut p = sh.pool.lock().unwrap_or_else(|e| e.into_inner());
            p.idle += 1;
            while p.leader {
                p = sh.turn.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            p.idle -= 1;
            p.leader = true;
        }
        let Some((a, msg, kind)) = lead(&sh) else {
            if let Some(done) = sh.done.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = done.send(());
            }
            return;
        };
        {
            let mut p = sh.pool.lock().unwrap_or_else(|e| e.into_inner());
            p.leader = false;
            if p.idle > 0 {
                sh.turn.notify_one();
            } else if p.threads <= MAX_IN_FLIGHT {
                // Otherwise the first to finish its request reads next.
                p.threads += 1;
                let next = sh.clone();
                std::thread::spawn(move || worker(next));
            }
        }
        a.handle(&msg, &kind);
    }
}

/// Reads as the leader: handles what must stay in order itself, returns the
/// first request that may run alongside others (`None` at the end of input).
fn lead(sh: &Shared) -> Option<(Arc<Active>, Value, Kind)> {
    let cap = sh.up.limits.max_message;
    loop {
        let line = read_line(&mut *sh.input.lock().unwrap_or_else(|e| e.into_inner()), cap);
        let bytes = match line {
            Ok(Line::Message(b)) => b,
            Ok(Line::TooLong) => {
                sh.up
                    .log()
                    .notice(&format!("dropped a message from the client larger than {cap} bytes"));
                sh.out
                    .error(&Value::Null, -32600, &format!("message larger than {cap} bytes"), None);
                continue;
            }
            Ok(Line::Eof) => return None,
            Err(e) => {
                sh.up.log().notice(&format!("reading stdin: {e}"));
                return None;
            }
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let msg: Value = match serde_json::from_slice(&bytes) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
            _ => {
                sh.out
                    .error(&Value::Null, -32700, "Parse error: not a JSON-RPC message", None);
                continue;
            }
        };
        let kind = classify(&msg);
        sh.up.log().debug(&describe(&kind));
        let current = sh.active.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(a) = current else {
            let first = first_message(&sh.up, &sh.url, sh.mode, &msg, &kind, &sh.out).map(Arc::new);
            *sh.active.lock().unwrap_or_else(|e| e.into_inner()) = first;
            continue;
        };
        if kind.request_ids.is_empty() || kind.method.as_deref() == Some("initialize") {
            a.handle(&msg, &kind);
            continue;
        }
        return Some((a, msg, kind));
    }
}

fn describe(kind: &Kind) -> String {
    match (&kind.method, kind.request_ids.first()) {
        (Some(m), Some(id)) => format!("client request {m} (id {id})"),
        (Some(m), None) => format!("client notification {m}"),
        (None, _) => "client response".into(),
    }
}

/// Picks the transport with the first message (and relays it).
fn first_message(
    up: &Arc<Upstream>,
    url: &str,
    mode: TransportMode,
    msg: &Value,
    kind: &Kind,
    out: &ClientWriter,
) -> Option<Active> {
    let http = || Streamable::new(up.clone(), url, out.clone());
    let sse = |quiet: bool| match Legacy::connect(up.clone(), url, out.clone()) {
        Ok(l) => {
            l.handle(msg, kind);
            Some(Active::Sse(l))
        }
        Err(f) => {
            if !quiet {
                answer_all(out, &kind.request_ids, &f);
            } else {
                up.log().debug(&format!("HTTP+SSE transport: {:?}", f.rpc_error().1));
            }
            None
        }
    };
    match mode {
        TransportMode::HttpOnly => {
            let s = http();
            s.handle(msg, kind);
            Some(Active::Http(s))
        }
        TransportMode::HttpFirst => {
            let s = http();
            match s.first(msg, kind, true) {
                FirstPost::Streamable => Some(Active::Http(s)),
                FirstPost::Legacy => sse(false).or_else(|| Some(Active::Http(s))),
            }
        }
        // No transport yet: the next message tries again.
        TransportMode::SseOnly => sse(false),
        TransportMode::SseFirst => sse(true).or_else(|| {
            let s = http();
            s.handle(msg, kind);
            Some(Active::Http(s))
        }),
    }
}
