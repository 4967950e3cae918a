"""The host imports on their own: store, lock protocol 2, DPoP proofs and
their keys, HTTP rules, browser, callback listener, no secrets in reprs
(the compiled-artifact cache: test_engine_start.py)."""

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

from mcp_oauth import _browser, _callback, _host, _http, _signer, _store
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
s = FileStore(sys.argv[1])
with s.lock("tokens-x"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
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
    held = s.lock("tokens-x")  # waits for the holder
    assert time.monotonic() - t0 > 0.5
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    held.release()
    assert not lock.exists()
    held.release()  # twice is harmless
    holder.wait(timeout=10)


def test_stale_locks_are_broken(tmp_path):
    s = _store.FileStore(tmp_path)
    lock = tmp_path / "locks" / "k.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "created_ms": 0}))
    with s.lock("k", deadline_s=2):  # the owner is gone
        pass
    lock.write_text("")  # protocol 1 leftover: no pid, old
    os.utime(lock, (time.time() - 10, time.time() - 10))
    with s.lock("k", deadline_s=2):
        assert lock.exists()
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": os.getppid(), "created_ms": 0}))  # alive, fresh: busy
    with pytest.raises(_store.StoreError, match="k.lock"):
        s.lock("k", deadline_s=0.3)
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["k.lock"]


_CLAIMS = '{"jti":"AAECAwQFBgcICQoLDA0ODw","htm":"POST","htu":"https://mcp.example/mcp","iat":1700000000,"ath":"x"}'


def _b64d(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _jwk(jws: str) -> dict:
    return json.loads(_b64d(jws.split(".")[0]))["jwk"]


def test_dpop_proof_verifies_with_the_key_in_its_header(tmp_path):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    keys = _signer.DpopKeys(_store.FileStore(tmp_path / "h"), cache={})
    jws = keys.proof("dpop-0a1b", _CLAIMS)
    parts = jws.split(".")
    assert len(parts) == 3 and all(p and "=" not in p and "+" not in p and "/" not in p for p in parts)
    header = json.loads(_b64d(parts[0]))
    assert list(header) == ["typ", "alg", "jwk"]
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256"
    assert sorted(header["jwk"]) == ["crv", "kty", "x", "y"]  # no "d"
    assert header["jwk"]["kty"] == "EC" and header["jwk"]["crv"] == "P-256"
    assert _b64d(parts[1]).decode() == _CLAIMS  # the claims exactly as given
    sig = _b64d(parts[2])
    assert len(sig) == 64  # r || s
    pub = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64d(header["jwk"]["x"]), "big"), int.from_bytes(_b64d(header["jwk"]["y"]), "big"), ec.SECP256R1()
    ).public_key()
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    forged = _signer._b64url(_CLAIMS.replace("POST", "GET").encode())
    with pytest.raises(InvalidSignature):
        pub.verify(der, f"{parts[0]}.{forged}".encode(), ec.ECDSA(hashes.SHA256()))
    # The stored key is PKCS#8, the one in the header, and nothing private leaks.
    pem = (tmp_path / "h" / "dpop-0a1b.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    key = serialization.load_pem_private_key(pem, password=None)
    assert _signer._b64url(key.public_key().public_numbers().x.to_bytes(32, "big")) == header["jwk"]["x"]
    d = _signer._b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    assert d not in jws
    for shown in (repr(keys), repr(keys._cache), str(keys._cache)):
        assert "PRIVATE" not in shown and d not in shown


def test_dpop_keys_one_per_key_id_0600_and_kept(tmp_path):
    home = tmp_path / "h"

    def jwk(key_id: str) -> dict:  # a new store object and an empty cache each time
        return _jwk(_signer.DpopKeys(_store.FileStore(home), cache={}).proof(key_id, _CLAIMS))

    first = jwk("dpop-aa")
    assert mode(home / "dpop-aa.pem") == 0o600 and mode(home) == 0o700
    assert jwk("dpop-aa") == first  # loaded from the file
    cached = _signer.DpopKeys(_store.FileStore(home), cache={})
    assert _jwk(cached.proof("dpop-aa", _CLAIMS)) == _jwk(cached.proof("dpop-aa", _CLAIMS)) == first
    assert jwk("dpop-bb") != first  # another key id, another key
    # Sessions making the same new key at once agree on one.
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(jwk("dpop-cc"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 4 and all(g == got[0] for g in got)
    assert sorted(p.name for p in home.iterdir()) == ["dpop-aa.pem", "dpop-bb.pem", "dpop-cc.pem", "locks"]
    # A corrupt key file is refused, never replaced (tests/vectors/key_files.json).
    (home / "dpop-dd.pem").write_bytes(b"not a key")
    with pytest.raises(_signer.DpopError, match="dpop-dd.pem"):
        jwk("dpop-dd")
    assert (home / "dpop-dd.pem").read_bytes() == b"not a key"


def test_dpop_key_files_are_opened_safely(tmp_path):
    # The record rules, with a 64 KiB cap: no symlink followed, no FIFO
    # blocking, only a regular file of ours.
    home = tmp_path / "h"
    good = _signer.DpopKeys(_store.FileStore(tmp_path / "other"), cache={})
    good.proof("dpop-src", _CLAIMS)
    valid = tmp_path / "other" / "dpop-src.pem"
    os.symlink(valid, tmp_path / "link.pem")
    _store.FileStore(home)
    os.symlink(valid, home / "dpop-ln.pem")
    os.mkfifo(home / "dpop-ff.pem")
    (home / "dpop-dir.pem").mkdir()
    (home / "dpop-big.pem").write_bytes(valid.read_bytes() + b"\n" * (_store.MAX_KEY_FILE_BYTES))
    for key_id, why in [
        ("dpop-ln", "symbolic link"),
        ("dpop-ff", "not a regular file"),
        ("dpop-dir", "not a regular file"),
        ("dpop-big", "larger than"),
    ]:
        keys = _signer.DpopKeys(_store.FileStore(home), cache={})
        t0 = time.monotonic()
        with pytest.raises(_signer.DpopError, match=why) as e:
            keys.proof(key_id, _CLAIMS)
        assert time.monotonic() - t0 < 5 and f"{key_id}.pem" in str(e.value)
    assert (home / "dpop-ln.pem").is_symlink() and stat.S_ISFIFO(os.lstat(home / "dpop-ff.pem").st_mode)
    # SEC1 ("EC PRIVATE KEY") is not what any host writes: refused too.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    sec1 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    (home / "dpop-sec1.pem").write_bytes(sec1)
    with pytest.raises(_signer.DpopError, match="PKCS#8"):
        _signer.DpopKeys(_store.FileStore(home), cache={}).proof("dpop-sec1", _CLAIMS)


def test_dpop_import_answers_and_fails_clearly(tmp_path, monkeypatch):
    host = _host.HostImpl(_store.FileStore(tmp_path / "h"), None, None, lambda p: None, None, False)
    ok = host.signer_dpop_proof(None, "dpop-ee", _CLAIMS)
    assert ok.tag == "ok" and json.loads(_b64d(ok.payload.split(".")[0]))["typ"] == "dpop+jwt"
    bad = host.signer_dpop_proof(None, "../escape", _CLAIMS)
    assert bad.tag == "err" and "refused storage key" in bad.payload
    # Without the jwt extra: a clear failure, no trap.
    fresh = _host.HostImpl(tmp_path / "h2", None, None, lambda p: None, None, False)
    fresh.dpop = _signer.DpopKeys(fresh.store, cache={})
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives", None)
    missing = fresh.signer_dpop_proof(None, "dpop-ff", _CLAIMS)
    assert missing.tag == "err" and "mcp-oauth[jwt]" in missing.payload
    assert not (tmp_path / "h2" / "dpop-ff.pem").exists()


def test_auth_headers_bearer_and_dpop():
    httpx = pytest.importorskip("httpx2")
    from mcp_oauth import McpOAuthError
    from mcp_oauth._auth import McpOAuth, _attach

    auth = McpOAuth.__new__(McpOAuth)  # no engine: the proof comes from a stand-in
    seen = []
    auth.dpop_proof = lambda method, url: seen.append((method, url)) or f"proof{len(seen)}"
    assert auth._headers("POST", "https://mcp.example/mcp?x=1", None) == {}
    assert auth._headers("POST", "https://mcp.example/mcp", AccessToken("t", None, [])) == {"Authorization": "Bearer t"}
    assert seen == []  # a bearer token asks for no proof
    h1 = auth._headers("POST", "https://mcp.example/mcp?x=1", AccessToken("t", None, [], dpop=True))
    h2 = auth._headers("POST", "https://mcp.example/mcp?x=1", AccessToken("t", None, [], dpop=True))
    assert h1 == {"Authorization": "DPoP t", "DPoP": "proof1"} and h2["DPoP"] == "proof2"  # fresh each time
    assert seen == [("POST", "https://mcp.example/mcp?x=1")] * 2
    auth.dpop_proof = lambda method, url: None
    with pytest.raises(McpOAuthError):
        auth._headers("GET", "https://mcp.example/mcp", AccessToken("t", None, [], dpop=True))
    # On the request: a caller's own DPoP header is left alone by bearer tries;
    # a proof this flow set is replaced or removed on the next try.
    r = httpx.Request("POST", "https://mcp.example/mcp", headers={"DPoP": "callers"})
    assert _attach(r, {"Authorization": "Bearer t"}, False) is False
    assert r.headers["Authorization"] == "Bearer t" and r.headers["DPoP"] == "callers"
    assert _attach(r, {"Authorization": "DPoP t", "DPoP": "p1"}, False) is True
    assert r.headers["Authorization"] == "DPoP t" and r.headers.get_list("DPoP") == ["p1"]
    assert _attach(r, {"Authorization": "Bearer u"}, True) is False
    assert r.headers["Authorization"] == "Bearer u" and "DPoP" not in r.headers
    assert _attach(r, {}, False) is False and "Authorization" not in r.headers


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


_JUNK = [
    b"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /callback?junk HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /callback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello",
    # The start of a TLS ClientHello (someone tried https://127.0.0.1:port).
    b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03" + bytes(range(32)) + b"\x00\x00\x02\x13\x01\x01\x00",
    b"GET /callback?code=x&state=wrong HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    None,  # connects and sends nothing
]


def _raw_request(port: int, data: bytes | None, out: list, deadline: float, connected=None) -> None:
    """One client: what came back, the HTTP answer or "closed"."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
    except OSError as e:
        out.append(f"connect failed: {e}")
        return
    finally:
        if connected is not None:
            connected.release()
    got = b""
    try:
        if data:
            s.sendall(data)
        while time.monotonic() < deadline:  # bounded by the deadline and the socket timeout
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        else:
            out.append("no answer before the deadline")
            return
    except socket.timeout:
        out.append("hung")
        return
    except OSError:
        pass  # a reset: a closed socket
    finally:
        s.close()
    out.append(got.decode("latin-1") if got.startswith(b"HTTP/1.1 ") else "closed")


def test_listener_outlasts_junk():
    l = _callback.Listener(None)
    deadline = time.monotonic() + 30
    junk_out: list = []
    connected = threading.Semaphore(0)
    junk = [
        threading.Thread(
            target=_raw_request, args=(l.port, _JUNK[i % len(_JUNK)], junk_out, deadline, connected), daemon=True
        )
        for i in range(150)
    ]
    real_out: list = []

    def real_request() -> None:
        # The real redirect comes once every junk connection is open.
        for _ in junk:
            if not connected.acquire(timeout=max(0.0, deadline - time.monotonic())):
                break
        _raw_request(l.port, b"GET /callback?code=real&state=good HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", real_out, deadline)

    real = threading.Thread(target=real_request, daemon=True)
    for t in junk:
        t.start()
    real.start()
    t0 = time.monotonic()
    seen = []
    for _ in range(1000):  # bounded; the engine would ignore every other query the same way
        tag, query = l.next(max(0.1, 10 - (time.monotonic() - t0)))
        assert tag == "redirect", f"the wait ended as {tag} after {len(seen)} arrivals"
        if query == "code=real&state=good":
            break
        seen.append(query)
    else:
        raise AssertionError("the real callback never came")
    took = time.monotonic() - t0
    assert took < 8, f"the real callback took {took:.1f} s"
    assert set(seen) <= {"junk", "code=x&state=wrong"}
    l.close()
    for t in junk + [real]:
        t.join(timeout=20)
    assert len(junk_out) == 150 and len(real_out) == 1
    assert real_out[0].startswith("HTTP/1.1 200") and "received the authorization response" in real_out[0]
    for answer in junk_out:
        assert answer == "closed" or answer.startswith(("HTTP/1.1 404", "HTTP/1.1 400")), answer
    # What the listener turned away itself (404s, 400s for non-HTTP) was counted.
    turned_away = sum(1 for a in junk_out if "Not found." in a or "Bad request." in a)
    assert l.junk >= turned_away >= 50


def test_listener_bounds_each_request():
    l = _callback.Listener(None)
    out: list = []
    deadline = time.monotonic() + 20
    huge = b"GET /callback?" + b"a" * (_callback.MAX_REQUEST_HEAD + 10) + b" HTTP/1.1\r\n\r\n"
    many_headers = b"GET /callback?code=h HTTP/1.1\r\n" + b"X-Pad: " + b"b" * 9000 + b"\r\n\r\n"
    threads = [
        threading.Thread(target=_raw_request, args=(l.port, data, out, deadline), daemon=True)
        for data in (huge, many_headers, None)
    ]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    assert l.next(_callback.READ_TIMEOUT_S + 1.5) == ("timed-out", None)  # nothing there was a callback
    for t in threads:
        t.join(timeout=10)
    assert time.monotonic() - t0 < _callback.READ_TIMEOUT_S + 5
    # Too big: answered at once; silent: closed after the read timeout.
    assert sorted(a.split("\r\n")[0] if a != "closed" else a for a in out) == [
        "HTTP/1.1 431 Request Header Fields Too Large",
        "HTTP/1.1 431 Request Header Fields Too Large",
        "closed",
    ]
    assert l.junk == 3
    l.close()


def test_secrets_stay_out_of_reprs():
    assert "s3cret" not in repr(AccessToken("s3cret", None, []))
    assert "s3cret" not in repr(AccessToken("s3cret", None, [], dpop=True))
    assert "s3cret" not in repr(IdentityAssertion("https://idp.example/token", "s3cret"))
