"""Where a store keeps its secrets (docs/store.md, "Where secrets live"):
the choice (`MCP_OAUTH_SECRETS` / `secrets=`: auto, keychain, file), the
store's pinned mode in `store.json`, the store key (`MCP_OAUTH_STORE_KEY_FILE`
or the OS keychain), sealing a store from before `store.json` in place, and
replacing a lost key on the next sign-in.

A store is never read in one mode and written in the other, and never
switched to plain files silently: `auto` says so on stderr (once per
process), `keychain` fails instead, and a sealed store whose key cannot be
had fails with an error that says what to do.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
import sys
import threading
from pathlib import Path
from typing import Optional, Union

from . import _keychain
from ._errors import KeychainUnavailable, SecretsError
from ._sealed import MIGRATION_LOCK, NEEDS_CRYPTOGRAPHY, SealedStore, cipher, is_sealed, key_id, seal
from ._seam import Store, StoreError
from ._store import FileStore, Refused, default_home, read_small

CHOICES = ("auto", "keychain", "file")
STORE_JSON = "store.json"
KEY_FILE_ENV = "MCP_OAUTH_STORE_KEY_FILE"
MAX_STORE_JSON = 4096
MAX_KEY_FILE = 4096
_KID = re.compile(r"[0-9a-f]{16}")
SILENCE = "set MCP_OAUTH_SECRETS=file to keep plain files without this notice"

_noticed = False  # the auto fallback is announced once per process
_notice_lock = threading.Lock()


def choice(secrets: Optional[str] = None) -> str:
    """`secrets`, else `$MCP_OAUTH_SECRETS`, else auto."""
    v = secrets if secrets is not None else (os.environ.get("MCP_OAUTH_SECRETS") or "auto")
    if v not in CHOICES:
        where = "secrets=" if secrets is not None else "MCP_OAUTH_SECRETS"
        raise SecretsError(f"{where} must be 'auto', 'keychain' or 'file', not {str(v)[:40]!r}")
    return v


# -- store.json ------------------------------------------------------------------


class Pinned:
    """What store.json says: mode "sealed" (with the key's id) or "plain".
    A plain class: a dataclass would cost every `import mcp_oauth` ~0.7 ms."""

    __slots__ = ("mode", "key_id")

    def __init__(self, mode: str, key_id: Optional[str] = None) -> None:
        self.mode, self.key_id = mode, key_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pinned) and (self.mode, self.key_id) == (other.mode, other.key_id)

    def __hash__(self) -> int:
        return hash((self.mode, self.key_id))

    def __repr__(self) -> str:
        return f"Pinned({self.mode!r}, {self.key_id!r})"

    def body(self) -> bytes:
        if self.mode == "sealed":
            return f'{{"format":1,"mode":"sealed","key_id":"{self.key_id}"}}'.encode("ascii")
        return b'{"format":1,"mode":"plain"}'


def read_pinned(home: Path) -> Optional[Pinned]:
    """store.json, None when there is none. SecretsError when it is there
    but cannot be followed (nothing may be written before it is)."""
    path = Path(home) / STORE_JSON
    try:
        data = read_small(path, MAX_STORE_JSON)
    except Refused as why:
        raise SecretsError(f"{path} is not read ({why}); remove it or put the store's own back") from None
    except NotADirectoryError:
        return None
    except OSError as e:
        raise SecretsError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None
    if data is None:
        return None
    return parse_pinned(data, str(path), "restore it, or remove it if the store's records are plain files")


def parse_pinned(data: bytes, where: str, fix: str) -> Pinned:
    """What a store.json (or a shared store's manifest) says; SecretsError
    naming `where` when it cannot be followed."""
    try:
        v = json.loads(data)
    except (ValueError, RecursionError):
        v = None
    fmt = v.get("format") if isinstance(v, dict) else None
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > 1:
        raise SecretsError(f"{where} is format {fmt}, written by a newer mcp-oauth: upgrade this package")
    if fmt == 1 and v.get("mode") == "plain":
        return Pinned("plain")
    if fmt == 1 and v.get("mode") == "sealed" and isinstance(v.get("key_id"), str) and _KID.fullmatch(v["key_id"]):
        return Pinned("sealed", v["key_id"])
    raise SecretsError(f"{where} is not understood (expected {{\"format\":1,\"mode\":\"sealed\"|\"plain\",...}}); {fix}")


# -- where the key comes from -------------------------------------------------------


def read_key_file(path: Union[str, Path]) -> bytes:
    """The store key from a key file: a regular file (a symlink to one, as
    secret mounts make, is followed) that neither group nor others may read,
    holding the key's base64 (padding and a trailing newline optional)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise SecretsError(f"cannot read the store key file {path} ({KEY_FILE_ENV}): {e.strerror or type(e).__name__}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretsError(f"the store key file {path} ({KEY_FILE_ENV}) is not a regular file")
        if os.name != "nt" and st.st_mode & 0o077:
            raise SecretsError(
                f"the store key file {path} may be read by others (mode {stat.S_IMODE(st.st_mode):o}); "
                f"refused: run `chmod 600 {path}`"
            )
        data = os.read(fd, MAX_KEY_FILE + 1)
    finally:
        os.close(fd)
    try:
        text = data.decode("ascii").strip()
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True) if len(data) <= MAX_KEY_FILE else b""
    except (UnicodeDecodeError, binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise SecretsError(
            f"the store key file {path} does not hold a 32-byte key in base64 "
            "(make one with: head -c 32 /dev/urandom | base64)"
        )
    return key


class _KeyFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.where = f"the key file {path}"

    def read(self, fresh: bool = False) -> Optional[bytes]:
        return read_key_file(self.path)

    def keep(self, key: bytes) -> None:  # never called: the file always holds a key
        raise StoreError(f"{self.where} holds no key")


class _Keychain:
    def __init__(self, home: Path) -> None:
        self.account = _keychain.account(home)
        self.where = _keychain.name()

    def read(self, fresh: bool = False) -> Optional[bytes]:
        return _keychain.get(self.account, fresh=fresh)

    def keep(self, key: bytes) -> None:
        _keychain.put(self.account, key)


def _source(home: Path):
    path = os.environ.get(KEY_FILE_ENV)
    return _KeyFile(path) if path else _Keychain(home)


# -- opening a store ------------------------------------------------------------------


def open_store(home: Union[str, Path, None] = None, secrets: Optional[str] = None) -> Store:
    """The store at `home` (default: `$MCP_OAUTH_HOME`, else the platform
    data dir), its secrets where `secrets` (else `$MCP_OAUTH_SECRETS`, else
    "auto") and its store.json say. Raises SecretsError (KeychainUnavailable)
    when that cannot be done; nothing is written then."""
    home = Path(home) if home is not None else default_home()
    mode = choice(secrets)
    for _ in range(3):  # another process may pin the store meanwhile: follow it
        store = _open(home, mode)
        if store is not None:
            return store
    raise SecretsError(f"the store {home} keeps changing its mode (store.json); try again")


def _open(home: Path, mode: str) -> Optional[Store]:
    pinned = read_pinned(home)
    if pinned is not None and pinned.mode == "plain":
        if mode == "keychain":
            raise SecretsError(
                f"the store {home} keeps its secrets in plain files (store.json) and secrets='keychain' was asked: "
                "run `mcp-oauth store seal` to seal it with a key in the keychain, or use MCP_OAUTH_SECRETS=auto"
            )
        return FileStore(home)
    if pinned is not None:
        if mode == "file":
            raise SecretsError(
                f"the store {home} is sealed (store.json) and secrets='file' was asked: run `mcp-oauth store unseal` "
                "to turn it into plain files, or use MCP_OAUTH_SECRETS=auto"
            )
        _need_cryptography(f"the store {home} is sealed")
        src = _source(home)
        try:
            key = src.read()
        except _keychain.Unavailable as why:
            raise KeychainUnavailable(
                f"the store {home} is sealed with a key kept in {src.where}, but {why}. Make the keychain answer "
                f"(unlock it, or run where it is), or set {KEY_FILE_ENV} to a file holding the key"
            ) from None
        if key is not None and key_id(key) == pinned.key_id:
            return SealedStore(FileStore(home), key, key_from=src.where)
        # The key is lost or changed: reads are absent; the next write settles a key.
        file = FileStore(home)
        return SealedStore(file, None, key_from=src.where, settle=lambda: _settle(file, src))
    # No store.json: the first writer pins the mode.
    if mode == "file":
        return _plain(home)
    src = _source(home)
    try:
        cipher(bytes(32))
    except ImportError:
        if mode == "keychain":
            raise SecretsError(f"secrets='keychain' was asked, but {NEEDS_CRYPTOGRAPHY}") from None
        _notice_plain(home, "the cryptography package is not installed")
        return _plain(home)
    try:
        key = src.read()
    except _keychain.Unavailable as why:
        if mode == "keychain":
            raise KeychainUnavailable(
                f"secrets='keychain' was asked, but {why}; nothing was written. Start or unlock a keychain, "
                f"set {KEY_FILE_ENV} to a key file (0600, base64 of 32 bytes), or use MCP_OAUTH_SECRETS=file"
            ) from None
        _notice_plain(home, str(why))
        return _plain(home)
    file = FileStore(home)
    store = SealedStore(file, None, key_from=src.where, settle=lambda: _settle(file, src))
    if key is not None:
        store._adopt(key, settled=False)
    if _has_entries(home):
        return store if _seal_in_place(file, src, store) else None
    return store


def _need_cryptography(what: str) -> None:
    try:
        cipher(bytes(32))
    except ImportError:
        raise SecretsError(f"{what}: {NEEDS_CRYPTOGRAPHY}") from None


def _plain(home: Path) -> FileStore:
    return FileStore(home, before_first_write=lambda: _pin_plain(home))


def _pin_plain(home: Path) -> None:
    """The first write of a plain store pins it (unless sealed meanwhile:
    the store lock waits for a process sealing it in place)."""
    file = FileStore(home)
    with file.lock(MIGRATION_LOCK):
        if file.create_once(file.dir / STORE_JSON, Pinned("plain").body()):
            return
    try:
        pinned = read_pinned(home)
    except SecretsError as e:
        raise StoreError(str(e)) from None
    if pinned is None or pinned.mode != "plain":
        raise StoreError(f"the store {home} was sealed by another process meanwhile; nothing was written, try again")


def _notice_plain(home: Path, why: str) -> None:
    global _noticed
    with _notice_lock:
        if _noticed:
            return
        _noticed = True
    print(
        f"mcp-oauth: secrets are kept in plain files (0600) under {home}: {why}; {SILENCE}, "
        f"or {KEY_FILE_ENV} to seal them with a key file",
        file=sys.stderr,
    )


def _settle(file: FileStore, src) -> bytes:
    """Before a sealed store's first write: the key to write with, with
    store.json naming it (under the store lock, so two processes settle on
    one key)."""
    with file.lock(MIGRATION_LOCK):
        return _settle_locked(file, src)


def _settle_locked(file: FileStore, src, *, pin: bool = True) -> bytes:
    try:
        pinned = read_pinned(file.dir)
    except SecretsError as e:
        raise StoreError(str(e)) from None
    if pinned is not None and pinned.mode == "plain":
        raise StoreError(f"the store {file.dir} was pinned to plain files by another process; nothing was written")
    try:
        key = src.read(fresh=True)  # another process may have kept a key meanwhile
        if pinned is not None and key is not None and key_id(key) == pinned.key_id:
            return key
        made = key is None
        if made:
            key = os.urandom(32)
            src.keep(key)
    except (_keychain.Unavailable, SecretsError) as why:
        raise StoreError(f"the store key cannot be had from {src.where}: {why}; nothing was written") from None
    if pin:
        _pin_sealed(file, key, replacing=pinned is not None)
    if pinned is not None:
        print(
            f"mcp-oauth: the store {file.dir} has a new key ({'made and kept' if made else 'found'} in {src.where}); "
            "records sealed with the old one are replaced as you sign in again",
            file=sys.stderr,
        )
    return key


def _pin_sealed(file: FileStore, key: bytes, *, replacing: bool) -> None:
    body = Pinned("sealed", key_id(key)).body()
    path = file.dir / STORE_JSON
    if replacing:
        file.replace_file(path, body)
    elif not file.create_once(path, body):  # a host that pinned it without the lock
        raise StoreError(f"{path} appeared meanwhile; nothing was written, try again")


def _has_entries(home: Path) -> bool:
    """Records or key files, as a store from before store.json has."""
    try:
        names = os.listdir(home)
    except OSError:
        return False
    return any((n.endswith(".json") and n != STORE_JSON) or n.endswith(".pem") for n in names if not n.startswith("."))


def _seal_in_place(file: FileStore, src, store: SealedStore) -> bool:
    """Seals a store from before store.json (plain records, no store.json)
    in place, under the store lock; announced once. False: another process
    pinned the store meanwhile (open it again, following store.json)."""
    with file.lock(MIGRATION_LOCK):
        try:
            if read_pinned(file.dir) is not None:
                return False
        except SecretsError:
            return False
        # store.json last: a run stopped half way leaves no store.json, and
        # the next one seals the rest (those sealed already are skipped).
        key = _settle_locked(file, src, pin=False)
        n = 0
        for name in file.list(""):
            data = file.get(name)
            if data is not None and not is_sealed(data):
                file.set(name, seal(key, "record", name, data))
                n += 1
        for name in file.list_keys():
            try:
                data = file.get_key(name)
            except StoreError as e:
                print(f"mcp-oauth: warning: {e}; it was not sealed", file=sys.stderr)
                continue
            if data is not None and not is_sealed(data):
                file.replace_file(file.key_path(name), seal(key, "key", name, data))
                n += 1
        _pin_sealed(file, key, replacing=False)
        store._adopt(key, settled=True)
    print(
        f"mcp-oauth: sealed the store {file.dir} in place ({n} records and key files) with a key kept in "
        f"{src.where}; its secrets are no longer in plain files",
        file=sys.stderr,
    )
    return True
