//! `MCP_OAUTH_STORE=redis://...`: what a store URL means, what is refused,
//! and how it is shown (docs/store.md, "Selection"; pinned for every host by
//! `tests/vectors/redis_urls.json`). The password is kept out of `Debug` and
//! out of [`StoreUrl::display`].

/// The prefix every key gets when the URL names none.
pub const DEFAULT_PREFIX: &str = "mcp-oauth:";
/// The lock lease when the URL names none: longer than one HTTP request's
/// 30 s deadline, so a live holder never loses its lease mid-request.
pub const DEFAULT_LEASE_MS: u64 = 35_000;
const LEASE_RANGE: std::ops::RangeInclusive<u64> = 1_000..=600_000;

/// A parsed store URL.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// `rediss://`.
    pub tls: bool,
    /// Host name or address (IPv6 in brackets, as written).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database number.
    pub db: u8,
    /// ACL user name.
    pub username: Option<String>,
    password: Option<String>,
    /// Prefix of every key.
    pub prefix: String,
    /// The lock lease.
    pub lease_ms: u64,
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl StoreUrl {
    /// Parses `url`; `password_env` is `MCP_OAUTH_STORE_PASSWORD`, used when
    /// the URL carries no password. The error never contains the password.
    pub fn parse(url: &str, password_env: Option<&str>) -> Result<Self, String> {
        let url = url.trim();
        let u = url::Url::parse(url).map_err(|_| {
            "the store is not a URL with a redis:// or rediss:// scheme: use redis://[user:password@]host[:port][/db]".to_string()
        })?;
        let tls = match u.scheme() {
            "redis" => false,
            "rediss" => true,
            _ => {
                return Err(format!(
                    "the store URL's scheme must be redis or rediss, not {:?}",
                    u.scheme().chars().take(16).collect::<String>()
                ));
            }
        };
        if u.fragment().is_some() {
            // Never echoed: what follows a # may be the rest of a password.
            return Err("the store URL has a fragment (#...): remove it, and write a # in a password as %23".into());
        }
        let host = match u.host() {
            Some(url::Host::Ipv6(a)) => format!("[{a}]"),
            Some(h) if !h.to_string().is_empty() => h.to_string(),
            _ => return Err("the store URL has no host".into()),
        };
        let port = u.port().unwrap_or(6379);
        let path = u.path().trim_start_matches('/');
        let db = if path.is_empty() {
            0
        } else {
            match path.parse::<u8>() {
                Ok(n) if n <= 15 && path.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err("the store URL's path must be a db number from 0 to 15".into()),
            }
        };
        let mut prefix = DEFAULT_PREFIX.to_string();
        let mut lease_ms = DEFAULT_LEASE_MS;
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "prefix" => {
                    let ok = v.len() <= 64
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'));
                    if !ok {
                        return Err(
                            "the store URL's prefix may hold up to 64 letters, digits, ':', '.', '_' and '-'".into(),
                        );
                    }
                    prefix = v.into_owned();
                }
                "lease_ms" => {
                    lease_ms = v.parse().ok().filter(|n| LEASE_RANGE.contains(n)).ok_or_else(|| {
                        format!(
                            "the store URL's lease_ms must be a number of milliseconds from {} to {}",
                            LEASE_RANGE.start(),
                            LEASE_RANGE.end()
                        )
                    })?;
                }
                other => {
                    return Err(format!(
                        "unknown store URL parameter {:?}: the parameters are prefix and lease_ms",
                        other.chars().take(32).collect::<String>()
                    ));
                }
            }
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .unwrap_or_default()
        };
        let username = Some(decode(u.username())).filter(|s| !s.is_empty());
        let password = u
            .password()
            .map(decode)
            .filter(|s| !s.is_empty())
            .or_else(|| password_env.filter(|s| !s.is_empty()).map(str::to_string));
        Ok(Self {
            tls,
            host,
            port,
            db,
            username,
            password,
            prefix,
            lease_ms,
        })
    }

    /// The password, for the connection only.
    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Whether a password is given.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The URL as shown to people: the password as `***`, the prefix only
    /// when it is not the default, never the lease.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let user = self.username.as_deref().unwrap_or("");
        let cred = match (user, self.has_password()) {
            ("", false) => String::new(),
            (u, false) => format!("{u}@"),
            (u, true) => format!("{u}:***@"),
        };
        let prefix = if self.prefix == DEFAULT_PREFIX {
            String::new()
        } else {
            format!("?prefix={}", self.prefix)
        };
        format!("{scheme}://{cred}{}:{}/{}{prefix}", self.host, self.port, self.db)
    }
}

/// The Redis keys of one name (docs/store.md, "Keys").
pub struct Keys<'a> {
    /// The URL's prefix.
    pub prefix: &'a str,
    /// `<user>/`, or empty.
    pub ns: &'a str,
}

impl Keys<'_> {
    /// The record's hash.
    pub fn record(&self, name: &str) -> String {
        format!("{}{{{}{name}}}:r", self.prefix, self.ns)
    }
    /// The lock's string.
    pub fn lock(&self, name: &str) -> String {
        format!("{}{{{}{name}}}:lock", self.prefix, self.ns)
    }
    /// The DPoP key file's string.
    pub fn key_file(&self, name: &str) -> String {
        format!("{}{{{}{name}}}:pem", self.prefix, self.ns)
    }
    /// The manifest (one per store, shared by its users).
    pub fn manifest(&self) -> String {
        format!("{}store.json", self.prefix)
    }
    /// The name sealed into the associated data.
    pub fn aad_name(&self, name: &str) -> String {
        format!("{}{name}", self.ns)
    }
    /// The `SCAN` pattern for records whose name starts with `start`
    /// (names and users hold no glob characters).
    pub fn record_pattern(&self, start: &str) -> String {
        format!("{}{{{}{start}*}}:r", self.prefix, self.ns)
    }
}
