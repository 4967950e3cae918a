//! A strict parser for the only URLs the engine handles: absolute `http` and
//! `https` URLs made of printable ASCII.
//!
//! Written by hand, not taken from the `url` crate, for two reasons. Strictness:
//! the WHATWG parser repairs input (trims spaces, turns `\` into `/`, reads
//! `127.1` or `0x7f.1` as 127.0.0.1), and what one parser repairs another may
//! read differently; this one refuses instead, so the engine, the host and the
//! browser agree on what a URL means. Size: `url` with IDNA was 41 KB of the
//! sandboxed component, over its budget. Non-ASCII hosts are refused (punycode
//! `xn--` hosts work).

use alloc::format;
use alloc::string::String;
use core::net::{Ipv4Addr, Ipv6Addr};

/// The host of an [`HttpUrl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A domain name, lower-cased.
    Domain(String),
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// A bracketed IPv6 address.
    Ipv6(Ipv6Addr),
}

/// A parsed absolute http(s) URL. Scheme and host are lower-cased and a
/// default port is dropped; path, query and fragment are kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    https: bool,
    host: Host,
    port: Option<u16>,
    path: String,
    query: Option<String>,
    fragment: Option<String>,
    serialized: String,
}

fn valid_percent_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in octets.iter_mut() {
        let p = parts.next()?;
        // Decimal only, no leading zeros (no octal or hex readings).
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0'))
        {
            return None;
        }
        *o = p.parse().ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

fn parse_host(h: &str) -> Result<Host, &'static str> {
    if let Some(inner) = h.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("the IPv6 address is not closed with ]")?;
        return inner
            .parse()
            .map(Host::Ipv6)
            .map_err(|_| "the IPv6 address is malformed");
    }
    if h.is_empty() {
        return Err("it has no host");
    }
    if let Some(ip) = parse_ipv4(h) {
        return Ok(Host::Ipv4(ip));
    }
    let lower = h.to_ascii_lowercase();
    let labels_ok = lower.len() <= 253
        && lower.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
        });
    if !labels_ok {
        return Err("the host is not a valid domain name or IP address");
    }
    // A browser reads a name whose last label is numeric as an IPv4 address
    // (`127.1`, `1.2.3.4.5`); refuse it rather than disagree.
    let last = lower.rsplit('.').next().unwrap_or("");
    if last.bytes().all(|c| c.is_ascii_digit()) || last.starts_with("0x") {
        return Err("the host looks like an IP address but is not a plain dotted quad");
    }
    Ok(Host::Domain(lower))
}

impl HttpUrl {
    /// Parses `raw`, or says why not.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("it is empty");
        }
        if !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) || raw.contains('\\') {
            return Err("it contains whitespace, control characters, backslashes or non-ASCII characters");
        }
        let (scheme, rest) = raw.split_once(':').ok_or("it is not an absolute URL")?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            s if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c)) => {
                return Err("only https (or http to a loopback host) is allowed");
            }
            _ => return Err("it is not an absolute URL"),
        };
        let rest = rest.strip_prefix("//").ok_or("it is not an absolute URL")?;
        let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        if authority.contains('@') {
            return Err("it carries user information before the host");
        }
        let (host_part, port_part) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
            _ => (authority, None),
        };
        let host = parse_host(host_part)?;
        let default_port = if https { 443 } else { 80 };
        let port = match port_part {
            None => None,
            Some(p) => {
                if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                    return Err("the port is not a number");
                }
                let n: u32 = p.parse().map_err(|_| "the port is not a number")?;
                let n = u16::try_from(n).map_err(|_| "the port is out of range")?;
                (n != default_port).then_some(n)
            }
        };
        let (before_fragment, fragment) = match tail.split_once('#') {
            Some((a, f)) => (a, Some(String::from(f))),
            None => (tail, None),
        };
        let (path, query) = match before_fragment.split_once('?') {
            Some((p, q)) => (p, Some(String::from(q))),
            None => (before_fragment, None),
        };
        if !valid_percent_escapes(tail) {
            return Err("it has a malformed percent escape");
        }
        let path = if path.is_empty() {
            String::from("/")
        } else {
            String::from(path)
        };
        let mut url = HttpUrl {
            https,
            host,
            port,
            path,
            query,
            fragment,
            serialized: String::new(),
        };
        url.serialized = url.serialize();
        Ok(url)
    }

    fn serialize(&self) -> String {
        let mut s = format!("{}{}", self.origin(), self.path);
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        if let Some(f) = &self.fragment {
            s.push('#');
            s.push_str(f);
        }
        s
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `scheme://host[:port]`, the port only when not the default.
    pub fn origin(&self) -> String {
        let host = match &self.host {
            Host::Domain(d) => d.clone(),
            Host::Ipv4(ip) => format!("{ip}"),
            Host::Ipv6(ip) => format!("[{ip}]"),
        };
        match self.port {
            Some(p) => format!("{}://{host}:{p}", self.scheme()),
            None => format!("{}://{host}", self.scheme()),
        }
    }

    /// The path, `/` at least.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query, without `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The fragment, without `#`.
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.as_deref()
    }

    /// The normalized URL.
    pub fn as_str(&self) -> &str {
        &self.serialized
    }

    /// This URL with form-encoded `pairs` appended to its query (existing
    /// query parameters are kept), and without a fragment.
    pub fn with_query_pairs<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            ser.append_pair(k, v);
        }
        let added = ser.finish();
        let query = match self.query.as_deref() {
            Some(q) if !q.is_empty() => format!("{q}&{added}"),
            _ => added,
        };
        format!("{}{}?{query}", self.origin(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_scheme_host_and_default_port() {
        let u = HttpUrl::parse("HTTPS://Auth.Example.COM:443/a/B?x=1#f").unwrap();
        assert_eq!(u.as_str(), "https://auth.example.com/a/B?x=1#f");
        assert_eq!(u.origin(), "https://auth.example.com");
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:8080").unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(HttpUrl::parse("http://[::1]:80/x").unwrap().origin(), "http://[::1]");
        assert_eq!(
            HttpUrl::parse("https://a.example:8443/").unwrap().origin(),
            "https://a.example:8443"
        );
    }

    #[test]
    fn keeps_path_and_query_as_written() {
        let u = HttpUrl::parse("https://a.example/authorize;$(id)`x`{y}|z&w?q=%20").unwrap();
        assert_eq!(u.path(), "/authorize;$(id)`x`{y}|z&w");
        assert_eq!(u.query(), Some("q=%20"));
    }

    #[test]
    fn refuses_what_parsers_disagree_on() {
        for bad in [
            "127.0.0.1/x",
            "//a.example/",
            "https:/a.example",
            "https://",
            "https://a.example:99999/",
            "https://a.example:x/",
            "https://user@a.example/",
            "http://127.1/",
            "http://0x7f.0.0.1/",
            "http://1.2.3.4.5/",
            "http://127.000.0.1/",
            "https://a..example/",
            "https://-a.example/",
            "https://a.example/%zz",
            "https://é.example/",
            "https://a.example/ x",
            "https://[::1/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            HttpUrl::parse("javascript:alert(1)"),
            Err("only https (or http to a loopback host) is allowed")
        );
    }

    #[test]
    fn appends_query_pairs_after_existing_ones() {
        let u = HttpUrl::parse("https://a.example/authorize?tenant=1#frag").unwrap();
        assert_eq!(
            u.with_query_pairs([("a", "x y"), ("b", "&")]),
            "https://a.example/authorize?tenant=1&a=x+y&b=%26"
        );
        let u = HttpUrl::parse("https://a.example/authorize").unwrap();
        assert_eq!(u.with_query_pairs([("a", "1")]), "https://a.example/authorize?a=1");
    }
}
