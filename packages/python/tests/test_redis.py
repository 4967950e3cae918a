"""What only the shared Redis store does (docs/store.md, "A shared store on
Redis or Valkey"), against the session's redis-server: users kept apart,
sealing bound to the user and name, lease locks and fenced writes, the
manifest, plain records on request, and faults (unreachable, wrong
password, a restart, TLS) as errors that name the store and never a password."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("redis")
pytest.importorskip("cryptography")

from mcp_oauth import ConfigError, McpOAuth, SecretsError, StoreError, StoreUnavailable, open_store  # noqa: E402
from mcp_oauth import RedisStore  # noqa: E402
from mcp_oauth._redis_url import Keys, parse_store_url  # noqa: E402

TOKEN = b'{"v":1,"record":{"tokens":{"access_token":"at-SECRET-123","refresh_token":"rt-SECRET-456"}}}'
KEY = bytes(range(32))


def store(url: str, user=None, key=KEY) -> RedisStore:
    return RedisStore(parse_store_url(url), user=user, key=key, key_from="a test key")


def key_file(path: Path, key: bytes) -> Path:
    path.write_text(base64.b64encode(key).decode() + "\n")
    os.chmod(path, 0o600)
    return path


def keys_under(client, prefix: str) -> dict:
    """Every key under `prefix` with its value (hashes as dicts)."""
    out = {}
    for k in client.scan_iter(match=f"{prefix}*", count=1000):
        out[k] = client.hgetall(k) if client.type(k) == b"hash" else client.get(k)
    return out


def prefix_of(url: str) -> str:
    return parse_store_url(url).prefix


# -- users and sealing -----------------------------------------------------------------


def test_two_users_records_never_meet(redis_server):
    url = redis_server.url()
    alice, bob, nobody = store(url, "alice@example.com"), store(url, "bob"), store(url)
    alice.set("tokens-a", b'{"who":"alice"}')
    bob.set("tokens-a", b'{"who":"bob"}')
    assert alice.get("tokens-a") == b'{"who":"alice"}' and bob.get("tokens-a") == b'{"who":"bob"}'
    assert nobody.get("tokens-a") is None
    assert alice.list() == ["tokens-a"] and bob.list() == ["tokens-a"] and nobody.list() == []
    alice.put_key_once("dpop-k", b"alice's key")
    assert bob.get_key("dpop-k") is None and bob.list_keys() == []
    # One user's lock does not hold the other's.
    with alice.lock("tokens-a"):
        with bob.lock("tokens-a", deadline_s=1):
            pass
    bob.delete("tokens-a")
    assert alice.get("tokens-a") == b'{"who":"alice"}' and bob.get("tokens-a") is None
    # Where they live: the user's namespace inside the hash tag.
    raw = redis_server.client()
    k = Keys(prefix_of(url), "alice@example.com")
    assert raw.hget(k.record("tokens-a"), "v") == b"1" and raw.exists(k.key_file("dpop-k"))


def test_a_record_copied_to_another_user_or_name_reads_as_absent(redis_server, capsys):
    url = redis_server.url()
    alice, bob = store(url, "alice"), store(url, "bob")
    alice.set("tokens-a", TOKEN)
    alice.put_key_once("dpop-k", b"PEM")
    raw, ka, kb = redis_server.client(), Keys(prefix_of(url), "alice"), Keys(prefix_of(url), "bob")
    sealed = raw.hget(ka.record("tokens-a"), "d")
    assert b"SECRET" not in sealed
    raw.hset(kb.record("tokens-a"), mapping={"v": 1, "d": sealed})  # another user
    raw.hset(ka.record("tokens-b"), mapping={"v": 1, "d": sealed})  # another name
    raw.set(ka.key_file("dpop-x"), sealed)  # another kind
    assert bob.get("tokens-a") is None
    assert alice.get("tokens-b") is None and alice.get_key("dpop-x") is None
    assert alice.get("tokens-a") == TOKEN and alice.get_key("dpop-k") == b"PEM"
    assert store(url, "alice", key=bytes(32)).get("tokens-a") is None  # another key
    assert "SECRET" not in capsys.readouterr().err


# -- lease locks and fencing ---------------------------------------------------------------


def test_the_lease_excludes_a_second_taker_until_release(redis_server):
    url = redis_server.url(lease_ms=1000)
    a, b = store(url), store(url)
    got: list = []
    with a.lock("tokens-a") as held:
        with pytest.raises(StoreUnavailable, match=r"tokens-a\}:lock"):
            b.lock("tokens-a", deadline_s=0.3)  # bounded, then an error naming the lock
        t = threading.Thread(target=lambda: got.append((b.lock("tokens-a", deadline_s=10), time.monotonic())))
        t.start()
        time.sleep(0.5)
        held.renew()  # as the host does before each request
        time.sleep(0.7)  # past the first lease: kept by the renewal
        assert got == []  # still waiting
        released = time.monotonic()
    t.join(timeout=10)
    assert len(got) == 1 and got[0][1] - released < 0.5  # taken at once after the release
    got[0][0].release()


def test_a_holder_that_vanished_frees_the_lock_after_its_lease(redis_server, tmp_path):
    url = redis_server.url(lease_ms=1000)
    code = textwrap.dedent(f"""
        import sys, time
        from mcp_oauth import RedisStore
        from mcp_oauth._redis_url import parse_store_url
        held = RedisStore(parse_store_url({url!r})).lock("tokens-a")
        print("held", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.kill()  # SIGKILL: no release
        holder.wait(timeout=10)
        started = time.monotonic()
        with store(url).lock("tokens-a", deadline_s=10):
            waited = time.monotonic() - started
    finally:
        if holder.poll() is None:
            holder.kill()
    assert 0.2 < waited < 3.0, waited  # the rest of its lease, then taken


def test_a_write_after_the_lease_was_lost_is_refused(redis_server):
    url = redis_server.url(lease_ms=1000)
    slow, fast = store(url), store(url)
    slow.set("tokens-a", b'{"n":0}')
    lock = slow.lock("tokens-a")
    assert slow.get("tokens-a") == b'{"n":0}'
    time.sleep(1.2)  # stopped past its lease
    with fast.lock("tokens-a", deadline_s=5):
        assert fast.get("tokens-a") == b'{"n":0}'
        fast.set("tokens-a", b'{"n":"fast"}')
        with pytest.raises(StoreError, match=r"tokens-a\}:r.*lease") as e:
            slow.set("tokens-a", b'{"n":"slow"}')
        assert not isinstance(e.value, StoreUnavailable)  # a refusal, not a fault
    lock.release()  # not its lock any more: nothing happens
    assert store(url).get("tokens-a") == b'{"n":"fast"}'


def test_a_stale_base_version_is_refused(redis_server):
    url = redis_server.url()
    a, b = store(url), store(url)
    a.set("tokens-a", b'{"n":1}')
    with a.lock("tokens-a"):
        assert a.get("tokens-a") == b'{"n":1}'
        b.set("tokens-a", b'{"n":"newer"}')  # a write outside the lock (a new sign-in)
        with pytest.raises(StoreError, match=r"tokens-a\}:r.*newer version"):
            a.set("tokens-a", b'{"n":"stale"}')
        assert a.get("tokens-a") == b'{"n":"newer"}'  # re-read: the base moves on
        a.set("tokens-a", b'{"n":3}')
    assert b.get("tokens-a") == b'{"n":3}'
    raw = redis_server.client()
    assert raw.hget(Keys(prefix_of(url)).record("tokens-a"), "v") == b"3"


def test_renew_after_the_lease_was_lost_reports_it(redis_server):
    url = redis_server.url(lease_ms=1000)
    s = store(url)
    lock = s.lock("tokens-a")
    time.sleep(0.7)
    lock.renew()
    time.sleep(0.7)
    lock.renew()  # past the first lease, still held: renewed in time
    time.sleep(1.2)
    with pytest.raises(StoreUnavailable, match=r"lease on the lock \S+\{tokens-a\}:lock .* was lost"):
        lock.renew()
    lock.release()


# -- the manifest and where secrets live ------------------------------------------------


def test_the_manifest_pins_the_key(redis_server, tmp_path, monkeypatch):
    url = redis_server.url()
    raw, prefix = redis_server.client(), prefix_of(url)
    monkeypatch.setenv("MCP_OAUTH_STORE", url)
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(key_file(tmp_path / "k1", KEY)))
    first = open_store(tmp_path / "home")
    first.set("tokens-a", TOKEN)
    assert raw.get(f"{prefix}store.json") == b'{"format":1,"mode":"sealed","key_id":"630dcd2966c43366"}'
    st = first.secrets()
    assert st.mode == "sealed" and st.unreadable == 0 and "the key file" in st.key_from and st.where in str(st)
    before = keys_under(raw, prefix)
    # A replica with another key: an error naming both key ids, nothing written.
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(key_file(tmp_path / "k2", bytes(32))))
    with pytest.raises(SecretsError, match="630dcd2966c43366.*fleet's key file"):
        open_store(tmp_path / "home")
    with pytest.raises(SecretsError, match="sealed"):
        open_store(tmp_path / "home", secrets="file")
    # No key file at all: a usage error naming the variable and the way out.
    monkeypatch.delenv("MCP_OAUTH_STORE_KEY_FILE")
    with pytest.raises(ConfigError, match="MCP_OAUTH_STORE_KEY_FILE.*MCP_OAUTH_SECRETS=file"):
        McpOAuth("https://mcp.example/mcp", home=tmp_path / "home", cache_dir=False)
    assert keys_under(raw, prefix) == before
    assert not (tmp_path / "home").exists()  # never a fall back to local files


def test_plain_records_on_request_with_one_warning(redis_server, tmp_path):
    url = redis_server.url()
    code = textwrap.dedent("""
        from mcp_oauth import open_store
        for i in range(3):
            open_store().set("tokens-a", b'{"v":1,"record":"plain"}')
        print(open_store().get("tokens-a").decode())
    """)
    env = dict(os.environ, MCP_OAUTH_STORE=url, MCP_OAUTH_SECRETS="file", MCP_OAUTH_HOME=str(tmp_path / "h"))
    env.pop("MCP_OAUTH_STORE_KEY_FILE", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '{"v":1,"record":"plain"}'
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unsealed" in lines[0] and parse_store_url(url).display in lines[0], lines
    raw, prefix = redis_server.client(), prefix_of(url)
    assert raw.hget(f"{prefix}{{tokens-a}}:r", "d") == b'{"v":1,"record":"plain"}'
    assert raw.get(f"{prefix}store.json") == b'{"format":1,"mode":"plain"}'
    # The plain store refuses a sealed replica, and says how.
    env2 = dict(env, MCP_OAUTH_SECRETS="auto", MCP_OAUTH_STORE_KEY_FILE=str(key_file(tmp_path / "k", KEY)))
    r = subprocess.run([sys.executable, "-c", code], env=env2, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "SecretsError" in r.stderr and "MCP_OAUTH_SECRETS=file" in r.stderr


# -- faults ----------------------------------------------------------------------------------


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_an_unreachable_store_fails_in_time_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(key_file(tmp_path / "k", KEY)))
    url = f"redis://app:pw-SECRET-1@127.0.0.1:{_closed_port()}/2"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as e:
        McpOAuth("https://mcp.example/mcp", home=tmp_path / "h", store=url, cache_dir=False)
    assert time.monotonic() - started < 5
    shown = parse_store_url(url).display
    assert shown == f"redis://app:***@127.0.0.1:{parse_store_url(url).port}/2"
    assert shown in str(e.value) and "cannot be reached" in str(e.value) and "SECRET" not in str(e.value)
    assert not (tmp_path / "h").exists()


def test_a_wrong_password_is_a_config_error_without_the_password(redis_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_OAUTH_SECRETS", "file")
    admin = redis_server.client()
    admin.config_set("requirepass", "x")
    try:
        for url, password_env, code in [
            (redis_server.url(), None, "NOAUTH"),  # none given
            (redis_server.url().replace("//", "//:wrong-SECRET-pw@"), None, "WRONGPASS"),
            (redis_server.url().replace("//", "//default@"), "env-SECRET-pw", "WRONGPASS"),
        ]:
            if password_env:
                monkeypatch.setenv("MCP_OAUTH_STORE_PASSWORD", password_env)
            with pytest.raises(ConfigError) as e:
                McpOAuth("https://mcp.example/mcp", home=tmp_path / "h", store=url, cache_dir=False)
            text = str(e.value)
            assert "password" in text and "SECRET" not in text and parse_store_url(url, password_env).display in text
            assert code in text
        # The right one, from the environment, works.
        monkeypatch.setenv("MCP_OAUTH_STORE_PASSWORD", "x")
        with McpOAuth("https://mcp.example/mcp", home=tmp_path / "h", store=redis_server.url(), cache_dir=False) as a:
            assert a.status().store.startswith("redis://:***@127.0.0.1:")
    finally:
        redis_server.client(password="x").config_set("requirepass", "")


def test_a_restarted_server_keeps_its_data_and_the_next_call_works(redis_server):
    url = redis_server.url()
    s = store(url)
    s.set("tokens-a", TOKEN)
    assert s.get("tokens-a") == TOKEN  # a pooled connection, soon broken
    redis_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot be reached") as e:
            s.get("tokens-a")
        assert time.monotonic() - started < 5 and parse_store_url(url).display in str(e.value)
    finally:
        redis_server.start()  # the same port and directory
    assert s.get("tokens-a") == TOKEN
    assert store(url).get("tokens-a") == TOKEN


def test_no_redis_commands_outlive_close(redis_server, tmp_path):
    # close() lets go of the pool's connections.
    admin = redis_server.client()
    s = store(redis_server.url())
    s.get("tokens-a")
    name_before = {c["id"] for c in admin.client_list()}
    s.close()
    time.sleep(0.2)
    assert len({c["id"] for c in admin.client_list()}) < len(name_before)


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A redis-server speaking only TLS, with a self-signed certificate for
    127.0.0.1; stopped by PID. Skipped when this redis-server has no TLS."""
    import datetime
    import ipaddress
    import shutil

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server")
    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    port = _closed_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--tls-cert-file", str(d / "cert.pem"), "--tls-key-file", str(d / "key.pem"),
         "--tls-auth-clients", "no", "--dir", str(d), "--logfile", str(d / "log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import socket

        for _ in range(100):
            if proc.poll() is not None:
                pytest.skip("this redis-server does not speak TLS")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, d / "cert.pem"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_tls_with_the_ca_file_and_tls_failures_that_say_tls(tls_server, redis_server, tmp_path, monkeypatch):
    port, ca = tls_server
    monkeypatch.setenv("MCP_OAUTH_SECRETS", "file")
    url = f"rediss://:pw-SECRET@127.0.0.1:{port}/0?prefix=tls{os.urandom(3).hex()}:"
    for var in ("MCP_OAUTH_CA_FILE", "SSL_CERT_FILE"):  # either names the roots
        monkeypatch.setenv(var, str(ca))
        s = open_store(tmp_path, store=url.replace(":pw-SECRET", ""))
        s.set("tokens-a", TOKEN)
        assert s.get("tokens-a") == TOKEN
        s.close()
        monkeypatch.delenv(var)
    # Not trusted; and rediss:// to a plain port: errors that say TLS, at once.
    plain = f"rediss://:pw-SECRET@127.0.0.1:{redis_server.port}/0"
    for target in (url, plain):
        started = time.monotonic()
        with pytest.raises(ConfigError, match="TLS with the store rediss://") as e:
            open_store(tmp_path, store=target)
        assert time.monotonic() - started < 4.5 and "SECRET" not in str(e.value)
    # redis:// to a TLS port: unreachable, with the hint.
    with pytest.raises(StoreUnavailable, match="use rediss://"):
        open_store(tmp_path, store=f"redis://127.0.0.1:{port}/0")
