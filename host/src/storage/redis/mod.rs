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
//! is retried once on a new one (the server restarted with its data). Errors
//! name the store as displayed (never its password) and are never a reason to
//! fall back to local files.

pub mod lease;
mod tls;
pub mod url;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{Connection, RedisError, Script};

use self::lease::Fenced;
use self::url::{Keys, StoreUrl};
use super::key::StoreKey;
use super::mode::SecretsChoice;
use super::sealed::{self, Kind};
use super::{LockGuard, Secrets, Store, StoreError, check_key};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
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

/// Plain records on a shared store: said once per process.
static PLAIN_NOTICE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl RedisStore {
    /// Connects, settles where secrets live (the manifest `Pstore.json`),
    /// and returns the store. Fails with [`StoreError::Config`] for what the
    /// operator must fix (no key file, wrong password, TLS) and
    /// [`StoreError::Remote`] when the store cannot be reached.
    pub fn open(o: RedisOptions) -> Result<Self, StoreError> {
        if let Some(u) = &o.user {
            super::select::check_user(u)?;
        }
        let client = client(&o.url, o.ca_pem.as_deref())?;
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

fn client(u: &StoreUrl, ca_pem: Option<&[u8]>) -> Result<redis::Client, StoreError> {
    use redis::IntoConnectionInfo;
    if u.tls {
        tls::choose_provider();
    }
    let scheme = if u.tls { "rediss" } else { "redis" };
    let base = format!("{scheme}://{}:{}", u.host, u.port);
    let mut settings = redis::RedisConnectionInfo::default().set_db(i64::from(u.db));
    if let Some(name) = &u.username {
        settings = settings.set_username(name);
    }
    if let Some(p) = u.password() {
        settings = settings.set_password(p);
    }
    let info = base
        .as_str()
        .into_connection_info()
        .map_err(|e| {
            StoreError::Config(format!(
                "the store {}: {}",
                u.display(),
                e.detail().unwrap_or("bad address")
            ))
        })?
        .set_redis_settings(settings);
    let made = match ca_pem {
        Some(pem) if u.tls => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
        _ => redis::Client::open(info),
    };
    made.map_err(|e| StoreError::Config(format!("the store {}: {}", u.display(), short(&e))))
}

/// A Redis error in a line, without the server's text past 200 characters.
fn short(e: &RedisError) -> String {
    let s = e.to_string();
    s.chars().take(200).collect()
}

impl Inner {
    fn keys(&self) -> Keys<'_> {
        Keys {
            prefix: &self.url.prefix,
            ns: &self.ns,
        }
    }

    fn connect(&self) -> Result<Connection, RedisError> {
        let c = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        c.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        c.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(c)
    }

    /// Runs `f` on the connection; a broken connection is replaced and `f`
    /// tried once more.
    fn run<T>(&self, f: impl Fn(&mut Connection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(self.connect().map_err(|e| self.fail(&e))?);
            }
            let Some(c) = slot.as_mut() else { continue };
            match f(c) {
                Ok(v) => return Ok(v),
                Err(e) if attempt == 0 && broken(&e) => *slot = None,
                Err(e) => {
                    if broken(&e) {
                        *slot = None;
                    }
                    return Err(self.fail(&e));
                }
            }
        }
        Err(StoreError::Remote(format!(
            "the store {} cannot be reached",
            self.url.display()
        )))
    }

    fn fail(&self, e: &RedisError) -> StoreError {
        let shown = self.url.display();
        let code = e.code().unwrap_or("");
        if e.kind() == redis::ErrorKind::AuthenticationFailed || matches!(code, "WRONGPASS" | "NOAUTH") {
            return StoreError::Config(format!(
                "the store {shown} refused the credentials ({}): check the user name and the password (the URL or MCP_OAUTH_STORE_PASSWORD)",
                if code.is_empty() { "authentication failed" } else { code }
            ));
        }
        let text = short(e);
        let lower = text.to_ascii_lowercase();
        if self.url.tls && (lower.contains("tls") || lower.contains("certificate") || lower.contains("handshake")) {
            return StoreError::Config(format!(
                "TLS with the store {shown} failed ({text}): check rediss:// against the server, and --ca-file or SSL_CERT_FILE"
            ));
        }
        if broken(e) || e.is_timeout() {
            return StoreError::Remote(format!("the store {shown} cannot be reached: {text}"));
        }
        StoreError::Remote(format!("the store {shown} failed: {text}"))
    }

    /// Reads the manifest and the key; writes the manifest on first use.
    fn settle_secrets(
        &self,
        choice: SecretsChoice,
        key_file: Option<&std::path::Path>,
    ) -> Result<Option<(StoreKey, String)>, StoreError> {
        let shown = self.url.display();
        let manifest_key = self.keys().manifest();
        let key = match (choice, key_file) {
            (SecretsChoice::File, _) => None,
            (_, Some(path)) => Some((
                super::key::read_key_file(path).map_err(StoreError::Config)?,
                format!("the key file {}", path.display()),
            )),
            (_, None) => {
                return Err(StoreError::Config(format!(
                    "the shared store {shown} seals its records with a key from MCP_OAUTH_STORE_KEY_FILE, which is not set: give every replica the same key file (32 random bytes in base64, mode 0600), or set MCP_OAUTH_SECRETS=file to keep plain records"
                )));
            }
        };
        let wanted = match &key {
            Some((k, _)) => super::mode::Manifest::Sealed { key_id: k.id() },
            None => super::mode::Manifest::Plain,
        };
        let bytes = super::mode::manifest_bytes(&wanted);
        let mk = manifest_key.clone();
        let mut now: Option<Vec<u8>> = self.run(|c| redis::cmd("GET").arg(&mk).query(c))?;
        if now.is_none() {
            // The first user of the store writes it; of two, one wins.
            let _: Option<String> =
                self.run(|c| redis::cmd("SET").arg(&mk).arg(bytes.as_slice()).arg("NX").query(c))?;
            now = self.run(|c| redis::cmd("GET").arg(&mk).query(c))?;
        }
        let found = super::mode::parse_manifest(now.as_deref().unwrap_or_default()).map_err(|why| {
            StoreError::Secrets(format!(
                "the store {shown} has a manifest {manifest_key} that cannot be used: {why}"
            ))
        })?;
        match (&found, &wanted) {
            (a, b) if a == b => {}
            (super::mode::Manifest::Sealed { key_id }, super::mode::Manifest::Sealed { key_id: mine }) => {
                return Err(StoreError::Config(format!(
                    "the shared store {shown} is sealed with the key {key_id}, and MCP_OAUTH_STORE_KEY_FILE holds the key {mine}: give this replica the fleet's key file"
                )));
            }
            (super::mode::Manifest::Sealed { .. }, _) => {
                return Err(StoreError::Secrets(format!(
                    "the shared store {shown} keeps its records sealed: set MCP_OAUTH_STORE_KEY_FILE to the fleet's key file (not MCP_OAUTH_SECRETS=file)"
                )));
            }
            _ => {
                return Err(StoreError::Secrets(format!(
                    "the shared store {shown} keeps its records plain: set MCP_OAUTH_SECRETS=file on every replica, or empty the store's prefix to start it sealed"
                )));
            }
        }
        if key.is_none() && !PLAIN_NOTICE.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "mcp-oauth: the shared store {shown} keeps tokens unsealed (MCP_OAUTH_SECRETS=file); set MCP_OAUTH_STORE_KEY_FILE to seal them"
            );
        }
        Ok(key)
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

/// The connection is gone (or never came): worth one more try on a new one.
fn broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_unrecoverable_error()
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
