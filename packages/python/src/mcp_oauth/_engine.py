"""Loading the engine component and running sessions (cf. host/src/runtime.rs).

- One wasmtime `Engine`, compiled `Component` and `Linker` per `Runtime`; the
  compiled artifact comes from `<home>/cache` or the wheel, else from Winch
  while the optimized one is cached (_cache.py).
- One `Store` per `EngineSession`, behind a lock: concurrent callers take
  turns, so one flow serves them all. Fuel bounds guest work per call and a
  memory limit bounds its growth; a trap drops the instance and the next call
  gets a fresh one (nothing is lost: the store lives on disk).
- wasmtime-py hands host functions only a store context, so the session whose
  call is running is found through a thread-local (calls never interleave:
  the session lock is held around every call).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import wasmtime
from wasmtime import component as wc

from . import _cache

FUEL_PER_CALL = 20_000_000_000
MEMORY_LIMIT = 64 << 20
LISTENER_TYPE = 1  # our host resource type id
_PKG = "mcp:oauth/{}@0.1.0"

_current = threading.local()  # .host: the HostImpl of the call running on this thread


class _PerThreadSet:
    """wasmtime-py 50 lowers untagged variants (options, results) through one
    module-global scratch set, `component._types.case_test_cache`: two threads
    lowering values at once corrupt each other's ("value not valid for this
    variant", a trap). This stand-in gives every thread its own set; `_lower`
    and `add_classes` only clear, add and iterate it."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _set(self) -> set:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = set()
        return s

    def clear(self) -> None:
        self._set().clear()

    def add(self, item: Any) -> None:
        self._set().add(item)

    def __iter__(self):
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())


def _patch_wasmtime() -> None:
    from wasmtime.component import _types

    if isinstance(getattr(_types, "case_test_cache", None), set):
        _types.case_test_cache = _PerThreadSet()


_patch_wasmtime()


class EngineTrap(Exception):
    """The guest trapped or the runtime failed."""


class OpenRefused(Exception):
    """`session.open` returned an auth-error (a bad URL or configuration)."""

    def __init__(self, error: Any) -> None:
        super().__init__("the engine refused the session")
        self.error = error


def record(**fields: Any) -> wc.Record:
    """A component record; Python names map to WIT names (`a_b` -> `a-b`)."""
    r = wc.Record()
    for k, v in fields.items():
        setattr(r, k.replace("_", "-"), v)
    return r


def field(r: Any, name: str) -> Any:
    return getattr(r, name.replace("_", "-"))


def component_bytes() -> bytes:
    path = Path(__file__).with_name("engine.wasm")
    try:
        return path.read_bytes()
    except OSError:
        raise EngineTrap(
            f"the engine component is missing ({path}); reinstall mcp-oauth (the wheel carries engine.wasm)"
        ) from None


def _dispatch(method: str) -> Callable[..., Any]:
    """A host function that forwards to the running session's HostImpl."""

    def call(store: Any, *args: Any) -> Any:
        host = getattr(_current, "host", None)
        if host is None:
            raise RuntimeError("mcp-oauth: a host import was called outside a session call")
        return getattr(host, method)(store, *args)

    return call


# Every import of world `engine`: interface -> [(function name, HostImpl method)].
IMPORTS = {
    "http": [("send", "http_send")],
    "storage": [
        ("get", "storage_get"),
        ("set", "storage_set"),
        ("delete", "storage_delete"),
        ("lock", "storage_lock"),
        ("unlock", "storage_unlock"),
    ],
    "browser": [("open", "browser_open")],
    "prompts": [("consent", "prompts_consent"), ("pause", "prompts_pause"), ("notify", "prompts_notify")],
    "callback": [
        ("[static]listener.bind", "listener_bind"),
        ("[method]listener.redirect-uri", "listener_redirect_uri"),
        ("[method]listener.next", "listener_next"),
        ("[method]listener.respond", "listener_respond"),
    ],
    "clock": [("now-ms", "clock_now_ms")],
    "random": [("get-random-bytes", "random_bytes")],
    "signer": [("sign", "signer_sign"), ("dpop-proof", "signer_dpop_proof")],
}


def _drop_listener(store: Any, rep: int) -> None:
    host = getattr(_current, "host", None)
    if host is not None:
        host.listener_drop(rep)


class Runtime:
    """The loaded engine component; share it between sessions (thread-safe)."""

    def __init__(self, cache_dir: Path | None) -> None:
        try:
            self.engine, self.component, self.baseline = _cache.load(component_bytes(), cache_dir)
        except wasmtime.WasmtimeError as e:
            raise EngineTrap(f"compiling the engine component: {e}") from None
        self.linker = wc.Linker(self.engine)
        with self.linker.root() as root:
            for iface in ("types", "engine-types"):  # types only
                with root.add_instance(_PKG.format(iface)):
                    pass
            for iface, funcs in IMPORTS.items():
                with root.add_instance(_PKG.format(iface)) as inst:
                    if iface == "callback":
                        inst.add_resource("listener", wc.ResourceType.host(LISTENER_TYPE), _drop_listener)
                    for name, method in funcs:
                        inst.add_func(name, _dispatch(method))


class EngineSession:
    """One MCP server's engine instance; `call` runs one export under the lock."""

    def __init__(self, runtime: Runtime, host: Any, server_url: str, config: wc.Record) -> None:
        self._rt = runtime
        self._host = host
        self._server_url = server_url
        self._config = config
        self._lock = threading.Lock()
        self._inst: tuple[wasmtime.Store, dict[str, wc.Func], Any] | None = None
        with self._lock:
            self._instantiate()

    def _instantiate(self) -> None:
        store = wasmtime.Store(self._rt.engine)
        store.set_limits(memory_size=MEMORY_LIMIT, instances=4)
        store.set_fuel(FUEL_PER_CALL)
        _current.host = self._host
        try:
            instance = self._rt.linker.instantiate(store, self._rt.component)
            iface = instance.get_export_index(store, _PKG.format("client"))
            funcs = {}
            for name in ("open", "authorize", "on-response", "dpop-proof", "retry", "logout", "status"):
                kind = "[static]" if name == "open" else "[method]"
                idx = instance.get_export_index(store, f"{kind}session.{name}", iface)
                f = instance.get_func(store, idx) if idx is not None else None
                if f is None:
                    raise EngineTrap(f"the engine component does not export session.{name}")
                funcs[name] = f
            opened = funcs["open"](store, self._server_url, self._config)
            funcs["open"].post_return(store)
        except Exception as e:
            self._raise_host_failure()
            raise EngineTrap(f"instantiating the engine: {_first_line(e)}") from None
        finally:
            _current.host = None
            self._host.after_call()
        self._raise_host_failure()
        if not isinstance(opened, wc.ResourceAny):
            raise OpenRefused(opened)
        self._inst = (store, funcs, opened)

    def call(self, name: str, *args: Any, then: Callable[[Any], None] | None = None) -> Any:
        """Runs `session.<name>(handle, *args)` and returns the raw component value;
        `then(value)` runs before the lock is let go (what it records stays in
        the order of the calls)."""
        with self._lock:
            if self._inst is None:
                self._instantiate()
            assert self._inst is not None
            store, funcs, handle = self._inst
            store.set_fuel(FUEL_PER_CALL)
            _current.host = self._host
            try:
                out = funcs[name](store, handle, *args)
                funcs[name].post_return(store)
            except Exception as e:  # a trap, or an exception from a host import
                self._inst = None  # a broken instance is never reused
                self._host.reset()
                self._raise_host_failure()
                raise EngineTrap(
                    f"the engine failed ({_first_line(e)}); it was restarted, nothing stored was lost, try again"
                ) from None
            finally:
                _current.host = None
                self._host.after_call()  # locks never outlive a call
            self._raise_host_failure()
            if then is not None:
                then(out)
            return out

    def _raise_host_failure(self) -> None:
        """The error the host met during the call (a shared store that could
        not answer), which the call fails with whatever the engine made of it."""
        take = getattr(self._host, "take_failure", None)
        failed = take() if take is not None else None
        if failed is not None:
            raise failed from None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or ["trap"])[0]
