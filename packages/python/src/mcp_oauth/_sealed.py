"""Sealed records (docs/store.md, "Sealed records (format 1)"): every record
and key file sealed with the store key by AES-256-GCM, a fresh 96-bit nonce
per write, and `mcp-oauth:<kind>:<name>` as associated data, so a
ciphertext copied over another name does not open. The bytes are the same
in the three hosts (tests/vectors/sealed_records.json). Anything that does
not open reads as absent: never an exception, never a crash."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import threading
from typing import Callable, Optional

from ._seam import Lock, Secrets, Store, StoreError

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
NEEDS_CRYPTOGRAPHY = 'a sealed store needs the cryptography package: pip install "mcp-oauth[keychain]"'
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
MIGRATION_LOCK = "store"  # docs/store.md: settling the key and sealing in place happen under locks/store.lock


def key_id(key: bytes) -> str:
    """The first 16 lowercase hex digits of SHA-256(key)."""
    return hashlib.sha256(key).hexdigest()[:16]


def _aad(kind: str, name: str) -> bytes:
    if kind not in ("record", "key"):
        raise ValueError(f"kind must be 'record' or 'key', not {kind!r}")
    return f"mcp-oauth:{kind}:{name}".encode("utf-8")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> Optional[bytes]:
    """Strict base64url without padding; None for anything else."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cipher(key: bytes):  # -> AESGCM
    """AES-256-GCM with `key` (the cryptography package, imported only here)."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ImportError(NEEDS_CRYPTOGRAPHY) from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"a store key is {KEY_BYTES} bytes")
    return AESGCM(key)


def seal(key: bytes, kind: str, name: str, plaintext: bytes, nonce: Optional[bytes] = None, *, aead=None) -> bytes:
    """The sealed bytes of `plaintext` for `<name>` (a fresh random nonce
    unless one is given: the vectors pin theirs)."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes")
    ct = (aead or cipher(key)).encrypt(nonce, bytes(plaintext), _aad(kind, name))
    # Keys in this order, no whitespace: the three hosts write the same bytes.
    return f'{{"sealed":1,"kid":"{key_id(key)}","nonce":"{_b64url(nonce)}","ct":"{_b64url(ct)}"}}'.encode("ascii")


def _envelope(data: bytes) -> Optional[dict]:
    try:
        v = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, absurdly nested
        return None
    if not isinstance(v, dict) or set(v) != {"sealed", "kid", "nonce", "ct"}:
        return None
    if type(v["sealed"]) is not int or v["sealed"] != 1:  # true and 1.0 are not 1
        return None
    if not all(isinstance(v[k], str) for k in ("kid", "nonce", "ct")):
        return None
    return v


def is_sealed(data: bytes) -> bool:
    """Whether `data` is a sealed blob (with any key)."""
    return _envelope(data) is not None


def open_sealed(key: bytes, kind: str, name: str, data: bytes, *, aead=None) -> Optional[bytes]:
    """The plaintext, or None for anything that does not open: another key
    id, a bad tag, a wrong length, another name, not this JSON."""
    v = _envelope(data)
    if v is None or v["kid"] != key_id(key):
        return None
    nonce, ct = _unb64url(v["nonce"]), _unb64url(v["ct"])
    if nonce is None or len(nonce) != NONCE_BYTES or ct is None or len(ct) < TAG_BYTES:
        return None
    try:
        return (aead or cipher(key)).decrypt(nonce, ct, _aad(kind, name))
    except ImportError:
        raise
    except Exception:  # InvalidTag, and nothing else may escape a read
        return None


class SealedStore(Store):
    """A store whose records and key files are sealed with the store key,
    kept in another store (the file store). Names, locks and layout are the
    inner store's; only contents are sealed.

    key: the store key (32 bytes), or None when it is not at hand (a lost
      key): every read is then absent.
    key_from: where the key lives, for `status` (e.g. "the keychain (Secret Service)").
    settle: called once before the first write when given; returns the key
      to write with (e.g. makes a new key when the old one is lost, keeps it
      and rewrites store.json). Reads use it from then on.
    """

    def __init__(
        self,
        inner: Store,
        key: Optional[bytes],
        *,
        key_from: str = "a key given in code",
        settle: Optional[Callable[[], bytes]] = None,
    ) -> None:
        if key is not None:
            cipher(key)  # fails early: no cryptography, or not a 32-byte key
        self.inner = inner
        self.key_from = key_from
        self._key = key
        self._aead = cipher(key) if key is not None else None
        self._settle = settle
        self._settle_lock = threading.Lock()
        self._warned = False

    def __repr__(self) -> str:
        kid = key_id(self._key) if self._key is not None else "none"
        return f"SealedStore({self.inner!r}, kid={kid})"

    @property
    def kid(self) -> Optional[str]:
        """The key id of the key in use (not secret), None when none is at hand."""
        return key_id(self._key) if self._key is not None else None

    @property
    def id(self) -> str:
        return self.inner.id

    def _adopt(self, key: bytes, *, settled: bool) -> None:
        """Reads (and, when settled, writes) with `key` from now on."""
        with self._settle_lock:
            self._key, self._aead = key, cipher(key)
            if settled:
                self._settle = None

    def _write_key(self) -> bytes:
        with self._settle_lock:
            if self._settle is not None:
                key = self._settle()  # raises StoreError: nothing written, tried again next time
                self._key, self._aead, self._settle = key, cipher(key), None
            if self._key is None:
                raise StoreError(f"no store key is at hand ({self.key_from}); nothing was written")
            return self._key

    def _open(self, kind: str, name: str, data: Optional[bytes], where: str) -> Optional[bytes]:
        if data is None:
            return None
        key, aead = self._key, self._aead
        plain = open_sealed(key, kind, name, data, aead=aead) if key is not None else None
        if plain is None and not self._warned:
            self._warned = True  # once per store: the count is in status()
            print(
                f"mcp-oauth: warning: {where} does not open with the store's key ({self.key_from}); "
                "treating it as absent (sign in again to replace it)",
                file=sys.stderr,
            )
        return plain

    def get(self, key: str) -> Optional[bytes]:
        return self._open("record", key, self.inner.get(key), f"the record {key!r}")

    def set(self, key: str, value: bytes) -> None:
        k = self._write_key()
        self.inner.set(key, seal(k, "record", key, value, aead=self._aead))

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> list:
        return self.inner.list(prefix)

    def list_keys(self) -> list:
        return self.inner.list_keys()

    def lock(self, key: str, deadline_s: Optional[float] = None) -> Lock:
        return self.inner.lock(key, deadline_s)

    def get_key(self, key: str) -> Optional[bytes]:
        return self._open("key", key, self.inner.get_key(key), self.inner.key_location(key))

    def put_key_once(self, key: str, value: bytes) -> bytes:
        k = self._write_key()
        sealed = seal(k, "key", key, value, aead=self._aead)
        kept = self.inner.put_key_once(key, sealed)
        if kept == sealed:
            return bytes(value)
        plain = open_sealed(k, "key", key, kept, aead=self._aead)
        if plain is not None:
            return plain  # another process made it first: its key is the one
        # What is there does not open with this key (sealed with a lost key,
        # or damaged): useless, and the token bound to it reads as absent
        # too. Replaced under the store lock, so two processes replacing it
        # at once agree on one key.
        with self.inner.lock(MIGRATION_LOCK):
            kept = self.inner.get_key(key)
            plain = open_sealed(k, "key", key, kept, aead=self._aead) if kept is not None else None
            if plain is not None:
                return plain
            self.inner.delete_key(key)
            kept = self.inner.put_key_once(key, sealed)
        plain = open_sealed(k, "key", key, kept, aead=self._aead)
        if plain is None:
            raise StoreError(f"{self.inner.key_location(key)} does not open with the store's key; try again")
        return plain

    def delete_key(self, key: str) -> None:
        self.inner.delete_key(key)

    def key_location(self, key: str) -> str:
        return self.inner.key_location(key)

    @property
    def display(self) -> str:
        return self.inner.display

    def close(self) -> None:
        self.inner.close()

    def unreadable(self) -> int:
        """How many records and key files the key at hand cannot open."""
        key, aead, n = self._key, self._aead, 0
        for name in self.inner.list(""):
            data = self.inner.get(name)
            if data is not None and (key is None or open_sealed(key, "record", name, data, aead=aead) is None):
                n += 1
        for name in self.inner.list_keys():
            try:
                data = self.inner.get_key(name)
            except StoreError:
                n += 1  # there, refused: not readable either
                continue
            if data is not None and (key is None or open_sealed(key, "key", name, data, aead=aead) is None):
                n += 1
        return n

    def secrets(self) -> Secrets:
        return Secrets("sealed", self.key_from, self.unreadable())
