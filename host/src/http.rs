//! The `http` import: a real client (ureq, rustls) with a connect timeout, a
//! total timeout and a response size cap. Redirects are never followed: the
//! engine sees the 3xx and decides. Plain http is allowed only to loopback
//! hosts; everything else must be https.

use std::io::Read;
use std::time::Duration;

use url::{Host, Url};

/// Limits of the HTTP client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub total_timeout: Duration,
    /// Largest response body accepted.
    pub max_body: u64,
    /// The CA certificates to trust instead of the built-in roots (a
    /// corporate TLS-inspecting proxy's bundle: `SSL_CERT_FILE`).
    pub root_certs: Option<ureq::tls::RootCerts>,
    /// How long an idle pooled connection may wait and still be reused.
    pub max_idle: Duration,
}

/// Idle connections are dropped before a common server would close them
/// (Node and Apache close after 5 s): a request written as the server
/// closes is reset, and a POST to a token endpoint cannot be resent.
/// A device-flow poll every 5 s or more thus opens a new connection.
pub const MAX_IDLE_REUSE: Duration = Duration::from_secs(4);

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(30),
            max_body: 1024 * 1024,
            root_certs: None,
            max_idle: MAX_IDLE_REUSE,
        }
    }
}

/// A request as the engine asks for it.
#[derive(Clone)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Absolute URL.
    pub url: String,
    /// Header fields.
    pub headers: Vec<(String, String)>,
    /// Body (may hold secrets).
    pub body: Vec<u8>,
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// Every value of header `name`.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Why no response.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// Policy refused the URL.
    #[error("refused: {0}")]
    Refused(String),
    /// Timed out.
    #[error("timed out")]
    Timeout,
    /// Connection, DNS or TLS failure.
    #[error("connection failed: {0}")]
    Connection(String),
    /// Body over the cap.
    #[error("response too large")]
    TooLarge,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// True for localhost, 127.0.0.0/8 and ::1.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// https anywhere, http only on loopback, nothing else.
pub fn check_policy(raw: &str) -> Result<Url, HttpError> {
    let url = Url::parse(raw).map_err(|_| HttpError::Refused(format!("{raw:?} is not a URL")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(HttpError::Refused(format!(
            "plain http to {} (only loopback may use http)",
            url.host_str().unwrap_or("?")
        ))),
        s => Err(HttpError::Refused(format!("scheme {s:?} is not allowed"))),
    }
}

/// The HTTP client.
#[derive(Clone)]
pub struct HttpClient {
    agent: ureq::Agent,
    options: HttpOptions,
}

impl HttpClient {
    /// A client with these limits.
    pub fn new(options: HttpOptions) -> Self {
        // The proxy comes from HTTPS_PROXY / ALL_PROXY / NO_PROXY (ureq's default).
        let mut config = ureq::Agent::config_builder()
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.total_timeout))
            .max_redirects(0)
            .max_idle_age(options.max_idle)
            .http_status_as_error(false)
            .user_agent(concat!("mcp-oauth/", env!("CARGO_PKG_VERSION")));
        if let Some(roots) = &options.root_certs {
            config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots.clone()).build());
        }
        let config = config.build();
        Self {
            agent: config.into(),
            options,
        }
    }

    /// Sends the request after the policy check.
    pub fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let url = check_policy(&req.url)?;
        let mut builder = ureq::http::Request::builder().method(req.method).uri(url.as_str());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder
            .body(req.body.clone())
            .map_err(|e| HttpError::Other(e.to_string()))?;
        let resp = self.agent.run(request).map_err(map_error)?;
        let status = resp.status().as_u16();
        let headers = header_pairs(resp.headers());
        let mut body = Vec::new();
        let mut reader = resp.into_body().into_reader().take(self.options.max_body + 1);
        reader
            .read_to_end(&mut body)
            .map_err(|e| HttpError::Connection(e.to_string()))?;
        if body.len() as u64 > self.options.max_body {
            return Err(HttpError::TooLarge);
        }
        Ok(Response { status, headers, body })
    }
}

fn map_error(e: ureq::Error) -> HttpError {
    match e {
        ureq::Error::Timeout(_) => HttpError::Timeout,
        ureq::Error::Io(io) => HttpError::Connection(io.to_string()),
        ureq::Error::HostNotFound => HttpError::Connection("host not found".into()),
        ureq::Error::ConnectionFailed => HttpError::Connection("connection refused".into()),
        ureq::Error::Tls(m) => HttpError::Connection(format!("TLS: {m}")),
        ureq::Error::BodyExceedsLimit(_) => HttpError::TooLarge,
        other => HttpError::Other(other.to_string()),
    }
}

/// Reads a PEM bundle (`--ca-file`, `SSL_CERT_FILE`) as the trust roots.
pub fn load_roots(path: &std::path::Path) -> Result<ureq::tls::RootCerts, String> {
    // A CA bundle is a few hundred KB at most; refuse to read a huge file.
    let meta = std::fs::metadata(path).map_err(|e| format!("reading the CA bundle {}: {e}", path.display()))?;
    if !meta.is_file() || meta.len() > 16 * 1024 * 1024 {
        return Err(format!(
            "{} is not a CA bundle file (a PEM file up to 16 MiB)",
            path.display()
        ));
    }
    let pem = std::fs::read(path).map_err(|e| format!("reading the CA bundle {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
            certs.push(c.to_owned());
        }
    }
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// A response's headers as (lower-case name, value) pairs; a value that is
/// not UTF-8 is kept lossily.
pub(crate) fn header_pairs(headers: &ureq::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(check_policy("https://example.com/x").is_ok());
        assert!(check_policy("http://127.0.0.1:9/x").is_ok());
        assert!(check_policy("http://localhost/x").is_ok());
        assert!(check_policy("http://[::1]/x").is_ok());
        assert!(matches!(
            check_policy("http://example.com/"),
            Err(HttpError::Refused(_))
        ));
        assert!(matches!(check_policy("file:///etc/passwd"), Err(HttpError::Refused(_))));
    }

    /// A keep-alive server that counts the connections it accepts.
    fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(8) {
                let Ok(stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut out = stream;
                    // Answers requests on this connection until the client closes it.
                    for _ in 0..8 {
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let _ = out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                    }
                });
            }
        });
        (url, accepted)
    }

    #[test]
    fn a_connection_idle_past_max_idle_is_not_reused() {
        use std::sync::atomic::Ordering;
        let (url, accepted) = counting_server();
        let client = HttpClient::new(HttpOptions {
            max_idle: Duration::from_millis(200),
            ..HttpOptions::default()
        });
        let get = Request {
            method: "GET",
            url,
            headers: vec![],
            body: vec![],
        };
        assert_eq!(client.send(&get).unwrap().body, b"ok");
        assert_eq!(client.send(&get).unwrap().body, b"ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "back to back: one connection, reused"
        );
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(client.send(&get).unwrap().body, b"ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "after the idle limit: a new connection"
        );
    }

    #[test]
    fn idle_connections_go_before_a_node_server_closes_them() {
        assert!(HttpOptions::default().max_idle < Duration::from_secs(5));
    }
}
