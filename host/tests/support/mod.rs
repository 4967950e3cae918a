//! What the end-to-end test files share.

use std::path::PathBuf;

/// A fresh, empty store directory for one test (`mcp-oauth-<tag>-<random>`).
pub fn temp_home(tag: &str) -> PathBuf {
    let mut n = [0u8; 8];
    getrandom::fill(&mut n).unwrap();
    let p = std::env::temp_dir().join(format!("mcp-oauth-{tag}-{:016x}", u64::from_le_bytes(n)));
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// A real `redis-server` on a free loopback port, its data in its own
/// directory (append-only, so a restart on the same port keeps it); stopped
/// by its PID when dropped. `tests/redis/server install` puts Debian's
/// redis-server on a machine that lacks it.
#[allow(dead_code)]
pub struct RedisServer {
    child: Option<std::process::Child>,
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
}

#[allow(dead_code)]
impl RedisServer {
    /// Starts one on a free port.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        Self::start_on(port, temp_home("redis"))
    }

    /// Starts one on `port` with its data in `dir`.
    pub fn start_on(port: u16, dir: PathBuf) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run tests/redis/server install");
        let s = Self {
            child: Some(child),
            port,
            dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if s.ping() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("redis-server did not answer on 127.0.0.1:{port}");
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        c.write_all(b"PING\r\n").is_ok() && c.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:<port>` and `suffix` (a path or query).
    pub fn url(&self, suffix: &str) -> String {
        format!("redis://127.0.0.1:{}{suffix}", self.port)
    }

    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Stops it (SIGTERM: the append-only file is complete) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            #[cfg(unix)]
            // SAFETY: a signal to our own child, by its PID.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
