"""The storage seam's contract, run against every Store this package has:
the file store, the sealed store over it, and the shared Redis store, plain
and sealed (on the session's redis-server). Then what only the sealed file
store does: nothing readable on disk, and tampering reads as absent."""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from pathlib import Path

import pytest

from mcp_oauth import FileStore, Lock, SealedStore, Secrets, Store, StoreError
from mcp_oauth import _sealed

pytest.importorskip("cryptography")

TOKEN = b'{"v":1,"record":{"tokens":{"access_token":"at-SECRET-123","refresh_token":"rt-SECRET-456"}}}'
PEM = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49SECRETSECRET\n-----END PRIVATE KEY-----\n"


def _file(home: Path) -> Store:
    return FileStore(home)


def _sealed_over_file(home: Path, key: bytes = bytes(range(32))) -> Store:
    return SealedStore(FileStore(home), key, key_from="a test key")


def _redis(key):
    def make(server) -> "callable":
        from mcp_oauth import RedisStore
        from mcp_oauth._redis_url import parse_store_url

        url = parse_store_url(server.url())  # a fresh prefix: every test its own store
        return lambda: RedisStore(url, key=key, key_from="a test key")

    return make


STORES = [
    pytest.param(_file, id="file"),
    pytest.param(_sealed_over_file, id="sealed"),
    pytest.param(_redis(None), id="redis"),
    pytest.param(_redis(bytes(range(32))), id="redis-sealed"),
]


@pytest.fixture(params=STORES)
def make(request, tmp_path):
    """make() -> a new store object on the same store (as another process would open it)."""
    if request.param in (_file, _sealed_over_file):
        home = tmp_path / "store"
        return lambda: request.param(home)
    return request.param(request.getfixturevalue("redis_server"))


def test_records_round_trip(make):
    s = make()
    assert isinstance(s, Store)
    assert s.get("tokens-a") is None
    s.set("tokens-a", TOKEN)
    assert s.get("tokens-a") == TOKEN
    assert make().get("tokens-a") == TOKEN  # another store object, the same directory
    s.set("tokens-a", b'{"v":1,"record":{}}')
    assert make().get("tokens-a") == b'{"v":1,"record":{}}'
    s.delete("tokens-a")
    s.delete("tokens-a")  # absent is fine
    assert s.get("tokens-a") is None and make().get("tokens-a") is None


def test_keys_are_flat_names(make):
    s = make()
    for bad in ["../x", "a/b", "", ".hidden", "a.json", "x\0y", "/etc/passwd", "a" * 129, "é"]:
        for call in (lambda: s.get(bad), lambda: s.set(bad, b"{}"), lambda: s.delete(bad),
                     lambda: s.get_key(bad), lambda: s.put_key_once(bad, PEM), lambda: s.delete_key(bad),
                     lambda: s.lock(bad)):
            with pytest.raises(StoreError):
                call()


def test_list_by_prefix(make):
    s = make()
    assert s.list() == [] and s.list("binding-") == []
    for k in ["binding-b", "tokens-x", "binding-a", "client-1"]:
        s.set(k, b'{"v":1}')
    s.put_key_once("dpop-abc", PEM)
    assert s.list("binding-") == ["binding-a", "binding-b"]
    assert s.list() == ["binding-a", "binding-b", "client-1", "tokens-x"]  # key files are not records
    assert s.list("nothing-") == []
    s.delete("binding-a")
    assert make().list("binding-") == ["binding-b"]


def test_key_files_first_writer_wins(make):
    s = make()
    assert s.get_key("dpop-k1") is None
    assert s.put_key_once("dpop-k1", PEM) == PEM
    other = PEM.replace(b"SECRETSECRET", b"OTHEROTHER12")
    assert make().put_key_once("dpop-k1", other) == PEM  # kept, never replaced
    assert make().get_key("dpop-k1") == PEM
    # Many writers at once agree on one.
    got: list = []
    values = [PEM.replace(b"SECRETSECRET", f"RACE{i:08d}".encode()) for i in range(6)]
    threads = [threading.Thread(target=lambda v=v: got.append(make().put_key_once("dpop-k2", v))) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 6 and len(set(got)) == 1 and got[0] in values
    assert make().get_key("dpop-k2") == got[0]
    s.delete_key("dpop-k1")
    s.delete_key("dpop-k1")
    assert s.get_key("dpop-k1") is None


def test_lock_excludes_and_cannot_be_forgotten(make):
    s, other = make(), make()
    with s.lock("tokens-a") as held:
        assert isinstance(held, Lock) and held.held
        with pytest.raises(StoreError, match="tokens-a"):
            other.lock("tokens-a", deadline_s=0.3)  # bounded wait, then an error naming the lock
        got: list = []
        t = threading.Thread(target=lambda: got.append(other.lock("tokens-a", deadline_s=10)))
        t.start()
        time.sleep(0.2)
        assert got == []  # still waiting
    t.join(timeout=10)
    assert len(got) == 1 and got[0].held
    got[0].release()
    got[0].release()  # twice is harmless
    # A lock dropped without release is released when collected.
    s.lock("tokens-b")
    gc.collect()
    with other.lock("tokens-b", deadline_s=1):
        pass


def test_id_and_secrets(make, tmp_path):
    a, b = make(), make()
    assert a.id == b.id and isinstance(a.id, str) and a.id
    info = a.secrets()
    assert isinstance(info, Secrets) and info.mode in ("plain", "sealed") and info.problem is None
    assert "SECRET" not in repr(a) + str(info)


def test_writes_are_atomic(make):
    s = make()
    small, big = b'{"v":1,"record":"a"}', json.dumps({"v": 1, "record": "b" * 200_000}).encode()
    s.set("tokens-a", small)
    stop, seen = threading.Event(), set()

    def read() -> None:
        r = make()
        while not stop.is_set():
            seen.add(r.get("tokens-a"))

    t = threading.Thread(target=read)
    t.start()
    for i in range(30):
        s.set("tokens-a", big if i % 2 else small)
    stop.set()
    t.join(timeout=10)
    assert seen <= {small, big}  # never a mix, never absent


# -- the sealed store only ------------------------------------------------------------


def _files(home: Path) -> dict:
    return {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}


def test_sealed_store_keeps_nothing_readable(tmp_path):
    home = tmp_path / "store"
    s = _sealed_over_file(home)
    s.set("tokens-a", TOKEN)
    s.put_key_once("dpop-k", PEM)
    for path, data in _files(home).items():
        for secret in (b"SECRET", b"PRIVATE KEY", b"access_token"):
            assert secret not in data, path
    assert json.loads((home / "tokens-a.json").read_bytes())["kid"] == _sealed.key_id(bytes(range(32)))
    # Every write has a fresh nonce.
    s.set("tokens-a", TOKEN)
    first = (home / "tokens-a.json").read_bytes()
    s.set("tokens-a", TOKEN)
    assert (home / "tokens-a.json").read_bytes() != first


def test_sealed_tampering_reads_as_absent(tmp_path, capsys):
    home = tmp_path / "store"
    s = _sealed_over_file(home)
    s.set("tokens-a", TOKEN)
    s.set("tokens-b", b'{"v":1,"record":"b"}')
    s.put_key_once("dpop-k", PEM)
    blob = (home / "tokens-a.json").read_bytes()
    # Moved over another record's name, or over a key file's.
    (home / "tokens-b.json").write_bytes(blob)
    (home / "dpop-k.pem").write_bytes(blob)
    fresh = _sealed_over_file(home)
    assert fresh.get("tokens-b") is None and fresh.get_key("dpop-k") is None
    # One bit flipped in the ciphertext, truncated, emptied, garbage.
    env = json.loads(blob)
    flipped = dict(env, ct=("B" if env["ct"][0] != "B" else "C") + env["ct"][1:])
    for bad in [json.dumps(flipped, separators=(",", ":")).encode(), blob[: len(blob) // 2], b"",
                b"\x00\xff not json", blob.replace(b'"sealed":1', b'"sealed":true')]:
        (home / "tokens-a.json").write_bytes(bad)
        assert _sealed_over_file(home).get("tokens-a") is None
    # Another store key: absent, and counted for status.
    other = _sealed_over_file(home, key=bytes(32))
    (home / "tokens-a.json").write_bytes(blob)
    assert other.get("tokens-a") is None
    info = other.secrets()
    assert info.unreadable == 3 and "3 records cannot be read; sign in again" in info.problem
    assert "SECRET" not in capsys.readouterr().err


def test_sealed_key_file_of_another_key_is_replaced(tmp_path):
    # After a lost store key, the DPoP key file sealed with the old one is
    # useless (the token bound to it reads as absent too): a new sign-in
    # replaces it instead of failing forever.
    home = tmp_path / "store"
    _sealed_over_file(home, key=bytes(32)).put_key_once("dpop-k", PEM)
    s = _sealed_over_file(home)
    assert s.get_key("dpop-k") is None
    new = PEM.replace(b"SECRETSECRET", b"NEWNEWNEWNEW")
    assert s.put_key_once("dpop-k", new) == new
    assert _sealed_over_file(home).get_key("dpop-k") == new
    assert _sealed_over_file(home).put_key_once("dpop-k", PEM) == new  # and kept from then on
    assert sorted(p.name for p in home.iterdir()) == ["dpop-k.pem", "locks"]


def test_sealed_store_without_a_key_reads_absent_and_writes_nothing(tmp_path):
    home = tmp_path / "store"
    _sealed_over_file(home).set("tokens-a", TOKEN)
    before = _files(home)
    s = SealedStore(FileStore(home), None, key_from="nowhere")
    assert s.get("tokens-a") is None and s.secrets().unreadable == 1
    with pytest.raises(StoreError, match="no store key"):
        s.set("tokens-a", TOKEN)
    with pytest.raises(StoreError):
        s.put_key_once("dpop-k", PEM)
    assert _files(home) == before


def test_file_store_ignores_store_json_as_a_record(tmp_path):
    s = FileStore(tmp_path / "store")
    (tmp_path / "store" / "store.json").write_text('{"format":1,"mode":"plain"}')
    s.set("tokens-a", b"{}")
    assert s.list() == ["tokens-a"]
    assert not any(Path(s.dir).glob(".*.tmp"))
    assert os.stat(s.dir / "tokens-a.json").st_mode & 0o777 == 0o600
