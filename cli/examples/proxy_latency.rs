//! What `mcp-oauth proxy` adds per request: the same `tools/call` sent N
//! times straight to the demo MCP server (HTTP with the stored token) and N
//! times through the proxy's stdin/stdout, after a warm-up, on one machine.
//!
//!     cargo run --release -p mcp-oauth-cli --example proxy_latency [-- N]
//!
//! Run it from a release build: it spawns target/release/mcp-oauth and
//! mcp-oauth-headless-browser.

fn main() {
    bench::main();
}

mod bench {
    use std::io::{BufRead, BufReader, Write};
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use mcp_oauth_demo::server::{DemoServer, Faults};

    fn bin(name: &str) -> PathBuf {
        let exe = std::env::current_exe().expect("this program's path");
        // target/release/examples/proxy_latency -> target/release/<name>
        exe.parent().and_then(|p| p.parent()).expect("target dir").join(name)
    }

    fn summary(label: &str, mut t: Vec<Duration>) -> f64 {
        t.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mean = t.iter().map(|d| us(*d)).sum::<f64>() / t.len() as f64;
        println!(
            "{label:<22} n={:<5} mean {mean:>7.0} us   p50 {:>7.0} us   p90 {:>7.0} us   p99 {:>7.0} us",
            t.len(),
            us(t[t.len() / 2]),
            us(t[t.len() * 9 / 10]),
            us(t[(t.len() * 99 / 100).min(t.len() - 1)])
        );
        mean
    }

    pub fn main() {
        let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(500);
        let (cli, browser) = (bin("mcp-oauth"), bin("mcp-oauth-headless-browser"));
        let server = DemoServer::start(Faults::default()).expect("demo server");
        let home = std::env::temp_dir().join(format!("mcp-oauth-bench-proxy-{}", std::process::id()));
        let url = server.mcp_url();
        let ok = Command::new(&cli)
            .args(["login", &url])
            .env("MCP_OAUTH_HOME", &home)
            .env("BROWSER", &browser)
            .stdin(Stdio::null())
            .status()
            .expect("run mcp-oauth login");
        assert!(ok.success(), "login failed");
        let out = Command::new(&cli)
            .args(["token", &url])
            .env("MCP_OAUTH_HOME", &home)
            .output()
            .expect("run mcp-oauth token");
        let token = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
        let call = |id: usize| {
            format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"bench"}}}}}}"#
            )
        };

        // Direct: what a Streamable HTTP client with the token does.
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut direct = Vec::with_capacity(n);
        for i in 0..n + 20 {
            let t = Instant::now();
            let mut r = agent
                .post(&url)
                .header("authorization", &format!("Bearer {token}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .send(call(i))
                .expect("direct request");
            let body = r.body_mut().read_to_string().expect("body");
            assert!(body.contains("bench"), "{body}");
            if i >= 20 {
                direct.push(t.elapsed());
            }
        }

        let (proxied, first) = through_proxy(&cli, &home, &url, &[], n, &call);
        // The same with a static Authorization header: no engine call per request.
        let bearer = format!("Authorization: Bearer {token}");
        let (static_header, _) = through_proxy(&cli, &home, &url, &["--header", &bearer], n, &call);

        println!("tools/call on the demo server (127.0.0.1, a new connection per request), warm token:");
        let d = summary("direct HTTP", direct);
        let p = summary("through the proxy", proxied);
        summary("proxy, static header", static_header);
        println!("added by the proxy: {:.0} us per request (mean)", p - d);
        println!(
            "proxy start to the initialize result (warm store): {:.1} ms",
            first.as_secs_f64() * 1e3
        );
        let _ = std::fs::remove_dir_all(&home);
    }

    /// Round trips through a proxy process: initialize, then `n` calls after
    /// 20 of warm-up. Returns the call times and the time to the first result.
    fn through_proxy(
        cli: &PathBuf,
        home: &PathBuf,
        url: &str,
        extra: &[&str],
        n: usize,
        call: &dyn Fn(usize) -> String,
    ) -> (Vec<Duration>, Duration) {
        let mut child = Command::new(cli)
            .args(["proxy", url])
            .args(extra)
            .env("MCP_OAUTH_HOME", home)
            .env("BROWSER", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the proxy");
        let started = Instant::now();
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let mut round_trip = |msg: &str| {
            writeln!(stdin, "{msg}").expect("write");
            stdin.flush().expect("flush");
            line.clear();
            stdout.read_line(&mut line).expect("read");
            assert!(line.contains("\"result\""), "{line}");
        };
        round_trip(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#,
        );
        let first = started.elapsed();
        let mut proxied = Vec::with_capacity(n);
        for i in 1..=n + 20 {
            let t = Instant::now();
            round_trip(&call(i));
            if i > 20 {
                proxied.push(t.elapsed());
            }
        }
        drop(stdin);
        let _ = child.wait();
        (proxied, first)
    }
}
