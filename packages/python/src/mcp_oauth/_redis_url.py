"""A shared store's address and names (docs/store.md, "A shared store on
Redis or Valkey"): what a `redis://` / `rediss://` URL means and how it is
shown, which users are allowed, and the Redis key of every record, lock and
key file. Pure: no connection, no `redis` import. tests/vectors/redis_urls.json
and redis_keys.json pin all of it for the three hosts."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import parse_qsl, unquote

from ._errors import ConfigError

DEFAULT_PORT = 6379
DEFAULT_PREFIX = "mcp-oauth:"
# Longer than one HTTP request's 30 s deadline: a live holder keeps its lease.
DEFAULT_LEASE_MS = 35_000
LEASE_MIN_MS, LEASE_MAX_MS = 1_000, 600_000
MAX_DB = 15
USAGE = "use redis://[user[:password]@]host[:port][/db][?prefix=P&lease_ms=N] or rediss://"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_PREFIX = re.compile(r"[A-Za-z0-9:._-]{0,64}")
_USER = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
_DIGITS = re.compile(r"[0-9]{1,7}")


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store URL. The password stays out of repr and `display`."""

    tls: bool
    host: str  # a name, an IPv4 address, or a bracketed IPv6 address
    port: int
    db: int
    username: Optional[str]
    password: Optional[str] = field(repr=False)
    prefix: str = DEFAULT_PREFIX
    lease_ms: int = DEFAULT_LEASE_MS

    @property
    def has_password(self) -> bool:
        return self.password is not None

    @property
    def display(self) -> str:
        """As status and errors show it: the password as ***, the prefix
        only when not the default, never the lease."""
        scheme = "rediss" if self.tls else "redis"
        user = self.username or ""
        cred = f"{user}:***@" if self.has_password else (f"{user}@" if user else "")
        prefix = "" if self.prefix == DEFAULT_PREFIX else f"?prefix={self.prefix}"
        return f"{scheme}://{cred}{self.host}:{self.port}/{self.db}{prefix}"

    def __repr__(self) -> str:
        return f"StoreUrl({self.display!r})"

    @property
    def connect_host(self) -> str:
        return self.host[1:-1] if self.host.startswith("[") else self.host


def parse_store_url(url: str, password_env: Optional[str] = None, source: str = "MCP_OAUTH_STORE") -> StoreUrl:
    """Parses `url`; `password_env` (MCP_OAUTH_STORE_PASSWORD) is used when
    the URL has no password. ConfigError names what is wrong, prefixed by
    `source`, and never contains the password or the URL's credentials."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{source}: {why}")

    m = _SCHEME.fullmatch(url.strip())
    if m is None:
        raise bad(f"the store is not a URL with a scheme: {USAGE}")
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in ("redis", "rediss"):
        raise bad(f"the store URL's scheme must be redis or rediss, not {scheme[:16]!r}")
    if "#" in rest:
        # Never echoed: the part after # may be a password with an unescaped #.
        raise bad("the store URL has a #fragment (write a # in a password as %23)")
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        userinfo = ""
    host, port = _host_port(hostport, bad)
    db = _db(path if slash else "", bad)
    prefix, lease_ms = DEFAULT_PREFIX, DEFAULT_LEASE_MS
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k == "prefix":
            if not _PREFIX.fullmatch(v):
                raise bad("the store URL's prefix may hold up to 64 letters, digits, ':', '.', '_' and '-'")
            prefix = v
        elif k == "lease_ms":
            n = int(v) if _DIGITS.fullmatch(v) else -1
            if not LEASE_MIN_MS <= n <= LEASE_MAX_MS:
                raise bad(f"the store URL's lease_ms must be a number of milliseconds from {LEASE_MIN_MS} to {LEASE_MAX_MS}")
            lease_ms = n
        else:
            raise bad(f"unknown store URL parameter {k[:32]!r}: the parameters are prefix and lease_ms")
    name, colon, secret = userinfo.partition(":")
    username = unquote(name) or None
    password = (unquote(secret) if colon else "") or (password_env or "") or None
    return StoreUrl(scheme == "rediss", host, port, db, username, password, prefix, lease_ms)


def _host_port(hostport: str, bad) -> "tuple[str, int]":
    if hostport.startswith("["):
        inside, close, tail = hostport[1:].partition("]")
        try:
            host = f"[{ipaddress.IPv6Address(inside).compressed}]" if close else ""
        except ValueError:
            host = ""
        if not host or (tail and not tail.startswith(":")):
            raise bad("the store URL's host is not a valid bracketed IPv6 address")
        port_text = tail[1:]
    else:
        host, _, port_text = hostport.partition(":")
        if not host:
            raise bad(f"the store URL has no host: {USAGE}")
        if not _HOST.fullmatch(host):
            raise bad("the store URL's host must be a name, an IPv4 address or a bracketed IPv6 address")
    if not port_text:
        return host, DEFAULT_PORT
    port = int(port_text) if _DIGITS.fullmatch(port_text) else 0
    if not 1 <= port <= 65535:
        raise bad("the store URL's port must be a number from 1 to 65535")
    return host, port


def _db(path: str, bad) -> int:
    if path == "":
        return 0
    n = int(path) if _DIGITS.fullmatch(path) else -1
    if not 0 <= n <= MAX_DB:
        raise bad(f"the store URL's path must be a db number from 0 to {MAX_DB}, and nothing after it")
    return n


def check_user(user: str, source: str = "MCP_OAUTH_USER") -> str:
    """A user name as given, or ConfigError. '.' and '..' are refused too:
    the file store keeps a user's records in <home>/users/<user>/."""
    if not isinstance(user, str) or not _USER.fullmatch(user) or user in (".", ".."):
        raise ConfigError(f"{source}: the user must be 1 to 128 letters, digits, '.', '_', '@', '+' or '-' (not '.' or '..')")
    return user


@dataclass(frozen=True)
class Keys:
    """The Redis keys of a store's names: `{ns name}` is a hash tag, so a
    record, its lock and its key file share one Cluster slot."""

    prefix: str
    user: Optional[str] = None

    @property
    def ns(self) -> str:
        return f"{self.user}/" if self.user else ""

    def record(self, name: str) -> str:
        return f"{self.prefix}{{{self.ns}{name}}}:r"

    def lock(self, name: str) -> str:
        return f"{self.prefix}{{{self.ns}{name}}}:lock"

    def key_file(self, name: str) -> str:
        return f"{self.prefix}{{{self.ns}{name}}}:pem"

    @property
    def manifest(self) -> str:
        return f"{self.prefix}store.json"  # one per store, shared by its users

    def aad_name(self, name: str) -> str:
        """The name sealed into the associated data."""
        return f"{self.ns}{name}"

    def pattern(self, start: str, suffix: str) -> str:
        """SCAN MATCH for names starting with `start` (prefixes, users and
        names hold no glob character)."""
        return f"{self.prefix}{{{self.ns}{start}*}}:{suffix}"

    def name_of(self, redis_key: str, suffix: str) -> Optional[str]:
        """The name inside one of our keys, else None (another user's, or not ours)."""
        head, tail = f"{self.prefix}{{{self.ns}", f"}}:{suffix}"
        if redis_key.startswith(head) and redis_key.endswith(tail) and len(redis_key) > len(head) + len(tail):
            return redis_key[len(head) : -len(tail)]
        return None
