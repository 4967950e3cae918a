//! Where a store keeps its secrets, chosen once and pinned in `store.json`
//! (docs/store.md, "Where secrets live"): sealed with the store key (from
//! `MCP_OAUTH_STORE_KEY_FILE` or the OS keychain) or plain files. Every host
//! follows `store.json`, so a store is never read in one mode and written in
//! the other; a request for the other mode is an error that names the
//! command converting the store.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::key::{self, Lookup, StoreKey};
use super::sealed::{self, Kind, SealedStore};
use super::{FileStore, Store, StoreError, private};

/// The file that pins the store's mode.
pub const MANIFEST: &str = "store.json";

/// What the user asked for (`MCP_OAUTH_SECRETS`, `--secrets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretsChoice {
    /// The keychain when one answers, else plain files (said once).
    #[default]
    Auto,
    /// Sealed, or an error.
    Keychain,
    /// Plain files.
    File,
}

impl std::str::FromStr for SecretsChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" | "auto" => Ok(Self::Auto),
            "keychain" => Ok(Self::Keychain),
            "file" => Ok(Self::File),
            other => Err(format!(
                "unknown secrets mode {:?}: use auto, keychain or file",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

impl SecretsChoice {
    /// `MCP_OAUTH_SECRETS`, or `Auto`.
    pub fn from_env() -> Result<Self, String> {
        std::env::var("MCP_OAUTH_SECRETS")
            .map_or(Ok(Self::Auto), |v| v.parse())
            .map_err(|e| format!("MCP_OAUTH_SECRETS: {e}"))
    }
}

/// What `store.json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// No `store.json` yet (a new store, or one from before it).
    Absent,
    /// Plain files.
    Plain,
    /// Sealed with the key of this id.
    Sealed {
        /// The key id (docs/store.md).
        key_id: String,
    },
}

#[derive(serde::Deserialize)]
struct Raw {
    format: u32,
    mode: String,
    key_id: Option<String>,
}

/// Reads `store.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, StoreError> {
    let path = dir.join(MANIFEST);
    let bytes = private::read_small(&path, 4096).map_err(|why| {
        StoreError::Secrets(format!(
            "{} cannot be used: {why}; remove it only if you know the store's mode",
            path.display()
        ))
    })?;
    let Some(bytes) = bytes else {
        return Ok(Manifest::Absent);
    };
    parse_manifest(&bytes).map_err(|why| StoreError::Secrets(format!("{} {why}", path.display())))
}

/// A manifest's content (`store.json`, or a shared store's `Pstore.json`).
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, &'static str> {
    const BAD: &str = "is not a store description this version understands";
    let raw: Raw = serde_json::from_slice(bytes).map_err(|_| BAD)?;
    match (raw.format, raw.mode.as_str(), raw.key_id) {
        (1, "plain", _) => Ok(Manifest::Plain),
        (1, "sealed", Some(key_id)) if key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Manifest::Sealed { key_id })
        }
        _ => Err(BAD),
    }
}

/// A manifest's bytes, as every host writes them.
pub fn manifest_bytes(m: &Manifest) -> Vec<u8> {
    match m {
        Manifest::Sealed { key_id } => format!(r#"{{"format":1,"mode":"sealed","key_id":"{key_id}"}}"#),
        _ => r#"{"format":1,"mode":"plain"}"#.to_string(),
    }
    .into_bytes()
}

/// One line on stderr, once per process and message kind.
fn notice_once(flag: &AtomicBool, text: &str) {
    if !flag.swap(true, Ordering::SeqCst) {
        eprintln!("mcp-oauth: {}", crate::terminal::printable(text));
    }
}

static PLAIN_NOTICE: AtomicBool = AtomicBool::new(false);
static SEALED_NOTICE: AtomicBool = AtomicBool::new(false);
static LOST_NOTICE: AtomicBool = AtomicBool::new(false);

/// The store key and where it came from.
struct Found {
    key: StoreKey,
    from: String,
    made: bool,
}

enum KeyProblem {
    /// No key file and no keychain (why).
    Unavailable(String),
    /// A key file or keychain that cannot be used (the message says why).
    Broken(String),
}

/// The key file when `MCP_OAUTH_STORE_KEY_FILE` is set, else the keychain
/// (making and keeping a key there when `make` and none exists).
fn find_key(dir: &Path, make: bool) -> Result<Found, KeyProblem> {
    if let Some(path) = std::env::var_os("MCP_OAUTH_STORE_KEY_FILE").filter(|v| !v.is_empty()) {
        let path = std::path::PathBuf::from(path);
        let key = key::read_key_file(&path).map_err(KeyProblem::Broken)?;
        return Ok(Found {
            key,
            from: format!("the key file {}", path.display()),
            made: false,
        });
    }
    let account = key::account(dir);
    match key::keychain_get(&account) {
        Lookup::Found(key) => Ok(Found {
            key,
            from: key::keychain_name().into(),
            made: false,
        }),
        Lookup::Missing if make => {
            let key = StoreKey::generate().map_err(KeyProblem::Broken)?;
            key::keychain_set(&account, &key).map_err(KeyProblem::Unavailable)?;
            Ok(Found {
                key,
                from: key::keychain_name().into(),
                made: true,
            })
        }
        Lookup::Missing => Err(KeyProblem::Broken(format!(
            "the store's key is not in {} (service {}, account {account})",
            key::keychain_name(),
            key::SERVICE
        ))),
        Lookup::Unavailable(why) => Err(KeyProblem::Unavailable(why)),
    }
}

/// Opens the store at `dir` in the mode `store.json` pins, choosing it (and
/// writing `store.json`) on first use.
pub fn open_store(dir: &Path, choice: SecretsChoice) -> Result<Arc<dyn Store>, StoreError> {
    let file = FileStore::open(dir)?;
    match (read_manifest(dir)?, choice) {
        (Manifest::Plain, SecretsChoice::Keychain) => Err(StoreError::Secrets(format!(
            "the store {} keeps its secrets in plain files; run `mcp-oauth store seal` to move them under a key in the keychain",
            dir.display()
        ))),
        (Manifest::Plain, _) => Ok(Arc::new(file)),
        (Manifest::Sealed { .. }, SecretsChoice::File) => Err(StoreError::Secrets(format!(
            "the store {} keeps its secrets sealed (store.json); run `mcp-oauth store unseal` to convert it to plain files",
            dir.display()
        ))),
        (Manifest::Sealed { key_id }, _) => open_sealed(file, &key_id),
        (Manifest::Absent, SecretsChoice::File) => {
            file.create_file_once(MANIFEST, &manifest_bytes(&Manifest::Plain))?;
            open_store(dir, choice)
        }
        (Manifest::Absent, _) => first_use(file, choice),
    }
}

fn open_sealed(file: FileStore, key_id: &str) -> Result<Arc<dyn Store>, StoreError> {
    let dir = file.dir().to_path_buf();
    let found = match find_key(&dir, false) {
        Ok(f) => f,
        // The item was deleted (or the keychain reset): under the store lock,
        // so that two processes agree on the one new key.
        Err(KeyProblem::Broken(_)) if std::env::var_os("MCP_OAUTH_STORE_KEY_FILE").is_none() => {
            let _guard = file.lock_file("store")?;
            match find_key(&dir, true) {
                Ok(f) => f,
                Err(KeyProblem::Broken(why) | KeyProblem::Unavailable(why)) => return Err(StoreError::Secrets(why)),
            }
        }
        Err(KeyProblem::Unavailable(why)) => {
            return Err(StoreError::Secrets(format!(
                "the store {} is sealed and its key is kept in {}, which cannot be reached ({why}); run where the keychain is unlocked, or set MCP_OAUTH_STORE_KEY_FILE",
                dir.display(),
                key::keychain_name()
            )));
        }
        Err(KeyProblem::Broken(why)) => return Err(StoreError::Secrets(why)),
    };
    let changed = found.key.id() != key_id;
    let what = if found.made {
        format!("the store's key is not in {}", key::keychain_name())
    } else {
        format!(
            "the store key from {} is not the one this store was sealed with",
            found.from
        )
    };
    if changed {
        // From now on this key seals; what the old one sealed reads as absent
        // until a sign-in replaces it.
        let _guard = file.lock_file("store")?;
        file.replace_file(MANIFEST, &manifest_bytes(&Manifest::Sealed { key_id: found.key.id() }))?;
    }
    let store = SealedStore::new(file, found.key, found.from);
    if changed {
        let n = store.count_unreadable();
        if n > 0 {
            notice_once(
                &LOST_NOTICE,
                &format!("{what}: {n} records cannot be read; sign in again"),
            );
        }
    }
    Ok(Arc::new(store))
}

/// The first use of a store with no `store.json`: sealed when a key is at
/// hand (records from before are sealed in place, announced once), else
/// plain (`Auto`, said once) or an error (`Keychain`, nothing written).
fn first_use(file: FileStore, choice: SecretsChoice) -> Result<Arc<dyn Store>, StoreError> {
    let dir = file.dir().to_path_buf();
    // Under the store lock: one process makes the key and converts, the
    // others wait and follow `store.json`.
    let guard = file.lock_file("store")?;
    if read_manifest(&dir)? != Manifest::Absent {
        drop(guard);
        return open_store(&dir, choice);
    }
    let found = match find_key(&dir, true) {
        Ok(f) => f,
        Err(KeyProblem::Broken(why)) => return Err(StoreError::Secrets(why)),
        Err(KeyProblem::Unavailable(why)) if choice == SecretsChoice::Keychain => {
            return Err(StoreError::Secrets(format!(
                "no keychain to keep the store key in ({why}); nothing was written. Set MCP_OAUTH_STORE_KEY_FILE to a key file, or MCP_OAUTH_SECRETS=file for plain files"
            )));
        }
        Err(KeyProblem::Unavailable(why)) => {
            notice_once(
                &PLAIN_NOTICE,
                &format!(
                    "keeping secrets in plain files under {} ({why}); set MCP_OAUTH_SECRETS=file to silence this",
                    dir.display()
                ),
            );
            file.create_file_once(MANIFEST, &manifest_bytes(&Manifest::Plain))?;
            drop(guard);
            return open_store(&dir, SecretsChoice::Auto);
        }
    };
    let sealed = seal_in_place(&file, &found.key)?;
    file.create_file_once(MANIFEST, &manifest_bytes(&Manifest::Sealed { key_id: found.key.id() }))?;
    drop(guard);
    if sealed > 0 {
        notice_once(
            &SEALED_NOTICE,
            &format!(
                "sealed {sealed} records of {} with a store key kept in {}",
                dir.display(),
                found.from
            ),
        );
    }
    Ok(Arc::new(SealedStore::new(file, found.key, found.from)))
}

/// Every record and key file of the store, with its kind and bytes.
fn blobs(file: &FileStore) -> Result<Vec<(Kind, String, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for k in file.list("")? {
        if let Some(b) = file.get(&k)? {
            out.push((Kind::Record, k, b));
        }
    }
    for k in file.list_key_files()? {
        if let Some(b) = file.get_key_file(&k)? {
            out.push((Kind::Key, k, b));
        }
    }
    Ok(out)
}

/// Replaces a record's or a key file's bytes.
fn put(file: &FileStore, kind: Kind, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    match kind {
        Kind::Record => file.set(name, bytes),
        Kind::Key => file.replace_key_file(name, bytes),
    }
}

/// Seals every plain record and key file in place; returns how many.
fn seal_in_place(file: &FileStore, key: &StoreKey) -> Result<usize, StoreError> {
    let mut n = 0;
    for (kind, name, b) in blobs(file)? {
        if !sealed::is_sealed(&b) {
            put(file, kind, &name, &sealed::seal(key, kind, &name, &b)?)?;
            n += 1;
        }
    }
    Ok(n)
}

/// `mcp-oauth store seal`: seals a plain store (or one with no
/// `store.json`) with the key from the key file or the keychain.
pub fn seal_store(dir: &Path) -> Result<String, StoreError> {
    let file = FileStore::open(dir)?;
    let _guard = file.lock_file("store")?;
    if let Manifest::Sealed { .. } = read_manifest(dir)? {
        return Ok(format!("{} is already sealed", dir.display()));
    }
    let found = find_key(dir, true).map_err(|p| match p {
        KeyProblem::Unavailable(why) => StoreError::Secrets(format!(
            "no keychain to keep the store key in ({why}); set MCP_OAUTH_STORE_KEY_FILE to a key file"
        )),
        KeyProblem::Broken(why) => StoreError::Secrets(why),
    })?;
    let n = seal_in_place(&file, &found.key)?;
    file.replace_file(MANIFEST, &manifest_bytes(&Manifest::Sealed { key_id: found.key.id() }))?;
    Ok(format!(
        "sealed {n} records of {} with a store key kept in {}",
        dir.display(),
        found.from
    ))
}

/// `mcp-oauth store unseal`: opens every record and key file back into
/// plain files and forgets the keychain item.
pub fn unseal_store(dir: &Path) -> Result<String, StoreError> {
    let file = FileStore::open(dir)?;
    let _guard = file.lock_file("store")?;
    if !matches!(read_manifest(dir)?, Manifest::Sealed { .. }) {
        return Ok(format!("{} keeps its secrets in plain files already", dir.display()));
    }
    let found = find_key(dir, false).map_err(|p| match p {
        KeyProblem::Unavailable(why) => StoreError::Secrets(format!("the store key cannot be read ({why})")),
        KeyProblem::Broken(why) => StoreError::Secrets(why),
    })?;
    let (mut n, mut lost) = (0, 0);
    for (kind, name, b) in blobs(&file)? {
        if !sealed::is_sealed(&b) {
            continue;
        }
        match sealed::open(&found.key, kind, &name, &b) {
            Some(p) => {
                put(&file, kind, &name, &p)?;
                n += 1;
            }
            None => lost += 1,
        }
    }
    file.replace_file(MANIFEST, &manifest_bytes(&Manifest::Plain))?;
    if std::env::var_os("MCP_OAUTH_STORE_KEY_FILE").is_none() {
        let _ = key::keychain_delete(&key::account(dir));
    }
    let tail = if lost > 0 {
        format!("; {lost} could not be opened with this key and stay unreadable")
    } else {
        String::new()
    };
    Ok(format!(
        "unsealed {n} records of {} into plain files{tail}",
        dir.display()
    ))
}
