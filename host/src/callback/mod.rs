//! The `callback` import: the loopback redirect listener (RFC 8252 §7.3).
//!
//! Bound to 127.0.0.1 before the flow goes on (port 0 unless pinned). One
//! listener per flow; it serves many requests (a favicon, a stray hit or a
//! flood of forged redirects does not end it: `intake.rs` bounds the work
//! per request, not the number of requests), answers only `/callback`,
//! shows a short page, times out and can be cancelled. When pasting is on, a redirect URL typed on stdin races
//! the browser; a bad paste is refused with its reason and the user may paste
//! again while the listener keeps listening.

mod intake;

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What reached the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// The query string of a request to `/callback` (or of a pasted URL).
    Redirect(String),
    /// Nothing in time.
    TimedOut,
    /// Cancelled by the user.
    Cancelled,
}

/// Why binding failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The pinned port is taken.
    #[error("port {0} is already in use on 127.0.0.1")]
    PortInUse(u16),
    /// Anything else.
    #[error("could not listen on 127.0.0.1: {0}")]
    Other(String),
}

/// How the listener behaves beyond HTTP.
#[derive(Debug, Clone, Default)]
pub struct CallbackOptions {
    /// Accept a pasted redirect URL on stdin.
    pub paste: bool,
    /// Set to cancel the wait.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Lines typed on stdin, read by one thread for the whole process (consent
/// prompts and pastes share it).
pub fn stdin_lines() -> &'static Mutex<Receiver<String>> {
    static LINES: OnceLock<Mutex<Receiver<String>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match io::stdin().read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line.trim().to_string()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Mutex::new(rx)
    })
}

// Fallbacks only: the engine answers every request it is handed with its
// own page (`listener.respond`). These cover a flow that ended in a trap.
const PAGE_DONE: &str = "<!doctype html><title>mcp-oauth</title><p>This sign-in attempt has ended. Return to your application for its outcome; you can close this tab.</p>";
const PAGE_REJECTED: &str =
    "<!doctype html><title>mcp-oauth</title><p>This request was ignored. You can close this tab.</p>";

/// One flow's listener.
pub struct Listener {
    shared: Arc<intake::Shared>,
    port: u16,
    pending: Option<intake::Arrived>,
    options: CallbackOptions,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("port", &self.port).finish()
    }
}

impl Listener {
    /// Binds 127.0.0.1 on `port` (any free port when `None`).
    pub fn bind(port: Option<u16>, options: CallbackOptions) -> Result<Self, BindError> {
        let tcp = TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).map_err(|e| match (e.kind(), port) {
            (io::ErrorKind::AddrInUse, Some(p)) => BindError::PortInUse(p),
            _ => BindError::Other(e.to_string()),
        })?;
        let port = tcp.local_addr().map_err(|e| BindError::Other(e.to_string()))?.port();
        let shared = Arc::new(intake::Shared::default());
        let accept = shared.clone();
        std::thread::Builder::new()
            .name("mcp-oauth-callback-accept".into())
            .spawn(move || intake::serve(tcp, accept))
            .map_err(|e| BindError::Other(e.to_string()))?;
        Ok(Self {
            shared,
            port,
            pending: None,
            options,
        })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Requests answered without reaching the engine so far (404, 400, 503).
    pub fn junk(&self) -> u64 {
        self.shared.junk.load(Ordering::Relaxed)
    }

    /// `http://127.0.0.1:<port>/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Checks a pasted line: it must be this listener's redirect URL with a
    /// query, read by the engine's own strict URL parser (the same rules as
    /// every URL the engine accepts, so no two parsers disagree).
    pub fn parse_paste(&self, line: &str) -> Result<String, String> {
        mcp_oauth_core::wire::authorization_response::pasted_query(line, &self.redirect_uri()).map_err(String::from)
    }

    /// Answers the request the last [`Listener::next`] delivered with the
    /// engine's page (nothing to answer for a paste).
    pub fn respond(&mut self, status: u16, headers: &[(String, String)], body: &str) {
        if let Some(a) = self.pending.take() {
            a.answer_page(status, headers, body);
        }
    }

    /// Waits up to `timeout` for the next request to `/callback` or a paste.
    pub fn next(&mut self, timeout: Duration) -> Arrival {
        // A previous response is being waited past: it was not accepted.
        if let Some(a) = self.pending.take() {
            a.answer(400, PAGE_REJECTED);
        }
        let deadline = Instant::now() + timeout;
        // Bounded by the deadline; each round waits at most 100 ms.
        loop {
            if self.options.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst)) {
                return Arrival::Cancelled;
            }
            if self.options.paste
                && let Ok(rx) = stdin_lines().try_lock()
                && let Ok(line) = rx.try_recv()
                && !line.is_empty()
            {
                match self.parse_paste(&line) {
                    Ok(q) => return Arrival::Redirect(q),
                    Err(why) => eprintln!("mcp-oauth: {why}. Paste again, or finish in the browser."),
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Arrival::TimedOut;
            }
            if let Some(a) = self.shared.next((deadline - now).min(Duration::from_millis(100))) {
                let query = a.query.clone();
                self.pending = Some(a);
                return Arrival::Redirect(query);
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(a) = self.pending.take() {
            a.answer(200, PAGE_DONE);
        }
        self.shared.stop(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn get(port: u16, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn serves_many_requests_and_only_its_path() {
        let mut l = Listener::bind(None, CallbackOptions::default()).unwrap();
        let port = l.port();
        let t = std::thread::spawn(move || {
            let fav = get(port, "/favicon.ico");
            let cb = get(port, "/callback?code=a&state=b");
            (fav, cb)
        });
        let got = l.next(Duration::from_secs(5));
        assert_eq!(got, Arrival::Redirect("code=a&state=b".into()));
        // The request waits for the engine's page; a header with a line
        // break in it is dropped, never sent.
        let headers = [
            ("x-page".to_string(), "engine".to_string()),
            ("x-evil".to_string(), "a\r\nset-cookie: x=1".to_string()),
        ];
        l.respond(200, &headers, "<p>the engine's page</p>");
        drop(l);
        let (fav, cb) = t.join().unwrap();
        assert!(fav.starts_with("HTTP/1.1 404"), "{fav}");
        assert!(
            cb.starts_with("HTTP/1.1 200") && cb.contains("x-page: engine\r\n"),
            "{cb}"
        );
        assert!(
            cb.ends_with("<p>the engine's page</p>") && !cb.contains("set-cookie"),
            "{cb}"
        );
    }

    // Connects and writes, reports that on `sent`, then reads the answer: the
    // test sends the real redirect only after every junk request is out, so a
    // slow thread on a loaded machine cannot find the listener already gone.
    fn send_raw(port: u16, bytes: &[u8], sent: &std::sync::Barrier) -> String {
        let s = TcpStream::connect(("127.0.0.1", port));
        let mut s = match s {
            Ok(s) => s,
            Err(e) => {
                sent.wait();
                panic!("connect: {e}");
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(bytes);
        sent.wait();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    // Issue 18: 150 junk requests in parallel (and silent sockets held open)
    // before the real redirect never end the wait; each junk request gets an
    // answer or a closed socket; the real one is handed out.
    #[test]
    fn a_flood_of_junk_never_ends_the_wait() {
        let mut l = Listener::bind(None, CallbackOptions::default()).unwrap();
        let port = l.port();
        let silent: Vec<TcpStream> = (0..40)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let junk: Vec<&'static [u8]> = vec![
            b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /callback?junk HTTP/1.1\r\n\r\n",
            b"POST /callback?code=x&state=y HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"GET /callback?code=forged&state=wrong HTTP/1.1\r\n\r\n",
        ];
        let sent = Arc::new(std::sync::Barrier::new(151));
        let floods: Vec<_> = (0..150)
            .map(|i| {
                let bytes = junk[i % junk.len()];
                let sent = sent.clone();
                std::thread::spawn(move || send_raw(port, bytes, &sent))
            })
            .collect();
        sent.wait();
        let real = std::thread::spawn(move || get(port, "/callback?code=real&state=s"));
        let started = Instant::now();
        let mut seen = 0;
        loop {
            match l.next(Duration::from_secs(10)) {
                Arrival::Redirect(q) if q == "code=real&state=s" => break,
                Arrival::Redirect(_) => seen += 1,
                other => panic!("the wait ended: {other:?}"),
            }
            assert!(seen <= 200 && started.elapsed() < Duration::from_secs(10));
        }
        drop(l);
        // Never answered by the engine: the neutral page when the listener closes.
        assert!(real.join().unwrap().contains("This sign-in attempt has ended"));
        for f in floods {
            let answer = f.join().unwrap();
            assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 "), "{answer}");
        }
        drop(silent);
    }

    #[test]
    fn times_out_and_cancels() {
        let mut l = Listener::bind(None, CallbackOptions::default()).unwrap();
        assert_eq!(l.next(Duration::from_millis(150)), Arrival::TimedOut);
        let cancel = Arc::new(AtomicBool::new(true));
        let mut l = Listener::bind(
            None,
            CallbackOptions {
                paste: false,
                cancel: Some(cancel),
            },
        )
        .unwrap();
        assert_eq!(l.next(Duration::from_secs(5)), Arrival::Cancelled);
    }

    #[test]
    fn pinned_port_taken_names_the_port() {
        let a = Listener::bind(None, CallbackOptions::default()).unwrap();
        let err = Listener::bind(Some(a.port()), CallbackOptions::default()).unwrap_err();
        assert!(err.to_string().contains(&a.port().to_string()), "{err}");
    }

    #[test]
    fn paste_is_checked() {
        let l = Listener::bind(None, CallbackOptions::default()).unwrap();
        let good = format!("{}?code=x&state=y", l.redirect_uri());
        assert_eq!(l.parse_paste(&good).unwrap(), "code=x&state=y");
        assert!(l.parse_paste("hello").unwrap_err().contains("not a URL"));
        assert!(
            l.parse_paste("https://evil.example/callback?code=x")
                .unwrap_err()
                .contains("redirect address")
        );
        assert!(l.parse_paste(&l.redirect_uri()).unwrap_err().contains("no query"));
    }
}
