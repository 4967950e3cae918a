"""What the consent, progress and device-code hooks are handed (the engine's host uses
them; loaded with it, or when first asked for)."""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Optional


@dataclass(frozen=True)
class ConsentRequest:
    """What the consent hook is asked, before any registration or browser."""

    server_url: str
    issuer: str
    scopes: list = dc_field(default_factory=list)
    reason: str = "first-login"  # first-login | reauthorize | step-up


@dataclass(frozen=True)
class Progress:
    """Something the user or the log should know. Never carries a secret.

    kind: callback-rejected, browser-open-failed (see `url`), storage-warning,
    pkce-check-overridden, legacy-issuer-differs, device-code (see `url`;
    `on_device_code` shows it) (from the engine); http, saved, listening,
    browser-opened, waiting, callback-arrived, callback-junk, polling (host
    steps). Server-supplied parts of `message` are escaped for a
    terminal (control characters shown as \\u{..}); `url` is as given.
    """

    kind: str
    message: str
    url: Optional[str] = None


@dataclass(frozen=True)
class DeviceCode:
    """Sign in on another device (RFC 8628): where the user goes and what they
    type there. The engine checked both URIs (https, or http on loopback) and
    the code (letters, digits, `-` and spaces); they are still the server's
    text: `printable()` them before a terminal shows them."""

    verification_uri: str
    verification_uri_complete: Optional[str]  # the same with the code in it: for a link or QR code
    user_code: str
    expires_in: int  # seconds
