//! The storage seam's contract, run against every backend the Rust host
//! ships (the file store, the sealed store over it, the Redis store sealed
//! and plain, on a real redis-server), and the sealed format
//! against the shared vectors (`tests/vectors/sealed_records.json`), which
//! the Node and Python packages run too.

mod support;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_host::storage::key::StoreKey;
use mcp_oauth_host::storage::mode::SecretsChoice;
use mcp_oauth_host::storage::redis::url::StoreUrl;
use mcp_oauth_host::storage::redis::{RedisOptions, RedisStore};
use mcp_oauth_host::storage::sealed::{self, Kind, SealedStore};
use mcp_oauth_host::storage::{FileStore, Secrets, Store};

/// What must live as long as a backend: its directory, its Redis server and
/// key file (each removed when dropped).
type Keep = Box<dyn std::any::Any>;

/// Every backend, each with what it needs kept.
fn backends(tag: &str) -> Vec<(&'static str, Arc<dyn Store>, Keep)> {
    let a = support::temp_home(&format!("contract-file-{tag}"));
    let b = support::temp_home(&format!("contract-sealed-{tag}"));
    let key = StoreKey::generate().unwrap();
    let server = Arc::new(support::RedisServer::start());
    let key_file = support::key_file(&format!("contract-redis-{tag}"));
    let redis = |prefix: &str, sealed: bool| -> Arc<dyn Store> {
        let url = StoreUrl::parse(&server.url(&format!("/0?prefix={prefix}")), None).unwrap();
        Arc::new(
            RedisStore::open(RedisOptions {
                url,
                user: None,
                secrets: if sealed {
                    SecretsChoice::Auto
                } else {
                    SecretsChoice::File
                },
                key_file: sealed.then(|| key_file.to_path_buf()),
                ca_pem: None,
            })
            .unwrap(),
        )
    };
    let (sealed, plain) = (redis("sealed:", true), redis("plain:", false));
    vec![
        (
            "file",
            Arc::new(FileStore::open(&a).unwrap()) as Arc<dyn Store>,
            Box::new(a),
        ),
        (
            "sealed",
            Arc::new(SealedStore::new(FileStore::open(&b).unwrap(), key, "a test key")) as Arc<dyn Store>,
            Box::new(b),
        ),
        ("redis-sealed", sealed, Box::new((server.clone(), key_file))),
        ("redis-plain", plain, Box::new(server)),
    ]
}

#[test]
fn records_round_trip_list_and_delete() {
    for (name, s, _keep) in backends("records") {
        assert_eq!(s.get("tokens-a").unwrap(), None, "{name}");
        s.set("tokens-a", br#"{"v":1}"#).unwrap();
        s.set("tokens-b", br#"{"v":2}"#).unwrap();
        s.set("binding-a", br#"{"v":3}"#).unwrap();
        assert_eq!(
            s.get("tokens-a").unwrap().as_deref(),
            Some(&br#"{"v":1}"#[..]),
            "{name}"
        );
        assert_eq!(s.list("tokens-").unwrap(), ["tokens-a", "tokens-b"], "{name}");
        assert_eq!(s.list("").unwrap().len(), 3, "{name}");
        s.set("tokens-a", br#"{"v":4}"#).unwrap();
        assert_eq!(
            s.get("tokens-a").unwrap().as_deref(),
            Some(&br#"{"v":4}"#[..]),
            "{name}"
        );
        s.delete("tokens-a").unwrap();
        s.delete("tokens-a").unwrap();
        assert_eq!(s.get("tokens-a").unwrap(), None, "{name}");
        for bad in ["../x", "a/b", "", "a.json", "store"] {
            assert!(s.set(bad, b"{}").is_err(), "{name}: {bad:?}");
        }
    }
}

#[test]
fn locks_exclude_and_release_on_drop() {
    for (name, s, _keep) in backends("locks") {
        let held = s.lock("tokens-x").unwrap();
        let other = s.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _g = other.lock("tokens-x").unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "{name}: must wait"
        );
        drop(held);
        rx.recv_timeout(Duration::from_secs(5)).expect(name);
        t.join().unwrap();
    }
}

#[test]
fn key_files_first_writer_wins() {
    for (name, s, _keep) in backends("keys") {
        assert_eq!(s.get_key_file("dpop-a").unwrap(), None, "{name}");
        assert_eq!(s.create_key_file_once("dpop-a", b"first").unwrap(), b"first", "{name}");
        assert_eq!(s.create_key_file_once("dpop-a", b"second").unwrap(), b"first", "{name}");
        assert_eq!(
            s.get_key_file("dpop-a").unwrap().as_deref(),
            Some(&b"first"[..]),
            "{name}"
        );
        s.delete_key_file("dpop-a").unwrap();
        assert_eq!(s.get_key_file("dpop-a").unwrap(), None, "{name}");
        assert!(!s.id().is_empty());
    }
}

#[test]
fn sealed_files_hold_no_plaintext_and_tampering_reads_as_absent() {
    let dir = support::temp_home("sealed-tamper");
    let s = SealedStore::new(FileStore::open(&dir).unwrap(), StoreKey::generate().unwrap(), "k");
    s.set("tokens-a", br#"{"secret":"at-SECRET-1"}"#).unwrap();
    s.create_key_file_once("dpop-a", b"-----BEGIN PRIVATE KEY-----SECRET2")
        .unwrap();
    for e in fs::read_dir(&dir).unwrap().flatten() {
        if e.path().is_file() {
            let text = fs::read_to_string(e.path()).unwrap();
            assert!(!text.contains("SECRET"), "{}: {text}", e.path().display());
        }
    }
    // Moved over another record's name.
    fs::copy(dir.join("tokens-a.json"), dir.join("tokens-b.json")).unwrap();
    assert_eq!(s.get("tokens-b").unwrap(), None);
    // Truncated.
    let full = fs::read(dir.join("tokens-a.json")).unwrap();
    fs::write(dir.join("tokens-c.json"), &full[..full.len() - 10]).unwrap();
    assert_eq!(s.get("tokens-c").unwrap(), None);
    // Another key.
    let other = SealedStore::new(FileStore::open(&dir).unwrap(), StoreKey::generate().unwrap(), "k2");
    assert_eq!(other.get("tokens-a").unwrap(), None);
    // tokens-a, its copy tokens-b and the key file (the truncated one is not JSON: no record at all).
    assert!(
        matches!(other.secrets(), Secrets::Sealed { unreadable: 3, .. }),
        "{:?}",
        other.secrets()
    );
    assert!(s.get("tokens-a").unwrap().is_some());
}

fn vectors() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/sealed_records.json");
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

fn kind(v: &serde_json::Value) -> Kind {
    if v["kind"] == "key" { Kind::Key } else { Kind::Record }
}

#[test]
fn sealed_vectors() {
    let v = vectors();
    let key = StoreKey::from_base64(v["key_base64"].as_str().unwrap()).unwrap();
    assert_eq!(key.id(), v["key_id"].as_str().unwrap());
    for case in v["seal"].as_array().unwrap() {
        let (name, k) = (case["key"].as_str().unwrap(), kind(case));
        let sealed_bytes = case["sealed"].as_str().unwrap().as_bytes();
        let plain = case["plaintext"].as_str().unwrap().as_bytes();
        assert_eq!(
            sealed::open(&key, k, name, sealed_bytes).as_deref(),
            Some(plain),
            "{}",
            case["name"]
        );
        let nonce: [u8; 12] = (0..12)
            .map(|i| u8::from_str_radix(&case["nonce_hex"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap();
        assert_eq!(
            sealed::seal_with_nonce(&key, k, name, plain, nonce),
            sealed_bytes,
            "{}",
            case["name"]
        );
    }
    for case in v["absent"].as_array().unwrap() {
        let (name, k) = (case["key"].as_str().unwrap(), kind(case));
        assert_eq!(
            sealed::open(&key, k, name, case["sealed"].as_str().unwrap().as_bytes()),
            None,
            "{}",
            case["name"]
        );
    }
}
