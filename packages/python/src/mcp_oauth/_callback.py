"""The `callback` import: the loopback redirect listener (RFC 8252 §7.3).

Bound to 127.0.0.1 before the flow goes on (any free port unless pinned). It
serves many requests (a favicon or a stray hit does not end it), answers only
GET /callback, times out, can be cancelled, and, when pasting is on, races a
redirect URL pasted on stdin against the browser.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

PAGE_DONE = (
    "<!doctype html><title>mcp-oauth</title><p>mcp-oauth received the authorization response. "
    "You can close this tab and return to your application.</p>"
)
PAGE_REJECTED = (
    "<!doctype html><title>mcp-oauth</title><p>This response does not belong to the login in progress "
    "and was ignored. You can close this tab.</p>"
)
MAX_REQUEST_HEAD = 16 * 1024
READ_TIMEOUT_S = 5.0


class BindError(Exception):
    def __init__(self, message: str, port_in_use: int | None = None) -> None:
        super().__init__(message)
        self.port_in_use = port_in_use


def _respond(conn: socket.socket, status: int, body: str) -> None:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\n"
        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n"
    )
    try:
        conn.settimeout(READ_TIMEOUT_S)
        conn.sendall(head.encode() + data)
    except OSError:
        pass
    finally:
        conn.close()


def _read_head(conn: socket.socket, deadline: float) -> bytes | None:
    """The request line and headers, or None (too slow, too big, closed)."""
    buf = b""
    while b"\r\n\r\n" not in buf and b"\n\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or len(buf) > MAX_REQUEST_HEAD:
            return None
        conn.settimeout(left)
        try:
            chunk = conn.recv(4096)
        except OSError:
            return None
        if not chunk:
            break
        buf += chunk
    return buf


class Listener:
    """One flow's listener."""

    def __init__(self, port: int | None, paste: bool = False, cancel: threading.Event | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port or 0))
            sock.listen(16)
        except OSError as e:
            sock.close()
            if port and e.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                raise BindError(f"port {port} is already in use on 127.0.0.1", port_in_use=port) from None
            raise BindError(f"could not listen on 127.0.0.1: {e.strerror or e}") from None
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._pending: socket.socket | None = None
        self._paste = paste
        self._cancel = cancel

    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    def parse_paste(self, line: str) -> str:
        """The query of a pasted redirect URL; ValueError with the reason otherwise."""
        try:
            u = urlsplit(line.strip())
            port = u.port
        except ValueError:
            u, port = None, None
        if u is None or not u.scheme or not u.hostname:
            raise ValueError("that is not a URL; paste the whole address from the browser's address bar")
        base = f"{u.scheme}://{u.hostname}{f':{port}' if port else ''}{u.path}"
        if base != self.redirect_uri():
            raise ValueError(f"that URL is not the redirect address (expected one starting with {self.redirect_uri()}?)")
        if not u.query:
            raise ValueError(
                "that URL has no query; copy the address after the browser came back (it contains code= and state=)"
            )
        return u.query

    def _pasted(self) -> str | None:
        """A line typed on stdin, if one is ready (POSIX: select; never blocks)."""
        if not self._paste or os.name == "nt" or sys.stdin is None or sys.stdin.closed:
            return None
        try:
            ready, _, _ = select.select([sys.stdin], [], [], 0)
        except (OSError, ValueError):
            return None
        if not ready:
            return None
        line = sys.stdin.readline()
        return line.strip() or None

    def next(self, timeout_s: float) -> tuple[str, str | None]:
        """Waits up to `timeout_s`: ("redirect", query), ("timed-out", None) or ("cancelled", None)."""
        if self._pending is not None:
            # The previous arrival was not accepted by the engine.
            _respond(self._pending, 400, PAGE_REJECTED)
            self._pending = None
        deadline = time.monotonic() + timeout_s
        while True:
            if self._cancel is not None and self._cancel.is_set():
                return ("cancelled", None)
            line = self._pasted()
            if line:
                try:
                    return ("redirect", self.parse_paste(line))
                except ValueError as why:
                    print(f"mcp-oauth: {why}. Paste again, or finish in the browser.", file=sys.stderr)
            left = deadline - time.monotonic()
            if left <= 0:
                return ("timed-out", None)
            self._sock.settimeout(min(left, 0.1))
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                time.sleep(min(left, 0.1))
                continue
            head = _read_head(conn, time.monotonic() + min(READ_TIMEOUT_S, max(left, 0.5)))
            if head is None:
                conn.close()
                continue
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            target = parts[1].decode("latin-1") if len(parts) >= 2 else ""
            path, _, query = target.partition("?")
            if parts[0] != b"GET" or path != "/callback":
                _respond(conn, 404, "<p>Not found.</p>")
                continue
            self._pending = conn
            return ("redirect", query)

    def close(self) -> None:
        if self._pending is not None:
            _respond(self._pending, 200, PAGE_DONE)
            self._pending = None
        try:
            self._sock.close()
        except OSError:
            pass
