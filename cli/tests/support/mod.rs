//! What the end-to-end test files share: temporary homes that remove
//! themselves, store key files, the CLI as the tests run it, and a real
//! `redis-server`. Each test file is its own crate and uses part of this, so
//! the items some crates leave unused carry `#[allow(dead_code)]`.

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A fresh, empty directory for one test (`$TMPDIR/mcp-oauth-<tag>-<random>`),
/// removed with all it holds when dropped. It derefs to its [`Path`], so
/// `&home` goes wherever a `&Path` is taken. Keep it alive for as long as
/// anything may use the directory (a spawned CLI or proxy, a runtime): bind
/// it to a variable, never pass `&temp_home(..)` to a process that outlives
/// the statement.
pub struct TempHome(PathBuf);

/// A new [`TempHome`].
pub fn temp_home(tag: &str) -> TempHome {
    let mut n = [0u8; 8];
    getrandom::fill(&mut n).unwrap();
    let p = std::env::temp_dir().join(format!("mcp-oauth-{tag}-{:016x}", u64::from_le_bytes(n)));
    std::fs::create_dir_all(&p).unwrap();
    TempHome(p)
}

impl Deref for TempHome {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempHome {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for TempHome {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        wait_for_cache_writers(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CLI run that found no usable compiled engine starts a detached
/// `mcp-oauth __write-engine-cache <home>` that writes `<home>/cache` after
/// the CLI has exited; removing the home under it would see the directory
/// made again. Waits (a minute at most) until no such writer for a
/// directory under `home` runs. Only Linux is looked at (`/proc`).
fn wait_for_cache_writers(home: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while cache_writer_running(home) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(target_os = "linux")]
fn cache_writer_running(home: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        // A process that has ended (a zombie) has an empty command line.
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            return false;
        };
        let mut args = cmdline.split(|b| *b == 0);
        args.any(|a| a == b"__write-engine-cache")
            && args
                .next()
                .is_some_and(|dir| Path::new(OsStr::from_bytes(dir)).starts_with(home))
    })
}

#[cfg(not(target_os = "linux"))]
fn cache_writer_running(_home: &Path) -> bool {
    false
}

/// A file in a directory of its own, both removed when dropped; derefs to
/// the file's path.
#[allow(dead_code)]
pub struct TempFile {
    path: PathBuf,
    _dir: TempHome,
}

#[allow(dead_code)]
impl TempFile {
    /// `<a new temp_home(tag)>/<name>`, not created yet.
    pub fn new(tag: &str, name: &str) -> Self {
        let dir = temp_home(tag);
        Self {
            path: dir.join(name),
            _dir: dir,
        }
    }
}

impl Deref for TempFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for TempFile {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

/// A store key file (`MCP_OAUTH_STORE_KEY_FILE`): a new key, base64, mode 0600.
#[allow(dead_code)]
pub fn key_file(tag: &str) -> TempFile {
    let f = TempFile::new(tag, "store.key");
    let key = mcp_oauth_host::storage::key::StoreKey::generate().unwrap();
    std::fs::write(&*f, key.to_base64()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&*f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    f
}

/// The `mcp-oauth` binary cargo built for these tests.
#[allow(dead_code)]
pub const CLI: &str = env!("CARGO_BIN_EXE_mcp-oauth");

/// The scripted browser: follows the redirect chain to the loopback listener.
#[allow(dead_code)]
pub const BROWSER: &str = env!("CARGO_BIN_EXE_mcp-oauth-headless-browser");

/// `mcp-oauth` on the store in `home`, set up alike for every test: the
/// headless browser as `BROWSER`, stdin closed, and none of the caller's
/// settings that would change what it does (an SSH session, a session bus
/// with a keychain, a shared store, a secrets mode, a user). What a test
/// varies it adds with [`Cli::browser`] and [`Cli::env`]; [`Cli::run`] runs
/// one command to its end, [`Cli::command`] gives it to spawn.
#[allow(dead_code)]
#[derive(Clone)]
pub struct Cli {
    home: PathBuf,
    env: Vec<(String, Option<std::ffi::OsString>)>,
}

#[allow(dead_code)]
impl Cli {
    pub fn new(home: &Path) -> Self {
        let cleared = [
            "SSH_CONNECTION",
            "SSH_TTY",
            "DBUS_SESSION_BUS_ADDRESS",
            "MCP_OAUTH_SECRETS",
            "MCP_OAUTH_STORE",
            "MCP_OAUTH_STORE_KEY_FILE",
            "MCP_OAUTH_STORE_PASSWORD",
            "MCP_OAUTH_USER",
            "MCP_OAUTH_TEST_HOLD_LOCK_MS",
        ];
        let cli = Self {
            home: home.to_path_buf(),
            env: cleared.iter().map(|k| (k.to_string(), None)).collect(),
        };
        cli.browser(BROWSER)
    }

    /// `BROWSER` (a command line: `$BROWSER <url>` opens the URL).
    pub fn browser(self, browser: &str) -> Self {
        self.env("BROWSER", browser)
    }

    /// One more variable; the last word on a name wins.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.into(), Some(value.as_ref().to_owned())));
        self
    }

    /// One variable fewer.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// `mcp-oauth <args>`, stdin closed, ready to be given more and spawned.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(CLI);
        c.args(args)
            .env("MCP_OAUTH_HOME", &self.home)
            .stdin(std::process::Stdio::null());
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Runs `mcp-oauth <args>` to its end.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("run mcp-oauth")
    }
}

/// `mcp-oauth <args>` on `home` as [`Cli::new`] sets it up, run to its end.
#[allow(dead_code)]
pub fn cli(home: &Path, args: &[&str]) -> std::process::Output {
    Cli::new(home).run(args)
}

/// A real `redis-server` on a free loopback port, its data in its own
/// directory (append-only, so a restart on the same port keeps it); stopped
/// by its PID when dropped, and its directory removed if it made it.
/// `tests/redis/server install` puts Debian's redis-server on a machine
/// that lacks it.
#[allow(dead_code)]
pub struct RedisServer {
    child: Option<std::process::Child>,
    /// Its port.
    pub port: u16,
    /// Its data directory.
    pub dir: PathBuf,
    /// The data directory when [`RedisServer::start`] made it.
    _owned: Option<TempHome>,
}

#[allow(dead_code)]
impl RedisServer {
    /// Starts one on a free port, its data in a new directory.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let dir = temp_home("redis");
        Self::launch(port, dir.to_path_buf(), Some(dir))
    }

    /// Starts one on `port` with its data in `dir` (left in place).
    pub fn start_on(port: u16, dir: PathBuf) -> Self {
        Self::launch(port, dir, None)
    }

    fn launch(port: u16, dir: PathBuf, owned: Option<TempHome>) -> Self {
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
            _owned: owned,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if s.ping() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not answer on 127.0.0.1:{port}");
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
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
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    /// Stops it; its directory, if it made it, goes after (with `_owned`).
    fn drop(&mut self) {
        self.stop();
    }
}
