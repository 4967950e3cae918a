"""A store shared by a fleet on the Redis protocol (Redis 6+, Valkey 7+):
`store="redis://..."` or `MCP_OAUTH_STORE` (docs/store.md, "A shared store
on Redis or Valkey"). The seam of the file store: records as hashes with a
version, lease locks (`SET NX PX`, renewed and released by owner-checking
scripts), writes under a lock fenced by its lease and the version read, DPoP
key files written once, everything sealed with the store key from
`MCP_OAUTH_STORE_KEY_FILE` unless `MCP_OAUTH_SECRETS=file`.

redis-py (pure Python) with one connection pool per store: connect within
3 s, each command within 5 s, a command that meets a broken connection
retried once on a new one, never more. Errors name the store as displayed,
never its password, and never fall back to local files."""

from __future__ import annotations

import os
import random
import socket
import ssl
import sys
import threading
import time
from typing import Optional

from ._errors import ConfigError
from ._redis_url import Keys, StoreUrl, check_user
from ._sealed import cipher, is_sealed, key_id, open_sealed, seal
from ._seam import Lock, Secrets, Store, StoreError, StoreUnavailable
from ._store import MAX_KEY_FILE_BYTES, MAX_RECORD_BYTES, check_key

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # the optional extra
    redis = None  # type: ignore[assignment]

if redis is not None:

    class _TlsFailed(redis.RedisError):
        """The TLS handshake failed: not a broken connection, so never retried."""

    class _TlsConnection(redis.connection.SSLConnection):
        # A handshake that gets no answer (rediss:// to a plain port) or a
        # refused certificate says TLS, at once.
        def _wrap_socket_with_ssl(self, sock):
            sock.settimeout(self.socket_connect_timeout)  # the handshake is part of connecting
            try:
                wrapped = super()._wrap_socket_with_ssl(sock)
                wrapped.settimeout(self.socket_timeout)
                return wrapped
            except (socket.timeout, TimeoutError):
                raise _TlsFailed("the TLS handshake got no answer: does the server speak TLS on this port?") from None
            except ssl.SSLError as e:
                raise _TlsFailed(f"the TLS handshake failed: {e.reason or e}") from None

NEEDS_REDIS = 'a redis:// store needs the redis package: pip install "mcp-oauth[redis]"'
CONNECT_TIMEOUT_S = 3.0
COMMAND_TIMEOUT_S = 5.0
SCAN_COUNT = 1000
SCAN_ROUNDS = 10_000
WAIT_PAST_LEASE_S = 10.0  # a taker outwaits one lease: a dead holder frees the lock

# Takes the lock; also answers 1 when it is ours already (the reply to a
# SET that went through was lost and the command retried).
TAKE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0"""
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0"""
# -1: the lease is no longer the writer's; -2: the record moved past the version read.
FENCED_SET = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[2]) then return -2 end
redis.call('HSET', KEYS[1], 'v', v + 1, 'd', ARGV[3])
return v + 1"""
PLAIN_SET = """
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[1])
return v"""


def need_redis() -> None:
    if redis is None:
        raise ConfigError(NEEDS_REDIS)


def ca_file() -> Optional[str]:
    """The CA roots for rediss://: MCP_OAUTH_CA_FILE, else SSL_CERT_FILE, else the system's."""
    return os.environ.get("MCP_OAUTH_CA_FILE") or os.environ.get("SSL_CERT_FILE") or None


class RedisStore(Store):
    """Records, lease locks and key files of one user in a Redis/Valkey store.

    url: the parsed store URL (`_redis_url.parse_store_url`).
    user: the principal whose records these are (None: one principal).
    key: the store key (sealed records), or None for plain records.
    key_from: where the key came from, for `status`.
    Opening a store for use settles its manifest first: see `_redis_open.open_redis`.
    """

    def __init__(
        self,
        url: StoreUrl,
        *,
        user: Optional[str] = None,
        key: Optional[bytes] = None,
        key_from: str = "a key given in code",
    ) -> None:
        need_redis()
        self.url = url
        self.user = check_user(user, "user=") if user is not None else None
        self.keys = Keys(url.prefix, user)
        self.key_from = key_from
        self._key = key
        self._aead = cipher(key) if key is not None else None
        self._versions: dict = {}  # name -> version last read or written here (a fenced write's base)
        self._held: dict = {}  # name -> owner, the locks this store object holds
        self._state = threading.Lock()
        self._warned = False
        tls = {"connection_class": _TlsConnection, "ssl_ca_certs": ca_file()} if url.tls else {}
        self._pool = redis.ConnectionPool(
            host=url.connect_host,
            port=url.port,
            db=url.db,
            username=url.username,
            password=url.password,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            # One more try on a new connection when the old one broke (the
            # server restarted); a timeout is not retried: the deadline holds.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            health_check_interval=0,
            **tls,
        )
        self._r = redis.Redis(connection_pool=self._pool)
        self._take, self._renew, self._release = (self._r.register_script(s) for s in (TAKE, RENEW, RELEASE))
        self._fenced, self._plain = self._r.register_script(FENCED_SET), self._r.register_script(PLAIN_SET)

    def __repr__(self) -> str:
        return f"RedisStore({self.display!r}, {'sealed' if self._key is not None else 'plain'})"

    @property
    def id(self) -> str:
        return f"{self.url.display} user {self.user}" if self.user else self.url.display

    @property
    def display(self) -> str:
        return self.id

    @property
    def sealed(self) -> bool:
        return self._key is not None

    @property
    def kid(self) -> Optional[str]:
        return key_id(self._key) if self._key is not None else None

    def close(self) -> None:
        try:
            self._r.close()
            self._pool.disconnect()
        except Exception:
            pass  # closing is best effort: the pool's sockets go with the process

    # -- commands ----------------------------------------------------------

    def run(self, what: str, fn):
        """fn() against the server; every failure becomes an error naming the
        store (ConfigError for credentials and TLS, else StoreUnavailable)."""
        try:
            return fn()
        except redis.RedisError as e:
            raise self.failure(e, what) from None
        except OSError as e:  # below redis-py, e.g. a TLS setup error
            raise self.failure(e, what) from None

    def failure(self, e: BaseException, what: str) -> Exception:
        shown, text = self.url.display, self._scrub(str(e))[:200]
        upper = text.upper()
        if isinstance(e, getattr(redis, "AuthenticationError", ())) or upper.startswith(("WRONGPASS", "NOAUTH")):
            # Without a password the server says NOAUTH (or refuses HELLO): say so.
            code = "WRONGPASS" if self.url.has_password else "NOAUTH"
            why = "the password was refused" if self.url.has_password else "a password is required and none was given"
            return ConfigError(
                f"the store {shown} refused the credentials ({code}: {why}): check the user name and the password "
                "(in the URL or MCP_OAUTH_STORE_PASSWORD)"
            )
        if isinstance(e, getattr(redis.exceptions, "NoPermissionError", ())):
            return ConfigError(f"the store {shown} refused {what} (NOPERM): give its user access to the keys under its prefix")
        if self.url.tls and (isinstance(e, _TlsFailed) or _tls_failure(e, upper)):
            return ConfigError(
                f"TLS with the store {shown} failed ({text}): check rediss:// against the server, "
                "and MCP_OAUTH_CA_FILE or SSL_CERT_FILE"
            )
        if isinstance(e, (redis.ConnectionError, redis.TimeoutError, OSError)):
            # A plain client on a TLS port is reset by the server.
            hint = "" if self.url.tls or "RESET" not in upper else " (if the server speaks TLS, use rediss://)"
            return StoreUnavailable(f"the store {shown} cannot be reached ({what}): {text}{hint}")
        return StoreUnavailable(f"the store {shown} failed ({what}): {text}")

    def _scrub(self, text: str) -> str:
        p = self.url.password
        return text.replace(p, "***") if p else text

    # -- sealing -------------------------------------------------------------

    def _seal(self, kind: str, name: str, value: bytes) -> bytes:
        if self._key is None:
            return bytes(value)
        return seal(self._key, kind, self.keys.aad_name(name), value, aead=self._aead)

    def _open(self, kind: str, name: str, data: Optional[bytes], cap: int) -> Optional[bytes]:
        if data is None:
            return None
        if len(data) > cap:
            plain = None
        elif self._key is None:
            plain = None if is_sealed(data) else data  # a sealed record in a plain store: absent
        else:
            plain = open_sealed(self._key, kind, self.keys.aad_name(name), data, aead=self._aead)
        if plain is None and not self._warned:
            self._warned = True  # once per store object: status counts them
            print(
                f"mcp-oauth: warning: the {kind} {name!r} in the store {self.display} cannot be read here "
                f"({'sealed with another key, moved, or damaged' if self._key else 'sealed, and this store is plain'}); "
                "treating it as absent",
                file=sys.stderr,
            )
        return plain

    # -- records -------------------------------------------------------------

    def get(self, key: str) -> Optional[bytes]:
        check_key(key)
        v, d = self.run(f"reading {self.keys.record(key)}", lambda: self._r.hmget(self.keys.record(key), "v", "d"))
        with self._state:
            self._versions[key] = _int(v)
        return self._open("record", key, d, MAX_RECORD_BYTES)

    def set(self, key: str, value: bytes) -> None:
        check_key(key)
        data, record = self._seal("record", key, value), self.keys.record(key)
        with self._state:
            owner, base = self._held.get(key), self._versions.get(key, 0)
        where = f"writing {record}"
        if owner is None:
            version = self.run(where, lambda: self._plain(keys=[record], args=[data]))
        else:
            lock = self.keys.lock(key)
            version = self.run(where, lambda: self._fenced(keys=[record, lock], args=[owner, base, data]))
            if version in (-1, -2):
                why = (
                    "this process's lease on its lock ended before the write"
                    if version == -1
                    else "another replica wrote a newer version since it was read"
                )
                # Not written: the engine keeps its token for this call, and
                # the next refresh re-reads the newer record under the lock.
                raise StoreError(f"refused to write the record {record} in {self.url.display}: {why}")
        with self._state:
            self._versions[key] = _int(version)

    def delete(self, key: str) -> None:
        check_key(key)
        record = self.keys.record(key)
        self.run(f"removing {record}", lambda: self._r.delete(record))
        with self._state:
            self._versions.pop(key, None)

    def list(self, prefix: str = "") -> list:
        if prefix:
            check_key(prefix)
        return self._scan(prefix, "r")

    def list_keys(self) -> list:
        return self._scan("", "pem")

    def _scan(self, start: str, suffix: str) -> list:
        pattern, cursor, found = self.keys.pattern(start, suffix), 0, set()
        for _ in range(SCAN_ROUNDS):  # bounded, however large the keyspace
            cursor, batch = self.run(
                f"listing {pattern}", lambda: self._r.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
            )
            for k in batch:
                name = self.keys.name_of(k.decode("utf-8", "replace"), suffix)
                # Another user's names hold a '/', and are no names of ours.
                if name is not None and _is_name(name):
                    found.add(name)
            if int(cursor) == 0:
                break
        return sorted(found)

    # -- lease locks -----------------------------------------------------------

    def lock(self, key: str, deadline_s: Optional[float] = None) -> Lock:
        """Takes the lease on `key`, retrying every 10-50 ms until
        `deadline_s` (default: the lease and 10 s more) has passed."""
        check_key(key)
        lock, lease = self.keys.lock(key), self.url.lease_ms
        owner = f"{os.getpid()}:{os.urandom(16).hex()}"
        wait = lease / 1000 + WAIT_PAST_LEASE_S if deadline_s is None else deadline_s
        started = time.monotonic()
        while not self.run(f"taking the lock {lock}", lambda: self._take(keys=[lock], args=[owner, lease])):
            left = started + wait - time.monotonic()
            if left <= 0:
                holder = self.run(f"reading the lock {lock}", lambda: self._r.get(lock)) or b""
                pid = holder.split(b":")[0].decode("ascii", "replace") if holder else "none any more"
                raise StoreUnavailable(
                    f"timed out after {time.monotonic() - started:.0f} s waiting for the lock {lock} in "
                    f"{self.url.display}; its holder is process {pid} (on some replica)"
                )
            time.sleep(min(random.uniform(0.010, 0.050), left))
        with self._state:
            self._held[key] = owner
        return Lock(lambda: self._let_go(key, owner), lambda: self._keep(key, owner))

    def _let_go(self, key: str, owner: str) -> None:
        with self._state:
            if self._held.get(key) == owner:
                del self._held[key]
        lock = self.keys.lock(key)
        try:
            self.run(f"releasing the lock {lock}", lambda: self._release(keys=[lock], args=[owner]))
        except Exception:
            pass  # unreachable or refused: the lease ends by itself

    def _keep(self, key: str, owner: str) -> None:
        lock = self.keys.lock(key)
        if not self.run(f"renewing the lock {lock}", lambda: self._renew(keys=[lock], args=[owner, self.url.lease_ms])):
            raise StoreUnavailable(
                f"the lease on the lock {lock} in {self.url.display} was lost (this process was stopped or slow "
                f"past its {self.url.lease_ms} ms lease, and another replica may have taken it)"
            )

    # -- key files -------------------------------------------------------------

    def key_location(self, key: str) -> str:
        return f"the key file {self.keys.key_file(key)} in {self.url.display}"

    def get_key(self, key: str) -> Optional[bytes]:
        check_key(key)
        k = self.keys.key_file(key)
        return self._open("key", key, self.run(f"reading {k}", lambda: self._r.get(k)), MAX_KEY_FILE_BYTES)

    def put_key_once(self, key: str, value: bytes) -> bytes:
        check_key(key)
        k, data = self.keys.key_file(key), self._seal("key", key, value)
        if self.run(f"writing {k}", lambda: self._r.set(k, data, nx=True)):
            return bytes(value)
        kept = self.get_key(key)  # another replica made it first: its key is the one
        if kept is None:
            raise StoreError(
                f"{self.key_location(key)} does not open with this store's key, or vanished; "
                "it was left as it is (remove it and sign in again if it is damaged)"
            )
        return kept

    def delete_key(self, key: str) -> None:
        check_key(key)
        k = self.keys.key_file(key)
        self.run(f"removing {k}", lambda: self._r.delete(k))

    # -- status ------------------------------------------------------------------

    def secrets(self) -> Secrets:
        if self._key is None:
            return Secrets("plain", where=self.display)
        unreadable = 0
        for name in self.list(""):
            d = self.run("reading a record", lambda: self._r.hget(self.keys.record(name), "d"))
            if d is not None and open_sealed(self._key, "record", self.keys.aad_name(name), d, aead=self._aead) is None:
                unreadable += 1
        return Secrets("sealed", self.key_from, unreadable, where=self.display)


def _int(v) -> int:
    try:
        return int(v) if v is not None else 0
    except (TypeError, ValueError):
        return 0  # not a version this host wrote: a fenced write then refuses


def _is_name(name: str) -> bool:
    try:
        check_key(name)
    except StoreError:
        return False
    return True


def _tls_failure(e: BaseException, upper: str) -> bool:
    seen = 0
    while e is not None and seen < 8:  # the cause chain, bounded
        if isinstance(e, ssl.SSLError):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return any(w in upper for w in ("SSL", "TLS", "CERTIFICATE", "HANDSHAKE"))

