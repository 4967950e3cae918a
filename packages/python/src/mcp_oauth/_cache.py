"""The compiled engine (cf. host/src/runtime/cache.rs), from the first of:

1. The cache, `<home>/cache`: the optimized (Cranelift) artifact, keyed by
   the component's sha256 and the wasmtime build. Deserializing runs native
   code, so it is trusted only in a private directory of ours (0700, not a
   symlink) and only from a regular file of ours that nobody else can
   touch, opened without following symlinks or blocking on a FIFO, intact
   (magic + sha256).
2. The artifact the wheel carries for this platform (packages/python/build
   compiles it for the pinned wasmtime and the platform's baseline CPU):
   as trusted as the package's own code, used when this wasmtime accepts it.
3. Winch, wasmtime's baseline compiler (several times faster to compile,
   slower code), for this process; the optimized artifact is compiled in a
   background thread (the foreign call lets go of the GIL) and cached.
4. Cranelift, now (no Winch here), cached.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import platform
import stat
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

import wasmtime
from wasmtime import component as wc

from ._store import make_private_dir

_MAGIC = b"MCPOAPY1"
_SHIPPED_MAGIC = b"MCPOAPS1"  # + sha256(component) + sha256(payload) + payload
MAX_ARTIFACT_BYTES = 256 << 20  # ~1 MB today
_WINCH = 2  # WASMTIME_STRATEGY_WINCH in wasmtime.h (the Python API names only auto and cranelift)
_SINGLE_PASS = 1  # WASMTIME_REGALLOC_SINGLE_PASS
OPTIMIZE_AT_EXIT_S = 10.0  # how long exit waits for a background compile to be cached
# Only where Winch was tried: wasm_engine_new_with_config aborts the process
# on a configuration it refuses, so no guessing on other machines.
WINCH_OK = platform.machine().lower() in ("x86_64", "amd64")

_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
_TRIPLES = {
    ("x86_64", "linux"): "x86_64-unknown-linux-gnu",
    ("aarch64", "linux"): "aarch64-unknown-linux-gnu",
    ("x86_64", "darwin"): "x86_64-apple-darwin",
    ("aarch64", "darwin"): "aarch64-apple-darwin",
    ("x86_64", "win32"): "x86_64-pc-windows-msvc",
}
PLATFORM = (_ARCH.get(platform.machine().lower(), platform.machine().lower()), sys.platform)
SHIPPED = Path(__file__).with_name(f"engine-{PLATFORM[0]}-{PLATFORM[1]}.cwasm")

_optimizing: list = []  # background compiles, joined (with a deadline) at exit
_joined_at_exit = False


def config(baseline: bool = False) -> wasmtime.Config:
    """The engine configuration: fuel on; `baseline`: Winch."""
    c = wasmtime.Config()
    c.consume_fuel = True
    if baseline:
        wasmtime._ffi.wasmtime_config_strategy_set(c.ptr(), _WINCH)
        # The trampolines Winch leaves to Cranelift, compiled the quick way too.
        c.cranelift_opt_level = "none"
        setter = getattr(wasmtime._ffi.dll, "wasmtime_config_cranelift_regalloc_algorithm_set", None)
        if setter is not None:
            setter.argtypes, setter.restype = [ctypes.c_void_p, ctypes.c_uint8], None
            setter(ctypes.cast(c.ptr(), ctypes.c_void_p), _SINGLE_PASS)
    return c


def _wasmtime_tag() -> str:
    """What identifies the wasmtime build: its native library's name, size and mtime."""
    lib = getattr(wasmtime._ffi, "filename", None) or wasmtime.__file__
    try:
        st = os.stat(lib)
        ident = f"{lib}:{st.st_size}:{st.st_mtime_ns}:fuel"
    except OSError:
        ident = f"{lib}:fuel"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def artifact_path(wasm: bytes, cache_dir: Path) -> Path:
    return cache_dir / f"engine-{hashlib.sha256(wasm).hexdigest()[:24]}-py{_wasmtime_tag()}.cwasm"


def usable_dir(cache_dir: Path) -> bool:
    """Creates the cache dir (0700) if needed; True when it is a real directory
    of ours (group/other access closed if it was open), as the Rust host."""
    try:
        make_private_dir(cache_dir)
        st = os.lstat(cache_dir)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False  # a symlink too: lstat
    if os.name == "nt":
        return True
    if st.st_uid != os.getuid():
        return False
    return (st.st_mode & 0o077) == 0


def _trusted(st: os.stat_result) -> bool:
    if not stat.S_ISREG(st.st_mode):
        return False
    return os.name == "nt" or (st.st_uid == os.getuid() and (st.st_mode & 0o077) == 0)


def _read_artifact(path: Path, trusted: Callable[[os.stat_result], bool]) -> Optional[bytes]:
    """A whole artifact file, when `trusted` accepts what fstat says of it:
    opened without following a symlink, non-blocking (a FIFO cannot block),
    at most MAX_ARTIFACT_BYTES; None otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ARTIFACT_BYTES or not trusted(st):
            return None
        data = f.read(MAX_ARTIFACT_BYTES + 1)
    return data if len(data) <= MAX_ARTIFACT_BYTES else None


def read_cached(path: Path) -> Optional[bytes]:
    """The artifact when it is ours, private and intact; None otherwise
    (the directory is checked by `usable_dir`)."""
    data = _read_artifact(path, _trusted)
    head = len(_MAGIC) + 32
    if data is None or data[: len(_MAGIC)] != _MAGIC:
        return None
    if hashlib.sha256(data[head:]).digest() != data[len(_MAGIC) : head]:
        return None
    return data[head:]


def write_cached(path: Path, payload: bytes) -> None:
    """Atomically: a private O_EXCL temp file, fsynced, renamed into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(8).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + hashlib.sha256(payload).digest() + payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass  # the cache is an optimisation: a failure only costs a compile


def shipped_bytes(wasm: bytes, target: str) -> bytes:
    """The artifact the wheel carries (packages/python/build): `wasm`
    compiled for `target`'s baseline CPU, with the engine's configuration."""
    c = config()
    c.target = target
    payload = bytes(wc.Component(wasmtime.Engine(c), wasm).serialize())
    return _SHIPPED_MAGIC + hashlib.sha256(wasm).digest() + hashlib.sha256(payload).digest() + payload


def read_shipped(wasm: bytes, path: Path = SHIPPED) -> Optional[bytes]:
    """The carried artifact's payload when it is for this very component, a
    regular file nobody but its owner (us or root, as for the package's
    code) can write, and intact; None otherwise."""
    data = _read_artifact(
        path, lambda st: os.name == "nt" or (st.st_uid in (0, os.getuid()) and not st.st_mode & 0o022)
    )
    if data is None:
        return None
    m, head = len(_SHIPPED_MAGIC), len(_SHIPPED_MAGIC) + 64
    if data[:m] != _SHIPPED_MAGIC or data[m : m + 32] != hashlib.sha256(wasm).digest():
        return None
    if hashlib.sha256(data[head:]).digest() != data[m + 32 : head]:
        return None
    return data[head:]


def _from_bytes(engine: wasmtime.Engine, payload: Optional[bytes]) -> Optional[wc.Component]:
    if payload is None:
        return None
    try:
        return wc.Component.deserialize(engine, payload)
    except wasmtime.WasmtimeError:
        return None  # another wasmtime build, or a CPU without what it was compiled for


def _deserialize(engine: wasmtime.Engine, path: Path) -> Optional[wc.Component]:
    return _from_bytes(engine, read_cached(path))  # a rejected one is recompiled and replaced


def load_component(engine: wasmtime.Engine, wasm: bytes, cache_dir: Optional[Path]) -> wc.Component:
    """With `engine` (optimized): from the cache when it holds a usable copy,
    else compiled now and cached."""
    path = artifact_path(wasm, cache_dir) if cache_dir is not None and usable_dir(cache_dir) else None
    comp = _deserialize(engine, path) if path is not None else None
    if comp is None:
        comp = wc.Component(engine, wasm)
        if path is not None:
            write_cached(path, bytes(comp.serialize()))
    return comp


def _optimize(engine: wasmtime.Engine, wasm: bytes, path: Path) -> None:
    try:
        comp = wc.Component(engine, wasm)
        write_cached(path, bytes(comp.serialize()))
    except Exception:
        pass  # the next start compiles with Winch again and retries


def _join_at_exit() -> None:
    for t in list(_optimizing):
        t.join(OPTIMIZE_AT_EXIT_S)


def optimize_later(engine: wasmtime.Engine, wasm: bytes, path: Path) -> None:
    """Compiles the optimized artifact into `path` in the background (ctypes
    releases the GIL); exit waits for it, within a deadline."""
    t = threading.Thread(target=_optimize, args=(engine, wasm, path), name="mcp-oauth-optimize", daemon=True)
    global _joined_at_exit
    if not _joined_at_exit:
        _joined_at_exit = atexit.register(_join_at_exit) is not None
    _optimizing[:] = [o for o in _optimizing if o.is_alive()] + [t]
    t.start()


def load(wasm: bytes, cache_dir: Optional[Path]) -> "tuple[wasmtime.Engine, wc.Component, bool]":
    """(engine, component, baseline), in the order the module's docstring gives."""
    engine = wasmtime.Engine(config())
    path = artifact_path(wasm, cache_dir) if cache_dir is not None and usable_dir(cache_dir) else None
    comp = _deserialize(engine, path) if path is not None else None
    if comp is None:
        comp = _from_bytes(engine, read_shipped(wasm))
    if comp is not None:
        return engine, comp, False
    if WINCH_OK:
        try:
            winch = wasmtime.Engine(config(baseline=True))
            comp = wc.Component(winch, wasm)
        except wasmtime.WasmtimeError:
            comp = None
        if comp is not None:
            if path is not None:
                optimize_later(engine, wasm, path)
            return winch, comp, True
    comp = wc.Component(engine, wasm)
    if path is not None:
        write_cached(path, bytes(comp.serialize()))
    return engine, comp, False
