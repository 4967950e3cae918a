//! Where secrets live (issue 16), through the real CLI: the mode pinned in
//! `store.json`, sealed records with a key file, plain files announced once
//! when no keychain answers, errors that name the converting command, a
//! changed key, and `store seal` / `store unseal`. The real keychain (a
//! Secret Service in `dbus-run-session`) is exercised by `tests/keychain/run`.

mod support;

use std::path::Path;
use std::process::Output;

use mcp_oauth_demo::server::{DemoServer, Faults};
use support::{Cli, TempFile, temp_home};

/// The CLI with no keychain (no session bus, an empty runtime directory of
/// its own in the home) and, when given, a key file.
fn cli(home: &Path, key_file: Option<&Path>, args: &[&str]) -> Output {
    let runtime_dir = home.join("xdg-runtime");
    std::fs::create_dir_all(&runtime_dir).unwrap();
    let cli = Cli::new(home).env("XDG_RUNTIME_DIR", &runtime_dir);
    match key_file {
        Some(k) => cli.env("MCP_OAUTH_STORE_KEY_FILE", k),
        None => cli,
    }
    .run(args)
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A key file as a person writes one (a line), with `mode`.
fn key_file(tag: &str, mode: u32) -> TempFile {
    use std::os::unix::fs::PermissionsExt;
    let path = TempFile::new(tag, "store.key");
    let key = mcp_oauth_host::storage::key::StoreKey::generate().unwrap();
    std::fs::write(&*path, format!("{}\n", key.to_base64())).unwrap();
    std::fs::set_permissions(&*path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// Every file under `dir`, searched for each secret: the hits.
fn secrets_on_disk(dir: &Path, secrets: &[String]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let text = String::from_utf8_lossy(&bytes);
                hits.extend(
                    secrets
                        .iter()
                        .filter(|s| text.contains(s.as_str()))
                        .map(|s| format!("{}: {s}", p.display())),
                );
            }
        }
    }
    hits
}

#[test]
fn no_keychain_in_auto_means_plain_files_said_once() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("secrets-auto");
    let out = cli(&home, None, &["login", &server.mcp_url()]);
    assert!(out.status.success(), "{}", err(&out));
    let lines: Vec<_> = err(&out)
        .lines()
        .filter(|l| l.contains("plain files"))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 1, "{}", err(&out));
    assert!(
        lines[0].contains("MCP_OAUTH_SECRETS=file") && lines[0].contains("Secret Service"),
        "{}",
        lines[0]
    );
    assert_eq!(
        std::fs::read_to_string(home.join("store.json")).unwrap(),
        r#"{"format":1,"mode":"plain"}"#
    );
    // Pinned: later runs follow store.json and say nothing more.
    let out = cli(&home, None, &["token", &server.mcp_url()]);
    assert!(
        out.status.success() && !err(&out).contains("plain files"),
        "{}",
        err(&out)
    );
    // `keychain` on a plain store names the converting command.
    let out = cli(&home, None, &["--secrets", "keychain", "token", &server.mcp_url()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("mcp-oauth store seal"), "{}", err(&out));
}

#[test]
fn keychain_mode_without_a_keychain_fails_and_writes_nothing() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("secrets-keychain");
    let out = cli(&home, None, &["--secrets", "keychain", "login", &server.mcp_url()]);
    assert_eq!(out.status.code(), Some(1), "{}", err(&out));
    assert!(err(&out).contains("nothing was written"), "{}", err(&out));
    let files: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .collect();
    assert!(files.is_empty(), "{files:?}");
    assert_eq!(server.as_requests(), 0);
}

#[test]
fn a_key_file_seals_everything_and_the_mode_is_pinned() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("secrets-keyfile");
    let key = key_file("secrets-keyfile-key", 0o600);
    let url = server.mcp_url();
    let out = cli(&home, Some(&key), &["login", &url]);
    assert!(out.status.success(), "{}", err(&out));
    let out = cli(&home, Some(&key), &["token", &url]);
    assert!(out.status.success(), "{}", err(&out));
    let before = server.as_requests();
    assert_eq!(server.as_requests(), before);
    let secrets = server.issued_secrets();
    assert!(!secrets.is_empty());
    assert_eq!(secrets_on_disk(&home, &secrets), Vec::<String>::new());
    let manifest = std::fs::read_to_string(home.join("store.json")).unwrap();
    assert!(manifest.contains(r#""mode":"sealed""#), "{manifest}");
    // `file` on a sealed store names the converting command.
    let out = cli(&home, Some(&key), &["--secrets", "file", "token", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("mcp-oauth store unseal"), "{}", err(&out));
    // A key file others may read is refused.
    let loose = key_file("secrets-keyfile-loose", 0o644);
    let out = cli(&home, Some(&loose), &["token", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("chmod 600"), "{}", err(&out));
    // status says where secrets live.
    let out = cli(&home, Some(&key), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["secrets"]["mode"], "sealed");
    assert_eq!(v[0]["secrets"]["unreadable"], 0);
}

#[test]
fn a_changed_key_reads_as_absent_and_sign_in_replaces_the_records() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("secrets-changed");
    let url = server.mcp_url();
    let old = key_file("secrets-changed-old", 0o600);
    assert!(cli(&home, Some(&old), &["login", &url]).status.success());
    let new = key_file("secrets-changed-new", 0o600);
    let out = cli(&home, Some(&new), &["status"]);
    assert!(out.status.success(), "{}", err(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("records cannot be read; sign in again"), "{text}");
    // Nothing readable: `token` says to sign in (exit 3), no crash.
    assert_eq!(cli(&home, Some(&new), &["token", &url]).status.code(), Some(3));
    let out = cli(&home, Some(&new), &["login", &url]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(cli(&home, Some(&new), &["token", &url]).status.success());
}

#[test]
fn store_seal_and_unseal_convert_in_place() {
    let server = DemoServer::start(Faults::default()).unwrap();
    let home = temp_home("secrets-convert");
    let url = server.mcp_url();
    let plain = cli(&home, None, &["--secrets", "file", "login", &url]);
    assert!(plain.status.success(), "{}", err(&plain));
    let key = key_file("secrets-convert-key", 0o600);
    let out = cli(&home, Some(&key), &["store", "seal"]);
    assert!(out.status.success() && err(&out).contains("sealed"), "{}", err(&out));
    assert_eq!(secrets_on_disk(&home, &server.issued_secrets()), Vec::<String>::new());
    let before = server.as_requests();
    assert!(cli(&home, Some(&key), &["token", &url]).status.success());
    let out = cli(&home, Some(&key), &["store", "unseal"]);
    assert!(out.status.success(), "{}", err(&out));
    assert!(cli(&home, None, &["--secrets", "file", "token", &url]).status.success());
    assert_eq!(
        server.as_requests(),
        before,
        "no sign-in, no refresh across the conversions"
    );
}

#[test]
fn logout_removes_the_dpop_key_file() {
    let server = DemoServer::start(Faults {
        dpop: true,
        ..Faults::default()
    })
    .unwrap();
    let home = temp_home("secrets-logout");
    let key = key_file("secrets-logout-key", 0o600);
    let url = server.mcp_url();
    assert!(cli(&home, Some(&key), &["login", &url]).status.success());
    let pems = |h: &Path| {
        std::fs::read_dir(h)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pem"))
            .count()
    };
    assert_eq!(pems(&home), 1, "the sealed DPoP key");
    let pem = std::fs::read_dir(&home)
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "pem"))
        .unwrap()
        .path();
    let text = std::fs::read_to_string(pem).unwrap();
    assert!(
        text.starts_with(r#"{"sealed":1,"#) && !text.contains("PRIVATE KEY"),
        "{text}"
    );
    assert!(cli(&home, Some(&key), &["logout", &url]).status.success());
    assert_eq!(pems(&home), 0);
}
