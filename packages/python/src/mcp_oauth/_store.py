"""The file store shared with the CLI (docs/store.md): the `Store` of the
seam (_seam.py) that every store here ends in (a sealed store seals into it).

One JSON file per record under the store directory (0700, files 0600), DPoP
key pairs beside them as `<key-id>.pem` (0600, created once, never replaced),
atomic writes (O_EXCL temp file, fsync, rename, fsync of the directory), flat
keys only, and lock protocol 2: an exclusive-create lock file per key in
`locks/`, broken when its owner is gone or it is too old.

Files are read without trusting what is on disk (as host/src/storage/private.rs):
no symlink is followed, a FIFO never blocks, and only a regular file of this
user, up to a size cap, is read. tests/vectors/ holds the shared cases.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from ._seam import Lock, Secrets, Store, StoreError

_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")

LOCK_DEADLINE_S = 30.0
STALE_AFTER_S = 60.0  # a lock older than this is stale whatever its pid
UNWRITTEN_AFTER_S = 5.0  # a lock with no readable pid (crash between create and write)
MAX_RECORD_BYTES = 1 << 20  # a record is a few KB
MAX_KEY_FILE_BYTES = 64 << 10  # a PEM key is a few hundred bytes
MAX_LOCK_BYTES = 4096  # a lock holds {"pid":..,"created_ms":..}
MAX_PID = 2147483647  # pid_t


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


class Refused(Exception):
    """A file is there but is not read: the message says why (never its content)."""


def read_small(path: Path, cap: int) -> bytes | None:
    """A whole small file, or None when absent. Refused: a symlink (never
    followed), anything but a regular file (a FIFO is opened non-blocking, so
    it never blocks), a file of another user, more than `cap` bytes. OSError
    for other failures."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as e:
        # O_NOFOLLOW on a symlink: ELOOP (Linux, macOS) or EMLINK (FreeBSD).
        if e.errno in (errno.ELOOP, getattr(errno, "EMLINK", -1)) and os.path.islink(path):
            raise Refused("it is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("it is not a regular file")
        if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
            raise Refused("it belongs to another user")
        if st.st_size > cap:
            raise Refused(f"it is larger than {cap} bytes")
        # The size may change under us: never read past the cap. Bounded:
        # every read makes progress or ends the loop.
        out = bytearray()
        while len(out) <= cap:
            chunk = os.read(fd, cap + 1 - len(out))
            if not chunk:
                break
            out += chunk
        if len(out) > cap:
            raise Refused(f"it is larger than {cap} bytes")
        return bytes(out)
    finally:
        os.close(fd)


def lock_pid(content: bytes) -> int | None:
    """The holder a lock file names: a JSON integer in 1..=2147483647 under
    "pid" (true, 1.5 and "1" are not pids), else None."""
    try:
        v = json.loads(content)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, absurdly nested
        return None
    pid = v.get("pid") if isinstance(v, dict) else None
    # bool is an int in Python; JSON true is no pid.
    if isinstance(pid, int) and not isinstance(pid, bool) and 1 <= pid <= MAX_PID:
        return pid
    return None


def lock_verdict(content: bytes, age_s: float, alive: Callable[[int], bool]) -> str:
    """A lock file's verdict, 'busy' or 'stale' (docs/store.md, Locks step 2;
    tests/vectors/lock_verdicts.json): stale when its pid names no live
    process or it is older than 60 s; with no readable pid, when it is older
    than 5 s. An mtime in the future counts as age 0."""
    age_s = max(age_s, 0.0)
    pid = lock_pid(content)
    if pid is None:
        return "stale" if age_s > UNWRITTEN_AFTER_S else "busy"
    if age_s > STALE_AFTER_S or not alive(pid):
        return "stale"
    return "busy"


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


def _write_new(directory: Path, key: str, value: bytes) -> Path:
    """A fsynced temp file (0600, O_EXCL) beside the target, holding `value`."""
    tmp = directory / f".{key}.{os.getpid()}.{os.urandom(8).hex()}.tmp"
    fd = _create_excl(tmp)
    try:
        view = memoryview(value)
        while view:  # bounded: every write makes progress or raises
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    return tmp


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class FileStore(Store):
    """Records and key files as plain files in one directory (docs/store.md).

    before_first_write: called once before the first write (a record or a
    key file), e.g. to pin the store's mode in store.json; may raise StoreError.
    """

    def __init__(self, directory: "os.PathLike | str", *, before_first_write: Optional[Callable[[], None]] = None) -> None:
        self.dir = Path(directory)
        self.locks = self.dir / "locks"
        try:
            make_private_dir(self.dir)
            make_private_dir(self.locks)
        except OSError as e:
            raise StoreError(f"cannot create the store directory {self.dir}: {e.strerror or e}") from None
        self._before_first_write = before_first_write
        self._first_write_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileStore({str(self.dir)!r})"

    @property
    def id(self) -> str:
        return os.path.realpath(self.dir)

    def secrets(self) -> Secrets:
        return Secrets("plain")

    def _writing(self) -> None:
        if self._before_first_write is None:
            return
        with self._first_write_lock:
            hook = self._before_first_write
            if hook is not None:
                hook()  # raises: not settled, tried again on the next write
                self._before_first_write = None

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.dir / f"{key}.json"

    def get(self, key: str) -> bytes | None:
        """The record, or None when absent, unreadable or not JSON (with a warning)."""
        path = self._path(key)
        try:
            data = read_small(path, MAX_RECORD_BYTES)
        except Refused as why:
            _warn(f"{path} is not read ({why}); treating it as absent")
            return None
        except OSError as e:
            _warn(f"cannot read {path}: {e.strerror or e}; treating it as absent")
            return None
        if data is None:
            return None
        try:
            json.loads(data)
        except (ValueError, RecursionError):
            _warn(f"{path} is corrupt and is ignored (it will be rewritten)")
            return None
        return data

    def set(self, key: str, value: bytes) -> None:
        """Writes a record atomically: readers see the old or the new one, never a mix."""
        path = self._path(key)
        self._writing()
        self._replace(key, path, value)

    def _replace(self, key: str, path: Path, value: bytes) -> None:
        tmp = None
        try:
            tmp = _write_new(self.dir, key, value)
            os.replace(tmp, path)
            _fsync_dir(self.dir)
        except OSError as e:
            if tmp is not None:
                _unlink_quietly(tmp)
            raise StoreError(f"writing {path}: {e.strerror or e}") from None

    def delete(self, key: str) -> None:
        self._remove(self._path(key))

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StoreError(f"removing {path}: {e.strerror or e}") from None

    def _names(self, suffix: str, prefix: str) -> list:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise StoreError(f"listing {self.dir}: {e.strerror or e}") from None
        out = []
        for name in names:
            key = name[: -len(suffix)] if name.endswith(suffix) else None
            # store.json pins the store's mode: it is not a record.
            if key and key.startswith(prefix) and _KEY.fullmatch(key) and not (suffix == ".json" and key == "store"):
                out.append(key)
        return sorted(out)

    def list(self, prefix: str = "") -> list:
        """The keys of the records (`<key>.json`, not store.json) starting with `prefix`."""
        return self._names(".json", prefix)

    def list_keys(self) -> list:
        """The key files' keys (`<key>.pem`), sorted."""
        return self._names(".pem", "")

    # -- key files (DPoP) ------------------------------------------------------

    def key_path(self, key: str) -> Path:
        check_key(key)
        return self.dir / f"{key}.pem"

    def key_location(self, key: str) -> str:
        return str(self.key_path(key))

    def get_key(self, key: str) -> bytes | None:
        """A key file's bytes (`<key>.pem`), or None when absent. A file that is
        not a regular file of ours up to 64 KiB is refused (StoreError). Errors
        name the file, never its content."""
        path = self.key_path(key)
        try:
            return read_small(path, MAX_KEY_FILE_BYTES)
        except Refused as why:
            raise StoreError(f"refused the key file {path}: {why}; it was left as it is") from None
        except OSError as e:
            raise StoreError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None

    def put_key_once(self, key: str, value: bytes) -> bytes:
        """Writes a key file (0600) once and returns what is stored: when another
        process created it first, its bytes, not `value` (the temp file is
        hard-linked into place, which fails if the name exists). Never
        replaces a file: a token bound to a key is useless without it."""
        path = self.key_path(key)
        self._writing()
        if not self.create_once(path, value):
            kept = self.get_key(key)
            if kept is None:  # made and removed meanwhile: ours is not in place either
                raise StoreError(f"writing {path}: it appeared and vanished; try again")
            return kept
        return value

    def create_once(self, path: Path, value: bytes) -> bool:
        """Creates `path` in the store directory holding `value`, unless it
        exists (a temp file hard-linked into place). True when this call made it."""
        tmp = None
        try:
            tmp = _write_new(self.dir, path.name.split(".")[0] or "file", value)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            _fsync_dir(self.dir)
            return True
        except OSError as e:
            raise StoreError(f"writing {path}: {e.strerror or type(e).__name__}") from None
        finally:
            if tmp is not None:
                _unlink_quietly(tmp)

    def replace_file(self, path: Path, value: bytes) -> None:
        """Replaces a file of the store directory atomically: converting a
        store between plain and sealed, and store.json when a lost key is
        replaced. Key files are otherwise never replaced."""
        self._replace(path.name.split(".")[0] or "file", path, value)

    def delete_key(self, key: str) -> None:
        self._remove(self.key_path(key))

    # -- lock protocol 2 ---------------------------------------------------

    def lock(self, key: str, deadline_s: Optional[float] = None) -> Lock:
        """Takes the cross-process lock on `key`, waiting up to `deadline_s`
        (30 s by default); released by the returned Lock."""
        check_key(key)
        deadline_s = LOCK_DEADLINE_S if deadline_s is None else deadline_s
        path = self.locks / f"{key}.lock"
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                fd = _create_excl(path)
            except FileExistsError:
                broken = self._break_if_stale(path)
                # Checked on every turn, a broken lock too: others may keep
                # taking it, and this loop ends at the deadline whatever happens.
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"timed out after {deadline_s:.0f} s waiting for the lock {path}; another process holds it "
                        "(remove the file if no mcp-oauth process is running)"
                    ) from None
                if not broken:
                    time.sleep(random.uniform(0.010, 0.030))
                continue
            except OSError as e:
                raise StoreError(f"creating the lock {path}: {e.strerror or e}") from None
            try:
                body = json.dumps({"pid": os.getpid(), "created_ms": int(time.time() * 1000)}).encode()
                os.write(fd, body)
            finally:
                os.close(fd)
            return Lock(lambda: _unlink_quietly(path))

    def _break_if_stale(self, path: Path) -> bool:
        """True when `path` was stale and has been broken (or vanished): try again."""
        try:
            found = _read_lock(path)
        except OSError:
            return False
        if found is None:
            return True  # gone: try again
        judged, raw = found
        content = b"" if len(raw) > MAX_LOCK_BYTES else raw  # too big: not a lock this protocol wrote
        if lock_verdict(content, time.time() - judged.st_mtime, _pid_alive) != "stale":
            return False
        return break_judged(path, judged, raw)


def _read_lock(path: Path) -> "tuple[os.stat_result, bytes] | None":
    """The identity and content of one open lock file (None when absent);
    the content of anything but a regular file is empty."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        raw = os.read(fd, MAX_LOCK_BYTES + 1) if stat.S_ISREG(st.st_mode) else b""
    finally:
        os.close(fd)
    return st, raw


def break_judged(path: Path, judged: os.stat_result, judged_content: bytes) -> bool:
    """Breaks the lock judged stale (`judged`: its stat, `judged_content`:
    the bytes read when judging). Rename first: of several processes
    breaking it at once, one wins the rename. If the file moved is not the
    one judged (another process broke it and took a fresh lock in between),
    that fresh lock is put back, unless a lock exists again by then. Not the
    one judged: another identity (device, inode), or other content (the
    fresh lock may reuse the judged file's inode number at once). Only the
    moved name is removed. True: try again."""
    aside = path.with_name(f"{path.name}.stale-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        moved = _read_lock(aside)
        same = moved is not None and (moved[0].st_dev, moved[0].st_ino) == (judged.st_dev, judged.st_ino)
        if moved is not None and not (same and moved[1] == judged_content):
            try:
                os.link(aside, path)
            except OSError:
                pass  # a lock exists again (FileExistsError): leave it be
    except OSError:
        pass
    finally:
        _unlink_quietly(aside)
    return True


def _warn(message: str) -> None:
    print(f"mcp-oauth: warning: {message}", file=sys.stderr)
