"""Where secrets live (docs/store.md): the choice (auto, keychain, file),
store.json pinning it, the key file, sealing a store in place, a lost key,
and no secret on disk after a real sign-in with a sealed store."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_oauth import (
    FileStore,
    KeychainUnavailable,
    McpOAuth,
    McpOAuthError,
    SealedStore,
    SecretsError,
    StoreError,
    open_store,
)
from mcp_oauth import _keychain, _sealed, _secrets, _signer
from mcp_oauth._auth import dpop_key_id

from conftest import no_browser

pytest.importorskip("cryptography")

TOKEN = b'{"v":1,"record":{"tokens":{"access_token":"at-SECRET-123","refresh_token":"rt-SECRET-456"}}}'
CLAIMS = '{"jti":"AAECAwQFBgcICQoLDA0ODw","htm":"POST","htu":"https://mcp.example/mcp","iat":1700000000}'


def make_key_file(path: Path, mode: int = 0o600, key: bytes | None = None) -> bytes:
    key = os.urandom(32) if key is None else key
    path.write_text(base64.b64encode(key).decode() + "\n")
    os.chmod(path, mode)
    return key


@pytest.fixture
def key_env(tmp_path, monkeypatch):
    """MCP_OAUTH_STORE_KEY_FILE set to a fresh private key file; returns the key."""
    path = tmp_path / "store.key"
    key = make_key_file(path)
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(path))
    return key


def everything(home: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def store_json(home: Path) -> dict:
    return json.loads((home / "store.json").read_bytes())


def test_the_choice_is_checked(tmp_path, monkeypatch):
    home = tmp_path / "store"
    with pytest.raises(SecretsError, match="secrets= must be 'auto', 'keychain' or 'file'"):
        open_store(home, "vault")
    monkeypatch.setenv("MCP_OAUTH_SECRETS", "vault")
    with pytest.raises(SecretsError, match="MCP_OAUTH_SECRETS must be"):
        open_store(home)
    assert not home.exists()


def test_file_mode_pins_plain_files_on_the_first_write(tmp_path, capsys):
    home = tmp_path / "store"
    s = open_store(home, "file")
    assert type(s) is FileStore and s.secrets().mode == "plain"
    assert not (home / "store.json").exists()  # nothing written yet
    s.set("tokens-a", TOKEN)
    assert (home / "store.json").read_bytes() == b'{"format":1,"mode":"plain"}'
    assert open_store(home).get("tokens-a") == TOKEN  # auto follows store.json
    assert capsys.readouterr().err == ""  # file: no notice


def test_keychain_without_a_keychain_is_an_error_and_writes_nothing(tmp_path, monkeypatch):
    home = tmp_path / "store"
    with pytest.raises(KeychainUnavailable) as e:
        open_store(home, "keychain")
    msg = str(e.value)
    assert "session bus" in msg or "keychain support is not installed" in msg
    assert "MCP_OAUTH_STORE_KEY_FILE" in msg and "nothing was written" in msg
    monkeypatch.setenv("MCP_OAUTH_SECRETS", "keychain")
    with pytest.raises(KeychainUnavailable):
        McpOAuth("https://mcp.example.com/mcp", home=home)
    with pytest.raises(McpOAuthError):  # typed: one of this package's errors
        McpOAuth("https://mcp.example.com/mcp", home=home, secrets="keychain")
    assert not home.exists()


_AUTO = """
import sys
from mcp_oauth import McpOAuth, open_store
for home in sys.argv[1:3]:
    s = open_store(home)
    s.set("tokens-a", b'{"v":1}')
    print(type(s).__name__)
auth = McpOAuth("https://mcp.example.com/mcp", home=sys.argv[3], cache_dir=False)
auth.store.set("tokens-a", b'{"v":1}')
"""


def _run_auto(tmp_path: Path, tag: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "MCP_OAUTH_SECRETS")}
    homes = [str(tmp_path / f"{tag}{i}") for i in range(3)]
    return subprocess.run(
        [sys.executable, "-c", _AUTO, *homes], env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def test_auto_without_a_keychain_uses_plain_files_and_says_so_once(tmp_path):
    r = _run_auto(tmp_path, "auto")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["FileStore", "FileStore"]
    lines = r.stderr.splitlines()
    assert len(lines) == 1, lines  # three stores, one process: one line
    assert "plain files" in lines[0] and "session bus" in lines[0] and "MCP_OAUTH_SECRETS=file" in lines[0]
    assert store_json(tmp_path / "auto0") == {"format": 1, "mode": "plain"}
    # Told `file`: no notice. A store pinned to plain files: followed, no notice.
    r = _run_auto(tmp_path, "file", MCP_OAUTH_SECRETS="file")
    assert r.returncode == 0 and r.stderr == ""
    r = _run_auto(tmp_path, "auto")  # the same stores, pinned by the first run
    assert r.returncode == 0 and r.stderr == ""


def test_file_on_a_sealed_store_names_unseal(tmp_path, key_env):
    home = tmp_path / "store"
    open_store(home).set("tokens-a", TOKEN)
    before = everything(home)
    with pytest.raises(SecretsError, match="`mcp-oauth store unseal`"):
        open_store(home, "file")
    with pytest.raises(SecretsError, match="`mcp-oauth store unseal`"):
        McpOAuth("https://mcp.example.com/mcp", home=home, secrets="file", cache_dir=False)
    assert everything(home) == before


def test_keychain_on_a_plain_store_names_seal(tmp_path, key_env):
    home = tmp_path / "store"
    open_store(home, "file").set("tokens-a", TOKEN)
    before = everything(home)
    with pytest.raises(SecretsError, match="`mcp-oauth store seal`"):
        open_store(home, "keychain")
    assert everything(home) == before


def test_the_key_file_must_be_private_and_hold_a_key(tmp_path, monkeypatch):
    home = tmp_path / "store"
    path = tmp_path / "k"
    make_key_file(path, mode=0o644)
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(path))
    for secrets in (None, "keychain", "auto"):
        with pytest.raises(SecretsError, match=f"chmod 600 {path}") as e:
            open_store(home, secrets)
        assert path.read_text().strip() not in str(e.value)  # never the key
    assert not home.exists()
    os.chmod(path, 0o640)
    with pytest.raises(SecretsError, match="may be read by others"):
        open_store(home)
    path.write_text("not base64 at all")
    os.chmod(path, 0o600)
    with pytest.raises(SecretsError, match="32-byte key"):
        open_store(home)
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(tmp_path))
    with pytest.raises(SecretsError, match="not a regular file"):
        open_store(home)
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SecretsError, match="cannot read the store key file"):
        open_store(home)
    assert not home.exists()
    # A symlink to a private file (as secret mounts make) is followed; no padding, no newline is fine.
    real = tmp_path / "real.key"
    real.write_text(base64.b64encode(os.urandom(32)).decode().rstrip("="))
    os.chmod(real, 0o400)
    os.symlink(real, tmp_path / "link.key")
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(tmp_path / "link.key"))
    assert isinstance(open_store(home), SealedStore)


def test_a_key_file_seals_a_new_store(tmp_path, key_env, capsys):
    home = tmp_path / "store"
    s = open_store(home, "keychain")  # the key file takes precedence over the keychain
    assert isinstance(s, SealedStore) and not (home / "store.json").exists()
    s.set("tokens-a", TOKEN)
    assert (home / "store.json").read_bytes() == (
        b'{"format":1,"mode":"sealed","key_id":"%s"}' % _sealed.key_id(key_env).encode()
    )
    assert b"SECRET" not in (home / "tokens-a.json").read_bytes()
    again = open_store(home)
    assert again.get("tokens-a") == TOKEN
    info = again.secrets()
    assert info.mode == "sealed" and "the key file" in info.key_from and info.unreadable == 0 and info.problem is None
    assert capsys.readouterr().err == ""


def test_a_plain_store_is_sealed_in_place_once(tmp_path, monkeypatch, capsys):
    home = tmp_path / "store"
    plain = FileStore(home)
    plain.set("tokens-a", TOKEN)
    plain.set("binding-x", b'{"v":1,"record":{"server_url":"https://mcp.example/mcp"}}')
    header = _signer.DpopKeys(plain, cache={}).proof("dpop-k", CLAIMS).split(".")[0]
    pem = (home / "dpop-k.pem").read_bytes()
    assert b"PRIVATE KEY" in pem
    key = make_key_file(tmp_path / "k")
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(tmp_path / "k"))
    s = open_store(home)
    err = capsys.readouterr().err
    assert err.count("sealed the store") == 1 and "3 records and key files" in err
    for path, data in everything(home).items():
        for secret in (b"SECRET", b"PRIVATE KEY", pem.splitlines()[1]):
            assert secret not in data, path
    assert store_json(home) == {"format": 1, "mode": "sealed", "key_id": _sealed.key_id(key)}
    assert s.get("tokens-a") == TOKEN and s.get_key("dpop-k") == pem
    reopened = open_store(home)
    assert reopened.get("tokens-a") == TOKEN and reopened.list("binding-") == ["binding-x"]
    # The DPoP key is the same key, now read sealed.
    assert _signer.DpopKeys(reopened, cache={}).proof("dpop-k", CLAIMS).split(".")[0] == header
    assert capsys.readouterr().err == ""  # announced once: the second open seals nothing


def test_sealing_in_place_stopped_half_way_is_finished_next_time(tmp_path, monkeypatch, capsys):
    home = tmp_path / "store"
    key = make_key_file(tmp_path / "k")
    plain = FileStore(home)
    plain.set("tokens-a", TOKEN)
    plain.set("tokens-b", TOKEN)
    plain.set("tokens-a", _sealed.seal(key, "record", "tokens-a", TOKEN))  # sealed before the stop; no store.json
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(tmp_path / "k"))
    s = open_store(home)
    assert "(1 records and key files)" in capsys.readouterr().err
    assert s.get("tokens-a") == TOKEN and s.get("tokens-b") == TOKEN
    assert all(b"SECRET" not in data for data in everything(home).values())


def test_a_lost_key_reads_as_absent_and_a_sign_in_replaces_it(tmp_path, monkeypatch, capsys):
    home = tmp_path / "store"
    make_key_file(tmp_path / "old")
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(tmp_path / "old"))
    s = open_store(home)
    s.set("tokens-a", TOKEN)
    s.set("client-a", b'{"v":1,"record":{"client_secret":"cs-SECRET"}}')
    s.put_key_once("dpop-k", b"-----BEGIN PRIVATE KEY-----\nOLD\n-----END PRIVATE KEY-----\n")
    new = make_key_file(tmp_path / "new")
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(tmp_path / "new"))
    lost = open_store(home)  # never a crash
    assert lost.get("tokens-a") is None and lost.get_key("dpop-k") is None
    info = lost.secrets()
    assert info.unreadable == 3
    assert info.problem == f"the store's key is not in the key file {tmp_path / 'new'}: 3 records cannot be read; sign in again"
    assert "SECRET" not in capsys.readouterr().err
    # The next sign-in writes: store.json names the new key, records are replaced.
    lost.set("tokens-a", TOKEN)
    assert store_json(home)["key_id"] == _sealed.key_id(new)
    assert "has a new key" in capsys.readouterr().err
    fresh = open_store(home)
    assert fresh.get("tokens-a") == TOKEN and fresh.secrets().unreadable == 2
    assert fresh.put_key_once("dpop-k", b"NEW") == b"NEW"  # the old key file is replaced, not refused
    assert open_store(home).secrets().unreadable == 1  # the old client record, until it is rewritten


def test_a_sealed_store_without_its_key_is_an_error(tmp_path, key_env, monkeypatch):
    home = tmp_path / "store"
    open_store(home).set("tokens-a", TOKEN)
    before = everything(home)
    monkeypatch.delenv("MCP_OAUTH_STORE_KEY_FILE")
    for secrets in ("auto", "keychain"):
        with pytest.raises(KeychainUnavailable, match="is sealed with a key kept in the keychain") as e:
            open_store(home, secrets)
        assert "MCP_OAUTH_STORE_KEY_FILE" in str(e.value)
    assert everything(home) == before  # never a silent switch to plain files


def test_store_json_that_cannot_be_followed(tmp_path):
    home = tmp_path / "store"
    FileStore(home)
    (home / "store.json").write_text('{"format":2,"mode":"vault"}')
    with pytest.raises(SecretsError, match="newer mcp-oauth"):
        open_store(home)
    (home / "store.json").write_text("{garbage")
    with pytest.raises(SecretsError, match="not understood"):
        open_store(home)
    (home / "store.json").write_text('{"format":1,"mode":"sealed","key_id":"XYZ"}')
    with pytest.raises(SecretsError, match="not understood"):
        open_store(home, "file")


def test_store_and_secrets_are_one_choice(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        McpOAuth("https://mcp.example.com/mcp", store=FileStore(tmp_path / "s"), secrets="file")
    sealed = SealedStore(FileStore(tmp_path / "s"), os.urandom(32))
    auth = McpOAuth("https://mcp.example.com/mcp", store=sealed, cache_dir=False)
    assert auth.store is sealed and auth.home == tmp_path / "s"
    assert auth.status().secrets.mode == "sealed"


# -- through the demo servers --------------------------------------------------------


def _secret_strings(value, out: set) -> set:
    """Every string under a secret-looking name in a record."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and any(w in k for w in ("token", "secret", "verifier", "code")) and len(v) >= 8:
                out.add(v)
            _secret_strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _secret_strings(v, out)
    return out


def test_sign_in_with_a_key_file_leaves_no_secret_on_disk(demo, browser, home, key_env):
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    token = auth.token()
    st = auth.status()
    assert st.has_token and st.secrets.mode == "sealed" and "the key file" in st.secrets.key_from
    assert st.secrets.unreadable == 0 and st.secrets.problem is None
    # What the AS issued, as the records hold it once opened.
    opened = open_store(home)
    secrets = {token}
    for name in opened.list():
        _secret_strings(json.loads(opened.get(name)), secrets)
    assert len(secrets) >= 2  # the access token and the refresh token at least
    hits = [(p, s[:6]) for p, data in everything(home).items() for s in secrets if s.encode() in data]
    assert hits == []
    # A new instance (a new process) uses the sealed token: no AS request.
    mark = len(demo.log())
    assert McpOAuth(demo.url, home=home, open_browser=no_browser).token() == token
    assert demo.as_requests(mark) == []


def test_logout_removes_the_servers_dpop_key_file(demo, browser, home):
    auth = McpOAuth(demo.url, home=home, open_browser=browser, secrets="file")
    auth.token()
    st = auth.status()
    key_id = dpop_key_id(st.issuer, st.resource)
    assert key_id.startswith("dpop-") and len(key_id) == 45
    auth.store.put_key_once(key_id, b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    auth.store.put_key_once("dpop-" + "0" * 40, b"another server's")
    auth.logout()
    assert not (home / f"{key_id}.pem").exists()
    assert (home / ("dpop-" + "0" * 40 + ".pem")).exists()  # other servers' keys stay
    assert not auth.status().has_token


# -- a real Secret Service (MCP_OAUTH_TEST_KEYCHAIN=1, e.g. gnome-keyring in dbus-run-session) ----


@pytest.mark.keychain
@pytest.mark.skipif(os.environ.get("MCP_OAUTH_TEST_KEYCHAIN") != "1", reason="needs MCP_OAUTH_TEST_KEYCHAIN=1 and a Secret Service")
def test_the_store_key_is_one_keychain_item(tmp_path):
    secretstorage = pytest.importorskip("secretstorage")
    home = tmp_path / "store"
    account = "store:" + os.path.realpath(tmp_path) + "/store"
    attrs = {"service": "mcp-oauth", "username": account}

    def items() -> list:
        conn = secretstorage.dbus_init()
        try:
            found = list(secretstorage.search_items(conn, attrs))
            return [({k: v for k, v in i.get_attributes().items() if not k.startswith("xdg:")}, i.get_secret()) for i in found]
        finally:
            conn.close()

    try:
        s = open_store(home, "keychain")
        s.set("tokens-a", TOKEN)
        [(got_attrs, secret)] = items()  # exactly one item
        assert got_attrs == attrs  # exactly these attributes (as the Rust and Node hosts)
        key = base64.b64decode(secret)
        assert len(secret) == 44 and store_json(home)["key_id"] == _sealed.key_id(key)
        # Another process reads it through the keychain.
        code = "import sys; from mcp_oauth import open_store; sys.stdout.write(open_store(sys.argv[1]).get('tokens-a').decode())"
        r = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout == TOKEN.decode(), r.stderr
        # The item deleted: absent, counted, then a write makes a new key and one item again.
        _keychain.delete(account)
        _keychain._reset()
        lost = open_store(home)
        assert lost.get("tokens-a") is None and lost.secrets().unreadable == 1
        assert "not in the keychain" in lost.secrets().problem
        lost.set("tokens-b", TOKEN)
        [(_, secret2)] = items()
        assert secret2 != secret and store_json(home)["key_id"] == _sealed.key_id(base64.b64decode(secret2))
    finally:
        _keychain._reset()
        try:
            _keychain.delete(account)
        except _keychain.Unavailable:
            pass
