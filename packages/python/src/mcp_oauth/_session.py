"""McpOAuth's engine, opened only when a call needs it.

- A silent token is answered without the engine while one is fresh: first
  from the store (_fast.py, read once by McpOAuth(...) itself for a store
  in files, else by the first call of an instance, before the engine was
  ever instantiated for it; while no token is stored at all, each silent
  call reads again and is answered authorization-required), then with the
  last token the engine answered a silent call with, until its refresh_at
  (the engine's own margin rule, as the Rust host's Session). Every call
  that may change the engine's tokens forgets it first and after.
- The engine (wasmtime, the compiled component, its linker) is loaded once
  per cache directory and process: when a call needs it, or, when
  McpOAuth(...) sees no fresh token stored (the engine will surely be
  needed), started then, its compile or deserialization in a background
  thread; waiting for it has a deadline.
"""

from __future__ import annotations

import atexit
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from . import _fast
from ._errors import EngineError
from ._token import AccessToken

LOAD_DEADLINE_S = 120.0  # a first start compiles the component: seconds on a slow machine


class _Load:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.runtime: Any = None
        self.error: Optional[BaseException] = None


_loads: dict = {}  # cache dir (None: no cache) -> _Load
_loads_lock = threading.Lock()


def _release() -> None:
    # At exit, while wasmtime can still free what it made (its module
    # globals are gone by the time the interpreter clears this one's).
    with _loads_lock:
        _loads.clear()


atexit.register(_release)


def _run(cache_dir: Optional[Path], load: _Load) -> None:
    try:
        from . import _engine

        load.runtime = _engine.Runtime(cache_dir)
    except BaseException as e:  # handed to whoever waits; a later call tries again
        load.error = e
        with _loads_lock:
            if _loads.get(cache_dir) is load:
                del _loads[cache_dir]
    finally:
        load.done.set()


def prewarm(cache_dir: Optional[Path]) -> None:
    """Starts loading the engine: wasmtime imported here, the component
    compiled or deserialized in a background thread (foreign calls, which
    let go of the GIL). Importing in the background would not: a thread
    running Python holds back every other thread's return from I/O."""
    with _loads_lock:
        if cache_dir in _loads:
            return
        load = _loads[cache_dir] = _Load()
    try:
        from . import _engine  # noqa: F401
    except Exception:
        pass  # the thread meets it again and hands it to whoever waits
    threading.Thread(target=_run, args=(cache_dir, load), name="mcp-oauth-load", daemon=True).start()


def runtime(cache_dir: Optional[Path], deadline_s: float = LOAD_DEADLINE_S) -> Any:
    """The loaded engine: the one loading already (waited for within the
    deadline), else loaded here."""
    with _loads_lock:
        load = _loads.get(cache_dir)
        mine = load is None
        if mine:
            load = _loads[cache_dir] = _Load()
    if mine:
        _run(cache_dir, load)
    elif not load.done.wait(deadline_s):
        raise EngineError(f"the engine did not load within {deadline_s:.0f} s; try again")
    if load.error is not None:
        from ._engine import EngineTrap

        if isinstance(load.error, EngineTrap):
            raise EngineError(str(load.error)) from None
        raise load.error
    return load.runtime


def now_ms() -> int:
    return int(time.time() * 1000)


def token_of(out: Any) -> AccessToken:
    """An engine access-token record as an AccessToken."""
    from ._engine import field

    return AccessToken(
        field(out, "token"), field(out, "expires_at"), list(field(out, "scopes")), bool(getattr(out, "dpop", False))
    )


class Session:
    """One McpOAuth's engine session, opened on first need.

    skew_ms: the instance's refresh margin, or None where the store fast
    path must not be taken (machine grants)."""

    def __init__(
        self,
        server_url: str,
        store: Any,
        cache_dir: Optional[Path],
        skew_ms: Optional[int],
        make_host: Callable[[], Any],
        make_config: Callable[[], Any],
    ) -> None:
        self.server_url = server_url
        self.store = store
        self.cache_dir = cache_dir
        self.skew_ms = skew_ms
        self._make_host = make_host
        self._make_config = make_config
        self._lock = threading.Lock()  # opening, and the store fast path
        self._engine: Any = None
        self._read_store = skew_ms is not None  # the first silent call may read the store
        self._fast: Optional[tuple] = None  # (AccessToken, serve until, Unix ms)

    def engine_needed(self, keep: bool) -> bool:
        """Whether the first call will surely need the engine (no fresh Bearer
        token stored). With `keep` (a store in files, as the npm package's
        open()), a token this read finds is the first silent call's answer:
        the store is not read again for it. A shared store is read again at
        the first call, which then fails while the store is down."""
        if self.skew_ms is None:
            return True
        served = _fast.from_store(self.store, self.server_url, self.skew_ms, now_ms())
        if not isinstance(served, _fast.Served):
            return True
        if keep:
            with self._lock:
                if self._read_store and self._engine is None:
                    self._serve(served)
        return False

    def _serve(self, served: Any) -> AccessToken:
        """Keeps the store's fresh token (under the lock): served from memory
        until its refresh_at; the engine answers from then on."""
        self._read_store = False
        t = AccessToken(served.token, served.expires_at, list(served.scopes), False)
        self._fast = (t, served.refresh_at)
        return t

    def fresh(self) -> Optional[AccessToken]:
        """The token a silent call is answered with now without the engine, if
        any. Never blocks: the async flow asks on the event loop."""
        fast = self._fast
        if fast is not None and now_ms() < fast[1]:
            return fast[0]
        return None

    def forget(self, _out: Any = None) -> None:
        self._fast = None

    def _keep(self, out: Any) -> None:
        """After a silent authorize (under the engine's lock): its token is
        served until its refresh_at; a bound one, an error or a token of
        unknown lifetime never."""
        from ._engine import field

        at = None if out is None or getattr(out, "tag", None) is not None else field(out, "refresh_at")
        if at is None or getattr(out, "dpop", False):
            self._fast = None
        else:
            self._fast = (token_of(out), at)

    def silent(self) -> Any:
        """An AccessToken, or the engine's raw auth-error (a Variant, or
        _fast.NOTHING_STORED, which has its shape)."""
        t = self.fresh()
        if t is not None:
            return t
        if self._engine is None:
            with self._lock:  # one read for every caller of the first moment
                t = self.fresh()
                if t is not None:
                    return t
                if self._read_store:
                    served = _fast.from_store(self.store, self.server_url, self.skew_ms, now_ms())
                    if served is _fast.NOTHING_STORED:
                        # The engine's answer, without it; not kept: the
                        # next call reads again (another process may sign in).
                        return served
                    if served is None:
                        self._read_store = False
                    else:
                        return self._serve(served)
        out = self.call("authorize", "silent", then=self._keep)
        return out if getattr(out, "tag", None) is not None else token_of(out)

    def _open(self) -> Any:
        with self._lock:
            self._read_store = False  # the engine answers from now on
            if self._engine is None:
                # The host side first: imported and built here while a
                # background load compiles (a foreign call, without the GIL).
                from ._engine import EngineSession, EngineTrap, OpenRefused
                from ._host import error_from

                host, config = self._make_host(), self._make_config()
                rt = runtime(self.cache_dir)
                try:
                    self._engine = EngineSession(rt, host, self.server_url, config)
                except EngineTrap as e:
                    raise EngineError(str(e)) from None
                except OpenRefused as e:
                    raise error_from(e.error) from None
            return self._engine

    def call(self, name: str, *args: Any, then: Optional[Callable[[Any], None]] = None) -> Any:
        """One engine call (the raw component value); EngineError when it traps."""
        engine = self._engine if self._engine is not None else self._open()
        from ._engine import EngineTrap

        try:
            return engine.call(name, *args, then=then)
        except EngineTrap as e:
            self._fast = None
            raise EngineError(str(e)) from None

    @property
    def opened(self) -> bool:
        """Whether the engine was instantiated for this session (tests, benchmarks)."""
        return self._engine is not None
