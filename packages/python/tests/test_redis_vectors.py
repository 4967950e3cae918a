"""The shared store's rules as data (tests/vectors/redis_urls.json and
redis_keys.json): what a store URL means, how it is shown, what is refused
and with which word, and the Redis key of every name. No server needed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mcp_oauth import ConfigError, McpOAuth, McpOAuthError, open_store
from mcp_oauth._redis_url import Keys, check_user, parse_store_url

ROOT = Path(os.environ.get("MCP_OAUTH_ROOT", Path(__file__).resolve().parents[3]))
URLS = json.loads((ROOT / "tests" / "vectors" / "redis_urls.json").read_text())
KEYS = json.loads((ROOT / "tests" / "vectors" / "redis_keys.json").read_text())
SECRETS = ("s3cr@t", "hunter2", "from-env", "inurl", "topsecret")


def _ids(cases: list) -> list:
    return [c["name"] for c in cases]


@pytest.mark.parametrize("case", URLS["cases"], ids=_ids(URLS["cases"]))
def test_store_urls(case):
    env = case.get("password_env")
    if "error" in case:
        with pytest.raises(ConfigError) as e:
            parse_store_url(case["url"], env)
        assert case["error"] in str(e.value)
        assert e.value.kind == "invalid-config" and isinstance(e.value, McpOAuthError)
        if case.get("never"):
            assert case["never"] not in str(e.value)
        return
    u = parse_store_url(case["url"], env)
    want = case["store"]
    got = {
        "tls": u.tls, "host": u.host, "port": u.port, "db": u.db, "username": u.username,
        "has_password": u.has_password, "prefix": u.prefix, "lease_ms": u.lease_ms, "display": u.display,
    }
    assert got == want
    # The password never shows: not in the display, not in repr.
    for secret in SECRETS + ((env,) if env else ()):
        assert secret not in u.display and secret not in repr(u)


@pytest.mark.parametrize("case", [c for c in URLS["cases"] if "error" in c], ids=_ids([c for c in URLS["cases"] if "error" in c]))
def test_store_url_refused_by_mcp_oauth_and_the_environment(case, tmp_path, monkeypatch):
    # The same refusals through McpOAuth(store=...) and MCP_OAUTH_STORE, before anything is opened.
    with pytest.raises(ConfigError) as e:
        McpOAuth("https://mcp.example/mcp", home=tmp_path / "h", store=case["url"], cache_dir=False)
    assert case["error"] in str(e.value) and "store=" in str(e.value)
    monkeypatch.setenv("MCP_OAUTH_STORE", case["url"])
    with pytest.raises(ConfigError) as e:
        open_store(tmp_path / "h")
    assert case["error"] in str(e.value) and "MCP_OAUTH_STORE" in str(e.value)
    if case.get("never"):
        assert case["never"] not in str(e.value)
    assert not (tmp_path / "h").exists()


@pytest.mark.parametrize("case", KEYS["cases"], ids=[c["record"] for c in KEYS["cases"]])
def test_key_names(case):
    if case["user"] is not None:
        assert check_user(case["user"]) == case["user"]
    k = Keys(case["prefix"], case["user"])
    name = case["name"]
    assert k.record(name) == case["record"]
    assert k.lock(name) == case["lock"]
    assert k.key_file(name) == case["key_file"]
    assert k.manifest == case["manifest"]
    assert k.aad_name(name) == case["aad_name"]
    # The name comes back out of its key, and only for this user.
    assert k.name_of(case["record"], "r") == name
    assert Keys(case["prefix"], "someone-else").name_of(case["record"], "r") is None


@pytest.mark.parametrize("user", KEYS["bad_users"] + [".", ".."])
def test_bad_users_are_refused(user, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="user"):
        check_user(user)
    with pytest.raises(ConfigError, match="user="):
        McpOAuth("https://mcp.example/mcp", home=tmp_path / "h", user=user, cache_dir=False)
    monkeypatch.setenv("MCP_OAUTH_USER", user)
    with pytest.raises(ConfigError, match="MCP_OAUTH_USER"):
        open_store(tmp_path / "h")
    assert not (tmp_path / "h").exists()  # nothing made for a refused user
