"""The `storage` import: the file store shared with the CLI (docs/store.md).

One JSON file per record under the store directory (0700, files 0600), DPoP
key pairs beside them as `<key-id>.pem` (0600, created once),
atomic writes (O_EXCL temp file, fsync, rename, fsync of the directory), flat
keys only, and lock protocol 2: an exclusive-create lock file per key in
`locks/`, broken when its owner is gone or it is too old.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from pathlib import Path

_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")

LOCK_DEADLINE_S = 30.0
STALE_AFTER_S = 60.0  # a lock older than this is stale whatever its pid
UNWRITTEN_AFTER_S = 5.0  # a lock with no readable pid (crash between create and write)


class StoreError(Exception):
    """A storage call failed; the message names the file."""


def default_home() -> Path:
    """`$MCP_OAUTH_HOME` when set and not empty, else `<platform data dir>/mcp-oauth`
    (the same rule as the CLI, i.e. the `dirs` crate's `data_dir`)."""
    home = os.environ.get("MCP_OAUTH_HOME")
    if home:
        return Path(home)
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("APPDATA") or Path.home())
    else:
        xdg = os.environ.get("XDG_DATA_HOME")
        # `dirs` ignores a relative XDG_DATA_HOME, as the XDG spec says.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "mcp-oauth"


def check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise StoreError(f"refused storage key {key[:64]!r}: keys are letters, digits, '-' and '_' only")


def make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name != "nt":
        os.chmod(path, 0o700)


def _create_excl(path: Path) -> int:
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o600)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # no kill(pid, 0) there; only age breaks a lock
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    except OSError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class FileStore:
    """The store directory and the locks this object holds in it."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.locks = self.dir / "locks"
        try:
            make_private_dir(self.dir)
            make_private_dir(self.locks)
        except OSError as e:
            raise StoreError(f"cannot create the store directory {self.dir}: {e.strerror or e}") from None
        self._held: dict[str, Path] = {}

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.dir / f"{key}.json"

    def get(self, key: str) -> bytes | None:
        """The record, or None when absent, unreadable or not JSON (with a warning)."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            _warn(f"cannot read {path}: {e.strerror or e}; treating it as absent")
            return None
        try:
            json.loads(data)
        except ValueError:
            _warn(f"{path} is corrupt and is ignored (it will be rewritten)")
            return None
        return data

    def set(self, key: str, value: bytes) -> None:
        """Writes a record atomically: readers see the old or the new one, never a mix."""
        path = self._path(key)
        tmp = self.dir / f".{key}.{os.getpid()}.{os.urandom(8).hex()}.tmp"
        try:
            fd = _create_excl(tmp)
            try:
                view = memoryview(value)
                while view:  # bounded: every write makes progress or raises
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(self.dir)
        except OSError as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise StoreError(f"writing {path}: {e.strerror or e}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StoreError(f"removing {path}: {e.strerror or e}") from None

    # -- key files (DPoP) ------------------------------------------------------

    def key_path(self, key: str) -> Path:
        check_key(key)
        return self.dir / f"{key}.pem"

    def get_key(self, key: str) -> bytes | None:
        """A key file's bytes (`<key>.pem`), or None when absent. Errors name the
        file, never its content."""
        path = self.key_path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None

    def put_key(self, key: str, value: bytes, replace: bool = False) -> bytes:
        """Writes a key file (0600) once and returns what is stored: when another
        process created it first, its bytes, not `value` (the temp file is
        hard-linked into place, which fails if the name exists). `replace`:
        overwrite (a corrupt file)."""
        path = self.key_path(key)
        tmp = self.dir / f".{key}.{os.getpid()}.{os.urandom(8).hex()}.tmp"
        try:
            fd = _create_excl(tmp)
            try:
                view = memoryview(value)
                while view:  # bounded: every write makes progress or raises
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if replace:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return path.read_bytes()
            _fsync_dir(self.dir)
            return value
        except OSError as e:
            raise StoreError(f"writing {path}: {e.strerror or type(e).__name__}") from None
        finally:
            try:
                tmp.unlink()
            except OSError:
                pass

    # -- lock protocol 2 ---------------------------------------------------

    def lock(self, key: str, deadline_s: float = LOCK_DEADLINE_S) -> None:
        """Takes the cross-process lock on `key`, waiting up to `deadline_s`."""
        check_key(key)
        if key in self._held:
            return
        path = self.locks / f"{key}.lock"
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                fd = _create_excl(path)
            except FileExistsError:
                if self._break_if_stale(path):
                    continue
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"timed out after {deadline_s:.0f} s waiting for the lock {path}; another process holds it "
                        "(remove the file if no mcp-oauth process is running)"
                    ) from None
                time.sleep(random.uniform(0.010, 0.030))
                continue
            except OSError as e:
                raise StoreError(f"creating the lock {path}: {e.strerror or e}") from None
            try:
                body = json.dumps({"pid": os.getpid(), "created_ms": int(time.time() * 1000)}).encode()
                os.write(fd, body)
            finally:
                os.close(fd)
            self._held[key] = path
            return

    def _break_if_stale(self, path: Path) -> bool:
        """True when `path` was stale and has been removed (or vanished): try again."""
        try:
            age = time.time() - path.stat().st_mtime
            raw = path.read_bytes()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        pid = None
        try:
            v = json.loads(raw)
            if isinstance(v, dict) and isinstance(v.get("pid"), int):
                pid = v["pid"]
        except ValueError:
            pass
        if pid is not None:
            stale = not _pid_alive(pid) or age > STALE_AFTER_S
        else:
            stale = age > UNWRITTEN_AFTER_S
        if not stale:
            return False
        # Rename first: of several processes breaking it at once, one wins the
        # rename, and nobody removes a fresh lock created in between.
        aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            aside.unlink()
        except OSError:
            pass
        return True

    def unlock(self, key: str) -> None:
        path = self._held.pop(key, None)
        if path is not None:
            try:
                path.unlink()
            except OSError:
                pass

    def unlock_all(self) -> None:
        for key in list(self._held):
            self.unlock(key)


def _warn(message: str) -> None:
    print(f"mcp-oauth: warning: {message}", file=sys.stderr)
