//! End-to-end tests of `mcp-oauth proxy`: the real binary, driven over its
//! stdin/stdout as a desktop client would, against the demo AS + MCP server
//! (OAuth) and small in-test servers (SSE responses, server requests, the GET
//! stream, sessions, the HTTP+SSE transport).

mod proxy_support;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth_demo::server::{DemoServer, Faults};
use proxy_support::{respond, serve, sse_event, sse_open};
use serde_json::{Value, json};
use support::{BROWSER, CLI, Cli, temp_home};

const WAIT: Duration = Duration::from_secs(30);

/// A running proxy and the client's end of its stdio; killed if dropped
/// before it ended (a failed test), so its home can go.
struct Proxy {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proxy {
    fn start(home: &Path, browser: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let cli = env
            .iter()
            .fold(Cli::new(home).browser(browser), |c, (k, v)| c.env(k, v));
        let mut child = cli
            .command(&["proxy"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mcp-oauth proxy");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, sink) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proxy {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    fn send(&mut self, msg: Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line on stdout; it must be one JSON-RPC message.
    fn recv(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no message from the proxy; stderr: {}", self.stderr()));
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        assert_eq!(v["jsonrpc"], "2.0", "not JSON-RPC: {line}");
        v
    }

    /// The response to `id`, after relaying anything before it.
    fn response(&self, id: Value) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let m = self.recv();
            if m["id"] == id && m.get("method").is_none() {
                return (m, before);
            }
            before.push(m);
        }
    }

    fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(json!(id)).0
    }

    fn initialize(&mut self) -> Value {
        let r = self.request(
            1,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
        );
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Closes stdin and waits for the exit; nothing else may be on stdout.
    fn finish(mut self) -> (i32, String) {
        drop(self.stdin.take());
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > WAIT {
                let _ = self.child.kill();
                panic!("the proxy did not exit after stdin closed");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(line) = self.lines.try_recv() {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("stray stdout: {line:?}"));
            assert_eq!(v["jsonrpc"], "2.0");
        }
        (status.code().unwrap_or(-1), self.stderr())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn record_browser(home: &Path, name: &str) -> (String, PathBuf) {
    let record = home.join(name);
    (format!("{BROWSER} --record {}", record.display()), record)
}

// Cold: one browser flow inside the first request; warm (a new proxy, same
// store): no request to the authorization server, no browser.
#[test]
fn cold_then_warm() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("proxy-cold");
    let (browser, record) = record_browser(&home, "opened");
    let mut p = Proxy::start(&home, &browser, &[&server.mcp_url()], &[]);
    let init = p.initialize();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    let tools = p.request(2, "tools/list", json!({}));
    assert_eq!(tools["result"]["tools"][0]["name"], "echo");
    let out = p.request(3, "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}));
    assert_eq!(out["result"]["content"][0]["text"], "hi");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(record.exists(), "the browser opened");
    assert!(err.contains("/authorize?"), "the URL is on stderr: {err}");
    assert_eq!(server.count("/authorize"), 1);

    std::fs::remove_file(&record).unwrap();
    let as_before = server.as_requests();
    let mut p = Proxy::start(&home, &browser, &[&server.mcp_url()], &[]);
    p.initialize();
    assert_eq!(
        p.request(2, "tools/list", json!({}))["result"]["tools"][0]["name"],
        "echo"
    );
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.as_requests(), as_before, "warm start asked the AS");
    assert!(!record.exists(), "warm start opened the browser");
}

// `proxy --device`: the address and the code go to stderr, where a browser
// sign-in's URL goes; the first request waits for the code to be entered.
#[test]
fn device_sign_in_through_the_proxy() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("proxy-device");
    let (browser, record) = record_browser(&home, "opened");
    let mut p = Proxy::start(&home, &browser, &[&server.mcp_url(), "--device"], &[]);
    p.initialize();
    let tools = p.request(2, "tools/list", json!({}));
    assert_eq!(tools["result"]["tools"][0]["name"], "echo", "{tools}");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("  code  WDJB-MJHT"), "{err}");
    assert!(err.contains(&format!("  open  {}/device", server.base())), "{err}");
    assert!(!record.exists(), "no browser");
    assert_eq!(server.count("/authorize"), 0);
    assert_eq!(server.count("/device_authorization"), 1);
}

// Desktop clients start two processes for one server: one browser flow; the
// other waits for its tokens.
#[test]
fn two_proxies_at_once_open_the_browser_once() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("proxy-two");
    let (b1, r1) = record_browser(&home, "opened-1");
    let (b2, r2) = record_browser(&home, "opened-2");
    let mut a = Proxy::start(&home, &b1, &[&server.mcp_url()], &[]);
    let mut b = Proxy::start(&home, &b2, &[&server.mcp_url()], &[]);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    a.send(init.clone());
    b.send(init);
    assert!(a.response(json!(1)).0.get("result").is_some());
    assert!(b.response(json!(1)).0.get("result").is_some());
    assert_eq!(server.count("/authorize"), 1, "{:?}", server.log());
    assert_eq!(u8::from(r1.exists()) + u8::from(r2.exists()), 1, "one browser opened");
    assert_eq!(a.finish().0, 0);
    assert_eq!(b.finish().0, 0);
}

// A declined authorization answers the pending request with an error the
// client can show; later requests fail fast with it, no new browser.
#[test]
fn decline_answers_with_an_error_and_latches() {
    let server = DemoServer::start(Faults {
        deny: true,
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("proxy-deny");
    let mut p = Proxy::start(&home, BROWSER, &[&server.mcp_url()], &[]);
    let r = p.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(r["error"]["code"], -32001, "{r}");
    assert_eq!(r["error"]["data"]["kind"], "declined", "{r}");
    assert!(r["error"]["message"].as_str().unwrap().contains("declined"));
    let before = server.log().len();
    let started = std::time::Instant::now();
    for id in 2..5 {
        let r = p.request(id, "tools/list", json!({}));
        assert_eq!(r["error"]["data"]["kind"], "declined", "{r}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.log().len(), before, "latched requests reach no server");
    assert_eq!(server.count("/authorize"), 1, "one browser flow");
    assert_eq!(p.finish().0, 0);
}

// A 401 in the middle of a session: the engine re-authorizes once and the
// request is answered.
#[test]
fn unauthorized_mid_session_is_retried() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("proxy-mid401");
    let mut p = Proxy::start(&home, BROWSER, &[&server.mcp_url()], &[]);
    p.initialize();
    server.revoke_all();
    let r = p.request(2, "tools/list", json!({}));
    assert_eq!(r["result"]["tools"][0]["name"], "echo", "{r}");
    assert_eq!(server.count("/authorize"), 2);
    assert_eq!(p.finish().0, 0);
}

// Every 401 of a long session (access tokens revoked, refresh tokens good)
// is answered with a refresh: the 2xx after each retry re-arms the engine.
#[test]
fn every_mid_session_401_is_answered_with_a_refresh() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("proxy-rearm");
    let mut p = Proxy::start(&home, BROWSER, &[&server.mcp_url()], &[]);
    p.initialize();
    for id in 2..=4 {
        server.revoke_access_tokens();
        let refreshes = server.count("/token");
        let r = p.request(id, "tools/list", json!({}));
        assert_eq!(r["result"]["tools"][0]["name"], "echo", "{r}");
        assert_eq!(server.count("/token"), refreshes + 1, "request {id}: one refresh");
    }
    assert_eq!(server.count("/authorize"), 1);
    assert_eq!(p.finish().0, 0);
}

// A DPoP server (nonces demanded by the AS and the MCP server): the proxy's
// requests carry `Authorization: DPoP` and a fresh proof each; the server's
// checks (claims, key binding, no Bearer) record no violation.
#[test]
fn dpop_servers_work_through_the_proxy() {
    let server = DemoServer::start(Faults {
        dpop: true,
        dpop_nonce: Some("proxy-nonce".into()),
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("proxy-dpop");
    let mut p = Proxy::start(&home, BROWSER, &[&server.mcp_url()], &[]);
    p.initialize();
    let r = p.request(2, "tools/list", json!({}));
    assert_eq!(r["result"]["tools"][0]["name"], "echo", "{r}");
    assert!(server.violations().is_empty(), "{:?}", server.violations());
    assert_eq!(server.count("/authorize"), 1);
    assert_eq!(p.finish().0, 0);
}

// An unset ${VAR} in --header is a usage error naming it, before anything runs.
#[test]
fn unset_header_variable_fails_at_start() {
    let home = temp_home("proxy-hdr");
    let out = Cli::new(&home).env_remove("MCP_OAUTH_TEST_UNSET_VAR").run(&[
        "proxy",
        "http://127.0.0.1:9/mcp",
        "--header",
        "X-Api-Key: ${MCP_OAUTH_TEST_UNSET_VAR}",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MCP_OAUTH_TEST_UNSET_VAR"), "{err}");
}

/// What the Streamable HTTP test server saw.
#[derive(Default)]
struct Seen {
    lines: Vec<String>,
}

fn streamable_server() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (to_call, from_client): (Sender<Value>, Receiver<Value>) = channel();
    let from_client = Arc::new(Mutex::new(from_client));
    let s2 = seen.clone();
    let base = serve(move |r, mut s| {
        let note = |t: String| s2.lock().unwrap().lines.push(t);
        note(format!(
            "{} session={} version={} key={}",
            r.method,
            r.header("mcp-session-id").unwrap_or("-"),
            r.header("mcp-protocol-version").unwrap_or("-"),
            r.header("x-api-key").unwrap_or("-")
        ));
        match r.method.as_str() {
            "DELETE" => respond(&mut s, 200, &[], b""),
            "GET" => {
                sse_open(&mut s, &[]);
                sse_event(
                    &mut s,
                    None,
                    r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                );
                std::thread::sleep(Duration::from_secs(20));
            }
            _ => {
                let m: Value = serde_json::from_slice(&r.body).unwrap();
                let method = m["method"].as_str().unwrap_or("");
                if method != "initialize" && r.header("mcp-session-id") != Some("sess-1") {
                    return respond(&mut s, 400, &[], b"no session");
                }
                if m.get("method").is_none() {
                    let _ = to_call.send(m);
                    return respond(&mut s, 202, &[], b"");
                }
                let id = m["id"].clone();
                match method {
                    "initialize" => {
                        let v = m["params"]["protocolVersion"].clone();
                        let body = json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":v,"capabilities":{"tools":{}},"serverInfo":{"name":"t","version":"1"}}});
                        respond(
                            &mut s,
                            200,
                            &[("content-type", "application/json"), ("mcp-session-id", "sess-1")],
                            body.to_string().as_bytes(),
                        );
                    }
                    "tools/call" => {
                        // Progress, then a server request; the answer waits for
                        // the client's response, so the stream must be relayed live.
                        sse_open(&mut s, &[]);
                        sse_event(&mut s, None, &json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":0.5}}).to_string());
                        sse_event(
                            &mut s,
                            None,
                            r#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#,
                        );
                        let reply = from_client.lock().unwrap().recv_timeout(Duration::from_secs(10));
                        let text = reply
                            .map(|r| r["result"]["content"]["text"].clone())
                            .unwrap_or(json!("none"));
                        sse_event(
                            &mut s,
                            None,
                            &json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":text}]}})
                                .to_string(),
                        );
                    }
                    _ => respond(
                        &mut s,
                        200,
                        &[("content-type", "application/json")],
                        json!({"jsonrpc":"2.0","id":id,"result":{"tools":[]}})
                            .to_string()
                            .as_bytes(),
                    ),
                }
            }
        }
    });
    (format!("{base}/mcp"), seen)
}

// SSE responses relayed message by message (a server request answered
// before the response comes), the GET stream, the session id, the
// negotiated version, --header with ${VAR}, and DELETE at the end.
#[test]
fn streamable_http_relays_streams_sessions_and_headers() {
    let (url, seen) = streamable_server();
    let home = temp_home("proxy-stream");
    let mut p = Proxy::start(
        &home,
        BROWSER,
        &[&url, "--header", "X-Api-Key: ${MCP_OAUTH_TEST_KEY}"],
        &[("MCP_OAUTH_TEST_KEY", "k-123")],
    );
    let init = p.request(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    p.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    p.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ask", "arguments": {}}}));
    let mut got_list_changed = false;
    let mut got_progress = false;
    loop {
        let m = p.recv();
        match (m["method"].as_str(), m["id"].clone()) {
            (Some("notifications/tools/list_changed"), _) => got_list_changed = true,
            (Some("notifications/progress"), _) => got_progress = true,
            (Some("sampling/createMessage"), id) => {
                assert_eq!(id, "s1");
                p.send(json!({"jsonrpc": "2.0", "id": "s1", "result": {"role": "assistant", "content": {"type": "text", "text": "from the client"}, "model": "m"}}));
            }
            (None, id) if id == 2 => {
                assert_eq!(m["result"]["content"][0]["text"], "from the client", "{m}");
                break;
            }
            _ => panic!("unexpected {m}"),
        }
    }
    assert!(got_progress, "progress relayed");
    if !got_list_changed {
        // The GET stream runs on its own; give it a moment.
        let m = p.recv();
        assert_eq!(m["method"], "notifications/tools/list_changed");
    }
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    let lines = seen.lock().unwrap().lines.clone();
    assert!(lines[0].starts_with("POST session=- version=- key=k-123"), "{lines:?}");
    for l in &lines[1..] {
        assert!(
            l.contains("session=sess-1 version=2025-06-18 key=k-123"),
            "{l} in {lines:?}"
        );
    }
    assert!(lines.iter().any(|l| l.starts_with("GET ")), "{lines:?}");
    assert_eq!(lines.last().unwrap().split(' ').next(), Some("DELETE"), "{lines:?}");
}

// A server that speaks only the 2024-11-05 HTTP+SSE transport: the POST is
// refused (405), the proxy opens the SSE stream, reads `endpoint`, POSTs
// there, and relays the responses that arrive on the stream.
#[test]
fn http_sse_transport_for_old_servers() {
    let (tx, rx) = channel::<String>();
    let rx = Arc::new(Mutex::new(rx));
    let base = serve(move |r, mut s| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/sse") => {
            sse_open(&mut s, &[]);
            sse_event(&mut s, Some("endpoint"), "/messages?sessionId=abc");
            let rx = rx.lock().unwrap();
            while let Ok(m) = rx.recv_timeout(Duration::from_secs(20)) {
                sse_event(&mut s, Some("message"), &m);
            }
        }
        ("POST", "/messages?sessionId=abc") => {
            let m: Value = serde_json::from_slice(&r.body).unwrap();
            if let Some(id) = m.get("id").filter(|_| m.get("method").is_some()) {
                let result = match m["method"].as_str() {
                    Some("initialize") => {
                        json!({"protocolVersion": "2024-11-05", "capabilities": {}, "serverInfo": {"name": "old", "version": "1"}})
                    }
                    _ => json!({"tools": [{"name": "legacy-tool", "inputSchema": {"type": "object"}}]}),
                };
                tx.send(json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string())
                    .unwrap();
            }
            respond(&mut s, 202, &[], b"Accepted");
        }
        _ => respond(&mut s, 405, &[], b"Method Not Allowed"),
    });
    let home = temp_home("proxy-legacy");
    let mut p = Proxy::start(&home, BROWSER, &[&format!("{base}/sse")], &[]);
    let init = p.request(
        1,
        "initialize",
        json!({"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "old", "{init}");
    p.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let r = p.request(2, "tools/list", json!({}));
    assert_eq!(r["result"]["tools"][0]["name"], "legacy-tool");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}

// A message endpoint on another origin would receive the token: refused.
#[test]
fn http_sse_endpoint_on_another_origin_is_refused() {
    let base = serve(|r, mut s| {
        if r.method == "GET" {
            sse_open(&mut s, &[]);
            sse_event(&mut s, Some("endpoint"), "http://127.0.0.2:1/steal");
            std::thread::sleep(Duration::from_secs(5));
        } else {
            respond(&mut s, 405, &[], b"");
        }
    });
    let home = temp_home("proxy-origin");
    let mut p = Proxy::start(
        &home,
        BROWSER,
        &[&format!("{base}/sse"), "--transport", "sse-only"],
        &[],
    );
    let r = p.request(
        1,
        "initialize",
        json!({"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert!(
        r["error"]["message"].as_str().unwrap().contains("another origin"),
        "{r}"
    );
    assert_eq!(p.finish().0, 0);
}

// Garbage from the client gets a JSON-RPC parse error, not a crash; the
// config command prints a snippet with this binary's absolute path.
#[test]
fn parse_errors_and_config_snippet() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("proxy-misc");
    let mut p = Proxy::start(&home, BROWSER, &[&server.mcp_url()], &[]);
    writeln!(p.stdin.as_mut().unwrap(), "this is not json").unwrap();
    let r = p.recv();
    assert_eq!(r["error"]["code"], -32700);
    assert_eq!(p.finish().0, 0);

    let out = Command::new(CLI).args(["config", &server.mcp_url()]).output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = v["mcpServers"].as_object().unwrap().values().next().unwrap().clone();
    assert!(Path::new(entry["command"].as_str().unwrap()).is_absolute());
    assert_eq!(entry["args"], json!(["proxy", server.mcp_url()]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mcp-oauth login"));
}

// The server forgets the session (a restart): its 404 makes the proxy open a
// new one with the client's own initialize, and the request is answered;
// the client sees nothing of it.
#[test]
fn a_forgotten_session_is_reopened_transparently() {
    let valid = Arc::new(Mutex::new(None::<String>));
    let (v2, issued) = (valid.clone(), Arc::new(Mutex::new(0)));
    let url = format!(
        "{}/mcp",
        serve(move |r, mut s| {
            if r.method != "POST" {
                return respond(&mut s, 405, &[], b"");
            }
            let m: Value = serde_json::from_slice(&r.body).unwrap();
            if m["method"] == "initialize" {
                let mut n = issued.lock().unwrap();
                *n += 1;
                let sid = format!("s-{n}");
                *v2.lock().unwrap() = Some(sid.clone());
                let body = json!({"jsonrpc":"2.0","id":m["id"],"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"t","version":"1"}}});
                return respond(
                    &mut s,
                    200,
                    &[("content-type", "application/json"), ("mcp-session-id", &sid)],
                    body.to_string().as_bytes(),
                );
            }
            if r.header("mcp-session-id") != v2.lock().unwrap().as_deref() {
                return respond(&mut s, 404, &[], b"no such session");
            }
            if m.get("id").is_none() {
                return respond(&mut s, 202, &[], b"");
            }
            let body = json!({"jsonrpc":"2.0","id":m["id"],"result":{"session": r.header("mcp-session-id")}});
            respond(
                &mut s,
                200,
                &[("content-type", "application/json")],
                body.to_string().as_bytes(),
            );
        })
    );
    let home = temp_home("proxy-reopen");
    let mut p = Proxy::start(&home, BROWSER, &[&url], &[]);
    p.initialize();
    assert_eq!(p.request(2, "tools/list", json!({}))["result"]["session"], "s-1");
    *valid.lock().unwrap() = None;
    let r = p.request(3, "tools/list", json!({}));
    assert_eq!(r["result"]["session"], "s-2", "{r}");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("opening a new one"), "{err}");
}
