"""AccessToken: what token() and access_token() hand out, from the store's
fast path or from the engine (its own module: the first token() needs it,
the other values in _types.py can wait)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class AccessToken:
    """An access token (a secret: its repr hides it). `dpop`: bound to a DPoP key
    (RFC 9449): sent as `Authorization: DPoP` with a `DPoP` proof, never as Bearer."""

    token: str
    expires_at: Optional[int]  # Unix ms
    scopes: list
    dpop: bool = False

    def __repr__(self) -> str:
        return f"AccessToken(<redacted>, expires_at={self.expires_at}, scopes={self.scopes}, dpop={self.dpop})"
