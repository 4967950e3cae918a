"""The silent fast path (tests/vectors/fast_path.json): before the engine is
instantiated, a silent token() may be answered from the store: the binding
record for the server URL, then the tokens record it names; a Bearer token
is served while now < refresh_at (the engine's margin rule). When either
record is absent (no token stored), a silent call is answered
authorization-required, as the engine would. Anything else, or anything
unexpected, is left to the engine. The records are read through
the same Store the engine's host uses, so a sealed store hands them over
already opened. Never raises, never logs a record.

The decoders are at least as strict as the engine's (miniserde, exact
envelope): accepting less only sends more calls to the engine."""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple, Optional, Union

_HEAD = b'{"v":1,"record":'
_U64 = (1 << 64) - 1


class Served(NamedTuple):
    """What the fast path serves (a secret: no repr shows the token)."""

    token: str
    expires_at: int
    refresh_at: int
    scopes: list

    def __repr__(self) -> str:
        return f"Served(<redacted>, expires_at={self.expires_at}, refresh_at={self.refresh_at})"


def key(kind: str, *parts: str) -> str:
    """A record's key, as the engine names it (guest/core/src/records.rs)."""
    h = hashlib.sha256(kind.encode("utf-8"))
    for p in parts:
        h.update(b"\0" + p.encode("utf-8"))
    return f"{kind}-{h.hexdigest()[:40]}"


def _no_constant(name: str) -> Any:
    raise ValueError("not JSON")  # NaN, Infinity: the engine reads no such thing


def _record(data: Optional[bytes]) -> Optional[dict]:
    """The record inside the exact envelope the engine writes, or None."""
    if not isinstance(data, (bytes, bytearray)) or not data.startswith(_HEAD) or not data.endswith(b"}"):
        return None
    try:
        r = json.loads(bytes(data[len(_HEAD) : -1]), parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return r if isinstance(r, dict) else None


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _u64(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U64


def _strs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _binding(r: Optional[dict], server_url: str) -> Optional[tuple]:
    """(resource, issuer) of a binding that is the server's, else None."""
    if r is None or r.get("server_url") != server_url or not _str(r.get("issuer")):
        return None
    prm = r.get("prm")
    if not isinstance(prm, dict) or not _str(prm.get("resource")) or not _strs(prm.get("authorization_servers")):
        return None
    scopes, dpop = prm.get("scopes_supported"), prm.get("dpop_bound_access_tokens_required")
    if not (scopes is None or _strs(scopes)) or not (dpop is None or isinstance(dpop, bool)):
        return None
    if not _opt_str(r.get("resource_metadata_url")) or not isinstance(r.get("legacy"), bool):
        return None
    return prm["resource"], r["issuer"]


def _tokens(r: Optional[dict], resource: str, issuer: str) -> Optional[dict]:
    """The token set of a record that is the binding's, else None."""
    if r is None or r.get("resource") != resource or r.get("issuer") != issuer:
        return None
    t = r.get("tokens")
    if not isinstance(t, dict) or not _str(t.get("access_token")) or not _str(t.get("client_id")):
        return None
    if not all(_opt_str(t.get(k)) for k in ("refresh_token", "scope", "dpop_key")):
        return None
    if not all(t.get(k) is None or _u64(t.get(k)) for k in ("expires_at", "lifetime_ms")):
        return None
    return t


class _NothingStored:
    """The rule's answer when no token is stored (the vectors'
    `nothing_stored`): a silent call is answered authorization-required
    without the engine, as the engine would answer it. Shaped as the
    engine's auth-error, so it takes the same way out."""

    tag = "authorization-required"

    def __repr__(self) -> str:
        return "NOTHING_STORED"


NOTHING_STORED = _NothingStored()


def serve(records: Any, server_url: str, skew_ms: int, now_ms: int) -> Union[Served, _NothingStored, None]:
    """The rule itself over `records.get(key)` (a Store, or a dict in tests):
    the token to serve, NOTHING_STORED, or None to ask the engine. Only an
    absent record (None: what the engine is handed too) is nothing stored."""
    data = records.get(key("binding", server_url))
    if data is None:
        return NOTHING_STORED
    b = _binding(_record(data), server_url)
    if b is None:
        return None
    data = records.get(key("tokens", *b))
    if data is None:
        return NOTHING_STORED
    t = _tokens(_record(data), *b)
    if t is None or t.get("dpop_key") is not None or not t["access_token"]:
        return None
    expires_at, lifetime = t.get("expires_at"), t.get("lifetime_ms")
    if expires_at is None:
        return None  # of unknown lifetime: the engine decides
    margin = skew_ms if lifetime is None else min(skew_ms, lifetime // 2)
    refresh_at = max(expires_at - margin, 0)
    if not now_ms < refresh_at:
        return None
    scopes: list = []
    for s in (t.get("scope") or "").split(" "):
        if s and s not in scopes:
            scopes.append(s)
    return Served(t["access_token"], expires_at, refresh_at, scopes)


def from_store(store: Any, server_url: str, skew_ms: int, now_ms: int) -> Union[Served, _NothingStored, None]:
    """`serve` over a Store; any failure to read is "ask the engine"."""
    try:
        return serve(store, server_url, skew_ms, now_ms)
    except Exception:  # a store that cannot answer: the engine will say so
        return None
