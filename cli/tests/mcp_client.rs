//! The MCP client against tiny scripted servers on 127.0.0.1: the exact
//! headers and `_meta` of 2026-07-28, the fallback to the 2025-11-25
//! `initialize` handshake, version selection and `resultType` handling.
//! The servers never ask for authorization, so the engine stays out of it.

mod support;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mcp_oauth_host::mcp::{Era, McpClient, McpError};
use mcp_oauth_host::{AuthorizedClient, Config, Runtime, RuntimeOptions, SessionIo};
use serde_json::{Value, json};
use support::{TempHome, temp_home};

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    headers: Vec<(String, String)>,
    body: Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn method(&self) -> &str {
        self.body["method"].as_str().unwrap_or("")
    }
}

/// What the script answers: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(script: impl Fn(&Seen, &[Seen]) -> Answer + Send + 'static) -> Self {
        let http = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/mcp", http.server_addr().to_ip().unwrap().port());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: a test runs well under 10 minutes.
            for _ in 0..6000 {
                if stop2.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let Ok(Some(mut req)) = http.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(&mut std::io::Read::take(req.as_reader(), 1 << 20), &mut body);
                let s = Seen {
                    headers: req
                        .headers()
                        .iter()
                        .map(|h| (h.field.as_str().to_string(), h.value.as_str().to_string()))
                        .collect(),
                    body: serde_json::from_str(&body).unwrap_or(Value::Null),
                };
                let before = seen2.lock().unwrap().clone();
                let (status, headers, text) = script(&s, &before);
                seen2.lock().unwrap().push(s);
                let mut resp = tiny_http::Response::from_string(text).with_status_code(status);
                for (k, v) in headers {
                    resp.add_header(tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap());
                }
                let _ = req.respond(resp);
            }
        });
        Self {
            url,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn methods(&self) -> Vec<String> {
        self.seen().iter().map(|s| s.method().to_string()).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn json_answer(status: u16, body: Value) -> Answer {
    (
        status,
        vec![("Content-Type", "application/json".into())],
        body.to_string(),
    )
}

fn result(req: &Seen, result: Value) -> Answer {
    json_answer(200, json!({"jsonrpc": "2.0", "id": req.body["id"], "result": result}))
}

fn error(status: u16, id: Value, code: i64, data: Value) -> Answer {
    json_answer(
        status,
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": "no", "data": data}}),
    )
}

/// A client for `server` on a store of its own, which goes with the home.
fn client(server: &Server) -> (TempHome, McpClient) {
    let home = temp_home("mcp-client");
    let rt = Runtime::new(RuntimeOptions {
        home: home.to_path_buf(),
        ..RuntimeOptions::default()
    })
    .unwrap();
    let session = rt
        .session(&server.url, Config::default(), SessionIo::terminal(false))
        .unwrap();
    let http = AuthorizedClient::new(Arc::new(session), Default::default()).silent();
    (home, McpClient::new(http, &server.url, "test-client"))
}

/// A 2026-07-28 server: discover, tools/list (one tool with a valid
/// `x-mcp-header`, one with an invalid one), tools/call. It offers a session
/// id, which a modern client must ignore.
fn modern(req: &Seen, _: &[Seen]) -> Answer {
    let (status, mut h, text) = match req.method() {
        "server/discover" => result(
            req,
            json!({"resultType": "complete", "supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}},
                   "ttlMs": 0, "cacheScope": "private"}),
        ),
        "tools/list" => result(
            req,
            json!({"resultType": "complete", "ttlMs": 0, "cacheScope": "private", "tools": [
                {"name": "wetter", "inputSchema": {"type": "object", "properties": {
                    "region": {"type": "string", "x-mcp-header": "Region"}, "q": {"type": "string"}}}},
                {"name": "bad", "inputSchema": {"type": "object", "properties": {
                    "n": {"type": "number", "x-mcp-header": "N"}}}},
            ]}),
        ),
        "tools/call" => result(req, json!({"resultType": "complete", "content": []})),
        _ => error(404, req.body["id"].clone(), -32601, Value::Null),
    };
    h.push(("Mcp-Session-Id", "should-not-come-back".into()));
    (status, h, text)
}

#[test]
fn modern_requests_carry_meta_and_headers_and_no_handshake() {
    let server = Server::start(modern);
    let (_home, mcp) = client(&server);
    let discovered = mcp.initialize().unwrap();
    assert_eq!(discovered["supportedVersions"][0], "2026-07-28");
    assert_eq!(mcp.era(), Era::Modern("2026-07-28".into()));
    let tools = mcp.list_tools().unwrap();
    assert_eq!(
        tools.len(),
        1,
        "the tool with an invalid x-mcp-header is left out: {tools:?}"
    );
    mcp.call_tool("wetter", json!({"region": "Zürich", "q": "x"})).unwrap();

    assert_eq!(server.methods(), ["server/discover", "tools/list", "tools/call"]);
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test-client", "version": env!("CARGO_PKG_VERSION")},
    });
    let seen = server.seen();
    for s in &seen {
        assert_eq!(s.body["params"]["_meta"], meta, "{s:?}");
        assert_eq!(s.header("mcp-protocol-version"), Some("2026-07-28"));
        assert_eq!(s.header("mcp-method"), Some(s.method()));
        assert_eq!(s.header("mcp-session-id"), None, "no sessions in 2026-07-28");
        assert_eq!(s.header("accept"), Some("application/json, text/event-stream"));
    }
    assert_eq!(seen[0].header("mcp-name"), None);
    assert_eq!(seen[1].header("mcp-name"), None);
    assert_eq!(seen[2].header("mcp-name"), Some("wetter"));
    // "Zürich" is not plain ASCII: base64 sentinel.
    assert_eq!(seen[2].header("mcp-param-region"), Some("=?base64?WsO8cmljaA==?="));
    assert_eq!(seen[2].body["params"]["arguments"]["region"], "Zürich");
    drop(server);
}

#[test]
fn the_first_request_negotiates_when_initialize_was_not_called() {
    let server = Server::start(modern);
    let (_home, mcp) = client(&server);
    assert_eq!(mcp.era(), Era::Unknown);
    let r = mcp
        .request("resources/read", json!({"uri": "file:///a b/ü"}))
        .unwrap_err();
    assert!(matches!(r, McpError::Rpc { code: -32601, .. }), "{r}");
    assert_eq!(server.methods(), ["server/discover", "resources/read"]);
    assert_eq!(
        server.seen()[1].header("mcp-name"),
        Some("=?base64?ZmlsZTovLy9hIGIvw7w=?=")
    );
    drop(server);
}

/// A 2025-11-25 server that refuses what comes before `initialize` in one of
/// the ways legacy servers do.
fn legacy(refusal: u8) -> impl Fn(&Seen, &[Seen]) -> Answer + Send + 'static {
    move |req, _| {
        let id = req.body["id"].clone();
        let session = req.header("mcp-session-id") == Some("s-1");
        match req.method() {
            "initialize" => {
                let (s, mut h, t) = result(
                    req,
                    json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                           "serverInfo": {"name": "legacy", "version": "1"}}),
                );
                h.push(("Mcp-Session-Id", "s-1".into()));
                (s, h, t)
            }
            "notifications/initialized" if session => (202, vec![], String::new()),
            "tools/list" if session => result(req, json!({"tools": [{"name": "echo", "inputSchema": {}}]})),
            _ => match refusal {
                0 => error(400, Value::Null, -32000, Value::Null),
                1 => error(200, id, -32601, Value::Null),
                2 => (405, vec![], String::new()),
                _ => (400, vec![("Content-Type", "text/plain".into())], "Bad Request".into()),
            },
        }
    }
}

#[test]
fn legacy_servers_get_the_initialize_handshake() {
    for refusal in 0..4 {
        let server = Server::start(legacy(refusal));
        let (_home, mcp) = client(&server);
        let init = mcp.initialize().unwrap();
        assert_eq!(init["protocolVersion"], "2025-11-25");
        assert_eq!(mcp.era(), Era::Legacy("2025-11-25".into()));
        assert_eq!(mcp.list_tools().unwrap().len(), 1);
        assert_eq!(
            server.methods(),
            [
                "server/discover",
                "initialize",
                "notifications/initialized",
                "tools/list"
            ],
            "refusal {refusal}"
        );
        let seen = server.seen();
        let init = &seen[1];
        assert_eq!(init.body["params"]["protocolVersion"], "2025-11-25");
        assert_eq!(init.body["params"]["clientInfo"]["name"], "test-client");
        assert_eq!(init.header("mcp-session-id"), None);
        assert_eq!(init.header("mcp-protocol-version"), None);
        for s in &seen[1..] {
            assert!(s.body["params"].get("_meta").is_none(), "{s:?}");
            assert_eq!(s.header("mcp-method"), None);
        }
        for s in &seen[2..] {
            assert_eq!(s.header("mcp-session-id"), Some("s-1"));
            assert_eq!(s.header("mcp-protocol-version"), Some("2025-11-25"));
        }
        drop(server);
    }
}

#[test]
fn an_expired_legacy_session_is_started_again_once() {
    let server = Server::start(|req, before| {
        let lists = before.iter().filter(|s| s.method() == "tools/list").count();
        match req.method() {
            "tools/list" if lists == 0 => (404, vec![], String::new()),
            _ => legacy(0)(req, before),
        }
    });
    let (_home, mcp) = client(&server);
    mcp.initialize().unwrap();
    assert_eq!(mcp.list_tools().unwrap().len(), 1);
    assert_eq!(
        server.methods(),
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list",
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list"
        ]
    );
    drop(server);
}

#[test]
fn unsupported_version_errors_select_a_listed_version_or_fail() {
    // Lists a legacy version: initialize with it, no other fallback.
    let server = Server::start(|req, before| match req.method() {
        "server/discover" => error(
            400,
            req.body["id"].clone(),
            -32022,
            json!({"supported": ["2025-06-18"]}),
        ),
        _ => {
            let (s, mut h, t) = result(req, json!({"protocolVersion": "2025-06-18"}));
            h.push(("Mcp-Session-Id", "s-1".into()));
            if req.method() == "initialize" {
                (s, h, t)
            } else {
                legacy(0)(req, before)
            }
        }
    });
    let (_home, mcp) = client(&server);
    mcp.initialize().unwrap();
    assert_eq!(mcp.era(), Era::Legacy("2025-06-18".into()));
    assert_eq!(server.seen()[1].body["params"]["protocolVersion"], "2025-06-18");
    drop(server);

    // Lists nothing this client speaks: a clear error, and no initialize.
    let server = Server::start(|req, _| {
        error(
            400,
            req.body["id"].clone(),
            -32022,
            json!({"supported": ["2099-01-01"]}),
        )
    });
    let (_home, mcp) = client(&server);
    let e = mcp.initialize().unwrap_err();
    assert!(
        matches!(&e, McpError::UnsupportedVersion { supported } if supported == &["2099-01-01"]),
        "{e}"
    );
    assert_eq!(server.methods(), ["server/discover"]);
    drop(server);

    // Another modern error is not a reason to fall back either.
    let server = Server::start(|req, _| error(400, req.body["id"].clone(), -32020, Value::Null));
    let (_home, mcp) = client(&server);
    assert!(matches!(
        mcp.initialize().unwrap_err(),
        McpError::Rpc { code: -32020, .. }
    ));
    assert_eq!(server.methods(), ["server/discover"]);
    drop(server);
}

#[test]
fn result_types_are_checked() {
    let server = Server::start(|req, before| {
        if req.method() != "tools/call" {
            return modern(req, before);
        }
        match req.body["params"]["name"].as_str().unwrap_or("") {
            "task" => result(req, json!({"resultType": "task", "taskId": "1"})),
            "plain" => result(req, json!({"content": [{"type": "text", "text": "ok"}]})),
            "elicit" => result(
                req,
                json!({"resultType": "input_required", "requestState": "s",
                       "inputRequests": {"a": {"method": "elicitation/create", "params": {}}}}),
            ),
            _ => match req.body["params"].get("requestState") {
                None => result(req, json!({"resultType": "input_required", "requestState": "opaque=1"})),
                Some(_) => result(req, json!({"resultType": "complete", "content": []})),
            },
        }
    });
    let (_home, mcp) = client(&server);
    let e = mcp.call_tool("task", json!({})).unwrap_err();
    assert!(matches!(&e, McpError::UnsupportedResultType(t) if t == "task"), "{e}");
    assert_eq!(mcp.call_tool("plain", json!({})).unwrap()["content"][0]["text"], "ok");
    let e = mcp.call_tool("elicit", json!({})).unwrap_err();
    assert!(
        matches!(&e, McpError::InputRequired { methods } if methods == &["elicitation/create"]),
        "{e}"
    );
    // State without input requests: retried at once, state echoed, new id.
    mcp.call_tool("state", json!({})).unwrap();
    let seen = server.seen();
    let (first, retry) = (&seen[seen.len() - 2], &seen[seen.len() - 1]);
    assert!(first.body["params"].get("requestState").is_none());
    assert_eq!(retry.body["params"]["requestState"], "opaque=1");
    assert_ne!(first.body["id"], retry.body["id"]);
    assert_eq!(server.methods().len(), 6, "discover, task, plain, elicit, state twice");
    drop(server);
}

#[test]
fn a_refused_version_the_server_lists_is_retried_once() {
    // Refused once, then accepted: two discovers, then modern.
    let server = Server::start(|req, before| {
        if before.is_empty() {
            return error(
                400,
                req.body["id"].clone(),
                -32022,
                json!({"supported": ["2026-07-28"]}),
            );
        }
        modern(req, before)
    });
    let (_home, mcp) = client(&server);
    mcp.initialize().unwrap();
    assert_eq!(mcp.era(), Era::Modern("2026-07-28".into()));
    assert_eq!(server.methods(), ["server/discover", "server/discover"]);
    assert_ne!(server.seen()[0].body["id"], server.seen()[1].body["id"]);
    drop(server);

    // Refused every time: one retry, then a clear error.
    let server = Server::start(|req, _| {
        error(
            400,
            req.body["id"].clone(),
            -32022,
            json!({"supported": ["2026-07-28"]}),
        )
    });
    let (_home, mcp) = client(&server);
    assert!(matches!(
        mcp.initialize().unwrap_err(),
        McpError::UnsupportedVersion { .. }
    ));
    assert_eq!(server.methods(), ["server/discover", "server/discover"]);
    drop(server);
}
