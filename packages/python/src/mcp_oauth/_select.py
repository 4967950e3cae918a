"""Which store a McpOAuth uses (docs/store.md, "Selection" and "Users"):
`store=` or `MCP_OAUTH_STORE` (a redis:// or rediss:// URL; absent or empty
means the file store at `home`), and `user=` or `MCP_OAUTH_USER`, which
namespaces every record, lock and key file (the file store keeps a user's
store in <home>/users/<user>/). An argument wins over the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ._errors import ConfigError
from ._seam import Store, StoreError
from ._secrets import choice, open_store as open_file_store
from ._store import default_home, make_private_dir

PASSWORD_ENV = "MCP_OAUTH_STORE_PASSWORD"


def store_url(store: Optional[str] = None) -> "tuple[str, str]":
    """The store URL (empty: the file store) and where it came from."""
    if store is not None:
        if not isinstance(store, str):
            raise ConfigError(f"store= must be a redis:// URL or a Store object, not {type(store).__name__}")
        return store.strip(), "store="
    return os.environ.get("MCP_OAUTH_STORE", "").strip(), "MCP_OAUTH_STORE"


def store_user(user: Optional[str] = None) -> Optional[str]:
    """The user (None: one principal), checked."""
    env = os.environ.get("MCP_OAUTH_USER", "") if user is None else ""
    if not user and not env:
        return None
    from ._redis_url import check_user  # only when a user is named: a light start otherwise

    return check_user(user, "user=") if user else check_user(env)


def open_store(
    home: Union[str, Path, None] = None,
    secrets: Optional[str] = None,
    *,
    store: Optional[str] = None,
    user: Optional[str] = None,
) -> Store:
    """The store named by `store` (else `$MCP_OAUTH_STORE`) for `user` (else
    `$MCP_OAUTH_USER`): a shared Redis/Valkey store, or the file store at
    `home` (default `$MCP_OAUTH_HOME`, else the platform data dir), its
    secrets where `secrets` (else `$MCP_OAUTH_SECRETS`, else auto) say.
    ConfigError for a bad URL or user; see also the file store's errors."""
    url, source = store_url(store)
    who = store_user(user)
    mode = choice(secrets)
    if url:
        from ._redis_url import parse_store_url

        target = parse_store_url(url, os.environ.get(PASSWORD_ENV) or None, source)
        from ._redis_open import open_redis

        return open_redis(target, user=who, mode=mode)
    base = Path(home) if home is not None else default_home()
    if who is None:
        return open_file_store(base, mode)
    try:
        make_private_dir(base)  # parents too: a user's records sit two levels down
        make_private_dir(base / "users")
    except OSError as e:
        raise StoreError(f"cannot create the store directory {base / 'users'}: {e.strerror or e}") from None
    return open_file_store(base / "users" / who, mode)
