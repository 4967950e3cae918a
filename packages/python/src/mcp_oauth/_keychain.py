"""The store key in the OS keychain (docs/store.md, "The store key"): one
item per store, service `mcp-oauth`, account `store:<realpath of the store>`,
the secret the standard base64 of the 32-byte key.

Linux and the BSDs: the Secret Service, through `secretstorage` directly
(imported only here, when a keychain is asked for: `keyring`'s backend
discovery costs a few hundred ms). The item carries exactly the attributes
{service, username}, what the Rust host and `@napi-rs/keyring` write and
search by; `keyring.set_password` would add an `application` attribute and
so make a second item, which the other hosts see as ambiguous.
macOS and Windows: the `keyring` package (Keychain, Credential Manager).
Both come with `pip install "mcp-oauth[keychain]"`.

Every call is bounded (2 s, in a daemon thread): a headless session with
no Secret Service, or a prompt nobody answers, never hangs a process. The
key is read once per process and kept in memory; so is the finding that no
keychain answers.
"""

from __future__ import annotations

import base64
import binascii
import os
import sys
import threading
from typing import Any, Callable, Optional

SERVICE = "mcp-oauth"
DEADLINE_S = 2.0
INSTALL = 'pip install "mcp-oauth[keychain]"'
_NATIVE = sys.platform in ("darwin", "win32")  # else the Secret Service


class Unavailable(Exception):
    """No keychain answered; the message says why (never a secret)."""


def name() -> str:
    """The keychain's name, for messages and status."""
    if sys.platform == "darwin":
        return "the macOS Keychain"
    if sys.platform == "win32":
        return "the Windows Credential Manager"
    return "the keychain (Secret Service)"


def account(home: "os.PathLike | str") -> str:
    """`store:` followed by the store directory's canonical absolute path."""
    return "store:" + os.path.realpath(home)


_keys: dict = {}  # account -> key bytes, read once per process
_keys_lock = threading.Lock()
_unavailable: Optional[str] = None  # why no keychain answered, once found


def _reset() -> None:
    """Forgets what this process learnt (tests)."""
    global _unavailable
    with _keys_lock:
        _keys.clear()
        _unavailable = None


def _bounded(fn: Callable[[], Any]) -> Any:
    """fn() on a daemon thread, waited for at most DEADLINE_S."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # handed to the caller below
            out["error"] = e

    t = threading.Thread(target=run, name="mcp-oauth-keychain", daemon=True)
    t.start()
    t.join(DEADLINE_S)
    if t.is_alive():  # left to finish on its own; its answer is ignored
        raise Unavailable(f"the keychain did not answer within {DEADLINE_S:.0f} s (is it locked, or waiting for a prompt?)")
    if "error" in out:
        raise out["error"]
    return out["value"]


def _decode(secret: Any) -> Optional[bytes]:
    """The key from an item's secret; None when it holds no 32-byte key."""
    try:
        text = secret.decode("ascii") if isinstance(secret, (bytes, bytearray)) else str(secret)
        text = text.strip()
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return None
    return key if len(key) == 32 else None


def get(acct: str, *, fresh: bool = False) -> Optional[bytes]:
    """The key kept for `acct`, None when there is no item (or it holds no
    key). Unavailable when no keychain answers. `fresh`: ask the keychain
    again, not this process's copy."""
    global _unavailable
    with _keys_lock:
        if not fresh and acct in _keys:
            return _keys[acct]
        if _unavailable is not None:
            raise Unavailable(_unavailable)
    try:
        secret = _bounded(lambda: _native_get(acct) if _NATIVE else _ss_get(acct))
    except Unavailable as e:
        with _keys_lock:
            _unavailable = str(e)
        raise
    key = _decode(secret) if secret is not None else None
    with _keys_lock:
        if key is not None:
            _keys[acct] = key
        else:
            _keys.pop(acct, None)
    return key


def put(acct: str, key: bytes) -> None:
    """Keeps `key` for `acct` (replacing the item's secret). Unavailable on failure."""
    value = base64.b64encode(key).decode("ascii")
    _bounded(lambda: _native_put(acct, value) if _NATIVE else _ss_put(acct, value))
    with _keys_lock:
        _keys[acct] = bytes(key)


def delete(acct: str) -> None:
    """Removes the item for `acct`; absent is fine."""
    with _keys_lock:
        _keys.pop(acct, None)
    _bounded(lambda: _native_delete(acct) if _NATIVE else _ss_delete(acct))


# -- the Secret Service (secretstorage, over jeepney) -------------------------


def _attrs(acct: str) -> dict:
    return {"service": SERVICE, "username": acct}


def _ss(fn: Callable[[Any, Any], Any]) -> Any:
    """fn(secretstorage, connection) on a fresh session-bus connection."""
    try:
        import secretstorage
    except ImportError:
        raise Unavailable(f"keychain support is not installed ({INSTALL})") from None
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        raise Unavailable("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)")
    try:
        conn = secretstorage.dbus_init()
    except (secretstorage.SecretServiceNotAvailableException, OSError, ValueError, KeyError) as e:
        raise Unavailable(f"the D-Bus session bus cannot be reached ({type(e).__name__})") from None
    try:
        if not secretstorage.check_service_availability(conn):
            raise Unavailable("no Secret Service on the session bus")
        return fn(secretstorage, conn)
    except Unavailable:
        raise
    except secretstorage.SecretStorageException as e:
        raise Unavailable(f"the Secret Service refused: {type(e).__name__}") from None
    except Exception as e:  # a D-Bus error reply, a closed socket
        raise Unavailable(f"the Secret Service failed ({type(e).__name__})") from None
    finally:
        conn.close()


def _unlocked(ss: Any, obj: Any) -> None:
    if obj.is_locked():
        dismissed = obj.unlock(timeout=DEADLINE_S)
        if dismissed or obj.is_locked():
            raise Unavailable("the keychain is locked (unlock it, then try again)")


def _items(ss: Any, conn: Any, acct: str) -> list:
    return list(ss.search_items(conn, _attrs(acct)))


def _ss_get(acct: str) -> Optional[bytes]:
    def run(ss: Any, conn: Any) -> Optional[bytes]:
        items = _items(ss, conn, acct)
        if not items:
            return None
        if len(items) > 1:
            # As the Rust and Node hosts: which one holds the key is unknowable.
            raise Unavailable(
                f"the keychain holds {len(items)} {SERVICE} items for {acct}; remove all but one "
                f"(secret-tool search --all service {SERVICE} username '{acct}')"
            )
        _unlocked(ss, items[0])
        return items[0].get_secret()

    return _ss(run)


def _ss_put(acct: str, value: str) -> None:
    def run(ss: Any, conn: Any) -> None:
        items = _items(ss, conn, acct)
        if len(items) == 1:  # kept where it is, with its attributes
            _unlocked(ss, items[0])
            items[0].set_secret(value.encode("ascii"))
            return
        for extra in items:  # several: start over with exactly one
            _unlocked(ss, extra)
            extra.delete()
        collection = ss.get_default_collection(conn)
        _unlocked(ss, collection)
        label = f"{SERVICE} store key ({acct[len('store:'):]})"
        collection.create_item(label, _attrs(acct), value.encode("ascii"), replace=True)

    _ss(run)


def _ss_delete(acct: str) -> None:
    def run(ss: Any, conn: Any) -> None:
        for item in _items(ss, conn, acct):
            _unlocked(ss, item)
            item.delete()

    _ss(run)


# -- macOS Keychain, Windows Credential Manager (keyring) -------------------------


def _keyring() -> Any:
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise Unavailable(f"keychain support is not installed ({INSTALL})") from None
    return keyring


def _native(fn: Callable[[Any], Any]) -> Any:
    kr = _keyring()
    try:
        return fn(kr)
    except kr.errors.NoKeyringError:
        raise Unavailable("no keychain backend is available to the keyring package") from None
    except kr.errors.KeyringError as e:
        raise Unavailable(f"the keychain refused ({type(e).__name__})") from None


def _native_get(acct: str) -> Optional[str]:
    return _native(lambda kr: kr.get_password(SERVICE, acct))


def _native_put(acct: str, value: str) -> None:
    _native(lambda kr: kr.set_password(SERVICE, acct, value))


def _native_delete(acct: str) -> None:
    def run(kr: Any) -> None:
        try:
            kr.delete_password(SERVICE, acct)
        except kr.errors.PasswordDeleteError:
            pass  # absent

    _native(run)
