"""Cold and warm starts through the real MCP Python SDK: its streamable HTTP
client and ClientSession, with McpOAuth as the HTTP client's auth."""

from __future__ import annotations

import anyio
import pytest

from mcp_oauth import McpOAuth


async def _session_roundtrip(url: str, auth: McpOAuth) -> tuple[str, list[str], str]:
    from mcp import ClientSession

    try:  # mcp 2.x: httpx2, the client is passed in
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        transport = streamable_http_client(url, http_client=httpx2.AsyncClient(auth=auth))
    except ImportError:  # mcp 1.x: httpx, auth= on the transport
        from mcp.client.streamable_http import streamablehttp_client

        transport = streamablehttp_client(url, auth=auth)
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            out = await session.call_tool("echo", {"text": "hello from python"})
    info = getattr(init, "server_info", None) or init.serverInfo  # 2.x: snake_case
    return info.name, [t.name for t in tools.tools], out.content[0].text


def test_cold_then_warm(demo, browser, home):
    # Cold: nothing stored. The first request gets a 401; the engine
    # discovers, registers, opens the browser once and gets a token.
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    name, tools, echoed = anyio.run(_session_roundtrip, demo.url, auth)
    assert name.startswith("mcp-oauth")
    assert tools == ["echo"]
    assert echoed == "hello from python"
    assert len(browser.opened) == 1
    log = demo.log()
    assert "POST /register" in log and "POST /token" in log
    assert (home / "locks").is_dir() and any(home.glob("*.json"))

    # Warm: a new McpOAuth (as a new process would) uses the stored token:
    # no request to the authorization server, no browser, no 401.
    mark = len(demo.log())
    auth2 = McpOAuth(demo.url, home=home, open_browser=browser)
    name, tools, echoed = anyio.run(_session_roundtrip, demo.url, auth2)
    assert echoed == "hello from python"
    assert len(browser.opened) == 1
    assert demo.as_requests(mark) == []
    assert all(l.endswith(" /mcp") for l in demo.log()[mark:])
    # The stored token is the one the server accepts.
    assert auth2.status().has_token and auth2.status().issuer == demo.base


def test_sync_httpx_client_and_token(demo, browser, home):
    httpx2 = pytest.importorskip("httpx2")
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    with httpx2.Client(auth=auth) as c:
        r = c.post(demo.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 200 and r.json()["result"]["tools"][0]["name"] == "echo"
    assert auth.token() == r.request.headers["authorization"].removeprefix("Bearer ")
    assert len(browser.opened) == 1
