//! The shared store on a real redis-server (docs/store.md, "A shared store on
//! Redis or Valkey"): users never meet, leases exclude and expire, fenced
//! writes refuse a holder that lost its lease or read a stale version,
//! faults are errors that name the store (never its password), a restarted
//! server is used again, a manifest with another key is refused.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use mcp_oauth_host::storage::mode::SecretsChoice;
use mcp_oauth_host::storage::redis::url::StoreUrl;
use mcp_oauth_host::storage::redis::{RedisOptions, RedisStore};
use mcp_oauth_host::storage::{Store, StoreError};
use support::{RedisServer, key_file};

fn open(url: &str, user: Option<&str>, key: Option<&Path>) -> Result<RedisStore, StoreError> {
    RedisStore::open(RedisOptions {
        url: StoreUrl::parse(url, None).unwrap(),
        user: user.map(str::to_string),
        secrets: if key.is_some() {
            SecretsChoice::Auto
        } else {
            SecretsChoice::File
        },
        key_file: key.map(Path::to_path_buf),
        ca_pem: None,
    })
}

fn admin(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url("")).unwrap().get_connection().unwrap()
}

#[test]
fn two_users_records_never_meet() {
    let server = RedisServer::start();
    let key = key_file("users");
    let alice = open(&server.url(""), Some("alice@example.com"), Some(&key)).unwrap();
    let bob = open(&server.url(""), Some("bob"), Some(&key)).unwrap();
    alice.set("tokens-a", b"alice's").unwrap();
    bob.set("tokens-a", b"bob's").unwrap();
    alice.set("binding-x", b"only alice").unwrap();
    assert_eq!(alice.get("tokens-a").unwrap().as_deref(), Some(&b"alice's"[..]));
    assert_eq!(bob.get("tokens-a").unwrap().as_deref(), Some(&b"bob's"[..]));
    assert_eq!(alice.list("").unwrap(), ["binding-x", "tokens-a"]);
    assert_eq!(bob.list("").unwrap(), ["tokens-a"]);
    assert_eq!(bob.get("binding-x").unwrap(), None);

    // A sealed record copied under another user's name does not open there.
    let mut c = admin(&server);
    let raw: Vec<u8> = redis::cmd("HGET")
        .arg("mcp-oauth:{alice@example.com/binding-x}:r")
        .arg("d")
        .query(&mut c)
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("only alice"), "sealed at rest");
    let _: () = redis::cmd("HSET")
        .arg("mcp-oauth:{bob/binding-x}:r")
        .arg("v")
        .arg(1)
        .arg("d")
        .arg(raw)
        .query(&mut c)
        .unwrap();
    assert_eq!(bob.get("binding-x").unwrap(), None);

    // Locks are per user too: bob takes his while alice holds hers.
    let _a = alice.lock("tokens-a").unwrap();
    let t = Instant::now();
    let _b = bob.lock("tokens-a").unwrap();
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn a_lease_excludes_until_released_and_ends_when_its_holder_vanishes() {
    let server = RedisServer::start();
    let url = server.url("/0?lease_ms=1000");
    let a = open(&url, None, None).unwrap();
    let b = open(&url, None, None).unwrap();
    let held = a.lock("tokens-l").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let b2 = b.clone();
    let waiter = std::thread::spawn(move || {
        let g = b2.lock("tokens-l").unwrap();
        tx.send(()).unwrap();
        g
    });
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "must wait");
    drop(held);
    rx.recv_timeout(Duration::from_secs(2)).unwrap();
    let g = waiter.join().unwrap();
    drop(g);

    // A holder that never releases (killed): the others go on after its lease.
    std::mem::forget(a.lock("tokens-l").unwrap());
    let t = Instant::now();
    let _g = b.lock("tokens-l").unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[test]
fn a_holder_past_its_lease_sends_nothing_and_its_write_is_refused() {
    let server = RedisServer::start();
    let url = server.url("/0?lease_ms=1000");
    let key = key_file("fence");
    let slow = open(&url, None, Some(&key)).unwrap();
    let fast = open(&url, None, Some(&key)).unwrap();
    slow.set("tokens-f", b"rotation 1").unwrap();

    let slow_guard = slow.lock("tokens-f").unwrap();
    assert!(slow_guard.renew().is_ok());
    assert_eq!(slow.get("tokens-f").unwrap().as_deref(), Some(&b"rotation 1"[..]));
    std::thread::sleep(Duration::from_millis(1300));
    {
        let _g = fast.lock("tokens-f").unwrap();
        assert_eq!(fast.get("tokens-f").unwrap().as_deref(), Some(&b"rotation 1"[..]));
        fast.set("tokens-f", b"rotation 2").unwrap();
    }
    // Before sending, the host renews: the lease is gone.
    let lost = slow_guard.renew().unwrap_err();
    assert!(matches!(lost, StoreError::LeaseLost { .. }), "{lost}");
    assert!(lost.to_string().contains("nothing was sent"), "{lost}");
    let refused = slow.set("tokens-f", b"rotation 2 from the slow one").unwrap_err();
    assert!(matches!(refused, StoreError::Fenced { .. }), "{refused}");
    assert!(refused.to_string().contains("tokens-f"), "{refused}");
    assert_eq!(slow.get("tokens-f").unwrap().as_deref(), Some(&b"rotation 2"[..]));
}

#[test]
fn a_write_on_a_stale_version_is_refused_under_the_lock() {
    let server = RedisServer::start();
    let a = open(&server.url(""), None, None).unwrap();
    let b = open(&server.url(""), None, None).unwrap();
    a.set("tokens-s", b"v1").unwrap();
    let _g = a.lock("tokens-s").unwrap();
    assert_eq!(a.get("tokens-s").unwrap().as_deref(), Some(&b"v1"[..]));
    // Another writer that does not take the lock (a new sign-in elsewhere).
    b.set("tokens-s", b"v2 from a sign-in").unwrap();
    let e = a.set("tokens-s", b"v2 from a refresh").unwrap_err();
    assert!(e.to_string().contains("newer version"), "{e}");
    assert_eq!(a.get("tokens-s").unwrap().as_deref(), Some(&b"v2 from a sign-in"[..]));
    // Having read the newer version, the holder may write.
    a.set("tokens-s", b"v3").unwrap();
    assert_eq!(b.get("tokens-s").unwrap().as_deref(), Some(&b"v3"[..]));
}

#[test]
fn an_unreachable_store_fails_in_time_and_names_itself() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let e = open(&format!("redis://app:hunter2@127.0.0.1:{port}/0"), None, None).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let text = e.to_string();
    assert!(text.contains(&format!("redis://app:***@127.0.0.1:{port}/0")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(matches!(e, StoreError::Remote(_)), "{text}");
}

#[test]
fn a_wrong_password_says_so_without_the_password() {
    let server = RedisServer::start();
    let mut c = admin(&server);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("right-one")
        .query(&mut c)
        .unwrap();
    let e = open(&server.url("").replace("//", "//:wrong-one@"), None, None).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Config(_)), "{text}");
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(!text.contains("wrong-one") && !text.contains("right-one"), "{text}");
    let url = StoreUrl::parse(&server.url(""), Some("right-one")).unwrap();
    RedisStore::open(RedisOptions {
        url,
        user: None,
        secrets: SecretsChoice::File,
        key_file: None,
        ca_pem: None,
    })
    .unwrap();
}

#[test]
fn a_restarted_server_is_used_again_with_its_data() {
    let mut server = RedisServer::start();
    let key = key_file("restart");
    let s = open(&server.url(""), None, Some(&key)).unwrap();
    s.set("tokens-r", b"kept").unwrap();
    let (port, dir) = (server.port, server.dir.clone());
    server.stop();
    let t = Instant::now();
    let e = s.get("tokens-r").unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    let _again = RedisServer::start_on(port, dir);
    assert_eq!(s.get("tokens-r").unwrap().as_deref(), Some(&b"kept"[..]));
}

#[test]
fn the_manifest_pins_the_key_and_the_mode() {
    let server = RedisServer::start();
    let (k1, k2) = (key_file("pin-1"), key_file("pin-2"));
    let first = open(&server.url(""), None, Some(&k1)).unwrap();
    first.set("tokens-m", b"x").unwrap();
    let e = open(&server.url(""), None, Some(&k2)).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, StoreError::Config(_)), "{text}");
    assert!(text.contains("MCP_OAUTH_STORE_KEY_FILE holds the key"), "{text}");
    // Plain records on a sealed store: refused, nothing written.
    let e = open(&server.url(""), None, None).unwrap_err();
    assert!(e.to_string().contains("sealed"), "{e}");
    assert_eq!(first.get("tokens-m").unwrap().as_deref(), Some(&b"x"[..]));
    // A sealed request without a key file names the variable.
    let e = RedisStore::open(RedisOptions {
        url: StoreUrl::parse(&server.url("/1"), None).unwrap(),
        user: None,
        secrets: SecretsChoice::Auto,
        key_file: None,
        ca_pem: None,
    })
    .unwrap_err();
    assert!(e.to_string().contains("MCP_OAUTH_STORE_KEY_FILE"), "{e}");
    // Sealed at rest: no value holds the plaintext.
    let mut c = admin(&server);
    let raw: Vec<u8> = redis::cmd("HGET")
        .arg("mcp-oauth:{tokens-m}:r")
        .arg("d")
        .query(&mut c)
        .unwrap();
    assert!(raw.starts_with(b"{\"sealed\":1"), "{}", String::from_utf8_lossy(&raw));
}
