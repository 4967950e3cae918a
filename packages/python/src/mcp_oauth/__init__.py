"""mcp-oauth: client-side OAuth for MCP, done by a sandboxed WebAssembly engine.

    from mcp_oauth import McpOAuth
    auth = McpOAuth("https://mcp.example.com/mcp")
    # mcp 2.x: streamable_http_client(url, http_client=httpx2.AsyncClient(auth=auth))
    # mcp 1.x: streamablehttp_client(url, auth=auth)

Importing this loads no engine: wasmtime is imported when a call first needs it.
"""

from ._version import __version__
from ._auth import McpOAuth
from ._errors import (
    AuthFailed,
    AuthorizationRequired,
    ConfigError,
    Declined,
    EngineError,
    KeychainUnavailable,
    McpOAuthError,
    SecretsError,
    TimedOut,
)
from ._token import AccessToken
from ._sealed import SealedStore
from ._seam import Lock, Secrets, Store, StoreError, StoreUnavailable
from ._select import open_store
from ._store import FileStore, default_home

__all__ = [
    "AccessToken",
    "AuthFailed",
    "AuthorizationRequired",
    "ConfigError",
    "ConsentRequest",
    "Declined",
    "EngineError",
    "FileStore",
    "IdentityAssertion",
    "KeychainUnavailable",
    "Lock",
    "McpOAuth",
    "McpOAuthError",
    "Progress",
    "RedisStore",
    "SealedStore",
    "Secrets",
    "SecretsError",
    "Status",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TimedOut",
    "WorkloadIdentity",
    "__version__",
    "default_home",
    "open_store",
]


_LATER = {
    "ConsentRequest": "_hooks",
    "DeviceCode": "_hooks",
    "Progress": "_hooks",
    "IdentityAssertion": "_types",
    "LogoutReport": "_types",
    "Status": "_types",
    "WorkloadIdentity": "_types",
}


def __getattr__(name: str):
    # RedisStore needs the optional `redis` package: imported when asked for.
    if name == "RedisStore":
        from ._redis import RedisStore

        return RedisStore
    if name in _LATER:  # dataclasses, defined when first asked for
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LATER[name]}"), name)
    raise AttributeError(f"module 'mcp_oauth' has no attribute {name!r}")
