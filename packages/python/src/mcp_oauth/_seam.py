"""The storage seam: what every store offers the host. The file store, the
sealed store over it (and any other backend) implement `Store`; `McpOAuth`,
the host imports and the DPoP signer see only this class, and one contract
suite (tests/test_store_contract.py) runs against each implementation.
Keys are flat names (`[A-Za-z0-9_-]{1,128}`), chosen by the engine."""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from ._errors import McpOAuthError


class StoreError(McpOAuthError):
    """A storage call failed; the message names the file (never its content)."""


class StoreUnavailable(StoreError):
    """A shared store could not answer (unreachable, timed out), a lock was
    not had in time, or a lease was lost. The engine call fails with it:
    going on as if a record were absent would fork the fleet's state."""


@dataclass(frozen=True)
class Secrets:
    """Where a store keeps its secrets (for `status`). Never holds a secret.

    mode: "plain" (0600 files) or "sealed" (AES-256-GCM with the store key).
    key_from: where the store key lives, e.g. "the keychain (Secret Service)"
      or "the key file /run/secrets/k"; None for plain files.
    unreadable: records and key files the key at hand cannot open (a lost or
      changed key); they read as absent until a sign-in replaces them.
    """

    mode: str
    key_from: Optional[str] = None
    unreadable: int = 0
    # A shared store, as displayed (never its password); None for files.
    where: Optional[str] = None

    @property
    def problem(self) -> Optional[str]:
        """What the user should know and do, or None when all is well."""
        if self.mode != "sealed" or not self.unreadable:
            return None
        n = self.unreadable
        return (
            f"the store's key is not in {self.key_from}: {n} record{'s' if n != 1 else ''} "
            "cannot be read; sign in again"
        )

    def __str__(self) -> str:
        if self.mode == "plain":
            return f"unsealed in the shared store {self.where}" if self.where else "plain files (0600)"
        text = self.problem or f"sealed, the key in {self.key_from}"
        return f"{text} (the shared store {self.where})" if self.where else text


class Lock:
    """A held lock. Released by `release()`, at the end of a `with` block, or
    at the latest when garbage-collected: a release cannot be forgotten.
    A lease (a shared store's lock) also has `renew()`."""

    __slots__ = ("_release", "_renew", "_mutex")

    def __init__(self, release: Callable[[], None], renew: Optional[Callable[[], None]] = None) -> None:
        self._release: Optional[Callable[[], None]] = release
        self._renew = renew
        self._mutex = threading.Lock()

    def renew(self) -> None:
        """Extends a lease before work that must happen under it; raises
        StoreError (naming the lock) when it was lost. A no-op for locks
        that do not expire."""
        if self._renew is not None and self.held:
            self._renew()

    def release(self) -> None:
        with self._mutex:
            fn, self._release = self._release, None
        if fn is not None:
            fn()

    @property
    def held(self) -> bool:
        return self._release is not None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass  # at interpreter exit; the lock file then goes stale and is broken

    def __repr__(self) -> str:
        return f"<Lock {'held' if self.held else 'released'}>"


class Store(abc.ABC):
    """One store: records by key, cross-process locks, and DPoP key files
    (written once: of two writers the first wins and both use its key)."""

    @abc.abstractmethod
    def get(self, key: str) -> Optional[bytes]:
        """A record, or None when absent or unreadable (bad content reads as
        absent, never an error: the engine rewrites it)."""

    @abc.abstractmethod
    def set(self, key: str, value: bytes) -> None:
        """Writes a record atomically (readers see the old or the new one)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Removes a record; absent is fine."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list:
        """The keys of the records whose key starts with `prefix`, sorted."""

    @abc.abstractmethod
    def lock(self, key: str, deadline_s: Optional[float] = None) -> Lock:
        """Takes the exclusive cross-process lock on `key`, waiting a bounded
        time for another holder (StoreError after that). Use it as
        `with store.lock(key): ...`."""

    @abc.abstractmethod
    def get_key(self, key: str) -> Optional[bytes]:
        """A key file's content, or None when absent."""

    @abc.abstractmethod
    def put_key_once(self, key: str, value: bytes) -> bytes:
        """Writes a key file unless one exists; returns what is stored now."""

    @abc.abstractmethod
    def delete_key(self, key: str) -> None:
        """Removes a key file; absent is fine."""

    def list_keys(self) -> list:
        """The keys of the key files, sorted (for status and conversions)."""
        return []

    @property
    @abc.abstractmethod
    def id(self) -> str:
        """A stable name for this store (per-process caches are kept by it)."""

    @abc.abstractmethod
    def secrets(self) -> Secrets:
        """Where its secrets live."""

    def key_location(self, key: str) -> str:
        """Where a key file is, for messages (never its content)."""
        return f"the key file {key!r} of {self.id}"

    @property
    def display(self) -> str:
        """The store as shown to people (status, errors): never a password."""
        return self.id

    def close(self) -> None:
        """Lets go of connections (a shared store); the store may not be used after."""
