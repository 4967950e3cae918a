"""The MCP Python SDK's own OAuth, as an application would write it: the
SDK's OAuthClientProvider with a file-backed TokenStorage (so a new process
finds the client and the tokens), a loopback listener for the callback, and
the provider as the httpx2 client's auth.

  python py_sdk.py workload <server-url> <store-dir>   connect, initialize, tools/list, tools/call echo
  python py_sdk.py token    <server-url> <store-dir>   the Authorization header the provider would attach

--import-wasmtime first imports wasmtime-py (`wasmtime`, `wasmtime.component`)
and uses nothing of it: what any package that runs a wasmtime-py component
in-process pays before its first call, on top of this program's own OAuth
(the bench's floor row for the wheel).

--no-refresh-grant registers with grant_types ["authorization_code"] instead
of the SDK's default ["authorization_code", "refresh_token"]. With the
default, the SDK appends offline_access to the scope when the AS lists it
(SEP-2207) and then adds prompt=consent to the authorization request, which
the demo authorization server refuses (HTTP 400 "no forced prompt").

The SDK has no call that returns a token: the provider is an httpx2.Auth. The
token mode steps the provider's auth flow (its public httpx2.Auth interface)
up to the request it would send, and prints that request's bearer token.

The "browser" is $BENCH_BROWSER run with the authorization URL (no shell).
"""

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import anyio


class FileStorage:
    """TokenStorage kept in <dir>/tokens.json and <dir>/client.json."""

    def __init__(self, d: Path) -> None:
        self.d = d

    def _read(self, name: str, model):
        try:
            return model.model_validate_json((self.d / name).read_text())
        except (OSError, ValueError):
            return None

    def _write(self, name: str, value) -> None:
        p = self.d / name
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value.model_dump_json(exclude_none=True))

    async def get_tokens(self):
        from mcp.shared.auth import OAuthToken

        return self._read("tokens.json", OAuthToken)

    async def set_tokens(self, tokens) -> None:
        self._write("tokens.json", tokens)

    async def get_client_info(self):
        from mcp.shared.auth import OAuthClientInformationFull

        return self._read("client.json", OAuthClientInformationFull)

    async def set_client_info(self, client_info) -> None:
        self._write("client.json", client_info)


class Callback:
    """The loopback listener: on the port of the registration when there is one."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.result: asyncio.Future | None = None
        self.server = None
        self.port = 0

    async def start(self) -> None:
        self.result = asyncio.get_running_loop().create_future()
        try:
            stored = int(json.loads((self.d / "port.json").read_text()))
        except (OSError, ValueError):
            stored = 0
        try:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", stored)
        except OSError:
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        (self.d / "port.json").write_text(json.dumps(self.port))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode("latin-1")
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        target = line.split(" ")[1] if line.count(" ") >= 2 else "/"
        u = urlparse(target)
        status = "200 OK" if u.path == "/callback" else "404 Not Found"
        writer.write(f"HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()
        if u.path == "/callback" and self.result is not None and not self.result.done():
            self.result.set_result({k: v[0] for k, v in parse_qs(u.query).items()})

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def run(mode: str, url: str, d: Path, refresh_grant: bool, import_wasmtime: bool) -> None:
    import httpx2
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    if import_wasmtime:  # where McpOAuth(url) imports it: after the SDK, before the first request
        import wasmtime  # noqa: F401
        import wasmtime.component  # noqa: F401

    cb = Callback(d)
    await cb.start()

    async def redirect_handler(authorization_url: str) -> None:
        if mode != "workload":
            raise RuntimeError("authorization required (token mode never opens a browser)")
        subprocess.Popen([os.environ["BENCH_BROWSER"], authorization_url], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def callback_handler() -> AuthorizationCodeResult:
        with anyio.fail_after(30):
            q = await cb.result
        if "error" in q:
            raise RuntimeError(f"authorization failed: {q['error']}")
        return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="bench-peers py-sdk",
            redirect_uris=[f"http://127.0.0.1:{cb.port}/callback"],
            grant_types=["authorization_code", "refresh_token"] if refresh_grant else ["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=FileStorage(d),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    try:
        if mode == "token":
            request = httpx2.Request("POST", url)
            flow = provider.async_auth_flow(request)
            sent = await flow.__anext__()
            await flow.aclose()
            header = sent.headers.get("authorization", "")
            if not header.startswith("Bearer "):
                raise RuntimeError("no stored token to attach")
            print(header[len("Bearer "):])
            return

        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async with streamable_http_client(url, http_client=httpx2.AsyncClient(auth=provider)) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                if not any(t.name == "echo" for t in tools.tools):
                    raise RuntimeError("tools/list has no echo")
                out = await session.call_tool("echo", {"text": "bench"})
                if out.content[0].text != "bench":
                    raise RuntimeError(f"echo answered {out!r}")
    finally:
        cb.close()


def main() -> int:
    args = sys.argv[1:]
    refresh_grant = "--no-refresh-grant" not in args
    import_wasmtime = "--import-wasmtime" in args
    args = [a for a in args if a not in ("--no-refresh-grant", "--import-wasmtime")]
    mode, url, store = args if len(args) == 3 else ("", "", "")
    if mode not in ("workload", "token"):
        print("usage: py_sdk.py workload|token <server-url> <store-dir> [--no-refresh-grant] [--import-wasmtime]", file=sys.stderr)
        return 2
    d = Path(store)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    anyio.run(run, mode, url, d, refresh_grant, import_wasmtime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
