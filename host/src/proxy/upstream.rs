//! The server side's HTTP: streaming requests (an SSE body is read event by
//! event, not buffered), authorized through the engine ([`Authorizer`]): the
//! token is attached, a 401/403 goes to the engine, and the request is sent
//! once more with the new token. Every wait has a deadline: connect, the
//! response head, and each read of the body.

use crate::client::{NonceSignal, nonce_signal};
use std::io::{BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::auth::{AuthFailure, Authorizer};
use super::log::Log;
use super::sse::EventReader;
use crate::bindings::mcp::oauth::engine_types::AccessToken;

/// An SSE body being read.
pub type Events = EventReader<BufReader<ureq::BodyReader<'static>>>;

/// Why no response.
#[derive(Debug, Clone)]
pub enum UpstreamError {
    /// Authorization failed (the engine's answer).
    Auth(AuthFailure),
    /// The connection failed, timed out, or the URL was refused.
    Transport(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Auth(a) => f.write_str(&a.message),
            UpstreamError::Transport(m) => f.write_str(m),
        }
    }
}

/// A response whose body is still on the wire.
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header fields (names lowercase).
    pub headers: Vec<(String, String)>,
    body: ureq::Body,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// True for `text/event-stream`.
    pub fn is_sse(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("text/event-stream"))
    }

    /// The whole body, at most `cap` bytes.
    pub fn read_body(self, cap: usize) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        self.body
            .into_reader()
            .take(cap as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("reading the response: {e}"))?;
        if body.len() > cap {
            return Err(format!("the response is larger than {cap} bytes"));
        }
        Ok(body)
    }

    /// The body as SSE events, each at most `cap` bytes.
    pub fn into_events(self, cap: usize) -> Events {
        EventReader::new(BufReader::new(self.body.into_reader()), cap)
    }
}

/// Deadlines and limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connecting (TCP + TLS).
    pub connect: Duration,
    /// From sending a request to its response head, and between two reads
    /// of a response body.
    pub request: Duration,
    /// Between two reads of a long-lived stream (GET, legacy SSE).
    pub stream_idle: Duration,
    /// The largest message (a line, an SSE event, a JSON body).
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(300),
            stream_idle: Duration::from_secs(900),
            max_message: 32 << 20,
        }
    }
}

/// The authorized HTTP side. Share it between threads.
pub struct Upstream {
    requests: ureq::Agent,
    streams: ureq::Agent,
    auth: Option<Arc<Authorizer>>,
    headers: Vec<(String, String)>,
    log: Arc<Log>,
    /// The limits in use.
    pub limits: Limits,
}

/// Whether a request is answered soon or opens a long-lived stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// A request: its response within [`Limits::request`].
    Request,
    /// A stream that may stay quiet for [`Limits::stream_idle`].
    Stream,
}

fn agent(limits: &Limits, idle: Duration, roots: Option<&ureq::tls::RootCerts>) -> ureq::Agent {
    let mut b = ureq::Agent::config_builder()
        .timeout_connect(Some(limits.connect))
        .timeout_recv_response(Some(idle))
        .timeout_per_read(Some(idle))
        .max_redirects(0)
        .max_idle_age(crate::http::MAX_IDLE_REUSE)
        .http_status_as_error(false)
        .user_agent(concat!("mcp-oauth-proxy/", env!("CARGO_PKG_VERSION")));
    if let Some(r) = roots {
        b = b.tls_config(ureq::tls::TlsConfig::builder().root_certs(r.clone()).build());
    }
    b.build().into()
}

impl Upstream {
    /// `auth: None` sends no OAuth token (a static `Authorization` header was
    /// given). `headers` go on every request. `roots` replaces the default
    /// trust roots (a corporate CA bundle).
    pub fn new(
        auth: Option<Arc<Authorizer>>,
        headers: Vec<(String, String)>,
        limits: Limits,
        roots: Option<ureq::tls::RootCerts>,
        log: Arc<Log>,
    ) -> Self {
        Self {
            requests: agent(&limits, limits.request, roots.as_ref()),
            streams: agent(&limits, limits.stream_idle, roots.as_ref()),
            auth,
            headers,
            log,
            limits,
        }
    }

    /// The log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        wait: Wait,
        token: Option<&AccessToken>,
    ) -> Result<Reply, UpstreamError> {
        crate::http::check_policy(url).map_err(|e| UpstreamError::Transport(format!("{method} {url}: {e}")))?;
        let agent = if wait == Wait::Stream {
            &self.streams
        } else {
            &self.requests
        };
        let mut b = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in self.headers.iter().chain(headers) {
            b = b.header(k.as_str(), v.as_str());
        }
        if let Some(t) = token {
            b = b.header("authorization", crate::client::authorization(t));
            // A bound token goes only with a fresh proof (RFC 9449 §7.1).
            if t.dpop
                && let Some(auth) = &self.auth
                && let Some(proof) = auth.proof(method, url).map_err(UpstreamError::Auth)?
            {
                b = b.header("dpop", proof);
            }
        }
        let started = Instant::now();
        let sent = match body {
            Some(bytes) => b.body(bytes.to_vec()).map(|r| agent.run(r)),
            None => b.body(()).map(|r| agent.run(r)),
        };
        let resp = sent
            .map_err(|e| UpstreamError::Transport(format!("{method} {url}: {e}")))?
            .map_err(|e| UpstreamError::Transport(format!("{method} {url}: {}", describe(e))))?;
        let status = resp.status().as_u16();
        self.log.debug(&format!(
            "{method} {url} -> {status} in {} ms",
            started.elapsed().as_millis()
        ));
        let headers = crate::http::header_pairs(resp.headers());
        Ok(Reply {
            status,
            headers,
            body: resp.into_body(),
        })
    }

    /// Sends a request with the current token; on 401/403 the engine fixes
    /// authorization and the request is sent once more.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        wait: Wait,
    ) -> Result<Reply, UpstreamError> {
        let Some(auth) = &self.auth else {
            return self.once(method, url, headers, body, wait, None);
        };
        let mut token = auth.token().map_err(UpstreamError::Auth)?;
        let mut reply = self.once(method, url, headers, body, wait, token.as_ref())?;
        let mut retried = false;
        // Once, or twice when a DPoP nonce demand follows a fresh authorization.
        for _ in 0..2 {
            if reply.status != 401 && reply.status != 403 {
                break;
            }
            let www = reply.header_values("www-authenticate");
            let nonce = match nonce_signal(reply.status, &reply.header_values("dpop-nonce"), retried) {
                NonceSignal::Challenge(n) => n,
                _ => None,
            };
            let sent = token.as_ref().map(|t| t.token.clone());
            match auth
                .rejected(reply.status, www, sent, nonce)
                .map_err(UpstreamError::Auth)?
            {
                Some(t) => {
                    reply = self.once(method, url, headers, body, wait, Some(&t))?;
                    token = Some(t);
                    retried = true;
                }
                None => break,
            }
        }
        if let NonceSignal::Note(n) = nonce_signal(reply.status, &reply.header_values("dpop-nonce"), retried) {
            auth.success(reply.status, token.map(|t| t.token), n);
        }
        Ok(reply)
    }
}

impl Upstream {
    /// Sends with the stored token, if any, and never asks the engine to fix
    /// a refusal (the session's DELETE at exit must not open a browser).
    pub fn send_without_flow(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Reply, UpstreamError> {
        let token = match &self.auth {
            Some(a) => a.token().unwrap_or(None),
            None => None,
        };
        self.once(method, url, headers, None, Wait::Request, token.as_ref())
    }
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection refused".into(),
        other => other.to_string(),
    }
}
