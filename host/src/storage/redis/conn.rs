//! The connection to the store: made lazily with a deadline, every command
//! with one; a command that meets a broken connection is retried once on a
//! new connection (the server restarted). Errors name the store as displayed,
//! never its password, and say what to check.

use std::time::Duration;

use redis::{Connection, RedisError};

use super::url::StoreUrl;
use super::{Inner, tls};
use crate::storage::StoreError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The client for the store's URL (TLS roots from `ca_pem` for `rediss://`).
pub(super) fn client(u: &StoreUrl, ca_pem: Option<&[u8]>) -> Result<redis::Client, StoreError> {
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
    fn connect(&self) -> Result<Connection, RedisError> {
        let c = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        c.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        c.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(c)
    }

    /// Runs `f` on the connection; a broken connection is replaced and `f`
    /// tried once more.
    pub(super) fn run<T>(&self, f: impl Fn(&mut Connection) -> redis::RedisResult<T>) -> Result<T, StoreError> {
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
}

/// The connection is gone (or never came): worth one more try on a new one.
fn broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_unrecoverable_error()
}
