"""mcp-oauth: client-side OAuth for MCP, done by a sandboxed WebAssembly engine.

    from mcp_oauth import McpOAuth
    auth = McpOAuth("https://mcp.example.com/mcp")
    # mcp 2.x: streamable_http_client(url, http_client=httpx2.AsyncClient(auth=auth))
    # mcp 1.x: streamablehttp_client(url, auth=auth)
"""

from ._version import __version__
from ._auth import AccessToken, IdentityAssertion, McpOAuth, Status, WorkloadIdentity
from ._errors import AuthFailed, AuthorizationRequired, Declined, EngineError, McpOAuthError, TimedOut
from ._host import ConsentRequest, Progress
from ._store import default_home

__all__ = [
    "AccessToken",
    "AuthFailed",
    "AuthorizationRequired",
    "ConsentRequest",
    "Declined",
    "EngineError",
    "IdentityAssertion",
    "McpOAuth",
    "McpOAuthError",
    "Progress",
    "Status",
    "TimedOut",
    "WorkloadIdentity",
    "__version__",
    "default_home",
]
