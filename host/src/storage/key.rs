//! The store key (docs/store.md, "The store key"): 32 random bytes, its id,
//! a key file for servers and CI, and one OS keychain item per store
//! (service `mcp-oauth`, account `store:<canonical path>`), read once per
//! process and kept in memory. Every keychain call has a 2 s deadline: a
//! headless session with no Secret Service, or a prompt nobody answers, must
//! not hang a command.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

/// How long the keychain may take to answer.
pub const KEYCHAIN_DEADLINE: Duration = Duration::from_secs(2);

/// The keychain service every host uses.
pub const SERVICE: &str = "mcp-oauth";

/// A 256-bit store key. Never printed: `Debug` shows its id only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey([u8; 32]);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreKey({})", self.id())
    }
}

impl Drop for StoreKey {
    fn drop(&mut self) {
        // Best effort: the bytes do not outlive the key in this buffer.
        self.0 = [0; 32];
    }
}

impl StoreKey {
    /// A fresh key from the OS's randomness.
    pub fn generate() -> Result<Self, String> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| format!("no randomness for a store key: {e}"))?;
        Ok(Self(k))
    }

    /// The key from its 32 bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// The raw key.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 16 lowercase hex digits of SHA-256(key).
    pub fn id(&self) -> String {
        Sha256::digest(self.0)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// From base64 (standard alphabet; padding and surrounding whitespace optional).
    pub fn from_base64(text: &str) -> Option<Self> {
        let t = text.trim();
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| STANDARD_NO_PAD.decode(t.trim_end_matches('=')))
            .ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Standard base64 with padding (44 characters), as the keychain keeps it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

/// Reads `MCP_OAUTH_STORE_KEY_FILE`: a regular file (a symlink to one is
/// followed: Kubernetes mounts secrets that way), not readable by group or
/// others, holding the key in base64.
pub fn read_key_file(path: &Path) -> Result<StoreKey, String> {
    use std::io::Read;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("the store key file {shown} (MCP_OAUTH_STORE_KEY_FILE) does not exist"),
        _ => format!("the store key file {shown} cannot be read: {e}"),
    })?;
    if !meta.is_file() || meta.len() > 4096 {
        return Err(format!("the store key file {shown} is not a small regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "the store key file {shown} is readable by others (mode {:o}); run: chmod 600 {shown}",
                mode & 0o777
            ));
        }
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|_| format!("the store key file {shown} is not base64 text"))?;
    StoreKey::from_base64(&text)
        .ok_or_else(|| format!("the store key file {shown} does not hold a 32-byte key in base64"))
}

/// The keychain account for the store at `dir`: `store:` and its canonical path.
pub fn account(dir: &Path) -> String {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!("store:{}", canonical.display())
}

/// What the keychain said.
#[derive(Debug)]
pub enum Lookup {
    /// The item, with a usable key.
    Found(StoreKey),
    /// The keychain answers; there is no item (or it does not hold a key).
    Missing,
    /// No keychain answered, and why (e.g. no Secret Service on the session bus).
    Unavailable(String),
}

fn cache() -> &'static Mutex<HashMap<String, StoreKey>> {
    static KEYS: OnceLock<Mutex<HashMap<String, StoreKey>>> = OnceLock::new();
    KEYS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Runs `f` on its own thread and waits at most [`KEYCHAIN_DEADLINE`].
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("mcp-oauth-keychain".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    rx.recv_timeout(KEYCHAIN_DEADLINE).ok()
}

/// The store key kept in the keychain for `account` (once per process).
pub fn keychain_get(account: &str) -> Lookup {
    if let Some(k) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(account) {
        return Lookup::Found(k.clone());
    }
    let acct = account.to_string();
    let answer = bounded(move || os::get(&acct)).unwrap_or_else(|| {
        Lookup::Unavailable(format!(
            "the keychain did not answer within {} s",
            KEYCHAIN_DEADLINE.as_secs()
        ))
    });
    if let Lookup::Found(k) = &answer {
        cache()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.to_string(), k.clone());
    }
    answer
}

/// Keeps `key` in the keychain for `account`.
pub fn keychain_set(account: &str, key: &StoreKey) -> Result<(), String> {
    let (acct, value) = (account.to_string(), key.to_base64());
    bounded(move || os::set(&acct, &value)).unwrap_or_else(|| Err("the keychain did not answer".into()))?;
    cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(account.to_string(), key.clone());
    Ok(())
}

/// Removes the keychain item for `account` (absent is fine).
pub fn keychain_delete(account: &str) -> Result<(), String> {
    cache().lock().unwrap_or_else(|e| e.into_inner()).remove(account);
    let acct = account.to_string();
    bounded(move || os::delete(&acct)).unwrap_or_else(|| Err("the keychain did not answer".into()))
}

/// A name for the platform's keychain, for `status`.
pub fn keychain_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "the macOS Keychain"
    } else if cfg!(windows) {
        "the Windows Credential Manager"
    } else {
        "the keychain (Secret Service)"
    }
}

/// macOS Keychain and Windows Credential Manager, through keyring-core.
#[cfg(all(feature = "keychain", any(target_os = "macos", target_os = "windows")))]
mod os {
    use super::{Lookup, SERVICE, StoreKey};
    use keyring_core::{CredentialStore, Entry, Error};
    use std::sync::{Arc, OnceLock};

    /// The platform's credential store, connected once per process.
    fn store() -> Result<Arc<CredentialStore>, String> {
        static STORE: OnceLock<Result<Arc<CredentialStore>, String>> = OnceLock::new();
        STORE
            .get_or_init(|| {
                #[cfg(target_os = "macos")]
                let s = apple_native_keyring_store::keychain::Store::new().map(|s| s as Arc<CredentialStore>);
                #[cfg(target_os = "windows")]
                let s = windows_native_keyring_store::Store::new_with_configuration(&std::collections::HashMap::from(
                    [("divider", "@")],
                ))
                .map(|s| s as Arc<CredentialStore>);
                s.map_err(|e| describe(&e))
            })
            .clone()
    }

    fn describe(e: &Error) -> String {
        match e {
            Error::PlatformFailure(inner) | Error::NoStorageAccess(inner) => {
                let text = inner.to_string();
                if text.contains("DBUS_SESSION_BUS_ADDRESS")
                    || text.contains("session bus")
                    || text.contains("autolaunch")
                    || text.contains("Failed to connect")
                {
                    "no Secret Service on the session bus".into()
                } else if text.contains("org.freedesktop.secrets") {
                    "no Secret Service (org.freedesktop.secrets) is running".into()
                } else {
                    format!("the keychain refused: {text}")
                }
            }
            other => format!("the keychain failed: {other}"),
        }
    }

    fn entry(account: &str) -> Result<Entry, String> {
        Entry::new_in_store(&store()?, SERVICE, account).map_err(|e| describe(&e))
    }

    pub fn get(account: &str) -> Lookup {
        let e = match entry(account) {
            Ok(e) => e,
            Err(why) => return Lookup::Unavailable(why),
        };
        match e.get_password() {
            Ok(v) => StoreKey::from_base64(&v).map_or(Lookup::Missing, Lookup::Found),
            Err(Error::NoEntry) => Lookup::Missing,
            Err(Error::Ambiguous(_)) => Lookup::Unavailable(format!(
                "the keychain holds more than one {SERVICE} item for {account}; remove the extra ones"
            )),
            Err(other) => Lookup::Unavailable(describe(&other)),
        }
    }

    pub fn set(account: &str, value: &str) -> Result<(), String> {
        entry(account)?.set_password(value).map_err(|e| describe(&e))
    }

    pub fn delete(account: &str) -> Result<(), String> {
        match entry(account)?.delete_credential() {
            Ok(()) | Err(Error::NoEntry) => Ok(()),
            Err(e) => Err(describe(&e)),
        }
    }
}

/// The Secret Service (GNOME Keyring, KWallet, KeePassXC) over zbus. The
/// item carries exactly the attributes `service` and `username`, as the
/// Node (`@napi-rs/keyring`) and Python (`secretstorage`) hosts write and
/// search them. The session is a plain one: the secret crosses only this
/// user's session bus, and a Diffie-Hellman session in pure Rust costs two
/// 1024-bit modular exponentiations (~7 ms) on every start.
#[cfg(all(
    feature = "keychain",
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
mod os {
    use super::{Lookup, SERVICE, StoreKey};
    use secret_service::EncryptionType;
    use secret_service::blocking::SecretService;
    use std::collections::HashMap;

    fn describe(e: &secret_service::Error) -> String {
        let text = e.to_string();
        if text.contains("DBUS_SESSION_BUS_ADDRESS")
            || text.contains("session bus")
            || text.contains("autolaunch")
            || text.contains("Failed to connect")
            || text.contains("No such file")
        {
            "no Secret Service on the session bus".into()
        } else if text.contains("org.freedesktop.secrets") || text.contains("ServiceUnknown") {
            "no Secret Service (org.freedesktop.secrets) is running".into()
        } else {
            format!("the Secret Service refused: {text}")
        }
    }

    fn attributes(account: &str) -> HashMap<&str, &str> {
        HashMap::from([("service", SERVICE), ("username", account)])
    }

    fn connect() -> Result<SecretService<'static>, String> {
        SecretService::connect(EncryptionType::Plain).map_err(|e| describe(&e))
    }

    pub fn get(account: &str) -> Lookup {
        let ss = match connect() {
            Ok(ss) => ss,
            Err(why) => return Lookup::Unavailable(why),
        };
        let found = match ss.search_items(attributes(account)) {
            Ok(f) => f,
            Err(e) => return Lookup::Unavailable(describe(&e)),
        };
        let mut items: Vec<_> = found.unlocked.into_iter().chain(found.locked).collect();
        if items.len() > 1 {
            return Lookup::Unavailable(format!(
                "the keychain holds more than one {SERVICE} item for {account}; remove the extra ones"
            ));
        }
        let Some(item) = items.pop() else {
            return Lookup::Missing;
        };
        if item.is_locked().unwrap_or(true)
            && let Err(e) = item.unlock()
        {
            return Lookup::Unavailable(describe(&e));
        }
        match item.get_secret() {
            Ok(v) => String::from_utf8(v)
                .ok()
                .and_then(|t| StoreKey::from_base64(&t))
                .map_or(Lookup::Missing, Lookup::Found),
            Err(e) => Lookup::Unavailable(describe(&e)),
        }
    }

    pub fn set(account: &str, value: &str) -> Result<(), String> {
        let ss = connect()?;
        let collection = ss.get_default_collection().map_err(|e| describe(&e))?;
        if collection.is_locked().unwrap_or(true) {
            collection.unlock().map_err(|e| describe(&e))?;
        }
        collection
            .create_item(
                &format!("keyring:{account}@{SERVICE}"),
                attributes(account),
                value.as_bytes(),
                true,
                "text/plain",
            )
            .map(|_| ())
            .map_err(|e| describe(&e))
    }

    pub fn delete(account: &str) -> Result<(), String> {
        let ss = connect()?;
        let found = ss.search_items(attributes(account)).map_err(|e| describe(&e))?;
        for item in found.unlocked.iter().chain(found.locked.iter()) {
            item.delete().map_err(|e| describe(&e))?;
        }
        Ok(())
    }
}

#[cfg(not(feature = "keychain"))]
mod os {
    use super::Lookup;

    const WHY: &str = "this build has no keychain support (the `keychain` feature)";

    pub fn get(_: &str) -> Lookup {
        Lookup::Unavailable(WHY.into())
    }
    pub fn set(_: &str, _: &str) -> Result<(), String> {
        Err(WHY.into())
    }
    pub fn delete(_: &str) -> Result<(), String> {
        Err(WHY.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_base64() {
        let k = StoreKey::from_bytes(core::array::from_fn(|i| i as u8));
        assert_eq!(k.id(), "630dcd2966c43366");
        assert_eq!(StoreKey::from_base64(&k.to_base64()), Some(k.clone()));
        assert_eq!(
            StoreKey::from_base64(&format!("  {}\n", k.to_base64().trim_end_matches('='))),
            Some(k.clone())
        );
        assert_eq!(StoreKey::from_base64("c2hvcnQ="), None);
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }
}
