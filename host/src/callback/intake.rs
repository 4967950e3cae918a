//! The listener's HTTP side, bounded per request rather than by the number
//! of requests: junk (a favicon, a port scan, TLS bytes, a flood of forged
//! redirects from a web page) is answered and counted, never allowed to end
//! or starve the wait for the real redirect.
//!
//! Written on `std::net` because the HTTP servers at hand (tiny_http) have
//! no per-connection deadline, header cap or connection cap, and a redirect
//! listener needs only a request line.
//!
//! - at most [`MAX_READING`] connections are read at once: a new one always
//!   gets in, the oldest still-silent one is closed to make room (a few slow
//!   or silent sockets cannot lock the real browser out); each has
//!   [`READ_DEADLINE`] to send its request line, of at most [`MAX_HEAD`]
//!   bytes, and is judged as soon as the line is in;
//! - anything but `GET /callback` is answered 404 (400 when unreadable);
//! - a `GET /callback?...` is queued for the engine with its connection held
//!   open (the page depends on the engine's verdict); at most [`MAX_QUEUED`]
//!   wait, and when full the oldest is answered 503 so a later one (the real
//!   redirect) still gets in.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Connections whose request head is being read at once.
pub const MAX_READING: usize = 32;
/// Redirects waiting for the engine.
pub const MAX_QUEUED: usize = 128;
/// The longest request head read (request line and headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a connection has to send its request head.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);

/// A `GET /callback` waiting for the engine's verdict.
pub struct Arrived {
    /// The query string (may be empty).
    pub query: String,
    stream: TcpStream,
}

impl Arrived {
    /// Answers with a short HTML page and closes.
    pub fn answer(self, status: u16, body: &str) {
        respond(self.stream, status, &[], body);
    }

    /// Answers with the engine's page (its status, headers and HTML) and
    /// closes. A header with a line break in it is dropped, never sent.
    pub fn answer_page(self, status: u16, headers: &[(String, String)], body: &str) {
        respond(self.stream, status, headers, body);
    }
}

/// What the accept thread shares with the listener.
#[derive(Default)]
pub struct Shared {
    queue: Mutex<VecDeque<Arrived>>,
    ready: Condvar,
    /// Connections being read, oldest first, each with its id.
    reading: Mutex<VecDeque<(u64, TcpStream)>>,
    next_id: AtomicU64,
    /// Requests answered without reaching the engine (404, 400, 503).
    pub junk: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    /// The next queued redirect, waiting at most `wait`.
    pub fn next(&self, wait: Duration) -> Option<Arrived> {
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let (mut q, _) = self
            .ready
            .wait_timeout_while(q, wait, |q| q.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        q.pop_front()
    }

    fn push(&self, a: Arrived) {
        let evicted = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            let evicted = if q.len() >= MAX_QUEUED { q.pop_front() } else { None };
            q.push_back(a);
            evicted
        };
        self.ready.notify_one();
        if let Some(old) = evicted {
            self.junk.fetch_add(1, Ordering::Relaxed);
            old.answer(503, PAGE_BUSY);
        }
    }

    /// Stops the accept thread (it is woken by a connection to itself).
    pub fn stop(&self, port: u16) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200));
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        for a in q.drain(..) {
            a.answer(400, super::PAGE_REJECTED);
        }
    }
}

const PAGE_NOT_FOUND: &str = "<!doctype html><title>mcp-oauth</title><p>Not found.</p>";
const PAGE_BAD: &str = "<!doctype html><title>mcp-oauth</title><p>Bad request.</p>";
const PAGE_BUSY: &str = "<!doctype html><title>mcp-oauth</title><p>Busy; try again.</p>";

fn respond(mut stream: TcpStream, status: u16, headers: &[(String, String)], body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let _ = stream.set_write_timeout(Some(READ_DEADLINE));
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    let safe = |t: &str| !t.is_empty() && !t.contains(['\r', '\n']);
    let extra: Vec<&(String, String)> = headers
        .iter()
        .filter(|(k, v)| safe(k) && !v.contains(['\r', '\n']) && !k.eq_ignore_ascii_case("content-length"))
        .collect();
    if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        head.push_str("content-type: text/html; charset=utf-8\r\ncache-control: no-store\r\n");
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()));
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// Runs the accept loop until [`Shared::stop`].
pub fn serve(tcp: TcpListener, shared: Arc<Shared>) {
    for conn in tcp.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let Ok(handle) = stream.try_clone() else { continue };
        let evicted = {
            let mut r = shared.reading.lock().unwrap_or_else(|e| e.into_inner());
            let evicted = if r.len() >= MAX_READING { r.pop_front() } else { None };
            r.push_back((id, handle));
            evicted
        };
        if let Some((_, old)) = evicted {
            // Its reader sees the shutdown and counts it as junk.
            let _ = old.shutdown(Shutdown::Both);
        }
        let mine = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("mcp-oauth-callback".into())
            .spawn(move || {
                read_one(stream, &mine);
                let mut r = mine.reading.lock().unwrap_or_else(|e| e.into_inner());
                r.retain(|(i, _)| *i != id);
            });
        if spawned.is_err() {
            let mut r = shared.reading.lock().unwrap_or_else(|e| e.into_inner());
            r.retain(|(i, _)| *i != id);
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// `GET /callback` with this query (possibly empty).
    Callback(String),
    /// Well-formed, but another method or path.
    Elsewhere,
    /// Not an HTTP request head.
    Unreadable,
}

/// Reads the request line of `head` (bytes up to the blank line).
pub fn parse_head(head: &[u8]) -> Head {
    let line_end = head
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Head::Unreadable;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Head::Unreadable;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Head::Unreadable;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method == "GET" && path == "/callback" {
        Head::Callback(query.to_string())
    } else {
        Head::Elsewhere
    }
}

/// Whether the bytes so far can still begin an HTTP/1 request line
/// (a method token, then a space): TLS or binary junk is refused at once.
fn may_be_http(head: &[u8]) -> bool {
    let method = head.iter().take_while(|&&b| b != b' ').count();
    method <= 16 && head[..method].iter().all(u8::is_ascii_uppercase)
}

fn read_one(mut stream: TcpStream, shared: &Shared) {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // Bounded by MAX_HEAD bytes and READ_DEADLINE; judged on the first line.
    let complete = loop {
        if head.contains(&b'\n') {
            break true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if !may_be_http(&head)
            || left.is_zero()
            || head.len() >= MAX_HEAD
            || stream.set_read_timeout(Some(left)).is_err()
        {
            break false;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break false,
            Ok(n) => head.extend_from_slice(&buf[..n.min(MAX_HEAD - head.len())]),
        }
    };
    let verdict = if complete { parse_head(&head) } else { Head::Unreadable };
    match verdict {
        Head::Callback(query) => shared.push(Arrived { query, stream }),
        Head::Elsewhere => {
            shared.junk.fetch_add(1, Ordering::Relaxed);
            respond(stream, 404, &[], PAGE_NOT_FOUND);
        }
        Head::Unreadable => {
            shared.junk.fetch_add(1, Ordering::Relaxed);
            respond(stream, 400, &[], PAGE_BAD);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(
            parse_head(b"GET /callback?code=a&state=b HTTP/1.1\r\nHost: x\r\n\r\n"),
            Head::Callback("code=a&state=b".into())
        );
        assert_eq!(
            parse_head(b"GET /callback HTTP/1.1\r\n\r\n"),
            Head::Callback(String::new())
        );
        assert_eq!(parse_head(b"POST /callback?code=a HTTP/1.1\r\n\r\n"), Head::Elsewhere);
        assert_eq!(parse_head(b"GET /favicon.ico HTTP/1.1\r\n\r\n"), Head::Elsewhere);
        assert_eq!(parse_head(b"GET /callbackx?a HTTP/1.1\r\n\r\n"), Head::Elsewhere);
        assert_eq!(
            parse_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            Head::Unreadable
        );
        assert_eq!(
            parse_head(b"GET http://evil/callback HTTP/1.1\r\n\r\n"),
            Head::Unreadable
        );
        assert_eq!(parse_head(b"GET  /callback HTTP/1.1\r\n\r\n"), Head::Unreadable);
        assert!(may_be_http(b"") && may_be_http(b"GE") && may_be_http(b"GET /x"));
        assert!(!may_be_http(b"\x16\x03") && !may_be_http(b"get /"));
    }
}
