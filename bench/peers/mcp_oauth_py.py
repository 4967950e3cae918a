"""The project's Python package with the MCP Python SDK: McpOAuth is the
httpx2 client's auth; the engine does the OAuth.

  python mcp_oauth_py.py workload <server-url> <store-dir>   connect, initialize, tools/list, tools/call echo
  python mcp_oauth_py.py token    <server-url> <store-dir>   auth.token() (never interactive), prints the token

The "browser" is $BROWSER (the package runs it without a shell).
"""

import sys

import anyio


def main() -> int:
    mode, url, home = sys.argv[1:4] if len(sys.argv) == 4 else ("", "", "")
    if mode not in ("workload", "token"):
        print("usage: mcp_oauth_py.py workload|token <server-url> <store-dir>", file=sys.stderr)
        return 2
    from mcp_oauth import McpOAuth

    if mode == "token":
        print(McpOAuth(url, home=home, interactive=False).token())
        return 0

    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    auth = McpOAuth(url, home=home, callback_timeout=30.0)

    async def workload() -> None:
        async with streamable_http_client(url, http_client=httpx2.AsyncClient(auth=auth)) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                if not any(t.name == "echo" for t in tools.tools):
                    raise RuntimeError("tools/list has no echo")
                out = await session.call_tool("echo", {"text": "bench"})
                if out.content[0].text != "bench":
                    raise RuntimeError(f"echo answered {out!r}")

    anyio.run(workload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
