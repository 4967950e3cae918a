//! The 2024-11-05 HTTP+SSE transport, for servers that speak only that: GET
//! the SSE endpoint, read its `endpoint` event, POST each client message
//! there; every server message (responses included) arrives as a `message`
//! event on the one stream. The endpoint must be on the SSE URL's origin:
//! the token is never sent anywhere else.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::relay::{Failure, answer_all, rpc_messages};
use super::stdio::{ClientWriter, Kind};
use super::upstream::{Events, Upstream, Wait};

/// See the module docs.
pub struct Legacy {
    up: Arc<Upstream>,
    endpoint: String,
    out: ClientWriter,
    /// Requests sent and not yet answered (keys: the id as JSON text).
    pending: Mutex<HashSet<String>>,
    closed: AtomicBool,
}

/// Where the messages go: the `endpoint` event's URI, resolved against the
/// SSE URL, refused unless it has the same origin.
pub fn resolve_endpoint(sse_url: &str, data: &str) -> Result<String, String> {
    let base = url::Url::parse(sse_url).map_err(|e| format!("{sse_url}: {e}"))?;
    let target = base
        .join(data.trim())
        .map_err(|e| format!("the server's endpoint event is not a URI: {e}"))?;
    if target.origin() != base.origin() {
        return Err(format!(
            "the server named a message endpoint on another origin ({}); refused",
            target.origin().ascii_serialization()
        ));
    }
    Ok(target.into())
}

impl Legacy {
    /// Opens the SSE stream at `sse_url` and waits (at most the request
    /// deadline) for the `endpoint` event; then relays the stream.
    pub fn connect(up: Arc<Upstream>, sse_url: &str, out: ClientWriter) -> Result<Arc<Self>, Failure> {
        let reply = up.send(
            "GET",
            sse_url,
            &[("accept".into(), "text/event-stream".into())],
            None,
            Wait::Stream,
        )?;
        if !(200..300).contains(&reply.status) || !reply.is_sse() {
            let status = reply.status;
            let body = reply.read_body(4096).unwrap_or_default();
            return Err(Failure::Http(status, String::from_utf8_lossy(&body).into_owned()));
        }
        let (tx, rx) = std::sync::mpsc::channel::<Result<(String, Events), Failure>>();
        // The first event may be slow to come; wait for it on its own thread,
        // with a deadline.
        let url = sse_url.to_string();
        let cap = up.limits.max_message;
        std::thread::spawn(move || {
            let mut events = reply.into_events(cap);
            let r = loop {
                match events.next_event() {
                    Ok(Some(ev)) if ev.event == "endpoint" => {
                        break resolve_endpoint(&url, &ev.data).map_err(Failure::Upstream);
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => {
                        break Err(Failure::Upstream(
                            "the SSE stream ended before its endpoint event".into(),
                        ));
                    }
                    Err(e) => break Err(Failure::Upstream(format!("reading the SSE stream: {e:?}"))),
                }
            };
            let _ = tx.send(r.map(|e| (e, events)));
        });
        let (endpoint, stream) = rx
            .recv_timeout(up.limits.request.min(Duration::from_secs(60)))
            .map_err(|_| Failure::Upstream("no endpoint event on the SSE stream in time".into()))??;
        up.log()
            .debug(&format!("HTTP+SSE transport; messages go to {endpoint}"));
        let me = Arc::new(Self {
            up,
            endpoint,
            out,
            pending: Mutex::new(HashSet::new()),
            closed: AtomicBool::new(false),
        });
        let reader = me.clone();
        std::thread::spawn(move || reader.read(stream));
        Ok(me)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self, mut events: Events) {
        let end = loop {
            match events.next_event() {
                Ok(Some(ev)) if ev.event.is_empty() || ev.event == "message" => {
                    match rpc_messages(ev.data.as_bytes()) {
                        Ok(ms) => {
                            for m in ms {
                                if m.get("method").is_none()
                                    && let Some(id) = m.get("id")
                                {
                                    self.pending().remove(&id.to_string());
                                }
                                self.out.send(&m);
                            }
                        }
                        Err(e) => self.up.log().debug(&format!("skipped an SSE event: {e}")),
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break "the server closed the SSE stream".to_string(),
                Err(e) => break format!("the SSE stream failed: {e:?}"),
            }
        };
        // The session lives and dies with the stream: answer what is owed and
        // refuse what comes next (the client restarts the server).
        self.closed.store(true, Ordering::SeqCst);
        self.up
            .log()
            .notice(&format!("{end}; restart this MCP server in your client to reconnect"));
        let owed: Vec<Value> = self
            .pending()
            .drain()
            .filter_map(|k| serde_json::from_str(&k).ok())
            .collect();
        answer_all(&self.out, &owed, &Failure::Upstream(end));
    }

    /// POSTs one client message to the endpoint.
    pub fn handle(&self, msg: &Value, kind: &Kind) {
        if self.closed.load(Ordering::SeqCst) {
            let f = Failure::Upstream("the server closed the SSE stream; restart this MCP server".into());
            answer_all(&self.out, &kind.request_ids, &f);
            return;
        }
        self.pending().extend(kind.request_ids.iter().map(Value::to_string));
        let headers = [("content-type".to_string(), "application/json".to_string())];
        let result = self
            .up
            .send(
                "POST",
                &self.endpoint,
                &headers,
                Some(msg.to_string().as_bytes()),
                Wait::Request,
            )
            .map_err(Failure::from)
            .and_then(|r| {
                let status = r.status;
                let body = r.read_body(64 * 1024).unwrap_or_default();
                if (200..300).contains(&status) {
                    Ok(())
                } else {
                    Err(Failure::Http(status, String::from_utf8_lossy(&body).into_owned()))
                }
            });
        if let Err(f) = result {
            let mut p = self.pending();
            let owed: Vec<Value> = kind
                .request_ids
                .iter()
                .filter(|id| p.remove(&id.to_string()))
                .cloned()
                .collect();
            drop(p);
            answer_all(&self.out, &owed, &f);
        }
    }
}
