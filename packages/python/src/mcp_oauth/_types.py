"""Values McpOAuth takes and returns (AccessToken: _token.py; what the
hooks get: _hooks.py). Loaded when first used (`mcp_oauth.__getattr__`):
each dataclass costs most of a millisecond to define."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ._seam import Secrets


@dataclass(frozen=True)
class WorkloadIdentity:
    """Workload identity federation (SEP-1933): the workload's JWT from its platform
    (e.g. a Kubernetes service account token) in the jwt-bearer grant. A secret."""

    assertion: str

    def __repr__(self) -> str:
        return "WorkloadIdentity(assertion=<redacted>)"


@dataclass(frozen=True)
class IdentityAssertion:
    """Enterprise-managed authorization (SEP-990): the user's ID token from the IdP
    is exchanged for an ID-JAG, then for an access token. `id_token` is a secret."""

    idp_token_endpoint: str
    id_token: str
    idp_client_id: Optional[str] = None

    def __repr__(self) -> str:
        return f"IdentityAssertion(idp_token_endpoint={self.idp_token_endpoint!r}, id_token=<redacted>)"


@dataclass(frozen=True)
class Status:
    """What is stored for a server. No secrets."""

    server_url: str
    resource: Optional[str]
    issuer: Optional[str]
    client_id: Optional[str]
    scopes: list
    expires_at: Optional[int]
    has_token: bool
    can_refresh: bool
    declined: bool
    legacy: bool
    # Where the store keeps its secrets, and how many records its key
    # cannot open (`secrets.problem` says what to do then).
    secrets: Optional[Secrets] = None
    # The store, as displayed: a directory, or a shared store's URL without
    # its password (and the user).
    store: Optional[str] = None


@dataclass(frozen=True)
class LogoutReport:
    """What `logout` did at the authorization server (RFC 7009); the tokens
    are forgotten locally in every case. No secrets; `failed` and `skipped`
    are for people (server text in them is escaped for a terminal)."""

    revoked: list  # what the AS confirmed revoked: "refresh_token", "access_token"
    failed: Optional[str] = None  # why a revocation failed, when one did
    skipped: Optional[str] = None  # what was not revoked and why, when that is no failure
