"""Typed exceptions. Messages say what went wrong and what to do next; they
never contain a token, secret, authorization code or PKCE verifier."""

from __future__ import annotations


class McpOAuthError(Exception):
    """Every error this package raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthorizationRequired(McpOAuthError):
    """No usable token and the call may not involve the user (silent mode)."""


class Declined(McpOAuthError):
    """The user declined (consent hook, the authorization server's access_denied,
    or a cancelled wait). Every call fails fast until `McpOAuth.retry()`."""


class TimedOut(McpOAuthError):
    """No redirect reached the loopback listener in time."""


class AuthFailed(McpOAuthError):
    """Authorization failed for another reason.

    `kind` is the engine's failure kind (`discovery-failed`, `token-request-failed`,
    `transport`, ...); `oauth_error`, `oauth_description` and `status` hold the
    authorization server's OAuth error answer when it sent one.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        oauth_error: str | None = None,
        oauth_description: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.oauth_error = oauth_error
        self.oauth_description = oauth_description
        self.status = status


class EngineError(McpOAuthError):
    """The engine could not be loaded, or it trapped (it is restarted on the next call)."""


class ConfigError(McpOAuthError, ValueError):
    """The configuration is wrong (the engine's `invalid-config`): a bad store
    URL or user, a shared store that refused the password, a TLS failure, a
    missing store key file. The message names what to fix, never a password."""

    kind = "invalid-config"


class SecretsError(McpOAuthError):
    """Where the store keeps its secrets cannot be settled: the store is
    sealed and plain files were asked for (or the reverse), the key file is
    refused, or sealing cannot be done here. The message names the fix (e.g.
    `mcp-oauth store seal` / `mcp-oauth store unseal`). Nothing was written."""


class KeychainUnavailable(SecretsError):
    """The store key must come from the OS keychain (`secrets="keychain"`, or
    a sealed store) and no keychain answered. Nothing was written."""
