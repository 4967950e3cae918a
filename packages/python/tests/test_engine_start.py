"""How McpOAuth reaches its engine: the silent fast path (served from the
store, the engine never instantiated; after a 401 the engine answers), the
lazy import of wasmtime and the background load, and the compiled engine
(the cache, the wheel's ahead-of-time artifact, Winch on a first start with
the optimized artifact cached for later)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from mcp_oauth import AuthorizationRequired, EngineError, FileStore, McpOAuth, _cache, _engine, _fast, _session

from conftest import Browser, mcp_post, no_browser

URL = "https://mcp.example.com/mcp"
RESOURCE, ISSUER = URL, "https://auth.example.com"


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def now_ms() -> int:
    return int(time.time() * 1000)


def seed(store, expires_in_s: float = 3600, lifetime_s: float | None = 3600, dpop: str | None = None, token="at-1"):
    """The records the engine writes for a Bearer grant (tests/vectors/fast_path.json)."""
    binding = {"server_url": URL, "prm": {"resource": RESOURCE, "authorization_servers": [ISSUER],
               "scopes_supported": None, "dpop_bound_access_tokens_required": None},
               "resource_metadata_url": None, "issuer": ISSUER, "legacy": False}
    tokens = {"resource": RESOURCE, "issuer": ISSUER, "tokens": {
        "access_token": token, "expires_at": now_ms() + int(expires_in_s * 1000), "refresh_token": "rt-1",
        "scope": "mcp:tools", "client_id": "c", "dpop_key": dpop,
        "lifetime_ms": None if lifetime_s is None else int(lifetime_s * 1000)}}
    for kind, parts, rec in (("binding", [URL], binding), ("tokens", [RESOURCE, ISSUER], tokens)):
        store.set(_fast.key(kind, *parts), b'{"v":1,"record":' + json.dumps(rec, separators=(",", ":")).encode() + b"}")


class FakeEngine:
    """Stands in for the engine session: records every call."""

    def __init__(self, answer=None):
        self.calls: list = []
        self.answer = answer

    def call(self, name, *args, then=None):
        self.calls.append(name if name != "on-response" else (name, _engine.field(args[0], "status")))
        out = self.answer(name) if self.answer else None
        if then is not None:
            then(out)
        return out


def engine_token(token: str, refresh_in_s: float = 3000):
    at = now_ms() + int(refresh_in_s * 1000)
    return _engine.record(token=token, expires_at=at + 60_000, refresh_at=at, scopes=["mcp:tools"], dpop=False)


def with_fake(auth: McpOAuth, answer=None) -> FakeEngine:
    fake = FakeEngine(answer)
    auth._s._open = lambda: fake  # what opening the engine would give
    auth._s._engine = None
    return fake


# -- the fast path in McpOAuth ---------------------------------------------------------


def test_a_fresh_stored_token_is_served_without_the_engine(tmp_path):
    store = FileStore(tmp_path / "s")
    seed(store)
    auth = McpOAuth(URL, store=store, open_browser=no_browser)
    fake = with_fake(auth)
    t = auth.access_token()
    assert (t.token, t.scopes, t.dpop) == ("at-1", ["mcp:tools"], False)
    assert auth.token() == "at-1" and fake.calls == [] and not auth._s.opened
    assert "at-1" not in repr(t) and "at-1" not in repr(auth)


def test_wasmtime_is_not_even_imported(tmp_path):
    home = tmp_path / "h"
    seed(FileStore(home))
    code = (
        "import sys, mcp_oauth\n"
        "assert 'wasmtime' not in sys.modules, 'import'\n"
        f"a = mcp_oauth.McpOAuth({URL!r}, home={str(home)!r}, secrets='file')\n"
        "assert a.token() == 'at-1' and a.token() == 'at-1'\n"
        "assert 'wasmtime' not in sys.modules and not a._s.opened, 'token'\n"
        "assert not any(t.name.startswith('mcp-oauth') for t in __import__('threading').enumerate()), 'a load started'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]


def test_after_a_401_the_engine_answers(tmp_path):
    store = FileStore(tmp_path / "s")
    seed(store)
    auth = McpOAuth(URL, store=store, open_browser=no_browser)
    fake = with_fake(auth, lambda name: engine_token("at-2") if name == "authorize" else None)
    assert auth.token() == "at-1" and fake.calls == []
    assert auth._challenge(401, ['Bearer error="invalid_token"'], "at-1") is None  # the engine: unchanged
    assert fake.calls == [("on-response", 401)]
    assert auth.token() == "at-2"  # not the stored token again: the engine's answer
    assert fake.calls == [("on-response", 401), "authorize"]
    assert auth.token() == "at-2" and len(fake.calls) == 2  # then served until its refresh_at
    auth._note_success(200, None, "n")  # leaves the engine's tokens alone
    assert auth.token() == "at-2" and fake.calls[-1] == ("on-response", 200) and len(fake.calls) == 3
    auth.retry()  # may change them: forgotten
    assert auth.token() == "at-2" and fake.calls[-2:] == ["retry", "authorize"]


def test_only_the_first_call_reads_the_store(tmp_path):
    store = FileStore(tmp_path / "s")
    seed(store, expires_in_s=0.5, lifetime_s=None)  # margin 60 s: stale already
    auth = McpOAuth(URL, store=store, open_browser=no_browser, expiry_skew=0.2)
    fake = with_fake(auth, lambda name: engine_token("at-2"))
    assert auth.token() == "at-1" and fake.calls == []  # fresh under a 0.2 s margin
    time.sleep(0.35)
    assert auth.token() == "at-2" and fake.calls == ["authorize"]  # stale: the engine, not the store
    seed(store)
    assert auth.token() == "at-2" and fake.calls == ["authorize"]


@pytest.mark.parametrize("why", ["stale", "dpop", "no-expiry", "machine", "skew", "unreadable", "other-url"])
def test_what_the_fast_path_leaves_to_the_engine(tmp_path, why):
    store = FileStore(tmp_path / "s")
    seed(store, expires_in_s=90 if why == "skew" else 30 if why == "stale" else 3600,
         dpop="dpop-0123" if why == "dpop" else None, lifetime_s=3600)
    if why == "no-expiry":
        rec = store.get(_fast.key("tokens", RESOURCE, ISSUER)).replace(b'"expires_at":', b'"expires_at":null,"x":')
        store.set(_fast.key("tokens", RESOURCE, ISSUER), rec)
    kw: dict = {"open_browser": no_browser}
    if why == "machine":
        kw.update(grant="client-credentials", client_id="c")
    if why == "skew":
        kw.update(expiry_skew=120)
    if why == "unreadable":
        store.get = lambda key: (_ for _ in ()).throw(OSError("no"))
    auth = McpOAuth(URL + ("/other" if why == "other-url" else ""), store=store, **kw)
    fake = with_fake(auth, lambda name: engine_token("at-2"))
    assert auth.token() == "at-2" and fake.calls == ["authorize"]


def test_threads_share_one_read_and_no_engine(tmp_path):
    store = FileStore(tmp_path / "s")
    seed(store)
    reads = []
    get = store.get
    store.get = lambda key: reads.append(key) or get(key)
    # McpOAuth(...) reads the store once (binding, tokens) to decide on the
    # engine; the token it finds answers the first calls: no second read.
    auth = McpOAuth(URL, store=store, open_browser=no_browser)
    fake = with_fake(auth)
    assert len(reads) == 2
    n, got = 16, []
    start = threading.Barrier(n)

    def run():
        start.wait(10)
        got.append(auth.token())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got == ["at-1"] * n and fake.calls == [] and len(reads) == 2


def test_engine_needed_starts_the_load_early(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(_session, "prewarm", lambda cache: started.append(cache))
    store = FileStore(tmp_path / "s")
    McpOAuth(URL, store=store, open_browser=no_browser, cache_dir=tmp_path / "c")
    assert started == [tmp_path / "c"]  # nothing stored: the engine will be needed
    seed(store)
    McpOAuth(URL, store=store, open_browser=no_browser, cache_dir=tmp_path / "c")
    assert started == [tmp_path / "c"]  # a fresh token: no load


def test_a_failed_load_is_an_engine_error_and_tried_again(tmp_path, monkeypatch):
    monkeypatch.setattr(_engine, "component_bytes", lambda: (_ for _ in ()).throw(_engine.EngineTrap("missing")))
    with pytest.raises(EngineError, match="missing"):
        _session.runtime(tmp_path / "nope")
    assert tmp_path / "nope" not in _session._loads  # the next call tries again


# -- against the demo server ----------------------------------------------------------


def test_fast_and_engine_tokens_have_the_same_shape_and_a_401_reaches_the_engine(demo, home):
    browser = Browser()
    try:
        first = McpOAuth(demo.url, home=home, open_browser=browser).access_token()
        auth = McpOAuth(demo.url, home=home, open_browser=browser)
        assert auth.access_token() == first and not auth._s.opened  # same AccessToken, no engine
        demo.revoke()
        import httpx2

        with httpx2.Client(auth=auth) as c:
            r = c.post(demo.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert r.status_code == 200 and auth._s.opened and len(browser.opened) == 2
        assert auth.token() != first.token and mcp_post(demo.url, auth.token()) == 200
    finally:
        browser.close()


def test_silent_instance_on_an_empty_store(demo, home):
    # Nothing stored: a silent call gets the engine's answer without the engine.
    auth = McpOAuth(demo.url, home=home, open_browser=no_browser, interactive=False)
    with pytest.raises(AuthorizationRequired) as fast:
        auth.token()
    assert not auth._s.opened
    # The engine's own answer is the same error.
    other = McpOAuth(demo.url, home=home, open_browser=no_browser, interactive=False)
    other.status()
    with pytest.raises(AuthorizationRequired) as slow:
        other.token()
    assert other._s.opened and str(slow.value) == str(fast.value)
    # The answer is not kept: once another instance signs in, the next call serves its token.
    browser = Browser()
    try:
        signed_in = McpOAuth(demo.url, home=home, open_browser=browser).token()
    finally:
        browser.close()
    assert auth.token() == signed_in and not auth._s.opened


# -- the compiled-artifact cache ---------------------------------------------------------


def test_compiled_artifact_cache(tmp_path):
    import wasmtime

    engine = wasmtime.Engine(_cache.config())
    wasm = _engine.component_bytes()
    _cache.load_component(engine, wasm, tmp_path / "cache")
    [art] = list((tmp_path / "cache").glob("engine-*-py*.cwasm"))
    assert mode(tmp_path / "cache") == 0o700 and mode(art) == 0o600
    assert _cache.read_cached(art) is not None
    data = bytearray(art.read_bytes())
    data[-100] ^= 0xFF  # a corrupt artifact is never deserialized
    art.write_bytes(bytes(data))
    assert _cache.read_cached(art) is None
    _cache.load_component(engine, wasm, tmp_path / "cache")  # recompiles and replaces
    assert _cache.read_cached(art) is not None
    os.chmod(art, 0o644)  # not private: not trusted
    assert _cache.read_cached(art) is None
    art.unlink()
    os.mkfifo(art, 0o600)  # neither blocks nor is read
    assert _within_s(2, lambda: _cache.read_cached(art)) is None
    # A cache dir that is a symlink (even to a private dir of ours) is not used.
    os.symlink(tmp_path / "cache", tmp_path / "link")
    assert _cache.usable_dir(tmp_path / "cache") and not _cache.usable_dir(tmp_path / "link")
    os.chmod(tmp_path / "cache", 0o755)  # opened up: closed again, as the Rust host does
    assert _cache.usable_dir(tmp_path / "cache") and mode(tmp_path / "cache") == 0o700


def test_the_wheel_carries_an_engine_compiled_ahead_of_time(tmp_path):
    wasm = _engine.component_bytes()
    if _cache.read_shipped(wasm) is None:
        pytest.skip(f"no ahead-of-time artifact for {_cache.PLATFORM} in this wheel")
    engine, comp, baseline = _cache.load(wasm, tmp_path / "cache")
    assert not baseline and not list((tmp_path / "cache").iterdir())  # used as it is: nothing compiled, nothing cached
    good = _cache.SHIPPED.read_bytes()
    bad = tmp_path / "shipped.cwasm"
    for damaged in (good[:-1] + bytes([good[-1] ^ 1]), good.replace(good[8:40], bytes(32), 1)):
        bad.write_bytes(damaged)  # corrupt; for another component
        bad.chmod(0o644)
        assert _cache.read_shipped(wasm, bad) is None
    bad.write_bytes(good)
    assert _cache.read_shipped(wasm, bad) is not None
    bad.chmod(0o666)  # writable by others: not trusted
    assert _cache.read_shipped(wasm, bad) is None


def test_first_start_uses_winch_and_caches_the_optimized_engine(tmp_path, monkeypatch):
    if not _cache.WINCH_OK:
        pytest.skip("Winch is used on x86-64 only")
    monkeypatch.setattr(_cache, "read_shipped", lambda wasm: None)  # as on a platform the wheel has none for
    wasm = _engine.component_bytes()
    engine, comp, baseline = _cache.load(wasm, tmp_path / "cache")
    assert baseline  # nothing cached: Winch for this process
    for t in list(_cache._optimizing):
        t.join(60)
    art = _cache.artifact_path(wasm, tmp_path / "cache")
    assert _cache.read_cached(art) is not None and mode(art) == 0o600
    engine, comp, baseline = _cache.load(wasm, tmp_path / "cache")
    assert not baseline  # the next start deserializes the optimized one
    # Without a cache: Winch each time, nothing written.
    assert _cache.load(wasm, None)[2] and not (tmp_path / "none").exists()


def _within_s(seconds: float, fn):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"still blocked after {seconds} s"
    return out[0]
