//! A headless "browser" for tests, the demo and unattended clients: it
//! follows the authorization server's redirect chain until it reaches the
//! loopback callback, then requests it. It can click nothing: an AS that
//! shows a login page stops it.

use std::time::Duration;

use crate::browser::{BrowserOpener, check_openable};

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
    for _ in 0..10 {
        let loopback = crate::http::is_loopback(&current) && current.path() == "/callback";
        let resp = agent
            .get(current.as_str())
            .call()
            .map_err(|e| format!("GET {current}: {e}"))?;
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
