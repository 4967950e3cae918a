"""Opening a shared store (docs/store.md, "Sealed"): the store key from
`MCP_OAUTH_STORE_KEY_FILE` (never a keychain: the replicas share it), and
the manifest `<prefix>store.json`, written once with SET NX by the first
replica, which pins sealed or plain and the key id for the whole fleet."""

from __future__ import annotations

import os
import sys
import threading
from typing import Optional

from ._errors import ConfigError, SecretsError
from ._redis import RedisStore, need_redis
from ._redis_url import StoreUrl
from ._sealed import key_id
from ._secrets import KEY_FILE_ENV, Pinned, _need_cryptography, parse_pinned, read_key_file


_plain_noticed = False  # plain records on a shared store: said once per process
_notice_lock = threading.Lock()


def open_redis(url: StoreUrl, *, user: Optional[str], mode: str) -> RedisStore:
    """The store at `url` for `user`, its secrets as `mode` (auto, keychain,
    file) and its manifest say. The manifest `Pstore.json` is written once
    (SET NX) by the first replica; a replica whose key or mode differs fails
    here, before anything else is written. Errors: ConfigError (no key file,
    credentials, TLS), SecretsError (the manifest), StoreUnavailable."""
    need_redis()
    key, key_from = None, None
    if mode != "file":
        _need_cryptography(f"the shared store {url.display} is sealed")
        path = os.environ.get(KEY_FILE_ENV)
        if not path:
            raise ConfigError(
                f"the shared store {url.display} seals its records with a key from {KEY_FILE_ENV}, which is not set: "
                "give every replica the same key file (32 random bytes in base64, mode 0600), "
                "or set MCP_OAUTH_SECRETS=file to keep plain records"
            )
        key, key_from = read_key_file(path), f"the key file {path}"
    store = RedisStore(url, user=user, key=key, key_from=key_from or "nowhere (plain records)")
    try:
        wanted = Pinned("sealed", key_id(key)) if key is not None else Pinned("plain")
        name = store.keys.manifest
        body = store.run(f"reading {name}", lambda: store._r.get(name))
        if body is None:  # the first replica: of two at once, one SET NX wins and both follow it
            store.run(f"writing {name}", lambda: store._r.set(name, wanted.body(), nx=True))
            body = store.run(f"reading {name}", lambda: store._r.get(name)) or b""
        where = f"the manifest {name} of the store {url.display}"
        found = parse_pinned(body, where, "restore it (the same JSON as store.json)")
        if found != wanted:
            raise _mismatch(found, wanted, url.display)
    except BaseException:
        store.close()
        raise
    if key is None:
        _notice_plain(url.display)
    return store


def _mismatch(found, wanted, shown: str) -> Exception:
    if found.mode == "sealed" and wanted.mode == "sealed":
        # Never a re-key: on a shared store, one replica with the wrong key
        # must not lock the others out.
        return SecretsError(
            f"the shared store {shown} is sealed with the key {found.key_id}, and {KEY_FILE_ENV} holds the key "
            f"{wanted.key_id}: give this replica the fleet's key file; nothing was written"
        )
    if found.mode == "sealed":
        return SecretsError(
            f"the shared store {shown} keeps its records sealed and MCP_OAUTH_SECRETS=file was asked: "
            f"set {KEY_FILE_ENV} to the fleet's key file instead; nothing was written"
        )
    return SecretsError(
        f"the shared store {shown} keeps its records plain (its manifest says so): set MCP_OAUTH_SECRETS=file "
        "on every replica, or start a sealed store under another prefix; nothing was written"
    )


def _notice_plain(shown: str) -> None:
    global _plain_noticed
    with _notice_lock:
        if _plain_noticed:
            return
        _plain_noticed = True
    print(
        f"mcp-oauth: the shared store {shown} holds its secrets unsealed (MCP_OAUTH_SECRETS=file); "
        "set MCP_OAUTH_STORE_KEY_FILE on every replica to seal them",
        file=sys.stderr,
    )
