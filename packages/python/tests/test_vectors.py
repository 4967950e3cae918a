"""The host rules every host shares, checked against tests/vectors/*.json (the
Rust and Node hosts read the same files): lock verdicts and the break race,
record and key files on disk, sealed records, terminal text, DPoP-Nonce
signals, the silent fast path (its behaviour in McpOAuth: test_engine_start.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from mcp_oauth import _fast, _host, _http, _sealed, _signer, _store
from mcp_oauth._terminal import printable

ROOT = Path(os.environ.get("MCP_OAUTH_ROOT", Path(__file__).resolve().parents[3]))
VECTORS = ROOT / "tests" / "vectors"
HANDLED = [
    "dpop_nonce_signals.json",
    "fast_path.json",
    "key_files.json",
    "lock_verdicts.json",
    "record_files.json",
    "redis_keys.json",  # these two in test_redis_vectors.py
    "redis_urls.json",
    "sealed_records.json",
    "terminal_text.json",
]
# Rules this host does not carry out yet, each with the issue that brings it.
NOT_YET: dict = {}
DEAD_PID = 2147483000  # above any pid_max: never alive


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def cases(name: str) -> list:
    return [pytest.param(c, id=c["name"]) for c in load(name)["cases"]]


def test_every_vector_file_is_checked():
    # A new vector file fails here until this host checks it.
    present = sorted(p.name for p in VECTORS.glob("*.json"))
    unchecked = [n for n in present if n not in HANDLED and n not in NOT_YET]
    assert not unchecked, f"vector files the Python host does not check yet: {unchecked}"
    assert sorted(HANDLED + list(NOT_YET)) == present, f"vector files gone: {sorted(set(HANDLED) - set(present))}"


def _within(seconds: float, fn):
    """fn() on a thread, failing (not hanging) if it takes longer than `seconds`."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # surfaced below
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"blocked for more than {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# -- lock_verdicts.json ----------------------------------------------------------


def _lock_content(text: str) -> bytes:
    return text.replace("$LIVE", str(os.getpid())).replace("$DEAD", str(DEAD_PID)).encode()


def test_lock_ages_match_the_vectors():
    v = load("lock_verdicts.json")
    assert _store.STALE_AFTER_S == v["max_age_s"] and _store.UNWRITTEN_AFTER_S == v["unreadable_age_s"]


@pytest.mark.parametrize("case", cases("lock_verdicts.json"))
def test_lock_verdict(case):
    content = _lock_content(case["content"])
    assert _store.lock_verdict(content, case["age_s"], _store._pid_alive) == case["verdict"]
    assert _store.lock_verdict(content, case["age_s"] * 1.0, _store._pid_alive) == case["verdict"]


@pytest.mark.parametrize("case", cases("lock_verdicts.json"))
def test_lock_verdict_on_disk(tmp_path, case):
    s = _store.FileStore(tmp_path)
    lock = tmp_path / "locks" / "k.lock"
    content = _lock_content(case["content"])
    lock.write_bytes(content)
    when = time.time() - case["age_s"]
    os.utime(lock, (when, when))
    broken = s._break_if_stale(lock)
    if case["verdict"] == "stale":
        assert broken and not lock.exists()
    else:
        assert not broken and lock.read_bytes() == content
    assert [p.name for p in (tmp_path / "locks").iterdir() if ".stale-" in p.name] == []


def _race_setup(tmp_path):
    race = load("lock_verdicts.json")["race"]
    s = _store.FileStore(tmp_path)
    lock = tmp_path / "locks" / "k.lock"
    judged_content = _lock_content(race["judged"]["content"])
    lock.write_bytes(judged_content)
    when = time.time() - race["judged"]["age_s"]
    os.utime(lock, (when, when))
    judged = os.stat(lock)
    assert _store.lock_verdict(judged_content, time.time() - judged.st_mtime, _store._pid_alive) == "stale"
    return s, lock, (judged, judged_content), _lock_content(race["replacement"]["content"])


def _take_fresh(lock: Path, content: bytes) -> None:
    # Made beside the judged file before it goes, so it cannot reuse its inode.
    fresh = lock.with_name("fresh.tmp")
    fresh.write_bytes(content)
    os.replace(fresh, lock)


def test_lock_race_puts_a_fresh_lock_back(tmp_path):
    s, lock, judged, replacement = _race_setup(tmp_path)
    # Between the check and the rename, another process broke the judged
    # lock and took a fresh one.
    _take_fresh(lock, replacement)
    assert os.stat(lock).st_ino != judged[0].st_ino
    assert _store.break_judged(lock, *judged) is True
    assert lock.read_bytes() == replacement  # the load's "after"
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["k.lock"]
    # And the judged file itself is simply removed.
    lock.unlink()
    s, lock, judged, _ = _race_setup(tmp_path)
    assert _store.break_judged(lock, *judged) is True
    assert list((tmp_path / "locks").iterdir()) == []


def test_lock_race_with_the_judged_inode_reused(tmp_path):
    # The fresh lock may get the judged file's inode number at once (seen on
    # ext4/overlayfs): same device and inode, other content. Still put back.
    s, lock, (_, judged_content), replacement = _race_setup(tmp_path)
    lock.unlink()
    lock.write_bytes(replacement)
    reused = os.stat(lock)  # stands for a judged stat whose inode was reused
    assert _store.break_judged(lock, reused, judged_content) is True
    assert lock.read_bytes() == replacement
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["k.lock"]
    # Same identity and same content: the judged file, removed.
    assert _store.break_judged(lock, reused, replacement) is True
    assert list((tmp_path / "locks").iterdir()) == []


def test_lock_race_leaves_a_lock_taken_meanwhile(tmp_path, monkeypatch):
    s, lock, judged, replacement = _race_setup(tmp_path)
    _take_fresh(lock, replacement)
    real_rename = os.rename

    def rename_then_another_takes_it(src, dst):
        real_rename(src, dst)
        lock.write_bytes(b'{"pid":1,"created_ms":2}')  # a third process, after our rename

    monkeypatch.setattr(_store.os, "rename", rename_then_another_takes_it)
    assert _store.break_judged(lock, *judged) is True
    monkeypatch.undo()
    assert lock.read_bytes() == b'{"pid":1,"created_ms":2}'
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["k.lock"]


# -- record_files.json --------------------------------------------------------------


def test_record_cap_matches_the_vectors():
    assert _store.MAX_RECORD_BYTES == load("record_files.json")["max_bytes"]


def _make(path: Path, case: dict, elsewhere: Path) -> bytes | None:
    """Creates `path` as the case says; the bytes a read should give, if any."""
    kind = case["kind"]
    if kind in ("regular", "foreign_owner"):
        if "fill" in case:
            data = b'"' + b"a" * (case["fill"] - 2) + b'"'
        else:
            data = case["content"].encode()
        path.write_bytes(data)
        os.chmod(path, 0o600)
        if kind == "foreign_owner":
            os.chown(path, 65534, 65534)
        return data
    if kind == "symlink":
        elsewhere.write_bytes(case["target"].encode())
        os.symlink(elsewhere, path)
        return None
    if kind == "fifo":
        os.mkfifo(path, 0o600)
        return None
    if kind == "directory":
        path.mkdir()
        return None
    raise AssertionError(f"unknown kind {kind!r}")


@pytest.mark.parametrize("case", cases("record_files.json"))
def test_record_file(tmp_path, capsys, case):
    if case["kind"] == "foreign_owner" and (not hasattr(os, "geteuid") or os.geteuid() != 0):
        pytest.skip("chown to another user needs root")
    if case["kind"] == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    key = load("record_files.json")["key"]
    home = tmp_path / "h"
    s = _store.FileStore(home)
    path = home / f"{key}.json"
    data = _make(path, case, tmp_path / "elsewhere.json")
    got = _within(5, lambda: s.get(key))  # never blocks (a FIFO), never raises
    err = capsys.readouterr().err
    if case["expect"] == "read":
        assert got == data and err == ""
    else:
        assert case["expect"] == "absent"
        assert got is None
        assert "warning" in err and str(path) in err  # with a warning naming the file
        for secret in (case.get("content"), case.get("target")):
            assert not secret or secret not in err  # never its content
    # Reading refuses; it changes nothing.
    assert path.exists() or path.is_symlink()


# -- key_files.json -----------------------------------------------------------------

_CLAIMS = '{"jti":"AAECAwQFBgcICQoLDA0ODw","htm":"POST","htu":"https://mcp.example/mcp","iat":1700000000}'


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _thumbprint(jwk: dict) -> str:
    # RFC 7638: the required members, sorted, no whitespace.
    canon = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode()


def _host_for(home: Path) -> _host.HostImpl:
    host = _host.HostImpl(_store.FileStore(home), None, None, lambda p: None, None, False)
    host.dpop = _signer.DpopKeys(host.store, cache={})  # nothing loaded by another test
    return host


@pytest.mark.parametrize("case", cases("key_files.json"))
def test_key_file(tmp_path, case):
    pytest.importorskip("cryptography")
    key_id = load("key_files.json")["key_id"]
    home = tmp_path / "h"
    host = _host_for(home)
    path = home / f"{key_id}.pem"
    path.write_bytes(case["content"].encode())
    os.chmod(path, 0o600)
    before = os.stat(path)
    out = host.signer_dpop_proof(None, key_id, _CLAIMS)
    if case["expect"] == "refuse":
        assert out.tag == "err"
        assert str(path) in out.payload  # names the file
        for line in case["content"].splitlines():
            if len(line) > 8:
                assert line not in out.payload  # never its content
        # Left exactly as it was: not replaced, not rewritten; no temp files.
        after = os.stat(path)
        assert path.read_bytes() == case["content"].encode()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
        assert sorted(p.name for p in home.iterdir()) == sorted(["locks", path.name])
        again = host.signer_dpop_proof(None, key_id, _CLAIMS)  # refused every time, not cached
        assert again.tag == "err" and path.read_bytes() == case["content"].encode()
    else:
        assert out.tag == "ok", out.payload
        header = json.loads(_b64d(out.payload.split(".")[0]))
        jwk = header["jwk"]
        assert (jwk["x"], jwk["y"]) == (case["expect"]["x"], case["expect"]["y"])
        assert _thumbprint(jwk) == case["expect"]["jkt"]
        assert path.read_bytes() == case["content"].encode()


# -- sealed_records.json --------------------------------------------------------------

def _sealed_vectors() -> dict:
    return load("sealed_records.json")


def _vector_key() -> bytes:
    return base64.b64decode(_sealed_vectors()["key_base64"])


def test_sealed_key_id_matches_the_vectors():
    v = _sealed_vectors()
    assert _sealed.key_id(_vector_key()) == v["key_id"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in _sealed_vectors()["seal"]])
def test_sealed_vector_opens_and_is_produced(tmp_path, case):
    pytest.importorskip("cryptography")
    key, plain, sealed = _vector_key(), case["plaintext"].encode("utf-8"), case["sealed"].encode("utf-8")
    assert _sealed.open_sealed(key, case["kind"], case["key"], sealed) == plain
    assert _sealed.seal(key, case["kind"], case["key"], plain, bytes.fromhex(case["nonce_hex"])) == sealed
    # Through the store: the file on disk is the vector's bytes, read back as the plaintext.
    file = _store.FileStore(tmp_path / "h")
    store = _sealed.SealedStore(file, key)
    if case["kind"] == "record":
        (file.dir / f"{case['key']}.json").write_bytes(sealed)
        assert store.get(case["key"]) == plain
    else:
        (file.dir / f"{case['key']}.pem").write_bytes(sealed)
        os.chmod(file.dir / f"{case['key']}.pem", 0o600)
        assert store.get_key(case["key"]) == plain
    assert store.secrets().unreadable == 0


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in _sealed_vectors()["absent"]])
def test_sealed_vector_reads_as_absent(tmp_path, capsys, case):
    pytest.importorskip("cryptography")
    key, sealed = _vector_key(), case["sealed"].encode("utf-8")
    assert _sealed.open_sealed(key, case["kind"], case["key"], sealed) is None
    file = _store.FileStore(tmp_path / "h")
    store = _sealed.SealedStore(file, key)
    if case["kind"] == "record":
        (file.dir / f"{case['key']}.json").write_bytes(sealed)
        assert _within(5, lambda: store.get(case["key"])) is None
    else:
        (file.dir / f"{case['key']}.pem").write_bytes(sealed)
        os.chmod(file.dir / f"{case['key']}.pem", 0o600)
        assert _within(5, lambda: store.get_key(case["key"])) is None
    # Counted as unreadable when the file store hands it over (a record must
    # be JSON to be read at all; a key file is any bytes).
    try:
        handed = case["kind"] == "key" and bool(sealed) or json.loads(sealed) is not None
    except ValueError:
        handed = False
    assert store.secrets().unreadable == (1 if handed else 0)
    assert "at-123" not in capsys.readouterr().err  # never the content


# -- fast_path.json ----------------------------------------------------------------


def test_fast_path_has_nothing_stored_cases():
    assert sum(c["nothing_stored"] for c in load("fast_path.json")["cases"]) >= 2


@pytest.mark.parametrize("case", cases("fast_path.json"))
def test_fast_path(tmp_path, case):
    skew, url = load("fast_path.json")["skew_ms"], case["server_url"]
    # Every record is under the engine's own name for it.
    b, t = _fast.key("binding", url), _fast.key("tokens", "https://mcp.example.com/mcp", "https://auth.example.com")
    assert set(case["records"]) <= {b, t, _fast.key("metadata", "https://auth.example.com")}
    records = {k: v.encode("utf-8") for k, v in case["records"].items()}
    file = _store.FileStore(tmp_path / "plain")
    stores = [records, file]  # the rule itself, then through the store seam
    if _importable("cryptography"):
        stores.append(_sealed.SealedStore(_store.FileStore(tmp_path / "sealed"), os.urandom(32)))
    for store in stores[1:]:
        for k, v in records.items():
            store.set(k, v)
    for store in stores:
        got = _fast.from_store(store, url, skew, case["now"])
        want = case["serve"]
        nothing = got is _fast.NOTHING_STORED
        # A file store reads a record that is not JSON as absent (it warns),
        # and hands the engine the same: nothing stored, through that store.
        hidden = store is not records and any(store.get(k) is None for k in records)
        assert nothing == case["nothing_stored"] or (nothing and hidden), type(store).__name__
        if nothing:
            assert want is None
            continue
        if got is None or want is None:
            assert got is want, type(store).__name__
            continue
        assert (got.token, got.expires_at, got.refresh_at, got.scopes) == (
            want["access_token"], want["expires_at"], want["refresh_at"], want["scopes"]), type(store).__name__
        assert got.refresh_at > case["now"] and "at-1" not in repr(got)


# -- terminal_text.json -------------------------------------------------------------


@pytest.mark.parametrize("case", cases("terminal_text.json"))
def test_printable(case):
    assert printable(case["input"]) == case["printable"]


def test_notices_reach_stderr_escaped(capsys):
    from wasmtime.component import Variant

    from mcp_oauth._engine import record

    hostile = "\x1b]52;c;cHduZWQ=\x07\r\nFAKE: ok \x9b31m"
    for ev in [
        Variant("browser-open-failed", record(url=f"https://as.example/authorize?x={hostile}", reason=hostile)),
        Variant("callback-rejected", hostile),
        Variant("storage-warning", record(record_kind="tokens", message=hostile)),
        Variant("legacy-issuer-differs", record(origin=hostile, issuer=hostile)),
    ]:
        p = _host.describe_event(ev)
        assert "\x1b" not in p.message and "\x9b" not in p.message and "\r" not in p.message
        _host.default_progress(p)  # browser-open-failed always prints
    err = capsys.readouterr().err
    assert "\\u{1b}]52;c;cHduZWQ=\\u{7}\\u{d}\\u{a}FAKE: ok \\u{9b}31m" in err
    assert not any(c in err for c in "\x1b\x07\r\x9b")
    assert "Open this URL yourself:\n\n  https://as.example/" in err  # the layout's own lines stay


def test_auth_failed_message_is_escaped_but_oauth_fields_are_not():
    from wasmtime.component import Variant

    from mcp_oauth._engine import record

    hostile = "bad\x1b[2J"
    err = _host.error_from(
        Variant("failed", record(kind="token-request-failed", message=f"the server said {hostile}",
                                 oauth=record(error="invalid_grant", description=hostile, status=400)))
    )
    assert str(err) == "the server said bad\\u{1b}[2J"
    assert err.oauth_description == hostile  # as sent, for code that inspects it


# -- dpop_nonce_signals.json --------------------------------------------------------


@pytest.mark.parametrize("case", cases("dpop_nonce_signals.json"))
def test_dpop_nonce_signal(case):
    headers = [tuple(h) for h in case["headers"]]
    want = (case["expect"]["signal"], case["expect"]["nonce"])
    retried = case.get("retried", False)
    assert _http.dpop_nonce_signal(case["status"], headers, retried) == want
    # As the auth flow reads them from httpx2 / httpx responses.
    for mod in ("httpx2", "httpx"):
        if mod in sys.modules or _importable(mod):
            h = __import__(mod).Headers(headers)
            assert _http.dpop_nonce_signal(case["status"], h.multi_items(), retried) == want


def _importable(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


class _StandIn:
    """An McpOAuth without an engine: records the engine calls the flow makes."""

    def __init__(self):
        from mcp_oauth._auth import McpOAuth

        self.auth = McpOAuth.__new__(McpOAuth)
        self.calls: list = []
        self.auth._silent = self.auth._fresh = lambda: None  # no token: no headers, no proof
        self.auth._mode = "interactive"

        def call(name, *args):
            self.calls.append((name, args))
            return None  # the engine answers "unchanged"

        self.auth._call = call

    def responses(self):
        from mcp_oauth._engine import field

        return [
            (field(a[0], "status"), list(field(a[0], "www_authenticate")), field(a[0], "sent_token"),
             field(a[0], "dpop_nonce"), a[1])
            for n, a in self.calls if n == "on-response"
        ]


@pytest.mark.parametrize("case", cases("dpop_nonce_signals.json"))
def test_auth_flow_feeds_the_signal_to_the_engine(case):
    httpx = pytest.importorskip("httpx2")
    import anyio

    from mcp_oauth._token import AccessToken

    headers = [tuple(h) for h in case["headers"]]
    signal, nonce = case["expect"]["signal"], case["expect"]["nonce"]
    retried = case.get("retried", False)
    for run in ("sync", "async"):
        s = _StandIn()
        # A retried case: a 401 first, for which the engine hands out a token;
        # the case's response answers the request sent again with it.
        fresh = AccessToken("t-2", None, [])
        challenges = []
        if retried:
            s.auth._challenge = lambda *a: challenges.append(a) or fresh
        req = httpx.Request("POST", "https://mcp.example/mcp", content=b"{}")
        first = httpx.Response(401, headers=[("www-authenticate", "Bearer")], request=req)
        resp = httpx.Response(case["status"], headers=headers, request=req)
        responses = [first, resp] if retried else [resp]
        if run == "sync":
            flow = s.auth.sync_auth_flow(req)
            next(flow)
            for r in responses[:-1]:
                flow.send(r)
            with pytest.raises(StopIteration):
                flow.send(responses[-1])
        else:

            async def drive():
                flow = s.auth.async_auth_flow(req)
                await flow.__anext__()
                for r in responses[:-1]:
                    await flow.asend(r)
                with pytest.raises(StopAsyncIteration):
                    await flow.asend(responses[-1])

            anyio.run(drive)
        got = s.responses()
        sent = "t-2" if retried else None
        if signal == "challenge" and not retried:
            assert [(g[0], g[3], g[4]) for g in got] == [(case["status"], nonce, "interactive")], run
        elif signal == "challenge":
            # A Bearer request is sent again once, never twice: the second
            # refusal goes back to the caller, and nothing is noted.
            assert [c[0] for c in challenges] == [401] and got == [], run
        elif signal == "note":
            # The Rust host's note_success: that status, no challenge, the
            # token sent after a retry.
            assert got == [(case["status"], [], sent, nonce, "silent")], run
        else:
            assert got == [], run
