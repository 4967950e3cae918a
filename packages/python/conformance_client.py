"""The client the official MCP conformance suite drives (the Python twin of
host/src/bin/conformance-client.rs):

    python conformance_client.py <server-url>

with MCP_CONFORMANCE_SCENARIO and, for some scenarios, MCP_CONFORMANCE_CONTEXT
(JSON: pre-registered credentials, a signing key, an ID token, ...). An empty
store per run, a headless browser that follows the redirect chain to the
loopback listener, and https://conformance-test.local/client-metadata.json as
the client ID metadata document URL. It connects through the MCP SDK,
initializes, lists the tools and calls each one, then exits 0; any failure
prints the reason and exits 1.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from urllib.parse import urljoin, urlsplit

import anyio

from mcp_oauth import IdentityAssertion, McpOAuth, McpOAuthError
from mcp_oauth import _http
from mcp_oauth._terminal import printable, printable_lines

CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


def follow(url: str) -> None:
    """Follows redirects from `url` until the loopback callback has been requested."""
    for _ in range(10):
        u = urlsplit(url)
        loopback = _http.is_loopback_host(u.hostname or "") and u.path == "/callback"
        r = _http.send("GET", url, [], b"")
        if loopback:
            return
        if not 300 <= r.status < 400 or not r.header_values("location"):
            raise RuntimeError(f"{url} answered HTTP {r.status} instead of redirecting")
        url = urljoin(url, r.header_values("location")[0])
    raise RuntimeError("too many redirects")


def headless_browser(url: str) -> None:
    def run() -> None:
        try:
            follow(url)
        except Exception as e:
            print(f"conformance-client: headless browser: {printable(str(e))}", file=sys.stderr)

    threading.Thread(target=run, daemon=True).start()


def sample_arguments(schema: dict) -> dict:
    """A plausible value per property of a tool's input schema."""
    args = {}
    for i, (name, p) in enumerate((schema or {}).get("properties", {}).items()):
        t = p.get("type")
        args[name] = {"number": i + 2, "integer": i + 2, "boolean": True, "array": [], "object": {}}.get(t, "test")
    return args


def make_auth(url: str, home: str) -> McpOAuth:
    ctx = {}
    try:
        ctx = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    except ValueError:
        pass
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    # The grant follows what the scenario hands the application: a signing
    # key means private_key_jwt client credentials, an ID token the
    # enterprise flow; otherwise the scenario's name decides.
    key = ctx.get("private_key_pem")
    if ctx.get("idp_id_token"):
        grant = IdentityAssertion(ctx["idp_token_endpoint"], ctx["idp_id_token"], ctx.get("idp_client_id"))
    elif key or "client-credentials" in scenario:
        grant = "client-credentials"
    else:
        grant = None
    return McpOAuth(
        url,
        home=home,
        open_browser=headless_browser,
        client_id=ctx.get("client_id"),
        client_secret=ctx.get("client_secret"),
        client_metadata_url=CLIENT_METADATA_URL,
        client_name="mcp-oauth conformance client (python)",
        grant=grant,
        signing_key=key,
        callback_timeout=20,
        # The store is empty per run; the compiled engine need not be.
        cache_dir=os.path.join(tempfile.gettempdir(), f"mcp-oauth-cache-{os.getuid()}"),
        paste=False,
        progress=lambda p: print(f"conformance-client: {printable_lines(p.message)}", file=sys.stderr),
    )


async def session(url: str, auth: McpOAuth) -> None:
    from mcp import ClientSession

    try:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        transport = streamable_http_client(url, http_client=httpx2.AsyncClient(auth=auth, timeout=60))
    except ImportError:  # mcp 1.x
        from mcp.client.streamable_http import streamablehttp_client

        transport = streamablehttp_client(url, auth=auth)
    async with transport as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            await s.initialize()
            tools = await s.list_tools()
            for tool in tools.tools:
                out = await s.call_tool(tool.name, sample_arguments(getattr(tool, "input_schema", None) or tool.inputSchema))
                print(printable(f"called {tool.name}: {out.content}"), file=sys.stderr)


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: conformance_client.py <server-url>", file=sys.stderr)
        return 2
    url = sys.argv[1]
    home = tempfile.mkdtemp(prefix="mcp-oauth-conformance-")
    try:
        auth = make_auth(url, home)
        anyio.run(session, url, auth)
        return 0
    except McpOAuthError as e:
        print(f"conformance-client: {type(e).__name__}: {printable(str(e))}", file=sys.stderr)
    except BaseException as e:  # the SDK wraps failures in exception groups
        print(f"conformance-client: {type(e).__name__}: {printable(str(e))}", file=sys.stderr)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
