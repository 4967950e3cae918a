//! The `browser` import: `$BROWSER` when set (run directly, never through a
//! shell, the URL as its last argument), else the platform opener. Only
//! http(s) URLs are ever opened.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Something that can show a URL to the user.
pub trait BrowserOpener: Send + Sync {
    /// Opens `url`; an error means the user must open it by hand.
    fn open(&self, url: &str) -> Result<(), String>;
}

/// Refuses anything but http(s) (CVE-2025-6514).
pub fn check_openable(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
        Ok(u) => Err(format!("refusing to open a {}: URL", u.scheme())),
        Err(_) => Err("refusing to open something that is not a URL".into()),
    }
}

/// `$BROWSER` or the platform opener.
#[derive(Debug, Clone, Default)]
pub struct SystemBrowser {
    /// The `$BROWSER` value, if any.
    pub browser_env: Option<String>,
}

impl SystemBrowser {
    /// Reads `$BROWSER`.
    pub fn from_env() -> Self {
        Self {
            browser_env: std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()),
        }
    }
}

/// Splits a `$BROWSER` value into program and leading arguments. The value
/// may list alternatives separated by ':'; the first is used. No shell is
/// involved: words are split on whitespace only.
pub fn browser_command(value: &str) -> Option<(String, Vec<String>)> {
    let first = value.split(':').next()?.trim();
    let mut words = first.split_whitespace().map(String::from);
    let program = words.next()?;
    Some((program, words.collect()))
}

fn platform_opener() -> (&'static str, Vec<&'static str>) {
    if cfg!(target_os = "macos") {
        ("open", vec![])
    } else if cfg!(windows) {
        ("rundll32", vec!["url.dll,FileProtocolHandler"])
    } else {
        ("xdg-open", vec![])
    }
}

impl BrowserOpener for SystemBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        check_openable(url)?;
        let (program, args, wait) = match self.browser_env.as_deref().and_then(browser_command) {
            Some((p, a)) => (p, a, false),
            None => {
                let (p, a) = platform_opener();
                (p.to_string(), a.into_iter().map(String::from).collect(), true)
            }
        };
        let mut child = Command::new(&program)
            .args(&args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not run {program}: {e}"))?;
        if wait {
            // Openers return at once; a quick failure means no browser.
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                match child.try_wait() {
                    Ok(Some(st)) if st.success() => return Ok(()),
                    Ok(Some(st)) => return Err(format!("{program} failed ({st})")),
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        // Reap the child whenever it exits.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_open() {
        assert!(check_openable("https://a.example/x").is_ok());
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "data:text/html,x",
            "ms-settings:",
            "nonsense",
        ] {
            assert!(check_openable(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn browser_value_is_split_without_a_shell() {
        assert_eq!(browser_command("firefox"), Some(("firefox".into(), vec![])));
        assert_eq!(
            browser_command("open -a Safari:lynx"),
            Some(("open".into(), vec!["-a".into(), "Safari".into()]))
        );
        assert_eq!(browser_command("  "), None);
    }
}
