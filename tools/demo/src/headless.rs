//! A headless "browser" for tests, the demo and unattended clients: it
//! follows the authorization server's redirect chain until it reaches the
//! loopback callback, then requests it. It keeps the cookies the servers set
//! along the way (an AS that keeps a login session between its pages needs
//! them), and it can click nothing: an AS that shows a login page stops it.

use std::time::Duration;

use mcp_oauth_host::browser::{BrowserOpener, check_openable};

/// Follows redirects from `url` until a loopback URL has been requested.
pub fn follow(url: &str) -> Result<(), String> {
    check_openable(url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut current = url::Url::parse(url).map_err(|e| e.to_string())?;
    let mut jar = cookie_store::CookieStore::default();
    for _ in 0..10 {
        let loopback = mcp_oauth_host::http::is_loopback(&current) && current.path() == "/callback";
        let cookies: Vec<String> = jar
            .get_request_values(&current)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut req = agent.get(current.as_str());
        if !cookies.is_empty() {
            req = req.header("cookie", cookies.join("; "));
        }
        let resp = req.call().map_err(|e| format!("GET {current}: {e}"))?;
        for set in resp.headers().get_all("set-cookie") {
            if let Ok(v) = set.to_str() {
                // A cookie the jar refuses (wrong domain, bad syntax) is dropped.
                let _ = jar.parse(v, &current);
            }
        }
        if loopback {
            return Ok(());
        }
        let status = resp.status().as_u16();
        if !(300..400).contains(&status) {
            return Err(format!(
                "{current} answered HTTP {status} instead of redirecting; a person must finish here"
            ));
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("{current} redirected without a Location"))?;
        current = current.join(location).map_err(|e| e.to_string())?;
        check_openable(current.as_str())?;
    }
    Err("too many redirects".into())
}

/// A [`BrowserOpener`] that follows redirects in a background thread.
#[derive(Debug, Clone, Default)]
pub struct HeadlessBrowser;

impl BrowserOpener for HeadlessBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        check_openable(url)?;
        let url = url.to_string();
        std::thread::spawn(move || {
            if let Err(e) = follow(&url) {
                eprintln!("mcp-oauth: headless browser: {e}");
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AS whose login page sets a session cookie and whose next page
    /// redirects to the callback only when the cookie comes back.
    #[test]
    fn keeps_cookies_between_the_authorization_servers_pages() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let t = std::thread::spawn(move || {
            for _ in 0..3 {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_secs(10)) else {
                    return;
                };
                let cookie = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("cookie"))
                    .map(|h| h.value.to_string());
                seen2.lock().unwrap().push((req.url().to_string(), cookie.clone()));
                let (status, location, set) = match req.url() {
                    "/authorize" => (302, "/consent", Some("sid=abc; Path=/; HttpOnly")),
                    "/consent" if cookie.as_deref() == Some("sid=abc") => (302, "/callback?code=c&state=s", None),
                    "/consent" => (400, "", None),
                    _ => (200, "", None),
                };
                let mut resp = tiny_http::Response::empty(status);
                if !location.is_empty() {
                    resp.add_header(tiny_http::Header::from_bytes("location", location).unwrap());
                }
                if let Some(c) = set {
                    resp.add_header(tiny_http::Header::from_bytes("set-cookie", c).unwrap());
                }
                let _ = req.respond(resp);
            }
        });
        follow(&format!("{base}/authorize")).expect("reaches the callback");
        t.join().unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[1], ("/consent".to_string(), Some("sid=abc".to_string())));
        assert_eq!(seen[2].0, "/callback?code=c&state=s");
    }
}
