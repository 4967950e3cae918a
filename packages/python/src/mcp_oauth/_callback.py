"""The `callback` import: the loopback redirect listener (RFC 8252 §7.3).

Bound to 127.0.0.1 before the flow goes on (any free port unless pinned). It
serves many requests, answers only GET /callback, times out, can be
cancelled, and, when pasting is on, races a redirect URL pasted on stdin
against the browser.

Any page or local process can reach the listener before the real redirect,
so junk never ends or blocks the wait: one selector loop reads every
connection without blocking; anything but GET /callback is answered 404 (or
400 when it is not HTTP) as soon as its request line is read; the work per
connection is bounded (head size, read time), and so is the number of open
connections, never the number of requests. Complete /callback arrivals wait
in arrival order and none is ever dropped to make room, so a flood of them
cannot push out a later real one; at the cap the oldest idle connection is
closed instead. `junk` counts what was turned away.

An arrival handed to the engine is held open until the engine answers it
(`respond`: "ignored" at once for a stray one, the sign-in's outcome once the
token exchange is over); one it leaves unanswered gets a short neutral page
at the next `next` or at `close`.
"""

from __future__ import annotations

import collections
import errno
import os
import select
import selectors
import socket
import sys
import threading
import time
from urllib.parse import urlsplit

from ._terminal import printable

# Fallbacks only: the engine answers each arrival it is handed with its own
# page (`respond`). These answer one it left unanswered: when the wait goes on
# past it (ignored) or the listener closes (the attempt is over; the outcome
# is the application's to tell).
PAGE_DONE = (
    "<!doctype html><title>mcp-oauth</title><p>mcp-oauth received the authorization response. "
    "Return to your application for the outcome; you can close this tab.</p>"
)
PAGE_REJECTED = (
    "<!doctype html><title>mcp-oauth</title><p>This request was ignored: it does not belong to the sign-in "
    "in progress. You can close this tab.</p>"
)
PAGE_NOT_FOUND = "<p>Not found.</p>"
MAX_REQUEST_HEAD = 8 * 1024  # request line and headers; a browser's are ~1 KB
READ_TIMEOUT_S = 3.0  # a connection's head must arrive within this
MAX_CONNECTIONS = 64  # open at once: reading, or waiting for the engine
IDLE_EVICT_S = 0.5  # at the cap, a head still incomplete after this may be closed (a browser's comes at once)
ACCEPTS_PER_TURN = 16  # bounds one turn; the rest wait in the backlog
BACKLOG = 128
DRAIN_BYTES = 64 * 1024  # read before closing, so the answer is not lost to a reset
PAGE_WRITE_S = 2.0  # the engine's page may outgrow one send: written with this timeout
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


class BindError(Exception):
    def __init__(self, message: str, port_in_use: int | None = None) -> None:
        super().__init__(message)
        self.port_in_use = port_in_use


def _head_line(text: str) -> bool:
    return "\r" not in text and "\n" not in text


def _respond(conn: socket.socket, status: int, body: str, headers: list | None = None, wait: float = 0.0) -> None:
    """Answers and closes. `headers`: (name, value) pairs besides the framing
    (a pair with CR/LF, or content-length / connection, is dropped); without
    a content-type, HTML with no-store. wait=0 never blocks (junk and the
    fallback pages are small: one send takes them, else the client gets a
    closed socket); the engine's page is written within `wait` seconds."""
    extra = [
        (str(k), str(v))
        for k, v in headers or ()
        if str(k) and _head_line(str(k)) and _head_line(str(v)) and str(k).lower() not in ("content-length", "connection")
    ]
    if not any(k.lower() == "content-type" for k, _ in extra):
        extra[:0] = [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store")]
    data = body.encode()
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'OK' if status < 400 else 'Error')}"]
    lines += [f"{k}: {v}" for k, v in extra]
    lines += [f"content-length: {len(data)}", "connection: close", "", ""]
    try:
        if wait > 0:
            conn.settimeout(wait)
            conn.sendall("\r\n".join(lines).encode("latin-1", "replace") + data)
        else:
            conn.setblocking(False)
            conn.send("\r\n".join(lines).encode("latin-1", "replace") + data)
        conn.shutdown(socket.SHUT_WR)
        # What the client sent and we did not read would turn the close into
        # a reset, which can discard the answer before the client reads it.
        conn.setblocking(False)
        left = DRAIN_BYTES
        while left > 0:  # bounded: at most DRAIN_BYTES, and only what has arrived
            chunk = conn.recv(min(left, 16384))
            if not chunk:
                break
            left -= len(chunk)
    except OSError:  # includes BlockingIOError and timeouts: nothing more to do
        pass
    finally:
        conn.close()


class _Reading:
    """A connection whose request head is still arriving."""

    __slots__ = ("buf", "opened", "deadline")

    def __init__(self, now: float) -> None:
        self.buf = b""
        self.opened = now
        self.deadline = now + READ_TIMEOUT_S


def _judge(buf: bytes) -> tuple[str, str | int | None]:
    """What a request head read so far calls for: ("wait", None), ("answer",
    status) or ("callback", query). Decided on the request line alone unless
    it is GET /callback, whose whole head is read before it is answered."""
    if not buf[:1].isupper():  # methods are upper-case letters: a TLS hello, binary
        return ("answer", 400)
    end = buf.find(b"\n")
    if end < 0:
        return ("answer", 431) if len(buf) > MAX_REQUEST_HEAD else ("wait", None)
    parts = buf[:end].rstrip(b"\r").split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return ("answer", 400)
    method, target = parts[0], parts[1]
    path, _, query = target.partition(b"?")
    if method != b"GET" or path != b"/callback":
        return ("answer", 404)
    if b"\r\n\r\n" in buf or b"\n\n" in buf:
        return ("callback", query.decode("latin-1"))
    return ("answer", 431) if len(buf) > MAX_REQUEST_HEAD else ("wait", None)


class Listener:
    """One flow's listener. Used from one thread (the engine's); `cancel` may
    be set from any."""

    def __init__(self, port: int | None, paste: bool = False, cancel: threading.Event | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port or 0))
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            if port and e.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                raise BindError(f"port {port} is already in use on 127.0.0.1", port_in_use=port) from None
            raise BindError(f"could not listen on 127.0.0.1: {e.strerror or e}") from None
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ)
        self._accepting = True
        self._reading: dict[socket.socket, _Reading] = {}
        # Complete GET /callback arrivals the engine has not seen, oldest first.
        self._ready: collections.deque[tuple[socket.socket, str]] = collections.deque()
        self._pending: socket.socket | None = None  # the arrival the engine is judging
        self._paste = paste
        self._cancel = cancel
        self._closed = False
        self.junk = 0  # requests turned away (answered 404/400/431, timed out, closed)

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

    def respond(self, status: int, headers: list, body: str) -> None:
        """Answers the arrival the last `next` delivered with the engine's page
        (its outcome, or why it was ignored). Nothing to answer for a paste."""
        conn, self._pending = self._pending, None
        if conn is not None:
            _respond(conn, status, body, headers, wait=PAGE_WRITE_S)

    def next(self, timeout_s: float) -> tuple[str, str | None]:
        """Waits up to `timeout_s`: ("redirect", query), ("timed-out", None) or ("cancelled", None)."""
        if self._pending is not None:
            # The engine waits on past the previous arrival without answering it.
            _respond(self._pending, 400, PAGE_REJECTED)
            self._pending = None
        deadline = time.monotonic() + timeout_s
        while True:  # bounded by the deadline: every turn waits at most 0.1 s
            if self._cancel is not None and self._cancel.is_set():
                return ("cancelled", None)
            line = self._pasted()
            if line:
                try:
                    return ("redirect", self.parse_paste(line))
                except ValueError as why:
                    print(f"mcp-oauth: {printable(str(why))}. Paste again, or finish in the browser.", file=sys.stderr)
            if self._ready:
                self._pending, query = self._ready.popleft()
                return ("redirect", query)
            left = deadline - time.monotonic()
            if left <= 0 or self._closed:
                return ("timed-out", None)
            self._turn(min(left, 0.1))

    def _open(self) -> int:
        return len(self._reading) + len(self._ready) + (self._pending is not None)

    def _idle_victim(self, now: float) -> socket.socket | None:
        """At the cap: the oldest connection whose head is still incomplete after IDLE_EVICT_S, if any."""
        conn, r = min(self._reading.items(), key=lambda kv: kv[1].opened, default=(None, None))
        return conn if r is not None and now - r.opened >= IDLE_EVICT_S else None

    def _turn(self, wait: float) -> None:
        """One bounded round: accept some, read what has arrived, expire the slow."""
        now = time.monotonic()
        # At the cap with nothing to evict, stop watching the listening socket
        # (new connections wait in the backlog) rather than spin on it.
        room = self._open() < MAX_CONNECTIONS or self._idle_victim(now) is not None
        if room != self._accepting:
            if room:
                self._sel.register(self._sock, selectors.EVENT_READ)
            else:
                self._sel.unregister(self._sock)
            self._accepting = room
        if not self._sel.get_map():
            time.sleep(wait)
            return
        if self._reading:  # wake for the first read deadline too
            wait = max(0.0, min(wait, min(r.deadline for r in self._reading.values()) - now))
        try:
            events = self._sel.select(wait)
        except OSError:
            time.sleep(wait)
            return
        for key, _ in events:
            if key.fileobj is self._sock:
                self._accept()
            elif key.fileobj in self._reading:
                self._read(key.fileobj)  # type: ignore[arg-type]
        now = time.monotonic()
        for conn in [c for c, r in self._reading.items() if now >= r.deadline]:
            self._turn_away(conn, None)  # too slow: closed

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            if self._open() >= MAX_CONNECTIONS:
                victim = self._idle_victim(time.monotonic())
                if victim is None:
                    return  # the rest wait in the backlog
                self._turn_away(victim, None)
            try:
                conn, _ = self._sock.accept()
            except OSError:  # nothing more waiting (or EMFILE): next turn
                return
            conn.setblocking(False)
            self._reading[conn] = _Reading(time.monotonic())
            self._sel.register(conn, selectors.EVENT_READ)
            self._read(conn)  # a browser's request is usually there already

    def _read(self, conn: socket.socket) -> None:
        r = self._reading[conn]
        try:
            chunk = conn.recv(MAX_REQUEST_HEAD + 1 - len(r.buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._turn_away(conn, None)
            return
        if not chunk:
            self._turn_away(conn, None)
            return
        r.buf += chunk
        verdict, value = _judge(r.buf)
        if verdict == "answer":
            self._turn_away(conn, value)  # type: ignore[arg-type]
        elif verdict == "callback":
            self._forget(conn)
            self._ready.append((conn, value))  # type: ignore[arg-type]

    def _forget(self, conn: socket.socket) -> None:
        self._reading.pop(conn, None)
        try:
            self._sel.unregister(conn)
        except (KeyError, ValueError):
            pass

    def _turn_away(self, conn: socket.socket, status: int | None) -> None:
        """Junk: answered with `status` and closed, or just closed."""
        self._forget(conn)
        self.junk += 1
        if status is None:
            conn.close()
        else:
            _respond(conn, status, PAGE_NOT_FOUND if status == 404 else "<p>Bad request.</p>")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pending is not None:
            _respond(self._pending, 200, PAGE_DONE)
            self._pending = None
        while self._ready:  # never seen by the engine: not this login's
            _respond(self._ready.popleft()[0], 400, PAGE_REJECTED)
        for conn in list(self._reading):
            self._forget(conn)
            conn.close()
        try:
            self._sel.close()
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
