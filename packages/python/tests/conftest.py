"""Fixtures: the demo servers (`mcp-oauth demo --serve`, started per test and
stopped by PID), a counting headless browser, the CLI, a private store, and
one Redis server for the session (tests/redis/server, stopped by PID)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("MCP_OAUTH_ROOT", Path(__file__).resolve().parents[3]))
CLI = ROOT / "target" / "release" / "mcp-oauth"
HEADLESS = ROOT / "target" / "release" / "mcp-oauth-headless-browser"
AS_PATHS = ("/.well-known/oauth-authorization-server", "/register", "/authorize", "/token")
REDIS_SERVER = "tests/redis/server"  # run from ROOT
STORE_ENV = ("MCP_OAUTH_STORE", "MCP_OAUTH_STORE_PASSWORD", "MCP_OAUTH_USER", "MCP_OAUTH_CA_FILE")


def pytest_configure(config):
    config.addinivalue_line("markers", "keychain: needs a real Secret Service (MCP_OAUTH_TEST_KEYCHAIN=1)")


@pytest.fixture(autouse=True)
def hermetic_secrets(request, monkeypatch):
    """Tests choose where secrets live themselves: no choice or key file from
    the environment, and no session bus (so no test writes to the user's
    keychain) except in the tests marked `keychain`."""
    from mcp_oauth import _keychain

    for name in ("MCP_OAUTH_SECRETS", "MCP_OAUTH_STORE_KEY_FILE") + STORE_ENV:
        monkeypatch.delenv(name, raising=False)
    if request.node.get_closest_marker("keychain") is None:
        monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    _keychain._reset()
    yield
    _keychain._reset()


class Demo:
    def __init__(self, access_ttl: int | None, faults: tuple = ()) -> None:
        argv = [str(CLI), "demo", "--serve", "--port", "0"] + (["--access-ttl", str(access_ttl)] if access_ttl else [])
        for fault in faults:  # deny, token-error
            argv += ["--fault", fault]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = ""
        deadline = time.monotonic() + 20
        lines: list[str] = []
        # The first stdout lines name the URLs; readline blocks, so a timer kills a silent server.
        timer = threading.Timer(20, self.proc.kill)
        timer.start()
        try:
            while time.monotonic() < deadline and len(lines) < 10:
                line = self.proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if line.startswith("MCP server:"):
                    self.url = line.split()[-1]
                    break
        finally:
            timer.cancel()
        if not self.url:
            self.stop()
            raise RuntimeError(f"the demo server did not start: {lines!r}")
        self.base = self.url.rsplit("/mcp", 1)[0]

    def _get(self) -> dict:
        with urllib.request.urlopen(f"{self.base}/_demo/log", timeout=10) as r:
            return json.loads(r.read())

    def log(self) -> list[str]:
        return self._get()["requests"]

    def reuse_detected(self) -> bool:
        return self._get()["refresh_token_reuse_detected"]

    def as_requests(self, since: int = 0) -> list[str]:
        return [l for l in self.log()[since:] if l.split(" ")[1].split("?")[0] in AS_PATHS]

    def revoke(self) -> None:
        req = urllib.request.Request(f"{self.base}/_demo/revoke", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).close()

    def revoke_access(self) -> None:
        """Revokes the access tokens only: refresh tokens still work."""
        req = urllib.request.Request(f"{self.base}/_demo/revoke-access", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def demo_factory():
    started: list[Demo] = []

    def start(access_ttl: int | None = None, faults: tuple = ()) -> Demo:
        d = Demo(access_ttl, faults)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def demo(demo_factory) -> Demo:
    return demo_factory()


class Browser:
    """An `open_browser` that follows the redirects headlessly and counts opens."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self._lock = threading.Lock()
        self._children: list[subprocess.Popen] = []

    def __call__(self, url: str) -> None:
        with self._lock:
            self.opened.append(url)
            self._children.append(subprocess.Popen([str(HEADLESS), url], stdout=subprocess.DEVNULL))

    def close(self) -> None:
        for c in self._children:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.kill()


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "store"


def no_browser(url: str) -> None:
    raise AssertionError(f"the browser must not open here (asked for {url[:60]})")


def cli(home: Path, *args: str, timeout: float = 60, **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    env = dict(os.environ, MCP_OAUTH_HOME=str(home), BROWSER=str(HEADLESS))
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout, **kw)


def mcp_post(url: str, token: str, method: str = "ping") -> int:
    """The status of a bare MCP request carrying `token`."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method}).encode()
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class RedisServer:
    """A throwaway redis-server on a free loopback port, its data in `dir`
    (append-only, so a restart on the same port keeps it)."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.port = 0
        self.start()

    def _run(self, *args: str) -> str:
        r = subprocess.run([REDIS_SERVER, *args], cwd=ROOT, capture_output=True, text=True, timeout=180)
        if r.returncode != 0:
            raise RuntimeError(f"{REDIS_SERVER} {args[0]} failed: {r.stderr.strip()[:500]}")
        return r.stdout.strip()

    def start(self) -> None:
        out = self._run("start", str(self.dir), *([str(self.port)] if self.port else []))
        self.port = int(out.splitlines()[-1])

    def stop(self) -> None:
        self._run("stop", str(self.dir))

    def url(self, prefix: str | None = None, **params: object) -> str:
        """A store URL on this server; a fresh prefix unless one is given."""
        prefix = f"t{os.urandom(6).hex()}:" if prefix is None else prefix
        query = "&".join([f"prefix={prefix}"] + [f"{k}={v}" for k, v in params.items()])
        return f"redis://127.0.0.1:{self.port}/0?{query}"

    def client(self, **kw):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10, **kw)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    pytest.importorskip("redis")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()
