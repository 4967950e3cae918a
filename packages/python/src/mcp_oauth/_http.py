"""The `http` import: one request, exactly as the engine asks for it.

Redirects are never followed (the engine sees the 3xx and decides), there is a
connect timeout, a total deadline and a 1 MiB body cap, and the URL rules are
the Rust host's: https anywhere, plain http only to loopback.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._signals import dpop_nonce_signal  # noqa: F401  (its home before; tests use it here)
from ._version import __version__

CONNECT_TIMEOUT_S = 10.0
TOTAL_TIMEOUT_S = 30.0
MAX_BODY = 1024 * 1024
USER_AGENT = f"mcp-oauth-python/{__version__}"


class HttpError(Exception):
    """Why no response arrived. `kind`: refused, timeout, connection, too-large or other."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind
        self.message = message


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_policy(url: str):
    """The parsed URL when it may be fetched: https anywhere, http only on loopback."""
    try:
        u = urlsplit(url)
        u.port  # raises on a bad port
    except ValueError:
        raise HttpError("refused", f"{url!r} is not a URL") from None
    if not u.hostname or u.username is not None or u.password is not None:
        raise HttpError("refused", f"{url!r} is not a URL this client fetches")
    if u.scheme == "https":
        return u
    if u.scheme == "http":
        if is_loopback_host(u.hostname):
            return u
        raise HttpError("refused", f"plain http to {u.hostname} (only loopback may use http)")
    raise HttpError("refused", f"scheme {u.scheme!r} is not allowed")


_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context()
    return _tls


def send(
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    total_timeout: float = TOTAL_TIMEOUT_S,
    max_body: int = MAX_BODY,
) -> Response:
    """Sends one request after the policy check; never follows a redirect."""
    u = check_policy(url)
    deadline = time.monotonic() + total_timeout
    host = u.hostname or ""
    if u.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, u.port, timeout=connect_timeout, context=_tls_context()
        )
    else:
        conn = http.client.HTTPConnection(host, u.port, timeout=connect_timeout)
    target = (u.path or "/") + (f"?{u.query}" if u.query else "")
    try:
        try:
            conn.connect()
        except (socket.timeout, TimeoutError):
            raise HttpError("timeout", f"connecting to {host} timed out") from None
        except ssl.SSLError as e:
            raise HttpError("connection", f"TLS: {e.reason or e}") from None
        except OSError as e:
            raise HttpError("connection", f"{host}: {e.strerror or e}") from None
        names = {k.lower() for k, _ in headers}
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if "user-agent" not in names:
            conn.putheader("User-Agent", USER_AGENT)
        if body or method == "POST":
            conn.putheader("Content-Length", str(len(body)))
        _remaining(conn, deadline)
        conn.endheaders(body if body else None)
        _remaining(conn, deadline)
        resp = conn.getresponse()
        out = bytearray()
        # Bounded: at most max_body + 1 bytes, and every read has a timeout
        # no longer than what is left of the deadline.
        while len(out) <= max_body:
            _remaining(conn, deadline)
            chunk = resp.read(min(65536, max_body + 1 - len(out)))
            if not chunk:
                break
            out += chunk
        if len(out) > max_body:
            raise HttpError("too-large", f"the response from {host} is larger than {max_body} bytes")
        return Response(resp.status, [(k, v) for k, v in resp.getheaders()], bytes(out))
    except HttpError:
        raise
    except (socket.timeout, TimeoutError):
        raise HttpError("timeout", f"{method} {host} timed out") from None
    except (http.client.HTTPException, OSError) as e:
        raise HttpError("connection", f"{host}: {e}") from None
    finally:
        conn.close()


def _remaining(conn: http.client.HTTPConnection, deadline: float) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise HttpError("timeout", "the request took longer than the total timeout")
    if conn.sock is not None:
        conn.sock.settimeout(left)
