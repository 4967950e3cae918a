//! What the proxy tells the person (stderr: the client shows it in its logs)
//! and the `--debug` log file. stdout is the JSON-RPC stream, so nothing here
//! ever writes there. Everything a server chose is made printable, and the
//! debug log never holds a token, code, verifier, secret or header value.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use crate::bindings::mcp::oauth::types::{ConsentRequest, Event};
use crate::prompts::{Prompter, Trace, describe_event};
use crate::terminal::printable;

/// stderr notices and the optional debug log.
pub struct Log {
    file: Option<Mutex<File>>,
    started: Instant,
}

impl Log {
    /// Notices on stderr only.
    pub fn stderr_only() -> Self {
        Self {
            file: None,
            started: Instant::now(),
        }
    }

    /// Also a debug log at `path` (created 0600; it is in the private store).
    pub fn with_file(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        Ok(Self {
            file: Some(Mutex::new(opts.open(path)?)),
            started: Instant::now(),
        })
    }

    /// True when `--debug` is on.
    pub fn debugging(&self) -> bool {
        self.file.is_some()
    }

    /// A line in the debug log (redacted, printable).
    pub fn debug(&self, text: &str) {
        if let Some(f) = &self.file {
            let line = format!(
                "{:>9.3} {}\n",
                self.started.elapsed().as_secs_f64(),
                printable(&redact(text))
            );
            let _ = f.lock().unwrap_or_else(|e| e.into_inner()).write_all(line.as_bytes());
        }
    }

    /// A notice for the person, on stderr (and in the debug log).
    pub fn notice(&self, text: &str) {
        // Line breaks of our own stay; each line is made printable.
        let shown: Vec<_> = text.split('\n').map(printable).collect();
        eprintln!("mcp-oauth: {}", shown.join("\n"));
        self.debug(text);
    }
}

/// Query parameters and JSON fields whose values are secret (or single-use).
const SECRET_KEYS: [&str; 10] = [
    "code",
    "state",
    "code_verifier",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "assertion",
    "subject_token",
    "client_assertion",
];

/// `text` with bearer tokens and secret parameter values replaced.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Bearer credentials.
    while let Some(i) = rest.to_ascii_lowercase().find("bearer ") {
        out.push_str(&rest[..i + 7]);
        out.push_str("[redacted]");
        let after = &rest[i + 7..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    for key in SECRET_KEYS {
        for (open, close) in [(format!("{key}="), "&# \""), (format!("\"{key}\":\""), "\"")] {
            let mut s = String::with_capacity(out.len());
            let mut r = out.as_str();
            while let Some(i) = r.find(&open) {
                let boundary = i == 0 || !r[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
                s.push_str(&r[..i + open.len()]);
                let after = &r[i + open.len()..];
                if boundary {
                    s.push_str("[redacted]");
                    let end = after.find(|c: char| close.contains(c)).unwrap_or(after.len());
                    r = &after[end..];
                } else {
                    r = after;
                }
            }
            s.push_str(r);
            out = s;
        }
    }
    out
}

/// The engine's prompts for a proxy: no one can be asked on stdin (it is the
/// JSON-RPC stream), and the person configured this server, so consent is
/// given; the browser is the prompt. Progress and the URL go to stderr.
pub struct ProxyPrompter {
    log: std::sync::Arc<Log>,
    server: String,
}

impl ProxyPrompter {
    /// Prompts for the MCP server at `server`.
    pub fn new(log: std::sync::Arc<Log>, server: &str) -> Self {
        Self {
            log,
            server: server.to_string(),
        }
    }
}

impl Prompter for ProxyPrompter {
    fn consent(&self, ask: &ConsentRequest) -> Result<bool, String> {
        self.log.debug(&format!(
            "authorization needed for {} at issuer {}",
            ask.server_url, ask.issuer
        ));
        Ok(true)
    }

    fn notify(&self, event: &Event) {
        self.log.notice(&describe_event(event));
    }

    fn waiting(&self, waiting: bool) {
        if waiting {
            self.log.debug("waiting for the browser to come back");
        }
    }

    fn polling(&self, waiting: bool) {
        if waiting {
            self.log.debug("waiting for the device code to be entered");
        }
    }

    fn trace(&self, step: &Trace) {
        match step {
            Trace::BrowserOpened { url } => self.log.notice(&format!(
                "sign in to {} in your browser; if it did not open, visit:\n  {url}",
                self.server
            )),
            Trace::CallbackArrived => self.log.notice("the browser came back; finishing the sign-in"),
            other => self.log.debug(&crate::prompts::narrate(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let t = redact(
            "authorization: Bearer at-123 x https://as/authorize?response_type=code&state=s3&code_challenge=cc&redirect_uri=r",
        );
        assert!(!t.contains("at-123") && !t.contains("s3&"), "{t}");
        assert!(
            t.contains("code_challenge=cc") && t.contains("response_type=code"),
            "{t}"
        );
        let t = redact(r#"{"access_token":"at-9","refresh_token":"rt-9","token_type":"Bearer"}"#);
        assert!(!t.contains("at-9") && !t.contains("rt-9"), "{t}");
        let t = redact("/callback?code=abc&iss=x");
        assert!(!t.contains("abc") && t.contains("iss=x"), "{t}");
    }
}
