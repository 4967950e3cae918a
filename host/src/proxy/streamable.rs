//! The Streamable HTTP transport (2025-03-26 .. 2026-07-28) as the client
//! side of the proxy: each client message is POSTed; a JSON answer or an SSE
//! stream is relayed message by message (notifications and server requests
//! first, then the response); `Mcp-Session-Id` is kept, `MCP-Protocol-Version`
//! sent once negotiated (or as the request's `_meta` names it, 2026-07-28);
//! the optional GET stream is relayed; the session is DELETEd at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::relay::{Failure, answer_all, is_response_to, rpc_messages};
use super::stdio::{ClientWriter, Kind};
use super::upstream::{Reply, Upstream, UpstreamError, Wait};

/// The `_meta` key that carries the revision on each 2026-07-28 request.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// What the first POST said about the server.
pub enum FirstPost {
    /// It speaks Streamable HTTP (whatever the answer was, it was relayed).
    Streamable,
    /// 400/404/405 with no JSON-RPC body to an initialize: an HTTP+SSE server.
    Legacy,
}

#[derive(Default)]
struct State {
    session_id: Option<String>,
    version: Option<String>,
    /// The client's initialize, to open a new session if the server drops ours.
    initialize: Option<Value>,
    last_event_id: Option<String>,
}

/// See the module docs.
pub struct Streamable {
    up: Arc<Upstream>,
    url: String,
    out: ClientWriter,
    state: Mutex<State>,
    listening: AtomicBool,
    closing: AtomicBool,
}

impl Streamable {
    /// A transport to the MCP endpoint `url`.
    pub fn new(up: Arc<Upstream>, url: &str, out: ClientWriter) -> Arc<Self> {
        Arc::new(Self {
            up,
            url: url.to_string(),
            out,
            state: Mutex::new(State::default()),
            listening: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session id the server gave, if any.
    pub fn session_id(&self) -> Option<String> {
        self.state().session_id.clone()
    }

    fn headers(&self, msg: Option<&Value>, accept: &str) -> Vec<(String, String)> {
        let st = self.state();
        let mut h = vec![("accept".to_string(), accept.to_string())];
        if msg.is_some() {
            h.push(("content-type".into(), "application/json".into()));
        }
        if let Some(id) = &st.session_id {
            h.push(("mcp-session-id".into(), id.clone()));
        }
        let per_request = msg.and_then(|m| m["params"]["_meta"][META_VERSION].as_str());
        if let Some(v) = per_request.or(st.version.as_deref()) {
            h.push(("mcp-protocol-version".into(), v.to_string()));
        }
        if per_request.is_some()
            && let Some(m) = msg
        {
            h.extend(super::relay::request_metadata_headers(m));
        }
        h
    }

    /// Handles one client message; answers owed requests with an error when
    /// the server cannot be reached or refuses.
    pub fn handle(self: &Arc<Self>, msg: &Value, kind: &Kind) {
        if kind.method.as_deref() == Some("initialize") {
            self.state().initialize = Some(msg.clone());
        }
        let wait = if kind.method.as_deref() == Some("subscriptions/listen") {
            Wait::Stream
        } else {
            Wait::Request
        };
        let result = match self.post(msg, kind, wait, true) {
            Err(Failure::SessionExpired) => match self.reopen() {
                Ok(()) => self.post(msg, kind, wait, false),
                Err(f) => Err(f),
            },
            other => other,
        };
        if let Err(f) = result {
            answer_all(&self.out, &kind.request_ids, &f);
        }
        if kind.method.as_deref() == Some("notifications/initialized") {
            self.start_listening();
        }
    }

    /// The first message: as [`Self::handle`], but says whether the server
    /// looks like an HTTP+SSE one instead (then nothing was answered).
    pub fn first(self: &Arc<Self>, msg: &Value, kind: &Kind, may_fall_back: bool) -> FirstPost {
        if !may_fall_back || kind.method.as_deref() != Some("initialize") {
            self.handle(msg, kind);
            return FirstPost::Streamable;
        }
        self.state().initialize = Some(msg.clone());
        match self.post(msg, kind, Wait::Request, true) {
            Err(Failure::Legacy(status)) => {
                self.up
                    .log()
                    .debug(&format!("POST answered {status}: trying the HTTP+SSE transport"));
                FirstPost::Legacy
            }
            Err(f) => {
                answer_all(&self.out, &kind.request_ids, &f);
                FirstPost::Streamable
            }
            Ok(()) => FirstPost::Streamable,
        }
    }

    fn post(&self, msg: &Value, kind: &Kind, wait: Wait, first_try: bool) -> Result<(), Failure> {
        let body = msg.to_string().into_bytes();
        let headers = self.headers(Some(msg), "application/json, text/event-stream");
        let had_session = headers.iter().any(|(k, _)| k == "mcp-session-id");
        let reply = self.up.send("POST", &self.url, &headers, Some(&body), wait)?;
        if let Some(id) = reply.header("mcp-session-id") {
            let mut st = self.state();
            if st.session_id.is_none() || kind.method.as_deref() == Some("initialize") {
                st.session_id = Some(id.to_string());
            }
        }
        let status = reply.status;
        if status == 404 && had_session && first_try && kind.method.as_deref() != Some("initialize") {
            return Err(Failure::SessionExpired);
        }
        if !(200..300).contains(&status) {
            return self.refused(reply, kind);
        }
        if status == 202 || kind.request_ids.is_empty() && !reply.is_sse() {
            return Ok(());
        }
        let mut pending = kind.request_ids.clone();
        if reply.is_sse() {
            self.stream(reply, &mut pending, wait)
        } else {
            let body = reply.read_body(self.up.limits.max_message).map_err(Failure::Upstream)?;
            let messages = rpc_messages(&body).map_err(Failure::Upstream)?;
            for m in messages {
                self.relay(m, &mut pending);
            }
            Ok(())
        }
    }

    /// A non-2xx answer: JSON-RPC errors in it are relayed; otherwise it is
    /// described, or (an initialize refused) the sign of an HTTP+SSE server.
    fn refused(&self, reply: Reply, kind: &Kind) -> Result<(), Failure> {
        let status = reply.status;
        let body = reply.read_body(64 * 1024).unwrap_or_default();
        if let Ok(messages) = rpc_messages(&body) {
            let mut pending = kind.request_ids.clone();
            let relevant: Vec<Value> = messages
                .into_iter()
                .filter(|m| pending.iter().any(|id| is_response_to(m, id)))
                .collect();
            if !relevant.is_empty() {
                for m in relevant {
                    self.relay(m, &mut pending);
                }
                return if pending.is_empty() {
                    Ok(())
                } else {
                    Err(Failure::Http(status, String::new()))
                };
            }
        }
        if matches!(status, 400 | 404 | 405) && kind.method.as_deref() == Some("initialize") {
            return Err(Failure::Legacy(status));
        }
        Err(Failure::Http(status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Relays one server message; notes the negotiated revision.
    fn relay(&self, m: Value, pending: &mut Vec<Value>) {
        if let Some(pos) = pending.iter().position(|id| is_response_to(&m, id)) {
            let id = pending.remove(pos);
            let mut st = self.state();
            let is_init = st.initialize.as_ref().is_some_and(|i| i["id"] == id);
            if is_init && let Some(v) = m["result"]["protocolVersion"].as_str() {
                st.version = Some(v.to_string());
            }
        }
        self.out.send(&m);
    }

    /// Reads an SSE response until every owed response came; resumes with
    /// `Last-Event-ID` if the stream breaks first and the server gave ids.
    fn stream(&self, mut reply: Reply, pending: &mut Vec<Value>, wait: Wait) -> Result<(), Failure> {
        let mut resumes = 0;
        loop {
            let (last_id, retry, end) = self.read_events(reply, pending);
            if pending.is_empty() {
                return Ok(());
            }
            if self.closing.load(Ordering::SeqCst) {
                return Err(Failure::Upstream("the proxy is shutting down".into()));
            }
            let Some(last_id) = last_id.filter(|_| resumes < 5) else {
                return Err(Failure::Upstream(format!(
                    "the server's response stream ended before the response ({end})"
                )));
            };
            resumes += 1;
            std::thread::sleep(Duration::from_millis(retry.unwrap_or(500).min(10_000)));
            let mut headers = self.headers(None, "text/event-stream");
            headers.push(("last-event-id".into(), last_id));
            reply = self.up.send("GET", &self.url, &headers, None, wait)?;
            if !(200..300).contains(&reply.status) || !reply.is_sse() {
                return Err(Failure::Http(reply.status, "resuming the response stream".into()));
            }
        }
    }

    /// Relays events; returns the last event id, the server's retry delay,
    /// and why the stream ended.
    fn read_events(&self, reply: Reply, pending: &mut Vec<Value>) -> (Option<String>, Option<u64>, String) {
        let mut events = reply.into_events(self.up.limits.max_message);
        let (mut last_id, mut retry) = (None, None);
        let end = loop {
            match events.next_event() {
                Ok(Some(ev)) => {
                    if ev.id.is_some() {
                        last_id = ev.id.clone();
                        self.state().last_event_id = ev.id.clone();
                    }
                    retry = ev.retry.or(retry);
                    if !ev.data.trim().is_empty() {
                        match rpc_messages(ev.data.as_bytes()) {
                            Ok(ms) => ms.into_iter().for_each(|m| self.relay(m, pending)),
                            Err(e) => self.up.log().debug(&format!("skipped an SSE event: {e}")),
                        }
                    }
                    if pending.is_empty() {
                        break "done".to_string();
                    }
                }
                Ok(None) => break "closed by the server".to_string(),
                Err(e) => break format!("{e:?}"),
            }
        };
        (last_id, retry, end)
    }

    /// Opens a new session with the client's own initialize when the server
    /// forgot ours (404); the client never sees it.
    fn reopen(&self) -> Result<(), Failure> {
        let init = {
            let mut st = self.state();
            st.session_id = None;
            st.initialize.clone()
        };
        let Some(init) = init else {
            return Err(Failure::Upstream("the server ended the session".into()));
        };
        self.up
            .log()
            .notice("the server ended the MCP session; opening a new one");
        let headers = self.headers(Some(&init), "application/json, text/event-stream");
        let reply = self.up.send(
            "POST",
            &self.url,
            &headers,
            Some(init.to_string().as_bytes()),
            Wait::Request,
        )?;
        let id = reply.header("mcp-session-id").map(String::from);
        if !(200..300).contains(&reply.status) {
            return Err(Failure::Http(reply.status, "opening a new session".into()));
        }
        // The result is the client's old news: read it, relay nothing.
        if reply.is_sse() {
            let mut events = reply.into_events(self.up.limits.max_message);
            while let Ok(Some(ev)) = events.next_event() {
                if rpc_messages(ev.data.as_bytes()).is_ok_and(|ms| ms.iter().any(|m| is_response_to(m, &init["id"]))) {
                    break;
                }
            }
        } else {
            let _ = reply.read_body(self.up.limits.max_message);
        }
        self.state().session_id = id;
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let headers = self.headers(Some(&note), "application/json, text/event-stream");
        self.up.send(
            "POST",
            &self.url,
            &headers,
            Some(note.to_string().as_bytes()),
            Wait::Request,
        )?;
        Ok(())
    }

    fn start_listening(self: &Arc<Self>) {
        if self.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        std::thread::spawn(move || me.listen());
    }

    /// The optional GET stream: server messages outside any request. A 405
    /// means the server offers none. A dropped stream is reopened (with
    /// `Last-Event-ID` when the server gave ids), backing off to 30 s.
    fn listen(&self) {
        let mut delay = Duration::from_secs(1);
        while !self.closing.load(Ordering::SeqCst) {
            let mut headers = self.headers(None, "text/event-stream");
            if let Some(id) = self.state().last_event_id.clone() {
                headers.push(("last-event-id".into(), id));
            }
            match self.up.send("GET", &self.url, &headers, None, Wait::Stream) {
                Err(UpstreamError::Auth(_)) => return,
                Err(UpstreamError::Transport(m)) => self.up.log().debug(&format!("GET stream: {m}")),
                Ok(r) if r.status == 405 => {
                    self.up.log().debug("the server offers no GET stream (405)");
                    return;
                }
                Ok(r) if !(200..300).contains(&r.status) || !r.is_sse() => {
                    self.up.log().debug(&format!(
                        "GET stream: HTTP {} without an event stream; not retried",
                        r.status
                    ));
                    return;
                }
                Ok(r) => {
                    let (_, retry, end) = self.read_events(r, &mut Vec::new());
                    self.up.log().debug(&format!("GET stream ended: {end}"));
                    delay = Duration::from_millis(retry.unwrap_or(1000).clamp(100, 30_000));
                    std::thread::sleep(delay);
                    continue;
                }
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// Ends the session: DELETE with its id (a server may answer 405), at most
    /// `deadline`. Never starts an authorization: the stored token or none.
    pub fn close(self: &Arc<Self>, deadline: Duration) {
        self.closing.store(true, Ordering::SeqCst);
        if self.session_id().is_none() {
            return;
        }
        let me = self.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let headers = me.headers(None, "application/json, text/event-stream");
            let r = me.up.send_without_flow("DELETE", &me.url, &headers);
            let _ = tx.send(r.map(|r| r.status));
        });
        match rx.recv_timeout(deadline) {
            Ok(Ok(status)) => self.up.log().debug(&format!("DELETE session -> {status}")),
            Ok(Err(e)) => self.up.log().debug(&format!("DELETE session: {e}")),
            Err(_) => self.up.log().debug("DELETE session: no answer in time"),
        }
    }
}
