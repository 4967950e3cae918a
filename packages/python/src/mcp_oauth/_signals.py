"""What a response from the MCP server tells the engine about DPoP nonces.
Its own module: the auth flow asks on every response, and importing the
HTTP client (_http.py) for it would cost a warm start."""

from __future__ import annotations

from typing import Iterable, Optional


def dpop_nonce_signal(
    status: int, headers: Iterable[tuple[str, str]], retried: bool = False
) -> tuple[str, Optional[str]]:
    """What a response from the MCP server tells the engine (RFC 9449 §8, §9;
    tests/vectors/dpop_nonce_signals.json): ("challenge", nonce or None) on
    401 and 403 (the nonce goes with the challenge); ("note", nonce or None)
    on a 2xx carrying a nonce, or on any 2xx when `retried` (the request was
    sent again after a challenge: the new token works, which re-arms the
    engine's once-per-rejection refresh); else ("none", None). Header names
    are case-insensitive; the first DPoP-Nonce counts; an empty one is none."""
    nonce = next((v for k, v in headers if k.lower() == "dpop-nonce"), None) or None
    if status in (401, 403):
        return ("challenge", nonce)
    if 200 <= status < 300 and (nonce is not None or retried):
        return ("note", nonce)
    return ("none", None)
