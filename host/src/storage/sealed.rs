//! Sealed records (docs/store.md, "Sealed records (format 1)"): every record
//! and key file of a store sealed with its key by AES-256-GCM, a fresh
//! nonce per write, the record's name bound as associated data (a
//! ciphertext moved over another name does not open). The bytes are the
//! same in the three hosts (`tests/vectors/sealed_records.json`).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::key::StoreKey;
use super::{FileStore, LockGuard, Secrets, Store, StoreError};

/// What a sealed blob is: a record (`<name>.json`) or a key file (`<name>.pem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A record.
    Record,
    /// A DPoP key file.
    Key,
}

fn aad(kind: Kind, name: &str) -> String {
    let kind = match kind {
        Kind::Record => "record",
        Kind::Key => "key",
    };
    format!("mcp-oauth:{kind}:{name}")
}

/// Seals `plaintext` for `name` with `nonce` (callers pass fresh randomness;
/// tests pass the vectors' nonces).
pub fn seal_with_nonce(key: &StoreKey, kind: Kind, name: &str, plaintext: &[u8], nonce: [u8; 12]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.bytes().into());
    let aad = aad(kind, name);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        // AES-GCM fails only on inputs beyond 64 GiB; records are capped at 1 MiB.
        .unwrap_or_default();
    format!(
        r#"{{"sealed":1,"kid":"{}","nonce":"{}","ct":"{}"}}"#,
        key.id(),
        URL_SAFE_NO_PAD.encode(nonce),
        URL_SAFE_NO_PAD.encode(ct)
    )
    .into_bytes()
}

/// Seals with a fresh random nonce.
pub fn seal(key: &StoreKey, kind: Kind, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| StoreError::Io {
        what: "randomness for sealing",
        path: name.to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(seal_with_nonce(key, kind, name, plaintext, nonce))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    sealed: u8,
    kid: String,
    nonce: String,
    ct: String,
}

/// Whether `bytes` are sealed with a key other than `key`.
fn is_sealed_by_other_key(key: &StoreKey, bytes: &[u8]) -> bool {
    serde_json::from_slice::<Envelope>(bytes).is_ok_and(|e| e.sealed == 1 && e.kid != key.id())
}

/// Whether `bytes` look like a sealed blob (of any key).
pub fn is_sealed(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Envelope>(bytes).is_ok_and(|e| e.sealed == 1)
}

/// Opens a sealed blob for `name`; `None` for anything that does not open
/// (another key, a bad tag, a wrong length, a plain record, garbage).
pub fn open(key: &StoreKey, kind: Kind, name: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let env: Envelope = serde_json::from_slice(bytes).ok()?;
    if env.sealed != 1 || env.kid != key.id() {
        return None;
    }
    let nonce: [u8; 12] = URL_SAFE_NO_PAD.decode(&env.nonce).ok()?.try_into().ok()?;
    let ct = URL_SAFE_NO_PAD.decode(&env.ct).ok()?;
    let aad = aad(kind, name);
    Aes256Gcm::new(key.bytes().into())
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &ct,
                aad: aad.as_bytes(),
            },
        )
        .ok()
}

/// A store whose records and key files are sealed with `key`, kept in a
/// [`FileStore`]. Anything that does not open reads as absent (`count_unreadable` says how much).
pub struct SealedStore {
    inner: FileStore,
    key: StoreKey,
    key_from: String,
}

impl std::fmt::Debug for SealedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedStore")
            .field("dir", &self.inner.dir())
            .field("key", &self.key)
            .finish()
    }
}

impl SealedStore {
    /// Seals into `inner` with `key`, which came from `key_from` (for status).
    pub fn new(inner: FileStore, key: StoreKey, key_from: impl Into<String>) -> Self {
        Self {
            inner,
            key,
            key_from: key_from.into(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.inner.dir()
    }

    /// How many records and key files there are that this key cannot open.
    pub fn count_unreadable(&self) -> usize {
        let records = self
            .inner
            .list("")
            .unwrap_or_default()
            .into_iter()
            .map(|k| (Kind::Record, k));
        let keys = self
            .inner
            .list_key_files()
            .unwrap_or_default()
            .into_iter()
            .map(|k| (Kind::Key, k));
        records
            .chain(keys)
            .filter(|(kind, name)| {
                let bytes = match kind {
                    Kind::Record => self.inner.get(name),
                    Kind::Key => self.inner.get_key_file(name),
                };
                bytes
                    .ok()
                    .flatten()
                    .is_some_and(|b| open(&self.key, *kind, name, &b).is_none())
            })
            .count()
    }
}

impl Store for SealedStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .inner
            .get(key)?
            .and_then(|b| open(&self.key, Kind::Record, key, &b)))
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set(key, &seal(&self.key, Kind::Record, key, value)?)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix)
    }
    fn lock(&self, key: &str) -> Result<LockGuard, StoreError> {
        self.inner.lock_file(key)
    }
    fn get_key_file(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .inner
            .get_key_file(key)?
            .and_then(|b| open(&self.key, Kind::Key, key, &b)))
    }
    fn create_key_file_once(&self, key: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let sealed_value = seal(&self.key, Kind::Key, key, value)?;
        let kept = self.inner.create_key_file_once(key, &sealed_value)?;
        if let Some(plain) = open(&self.key, Kind::Key, key, &kept) {
            return Ok(plain);
        }
        if is_sealed_by_other_key(&self.key, &kept) {
            // Left by a lost store key: the tokens bound to it cannot be read
            // either. Replaced under the store lock, so that two processes
            // agree on one key.
            let _guard = self.inner.lock_file("store")?;
            let now = self.inner.get_key_file(key)?.unwrap_or_default();
            if let Some(plain) = open(&self.key, Kind::Key, key, &now) {
                return Ok(plain);
            }
            self.inner.replace_key_file(key, &sealed_value)?;
            return Ok(value.to_vec());
        }
        Err(StoreError::Unsafe {
            path: self.inner.dir().join(format!("{key}.pem")).display().to_string(),
            why: "the key file there does not open with the store key".into(),
        })
    }
    fn delete_key_file(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete_key_file(key)
    }
    fn id(&self) -> String {
        Store::id(&self.inner)
    }
    fn secrets(&self) -> Secrets {
        Secrets::Sealed {
            key_from: self.key_from.clone(),
            unreadable: self.count_unreadable(),
        }
    }
}
