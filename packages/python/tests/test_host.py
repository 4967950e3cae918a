"""The host imports on their own: store, lock protocol 2, HTTP rules,
browser, callback listener, the compiled-artifact cache, no secrets in reprs."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from mcp_oauth import _browser, _callback, _engine, _http, _store
from mcp_oauth import AccessToken, IdentityAssertion


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_store_layout_and_atomic_writes(tmp_path):
    s = _store.FileStore(tmp_path / "h")
    assert s.get("tokens-ab") is None
    s.set("tokens-ab", b'{"v":1}')
    assert s.get("tokens-ab") == b'{"v":1}'
    assert mode(tmp_path / "h") == 0o700 and mode(tmp_path / "h" / "locks") == 0o700
    assert mode(tmp_path / "h" / "tokens-ab.json") == 0o600
    assert [p.name for p in (tmp_path / "h").iterdir() if p.name.endswith(".tmp")] == []
    (tmp_path / "h" / "bad.json").write_bytes(b'{"v":1, trunc')
    assert s.get("bad") is None  # corrupt reads as absent
    s.delete("tokens-ab")
    s.delete("tokens-ab")
    assert s.get("tokens-ab") is None
    for bad in ["../x", "a/b", "", ".hidden", "a.json", "x\0y", "/etc/passwd", "a" * 129]:
        with pytest.raises(_store.StoreError):
            s.set(bad, b"{}")


def test_default_home_follows_the_cli(monkeypatch, tmp_path):
    monkeypatch.setenv("MCP_OAUTH_HOME", str(tmp_path))
    assert _store.default_home() == tmp_path
    monkeypatch.setenv("MCP_OAUTH_HOME", "")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert _store.default_home() == tmp_path / "xdg" / "mcp-oauth"


_HOLDER = """
import sys, time
sys.path[:0] = sys.argv[3:]
from mcp_oauth._store import FileStore
s = FileStore(sys.argv[1]); s.lock("tokens-x"); print("held", flush=True)
time.sleep(float(sys.argv[2])); s.unlock("tokens-x")
"""


def test_lock_protocol_2_excludes_other_processes(tmp_path):
    home = tmp_path / "h"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(home), "1.0", *sys.path], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    lock = home / "locks" / "tokens-x.lock"
    body = json.loads(lock.read_text())
    assert body["pid"] == holder.pid and mode(lock) == 0o600
    s = _store.FileStore(home)
    t0 = time.monotonic()
    s.lock("tokens-x")  # waits for the holder
    assert time.monotonic() - t0 > 0.5
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    s.unlock("tokens-x")
    assert not lock.exists()
    holder.wait(timeout=10)


def test_stale_locks_are_broken(tmp_path):
    s = _store.FileStore(tmp_path)
    lock = tmp_path / "locks" / "k.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "created_ms": 0}))
    s.lock("k", deadline_s=2)  # the owner is gone
    s.unlock("k")
    lock.write_text("")  # protocol 1 leftover: no pid, old
    os.utime(lock, (time.time() - 10, time.time() - 10))
    s.lock("k", deadline_s=2)
    s.unlock("k")
    lock.write_text(json.dumps({"pid": os.getppid(), "created_ms": 0}))  # alive, fresh: busy
    with pytest.raises(_store.StoreError, match="k.lock"):
        s.lock("k", deadline_s=0.3)
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["k.lock"]


def test_http_url_rules():
    for ok in ["https://example.com/x", "http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]/x"]:
        _http.check_policy(ok)
    for bad in ["http://example.com/", "file:///etc/passwd", "ftp://x/", "nonsense", "http://10.0.0.1/"]:
        with pytest.raises(_http.HttpError) as e:
            _http.check_policy(bad)
        assert e.value.kind == "refused"


class _Server:
    """A loopback server answering every request with `reply`."""

    def __init__(self, reply: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            c, _ = self.sock.accept()
            c.recv(65536)
            c.sendall(self.reply)
            c.close()
        except OSError:
            pass


def test_http_no_redirects_and_body_cap():
    s = _Server(b"HTTP/1.1 302 Found\r\nlocation: https://elsewhere.example/\r\ncontent-length: 0\r\n\r\n")
    r = _http.send("GET", s.url + "/x", [], b"")
    assert r.status == 302 and r.header_values("Location") == ["https://elsewhere.example/"]
    big = b"x" * (_http.MAX_BODY + 10)
    s = _Server(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(big) + big)
    with pytest.raises(_http.HttpError) as e:
        _http.send("GET", s.url, [], b"")
    assert e.value.kind == "too-large"
    s = _Server(b"")  # accepts, then never answers in time
    with pytest.raises(_http.HttpError) as e:
        _http.send("GET", s.url, [], b"", total_timeout=0.5)
    assert e.value.kind in ("timeout", "connection")


def test_browser_rules():
    _browser.check_openable("https://a.example/x")
    for bad in ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "ms-settings:", "nonsense"]:
        with pytest.raises(ValueError):
            _browser.check_openable(bad)
    assert _browser.browser_command("open -a Safari:lynx") == ["open", "-a", "Safari"]
    assert _browser.browser_command("  ") is None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_listener_serves_many_requests_and_only_its_path():
    l = _callback.Listener(None)
    assert l.redirect_uri().startswith("http://127.0.0.1:")
    got = {}

    def client():
        got["fav"] = _get(f"http://127.0.0.1:{l.port}/favicon.ico")
        got["cb"] = _get(l.redirect_uri() + "?code=a&state=b")

    t = threading.Thread(target=client)
    t.start()
    assert l.next(5) == ("redirect", "code=a&state=b")
    l.close()
    t.join(timeout=10)
    assert got["fav"][0] == 404
    assert got["cb"][0] == 200 and "received the authorization response" in got["cb"][1]
    l = _callback.Listener(None)
    assert l.next(0.2) == ("timed-out", None)
    with pytest.raises(_callback.BindError) as e:
        _callback.Listener(l.port)
    assert e.value.port_in_use == l.port
    ev = threading.Event()
    ev.set()
    assert _callback.Listener(None, cancel=ev).next(5) == ("cancelled", None)
    assert l.parse_paste(l.redirect_uri() + "?code=x&state=y") == "code=x&state=y"
    for bad, why in [("hello", "not a URL"), ("https://evil.example/callback?code=x", "not the redirect"), (l.redirect_uri(), "no query")]:
        with pytest.raises(ValueError, match=why):
            l.parse_paste(bad)
    l.close()


def test_compiled_artifact_cache(tmp_path):
    import wasmtime

    config = wasmtime.Config()
    config.consume_fuel = True
    engine = wasmtime.Engine(config)
    wasm = _engine.component_bytes()
    _engine.load_component(engine, wasm, tmp_path / "cache")
    [art] = list((tmp_path / "cache").glob("engine-*-py*.cwasm"))
    assert mode(tmp_path / "cache") == 0o700 and mode(art) == 0o600
    assert _engine._read_cached(art) is not None
    data = bytearray(art.read_bytes())
    data[-100] ^= 0xFF  # a corrupt artifact is never deserialized
    art.write_bytes(bytes(data))
    assert _engine._read_cached(art) is None
    _engine.load_component(engine, wasm, tmp_path / "cache")  # recompiles and replaces
    assert _engine._read_cached(art) is not None
    os.chmod(art, 0o644)  # not private: not trusted
    assert _engine._read_cached(art) is None


def test_secrets_stay_out_of_reprs():
    assert "s3cret" not in repr(AccessToken("s3cret", None, []))
    assert "s3cret" not in repr(IdentityAssertion("https://idp.example/token", "s3cret"))
