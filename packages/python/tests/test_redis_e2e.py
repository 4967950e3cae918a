"""The shared store end to end, against `mcp-oauth demo --serve` and the
session's redis-server: one sign-in serves a second replica with no request
to the authorization server, a refresh by one replica is taken up by the
other without a request, a warm token costs no Redis command, an outage
fails calls in time (never a silent sign-in) and the store's return heals
them, a lost lease stops a request from being sent, and the fleet replica
program reports as the fleet test expects."""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("redis")
pytest.importorskip("cryptography")

from mcp_oauth import AuthorizationRequired, McpOAuth, StoreUnavailable  # noqa: E402
from mcp_oauth import RedisStore, _engine, _host  # noqa: E402
from mcp_oauth._redis_url import parse_store_url  # noqa: E402

from conftest import mcp_post, no_browser  # noqa: E402

REPLICA = Path(__file__).with_name("fleet_replica.py")
TTL, STALE_AFTER = 6, 3.3  # as test_flows: a 6 s token is fresh for 3 s


@pytest.fixture
def sealed(tmp_path, monkeypatch):
    """MCP_OAUTH_STORE_KEY_FILE: one key for the whole fleet."""
    path = tmp_path / "fleet.key"
    path.write_text(base64.b64encode(os.urandom(32)).decode())
    os.chmod(path, 0o600)
    monkeypatch.setenv("MCP_OAUTH_STORE_KEY_FILE", str(path))
    return path


def commands(client) -> dict:
    """Calls per command since the last CONFIG RESETSTAT, but INFO and CONFIG (the test's own)."""
    stats = client.info("commandstats")
    return {k: v["calls"] for k, v in stats.items() if not k.startswith(("cmdstat_info", "cmdstat_config"))}


def test_one_sign_in_serves_the_fleet_and_a_warm_token_costs_no_command(
    demo, browser, redis_server, sealed, tmp_path
):
    url = redis_server.url()
    first = McpOAuth(demo.url, home=tmp_path / "h1", store=url, open_browser=browser)
    t1 = first.token()
    assert len(browser.opened) == 1
    # Another replica, another local home, the same shared store: no AS request.
    mark = len(demo.log())
    second = McpOAuth(demo.url, home=tmp_path / "h2", store=url, open_browser=no_browser, interactive=False)
    assert second.token() == t1 and demo.as_requests(mark) == []
    assert mcp_post(demo.url, t1) == 200
    st = second.status()
    assert st.has_token and st.store == parse_store_url(url).display
    assert st.secrets.mode == "sealed" and st.secrets.unreadable == 0 and st.store in str(st.secrets)
    # Nothing of the grant on local disk, nothing readable in Redis.
    for home in (tmp_path / "h1", tmp_path / "h2"):
        assert not [p for p in home.rglob("*") if p.is_file() and p.suffix in (".json", ".pem")]
    raw = redis_server.client()
    for k in raw.scan_iter(match=f"{parse_store_url(url).prefix}*"):
        blob = json.dumps({str(f): str(v) for f, v in raw.hgetall(k).items()}) if raw.type(k) == b"hash" else str(raw.get(k))
        assert t1 not in blob
    # Memory first: a warm token() sends no command at all.
    raw.config_resetstat()
    for _ in range(20):
        assert second.token() == t1
    assert sum(commands(raw).values()) == 0, commands(raw)
    # The count is real: a cold replica's first token reads the records.
    with McpOAuth(demo.url, home=tmp_path / "h3", store=url, interactive=False) as third:
        assert third.token() == t1
    assert commands(raw).get("cmdstat_hmget", 0) >= 2, commands(raw)
    first.close()
    second.close()


def test_a_refresh_by_one_replica_is_taken_up_by_the_other_without_a_request(
    demo_factory, browser, redis_server, sealed, tmp_path
):
    demo = demo_factory(access_ttl=TTL)
    url = redis_server.url()
    a = McpOAuth(demo.url, home=tmp_path / "a", store=url, open_browser=browser)
    b = McpOAuth(demo.url, home=tmp_path / "b", store=url, open_browser=no_browser, interactive=False)
    t1 = a.token()
    assert b.token() == t1
    time.sleep(STALE_AFTER)
    mark = len(demo.log())
    t2 = b.token()  # b refreshes under the lock
    t2_again = a.token()  # a finds b's rotation under the lock: no request
    assert t2 != t1 and t2_again == t2
    assert demo.as_requests(mark) == ["POST /token"]
    assert not demo.reuse_detected() and len(browser.opened) == 1


def test_an_outage_fails_calls_in_time_and_the_store_coming_back_heals_them(
    demo, browser, redis_server, sealed, tmp_path
):
    url = redis_server.url()
    shown = parse_store_url(url).display
    warm = McpOAuth(demo.url, home=tmp_path / "w", store=url, open_browser=browser)
    token = warm.token()
    cold = McpOAuth(demo.url, home=tmp_path / "c", store=url, open_browser=no_browser)  # nothing read yet
    mark = len(demo.log())
    redis_server.stop()
    try:
        assert warm.token() == token  # fresh in memory: the store is not needed
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as e:
            cold.token()  # interactive, yet no browser: the read failed, it is not "absent"
        assert time.monotonic() - started < 5 and shown in str(e.value)
        with pytest.raises(StoreUnavailable):
            McpOAuth(demo.url, home=tmp_path / "n", store=url, cache_dir=False)
    finally:
        redis_server.start()
    assert cold.token() == token  # the same object: the next call works
    assert McpOAuth(demo.url, home=tmp_path / "n", store=url, open_browser=no_browser).token() == token
    assert demo.as_requests(mark) == [] and len(browser.opened) == 1


class _Counter(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802
        type(self).hits += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


def test_a_lost_lease_stops_the_request_from_being_sent(redis_server):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = redis_server.url(lease_ms=1000)
    try:
        host = _host.HostImpl(RedisStore(parse_store_url(url)), None, None, lambda p: None, None, False)
        req = _engine.record(method="get", url=f"http://127.0.0.1:{server.server_port}/x", headers=[], body=b"")
        assert host.storage_lock(None, "tokens-a") is None
        time.sleep(0.7)
        assert _engine.field(host.http_send(None, req), "status") == 200  # renewed, then sent
        time.sleep(0.7)
        assert _engine.field(host.http_send(None, req), "status") == 200  # still ours: renewed in time
        time.sleep(1.2)  # stopped past the lease; another replica takes the lock
        other = RedisStore(parse_store_url(url)).lock("tokens-a", deadline_s=2)
        with pytest.raises(_host._Abort):
            host.http_send(None, req)
        failure = host.take_failure()
        assert isinstance(failure, StoreUnavailable) and "{tokens-a}:lock" in str(failure)
        assert "was lost" in str(failure) and "was not sent" in str(failure)
        assert _Counter.hits == 2
        host.after_call()  # releases nothing of the other's
        assert other.held
        other.release()
    finally:
        server.shutdown()


def test_a_user_has_a_file_store_of_its_own(demo, browser, tmp_path):
    home = tmp_path / "home"
    McpOAuth(demo.url, home=home, user="alice", open_browser=browser).token()
    assert list((home / "users" / "alice").glob("binding-*.json"))
    assert not list(home.glob("binding-*.json"))
    with pytest.raises(AuthorizationRequired):
        McpOAuth(demo.url, home=home, user="bob", open_browser=no_browser, interactive=False).token()
    assert McpOAuth(demo.url, home=home, user="alice", open_browser=no_browser).token()


def _replica(demo_url: str, seconds: float, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPLICA), demo_url, str(seconds)], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_fleet_replica_program(demo, browser, redis_server, sealed, tmp_path):
    url = redis_server.url()
    env = dict(os.environ, MCP_OAUTH_STORE=url, MCP_OAUTH_USER="gw-1", MCP_OAUTH_HOME=str(tmp_path / "r1"))
    # Before any sign-in: every call fails (silently, no browser), exit 0.
    r = _replica(demo.url, 0.3, env)
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["host"] == "python" and out["calls"] >= 1
    assert out["ok"] == 0 and out["errors"] == out["calls"] and "AuthorizationRequired" in out["first_errors"][0]
    assert len(out["first_errors"]) <= 3
    McpOAuth(demo.url, home=tmp_path / "login", store=url, user="gw-1", open_browser=browser).token()
    mark = len(demo.log())
    r = _replica(demo.url, 1.0, dict(env, MCP_OAUTH_HOME=str(tmp_path / "r2")))
    out = json.loads(r.stdout)
    assert r.returncode == 0 and r.stdout.count("\n") == 1
    assert out["ok"] == out["calls"] >= 10 and out["errors"] == 0 and out["first_errors"] == []
    assert demo.as_requests(mark) == []
    # A replica that cannot start: exit 1, the reason on stderr.
    r = _replica(demo.url, 1.0, dict(env, MCP_OAUTH_STORE="redis://h?oops=1"))
    assert r.returncode == 1 and "ConfigError" in r.stderr and r.stdout == ""
