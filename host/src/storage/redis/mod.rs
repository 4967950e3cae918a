//! A store shared by a fleet, on the Redis protocol (Redis 6+, Valkey 7+):
//! `MCP_OAUTH_STORE=redis://...` (docs/store.md, "A shared store on Redis or
//! Valkey"). The same seam as the file store: records (hashes with a
//! version), lease locks, fenced writes (`lease.rs`), DPoP key files written
//! once, everything sealed with the store key from `MCP_OAUTH_STORE_KEY_FILE`
//! unless the operator chose plain records. Keys carry hash tags, so a record,
//! its lock and its key file share a Cluster slot.
//!
//! One connection per store object, connected lazily with a 3 s deadline,
//! every command with a 5 s deadline; a command that meets a broken connection
//! is retried once on a new one (the server restarted with its data)
//! (`conn.rs`). The manifest record settles sealed or plain (`manifest.rs`).
//! Errors name the store as displayed (never its password) and are never a
//! reason to fall back to local files.

mod conn;
pub mod lease;
mod manifest;
mod tls;
pub mod url;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use redis::{Connection, Script};

use self::lease::Fenced;
use self::url::{Keys, StoreUrl};
use super::key::StoreKey;
use super::mode::SecretsChoice;
use super::sealed::{self, Kind};
use super::{LockGuard, Secrets, Store, StoreError, check_key};

const SCAN_ROUNDS: usize = 10_000;
/// The largest record or key file read back (as the file store's cap).
const MAX_VALUE: usize = 1 << 20;

/// What a Redis store is opened with.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The store URL.
    pub url: StoreUrl,
    /// The principal whose records these are (`MCP_OAUTH_USER`).
    pub user: Option<String>,
    /// Where secrets live (`MCP_OAUTH_SECRETS`).
    pub secrets: SecretsChoice,
    /// `MCP_OAUTH_STORE_KEY_FILE`.
    pub key_file: Option<std::path::PathBuf>,
    /// PEM roots for `rediss://` (`--ca-file`, else `SSL_CERT_FILE`; else the
    /// system's).
    pub ca_pem: Option<Vec<u8>>,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore(Arc<Inner>);

struct Inner {
    url: StoreUrl,
    ns: String,
    user: Option<String>,
    client: redis::Client,
    conn: Mutex<Option<Connection>>,
    /// The store key, when sealed, and where it came from.
    key: Option<(StoreKey, String)>,
    /// The version of each record as last read or written here (the base
    /// of a fenced write).
    versions: Mutex<HashMap<String, u64>>,
    /// Locks held by this process: name → owner.
    held: Mutex<HashMap<String, String>>,
    scripts: Scripts,
}

struct Scripts {
    renew: Script,
    release: Script,
    fenced_set: Script,
    plain_set: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.0.url.display())
            .field("user", &self.0.user)
            .field("sealed", &self.0.key.is_some())
            .finish()
    }
}

impl RedisStore {
    /// Connects, settles where secrets live (the manifest `Pstore.json`),
    /// and returns the store. Fails with [`StoreError::Config`] for what the
    /// operator must fix (no key file, wrong password, TLS) and
    /// [`StoreError::Remote`] when the store cannot be reached.
    pub fn open(o: RedisOptions) -> Result<Self, StoreError> {
        if let Some(u) = &o.user {
            super::select::check_user(u)?;
        }
        let client = conn::client(&o.url, o.ca_pem.as_deref())?;
        let ns = o.user.as_ref().map(|u| format!("{u}/")).unwrap_or_default();
        let mut inner = Inner {
            url: o.url,
            ns,
            user: o.user,
            client,
            conn: Mutex::new(None),
            key: None,
            versions: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            scripts: Scripts {
                renew: Script::new(lease::RENEW),
                release: Script::new(lease::RELEASE),
                fenced_set: Script::new(lease::FENCED_SET),
                plain_set: Script::new(lease::PLAIN_SET),
            },
        };
        inner.key = inner.settle_secrets(o.secrets, o.key_file.as_deref())?;
        Ok(Self(Arc::new(inner)))
    }

    /// The store as shown to people.
    pub fn display(&self) -> String {
        self.0.url.display()
    }
}

impl Inner {
    fn keys(&self) -> Keys<'_> {
        Keys {
            prefix: &self.url.prefix,
            ns: &self.ns,
        }
    }

    fn seal(&self, kind: Kind, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        match &self.key {
            Some((k, _)) => sealed::seal(k, kind, &self.keys().aad_name(name), value),
            None => Ok(value.to_vec()),
        }
    }

    fn open(&self, kind: Kind, name: &str, bytes: Vec<u8>) -> Option<Vec<u8>> {
        if bytes.len() > MAX_VALUE {
            return None;
        }
        match &self.key {
            Some((k, _)) => sealed::open(k, kind, &self.keys().aad_name(name), &bytes),
            None if sealed::is_sealed(&bytes) => None,
            None => Some(bytes),
        }
    }

    fn release(&self, name: &str, owner: &str) {
        let lock = self.keys().lock(name);
        let _ = self.run(|c| self.scripts.release.key(&lock).arg(owner).invoke::<i64>(c));
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.get(name).is_some_and(|o| o == owner) {
            held.remove(name);
        }
    }

    fn renew(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        let lock = self.keys().lock(name);
        let kept: i64 = self.run(|c| {
            self.scripts
                .renew
                .key(&lock)
                .arg(owner)
                .arg(self.url.lease_ms)
                .invoke(c)
        })?;
        if kept == 1 {
            Ok(())
        } else {
            Err(StoreError::LeaseLost { lock })
        }
    }

    fn names(&self, start: &str) -> Result<Vec<String>, StoreError> {
        let pattern = self.keys().record_pattern(start);
        let head = format!("{}{{{}", self.url.prefix, self.ns);
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        for _ in 0..SCAN_ROUNDS {
            let (next, batch): (u64, Vec<String>) = self.run(|c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)
            })?;
            out.extend(batch.into_iter().filter_map(|k| {
                let name = k.strip_prefix(&head)?.strip_suffix("}:r")?;
                check_key(name).ok().map(|()| name.to_string())
            }));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl Store for RedisStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let s = &self.0;
        let rk = s.keys().record(key);
        let (v, d): (Option<u64>, Option<Vec<u8>>) =
            s.run(|c| redis::cmd("HMGET").arg(&rk).arg("v").arg("d").query(c))?;
        s.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), v.unwrap_or(0));
        Ok(d.and_then(|b| s.open(Kind::Record, key, b)))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        if key == "store" {
            // As in every store: no record shares the manifest's name.
            return Err(StoreError::BadKey(key.into()));
        }
        let s = &self.0;
        let data = s.seal(Kind::Record, key, value)?;
        let rk = s.keys().record(key);
        let owner = s.held.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        let version = match owner {
            Some(owner) => {
                let base = s
                    .versions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(key)
                    .copied()
                    .unwrap_or(0);
                let lock = s.keys().lock(key);
                let n: i64 = s.run(|c| {
                    s.scripts
                        .fenced_set
                        .key(&rk)
                        .key(&lock)
                        .arg(&owner)
                        .arg(base)
                        .arg(data.as_slice())
                        .invoke(c)
                })?;
                match Fenced::from_reply(n) {
                    Fenced::Written(v) => v,
                    Fenced::LeaseLost => {
                        return Err(StoreError::Fenced {
                            record: rk,
                            why: "this process's lease on its lock ended before the write",
                        });
                    }
                    Fenced::Stale => {
                        return Err(StoreError::Fenced {
                            record: rk,
                            why: "another replica wrote a newer version since it was read",
                        });
                    }
                }
            }
            None => {
                let n: i64 = s.run(|c| s.scripts.plain_set.key(&rk).arg(data.as_slice()).invoke(c))?;
                n.max(0) as u64
            }
        };
        s.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), version);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let s = &self.0;
        let rk = s.keys().record(key);
        let _: i64 = s.run(|c| redis::cmd("DEL").arg(&rk).query(c))?;
        s.versions.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        self.0.names(prefix)
    }

    fn lock(&self, key: &str) -> Result<LockGuard, StoreError> {
        check_key(key)?;
        let s = &self.0;
        let lock = s.keys().lock(key);
        let owner = lease::new_owner();
        let waited = Instant::now();
        let deadline = waited + lease::wait_deadline(s.url.lease_ms);
        loop {
            let got: Option<String> = s.run(|c| {
                redis::cmd("SET")
                    .arg(&lock)
                    .arg(&owner)
                    .arg("NX")
                    .arg("PX")
                    .arg(s.url.lease_ms)
                    .query(c)
            })?;
            if got.is_some() {
                break;
            }
            match lease::pause(deadline) {
                Some(p) => std::thread::sleep(p),
                None => {
                    let holder: Option<String> = s.run(|c| redis::cmd("GET").arg(&lock).query(c)).ok().flatten();
                    let pid = holder
                        .as_deref()
                        .and_then(|h| h.split(':').next())
                        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty())
                        .unwrap_or("unknown");
                    return Err(StoreError::LockTimeout {
                        path: format!("{lock} in {}", s.url.display()),
                        holder: pid.to_string(),
                        secs: waited.elapsed().as_secs(),
                    });
                }
            }
        }
        s.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), owner.clone());
        let (for_release, for_renew) = (self.0.clone(), self.0.clone());
        let (name, name2, owner2) = (key.to_string(), key.to_string(), owner.clone());
        Ok(LockGuard::with_renew(
            move || for_release.release(&name, &owner),
            move || for_renew.renew(&name2, &owner2),
        ))
    }

    fn get_key_file(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        let s = &self.0;
        let k = s.keys().key_file(key);
        let got: Option<Vec<u8>> = s.run(|c| redis::cmd("GET").arg(&k).query(c))?;
        Ok(got.and_then(|b| s.open(Kind::Key, key, b)))
    }

    fn create_key_file_once(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        check_key(key)?;
        let s = &self.0;
        let k = s.keys().key_file(key);
        let data = s.seal(Kind::Key, key, value)?;
        let _: Option<String> = s.run(|c| redis::cmd("SET").arg(&k).arg(data.as_slice()).arg("NX").query(c))?;
        let kept: Option<Vec<u8>> = s.run(|c| redis::cmd("GET").arg(&k).query(c))?;
        kept.and_then(|b| s.open(Kind::Key, key, b))
            .ok_or_else(|| StoreError::Unsafe {
                path: format!("{k} in {}", s.url.display()),
                why: "the key file there does not open with the store key".into(),
            })
    }

    fn delete_key_file(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let s = &self.0;
        let k = s.keys().key_file(key);
        let _: i64 = s.run(|c| redis::cmd("DEL").arg(&k).query(c))?;
        Ok(())
    }

    fn id(&self) -> String {
        match &self.0.user {
            Some(u) => format!("{} user {u}", self.0.url.display()),
            None => self.0.url.display(),
        }
    }

    fn secrets(&self) -> Secrets {
        let s = &self.0;
        match &s.key {
            None => Secrets::Plain,
            Some((_, from)) => {
                let unreadable = s
                    .names("")
                    .unwrap_or_default()
                    .iter()
                    .filter(|n| {
                        let rk = s.keys().record(n);
                        let raw: Option<Vec<u8>> =
                            s.run(|c| redis::cmd("HGET").arg(&rk).arg("d").query(c)).ok().flatten();
                        raw.is_some_and(|b| s.open(Kind::Record, n, b).is_none())
                    })
                    .count();
                Secrets::Sealed {
                    key_from: from.clone(),
                    unreadable,
                }
            }
        }
    }
}
