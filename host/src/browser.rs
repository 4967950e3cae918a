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

/// For a user whose browser is on another machine (`--no-browser`, SSH):
/// opens nothing; the prompter shows the URL and asks for the address the
/// browser lands on (`TerminalPrompter::paste_only`).
#[derive(Debug, Clone, Default)]
pub struct ElsewhereBrowser;

impl BrowserOpener for ElsewhereBrowser {
    fn open(&self, url: &str) -> Result<(), String> {
        check_openable(url)
    }
}

/// True in an SSH session with no display to open a browser on (the
/// browser, if any, is on the user's own machine). `$BROWSER` still wins:
/// someone who set it wants it used.
pub fn remote_without_display(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| var(k).is_some_and(|v| !v.trim().is_empty());
    (set("SSH_CONNECTION") || set("SSH_TTY"))
        && !set("DISPLAY")
        && !set("WAYLAND_DISPLAY")
        && !set("BROWSER")
        && !cfg!(target_os = "macos")
        && !cfg!(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_without_a_display_means_paste() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(remote_without_display(env(&[(
            "SSH_CONNECTION",
            "10.0.0.2 5 10.0.0.1 22"
        )])));
        assert!(remote_without_display(env(&[("SSH_TTY", "/dev/pts/1")])));
        assert!(!remote_without_display(env(&[])));
        assert!(!remote_without_display(env(&[
            ("SSH_CONNECTION", "x"),
            ("DISPLAY", ":0")
        ])));
        assert!(!remote_without_display(env(&[
            ("SSH_CONNECTION", "x"),
            ("WAYLAND_DISPLAY", "w")
        ])));
        assert!(!remote_without_display(env(&[
            ("SSH_CONNECTION", "x"),
            ("BROWSER", "lynx")
        ])));
    }

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
