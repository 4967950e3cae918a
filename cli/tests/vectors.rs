//! The host rules every host carries out, pinned by the shared vectors in
//! `tests/vectors/` (the Node and Python packages run the same files), so a
//! rule changed in one host and not the others fails CI.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_oauth_host::client::{NonceSignal, nonce_signal};
use mcp_oauth_host::signer::dpop_proof;
use mcp_oauth_host::storage::FileStore;
use mcp_oauth_host::storage::lock::{Verdict, break_stale, judge, process_alive, verdict};
use mcp_oauth_host::terminal::printable;
use serde_json::Value;
use sha2::{Digest, Sha256};

const DEAD_PID: &str = "2147483000";

fn vectors(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    serde_json::from_slice(&fs::read(&path).unwrap()).unwrap()
}

fn pids(content: &str) -> String {
    content
        .replace("$LIVE", &std::process::id().to_string())
        .replace("$DEAD", DEAD_PID)
}

fn set_age(path: &Path, age_s: i64) {
    let now = SystemTime::now();
    let t = if age_s >= 0 {
        now - Duration::from_secs(age_s.unsigned_abs())
    } else {
        now + Duration::from_secs(age_s.unsigned_abs())
    };
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn lock_verdicts() {
    let v = vectors("lock_verdicts.json");
    let dir = support::temp_home("vectors-locks");
    fs::create_dir_all(&dir).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let content = pids(case["content"].as_str().unwrap());
        let age_s = case["age_s"].as_i64().unwrap();
        let want = match case["verdict"].as_str().unwrap() {
            "busy" => Verdict::Busy,
            _ => Verdict::Stale,
        };
        // The pure rule, and the same rule read off a real file.
        let age = u64::try_from(age_s).ok().map(Duration::from_secs);
        assert_eq!(verdict(content.as_bytes(), age, process_alive), want, "{name}");
        let path = dir.join("case.lock");
        fs::write(&path, &content).unwrap();
        set_age(&path, age_s);
        assert_eq!(judge(&path).0, want, "{name} (on disk)");
    }
}

#[test]
fn lock_break_race_puts_back_a_fresh_lock() {
    let v = vectors("lock_verdicts.json");
    let race = &v["race"];
    let dir = support::temp_home("vectors-race");
    let locks = dir.join("locks");
    fs::create_dir_all(&locks).unwrap();
    let path = locks.join("tokens-x.lock");
    fs::write(&path, pids(race["judged"]["content"].as_str().unwrap())).unwrap();
    let (verdict, judged) = judge(&path);
    assert_eq!(verdict, Verdict::Stale);
    // Another process breaks it and takes the lock before we rename.
    let replacement = pids(race["replacement"]["content"].as_str().unwrap());
    fs::remove_file(&path).unwrap();
    fs::write(&path, &replacement).unwrap();
    break_stale(&path, &judged);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        replacement,
        "the fresh lock is back"
    );
    let left: Vec<_> = fs::read_dir(&locks)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".stale-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The judged file itself is broken.
    fs::write(&path, pids(race["judged"]["content"].as_str().unwrap())).unwrap();
    let (_, judged) = judge(&path);
    break_stale(&path, &judged);
    assert!(!path.exists());
}

fn make_record(dir: &Path, key: &str, case: &Value) -> Option<PathBuf> {
    let path = dir.join(format!("{key}.json"));
    let content = || {
        case["fill"].as_u64().map_or_else(
            || case["content"].as_str().unwrap_or_default().as_bytes().to_vec(),
            |n| {
                let mut b = vec![b'a'; usize::try_from(n).unwrap()];
                b[0] = b'"';
                *b.last_mut().unwrap() = b'"';
                b
            },
        )
    };
    match case["kind"].as_str().unwrap() {
        "regular" => fs::write(&path, content()).unwrap(),
        "symlink" => {
            let target = dir.join("target.json");
            fs::write(&target, case["target"].as_str().unwrap()).unwrap();
            std::os::unix::fs::symlink(&target, &path).unwrap();
        }
        "fifo" => {
            let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }
        "directory" => fs::create_dir(&path).unwrap(),
        "foreign_owner" => {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                return None;
            }
            fs::write(&path, content()).unwrap();
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        }
        other => panic!("unknown kind {other}"),
    }
    Some(path)
}

#[test]
fn record_files() {
    let v = vectors("record_files.json");
    let key = v["key"].as_str().unwrap();
    for (i, case) in v["cases"].as_array().unwrap().iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let dir = support::temp_home(&format!("vectors-records-{i}"));
        let store = FileStore::open(&dir).unwrap();
        let Some(_) = make_record(&dir, key, case) else {
            continue;
        };
        let t = Instant::now();
        let got = store.get(key).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2), "{name}: blocked");
        match case["expect"].as_str().unwrap() {
            "read" => assert!(got.is_some(), "{name}: should be read"),
            _ => assert!(got.is_none(), "{name}: should read as absent"),
        }
    }
}

#[test]
fn key_files() {
    let v = vectors("key_files.json");
    let key_id = v["key_id"].as_str().unwrap();
    for (i, case) in v["cases"].as_array().unwrap().iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let dir = support::temp_home(&format!("vectors-keys-{i}"));
        let store = FileStore::open(&dir).unwrap();
        let file = dir.join(format!("{key_id}.pem"));
        let content = case["content"].as_str().unwrap();
        fs::write(&file, content).unwrap();
        let r = dpop_proof(
            &store,
            key_id,
            r#"{"jti":"j","htm":"POST","htu":"https://a/t","iat":1}"#,
        );
        match &case["expect"] {
            Value::String(s) if s == "refuse" => {
                let e = r.expect_err(name);
                assert!(e.contains(&file.display().to_string()), "{name}: {e}");
                assert!(
                    content.len() < 20 || !e.contains(&content[30..50]),
                    "{name}: content in the error"
                );
                assert_eq!(fs::read_to_string(&file).unwrap(), content, "{name}: never replaced");
            }
            want => {
                let proof = r.unwrap();
                let header: Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(proof.split('.').next().unwrap()).unwrap()).unwrap();
                let jwk = &header["jwk"];
                assert_eq!(jwk["x"], want["x"], "{name}");
                assert_eq!(jwk["y"], want["y"], "{name}");
                let canon = format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    jwk["x"].as_str().unwrap(),
                    jwk["y"].as_str().unwrap()
                );
                let jkt = URL_SAFE_NO_PAD.encode(Sha256::digest(canon.as_bytes()));
                assert_eq!(jkt, want["jkt"].as_str().unwrap(), "{name}");
            }
        }
    }
}

#[test]
fn terminal_text() {
    let v = vectors("terminal_text.json");
    for case in v["cases"].as_array().unwrap() {
        assert_eq!(
            printable(case["input"].as_str().unwrap()),
            case["printable"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn dpop_nonce_signals() {
    let v = vectors("dpop_nonce_signals.json");
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let status = u16::try_from(case["status"].as_u64().unwrap()).unwrap();
        // As the HTTP client hands them over: every value of the header,
        // whatever the case of its name.
        let nonces: Vec<String> = case["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("dpop-nonce"))
            .map(|h| h[1].as_str().unwrap().to_string())
            .collect();
        let nonce = case["expect"]["nonce"].as_str().map(String::from);
        let want = match case["expect"]["signal"].as_str().unwrap() {
            "challenge" => NonceSignal::Challenge(nonce),
            "note" => NonceSignal::Note(nonce),
            _ => NonceSignal::Ignore,
        };
        let retried = case["retried"].as_bool().unwrap_or(false);
        assert_eq!(nonce_signal(status, &nonces, retried), want, "{name}");
    }
}

#[test]
fn redis_urls() {
    use mcp_oauth_host::storage::redis::url::StoreUrl;
    let v = vectors("redis_urls.json");
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let got = StoreUrl::parse(case["url"].as_str().unwrap(), case["password_env"].as_str());
        if let Some(word) = case["error"].as_str() {
            let e = got.expect_err(name);
            assert!(e.contains(word), "{name}: {e}");
            if let Some(never) = case["never"].as_str() {
                assert!(!e.contains(never), "{name}: {e}");
            }
            continue;
        }
        let u = got.unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = &case["store"];
        assert_eq!(u.tls, want["tls"].as_bool().unwrap(), "{name}");
        assert_eq!(u.host, want["host"].as_str().unwrap(), "{name}");
        assert_eq!(u64::from(u.port), want["port"].as_u64().unwrap(), "{name}");
        assert_eq!(u64::from(u.db), want["db"].as_u64().unwrap(), "{name}");
        assert_eq!(u.username.as_deref(), want["username"].as_str(), "{name}");
        assert_eq!(u.has_password(), want["has_password"].as_bool().unwrap(), "{name}");
        assert_eq!(u.prefix, want["prefix"].as_str().unwrap(), "{name}");
        assert_eq!(u.lease_ms, want["lease_ms"].as_u64().unwrap(), "{name}");
        assert_eq!(u.display(), want["display"].as_str().unwrap(), "{name}");
        assert_eq!(format!("{u:?}"), u.display(), "{name}: Debug shows no password");
    }
}

#[test]
fn redis_keys() {
    use mcp_oauth_host::storage::redis::url::Keys;
    use mcp_oauth_host::storage::select::StorePlace;
    let v = vectors("redis_keys.json");
    for case in v["cases"].as_array().unwrap() {
        let ns = case["user"].as_str().map(|u| format!("{u}/")).unwrap_or_default();
        let k = Keys {
            prefix: case["prefix"].as_str().unwrap(),
            ns: &ns,
        };
        let name = case["name"].as_str().unwrap();
        assert_eq!(k.record(name), case["record"].as_str().unwrap());
        assert_eq!(k.lock(name), case["lock"].as_str().unwrap());
        assert_eq!(k.key_file(name), case["key_file"].as_str().unwrap());
        assert_eq!(k.manifest(), case["manifest"].as_str().unwrap());
        assert_eq!(k.aad_name(name), case["aad_name"].as_str().unwrap());
        let place = StorePlace {
            user: case["user"].as_str().map(str::to_string),
            ..StorePlace::default()
        };
        assert!(place.check().is_ok(), "{:?}", case["user"]);
    }
    for bad in v["bad_users"].as_array().unwrap() {
        let place = StorePlace {
            user: Some(bad.as_str().unwrap().to_string()),
            ..StorePlace::default()
        };
        assert!(place.check().is_err(), "{bad}");
    }
}
