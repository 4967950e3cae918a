"""FastMCP's client with McpOAuth as its `auth=`: `fastmcp.Client(url,
auth=McpOAuth(url))` (an httpx2 auth, which FastMCP's HTTP transport hands to
its client as it is). Cold: the first request's 401 signs in once in the
headless browser. Warm: a new McpOAuth uses the stored token, with no request
to the authorization server. A 401 mid-session (every token revoked): one new
sign-in for concurrent calls, each retried."""

from __future__ import annotations

import anyio
import fastmcp

from mcp_oauth import McpOAuth

from conftest import no_browser


async def _session(url: str, auth: McpOAuth) -> tuple[list[str], str]:
    async with fastmcp.Client(url, auth=auth) as client:
        tools = await client.list_tools()
        out = await client.call_tool("echo", {"text": "hello from fastmcp"})
    return [t.name for t in tools], out.content[0].text


def test_fastmcp_client_cold_then_warm(demo, browser, home):
    auth = McpOAuth(demo.url, home=home, open_browser=browser)
    tools, echoed = anyio.run(_session, demo.url, auth)
    assert tools == ["echo"]
    assert echoed == "hello from fastmcp"
    assert len(browser.opened) == 1
    for line in ("POST /register", "GET /authorize", "POST /token"):
        assert demo.as_requests().count(line) == 1, demo.log()
    assert auth.status().has_token

    # Warm, as a new process would be: the stored token, nothing else.
    mark = len(demo.log())
    auth2 = McpOAuth(demo.url, home=home, open_browser=no_browser)
    tools, echoed = anyio.run(_session, demo.url, auth2)
    assert echoed == "hello from fastmcp"
    assert demo.as_requests(mark) == []
    assert all(line.endswith(" /mcp") for line in demo.log()[mark:]), demo.log()[mark:]
    assert len(browser.opened) == 1


def test_fastmcp_client_401_mid_session(demo, browser, home):
    # The server revokes every token it issued (the refresh token too) while
    # the session is open: the calls' 401s go to the engine, which signs in
    # again once (one browser open for the three), and each call is retried.
    auth = McpOAuth(demo.url, home=home, open_browser=browser)

    async def run() -> list[str]:
        async with fastmcp.Client(demo.url, auth=auth) as client:
            await client.call_tool("echo", {"text": "before"})
            await anyio.to_thread.run_sync(demo.revoke)
            texts = ["a", "b", "c"]
            got: dict[str, str] = {}

            async def call(t: str) -> None:
                got[t] = (await client.call_tool("echo", {"text": t})).content[0].text

            async with anyio.create_task_group() as tg:
                for t in texts:
                    tg.start_soon(call, t)
            return [got[t] for t in texts]

    assert anyio.run(run) == ["a", "b", "c"]
    assert len(browser.opened) == 2, "the first sign-in and one after the revocation"
    assert demo.as_requests().count("GET /authorize") == 2
