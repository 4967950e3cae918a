//! `rediss://` against a redis-server speaking TLS with a private CA (made
//! here with openssl): the CA file verifies the server; without it, or with
//! TLS against a plain port, the error says TLS and is the operator's to fix
//! (a usage error, exit 2 in the CLI).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_oauth_host::storage::mode::SecretsChoice;
use mcp_oauth_host::storage::redis::url::StoreUrl;
use mcp_oauth_host::storage::redis::{RedisOptions, RedisStore};
use mcp_oauth_host::storage::{Store, StoreError};
use support::{Cli, TempHome, temp_home};

/// The server, its CA and keys in `dir` (removed after the server stops).
struct TlsServer {
    child: Child,
    port: u16,
    dir: TempHome,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl {args:?}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tls_server() -> TlsServer {
    let dir = temp_home("redis-tls");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mcp-oauth test CA",
    ]);
    openssl(&dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    openssl(&dir, &csr);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--tls-cert-file", "server.pem", "--tls-key-file", "server.key"])
        .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server with TLS did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsServer { child, port, dir }
}

fn open(url: &str, ca: Option<&Path>) -> Result<RedisStore, StoreError> {
    RedisStore::open(RedisOptions {
        url: StoreUrl::parse(url, None).unwrap(),
        user: None,
        secrets: SecretsChoice::File,
        key_file: None,
        ca_pem: ca.map(|p| std::fs::read(p).unwrap()),
    })
}

#[test]
fn rediss_with_the_ca_works_and_without_it_says_tls() {
    let s = tls_server();
    let url = format!("rediss://127.0.0.1:{}/0", s.port);
    let store = open(&url, Some(&s.dir.join("ca.pem"))).unwrap();
    store.set("tokens-t", b"over TLS").unwrap();
    assert_eq!(store.get("tokens-t").unwrap().as_deref(), Some(&b"over TLS"[..]));

    // The system's roots do not know the private CA.
    let t = Instant::now();
    let e = open(&url, None).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(matches!(e, StoreError::Config(_)), "{e}");
    assert!(e.to_string().contains("TLS"), "{e}");

    // TLS against a plain port.
    let plain = support::RedisServer::start();
    let t = Instant::now();
    let e = open(
        &format!("rediss://127.0.0.1:{}/0", plain.port),
        Some(&s.dir.join("ca.pem")),
    )
    .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        e.to_string().contains("TLS") || e.to_string().contains("cannot be reached"),
        "{e}"
    );
}

#[test]
fn the_cli_takes_the_ca_from_mcp_oauth_ca_file_and_exits_2_without_it() {
    let s = tls_server();
    let home = temp_home("redis-tls-cli");
    let run = |ca: Option<&Path>| {
        let cli = Cli::new(&home)
            .env("MCP_OAUTH_STORE", format!("rediss://127.0.0.1:{}/0", s.port))
            .env("MCP_OAUTH_SECRETS", "file")
            .env_remove("SSL_CERT_FILE");
        match ca {
            Some(p) => cli.env("MCP_OAUTH_CA_FILE", p),
            None => cli.env_remove("MCP_OAUTH_CA_FILE"),
        }
        .run(&["status"])
    };
    let ok = run(Some(&s.dir.join("ca.pem")));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("rediss://127.0.0.1:{}/0", s.port)));
    let refused = run(None);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("TLS"));
}
