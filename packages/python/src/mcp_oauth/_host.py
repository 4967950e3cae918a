"""The host imports of world `engine`, and the conversion of engine values into
Python types. Every import answers with a WIT value (never raises), because an
exception escaping an import traps the guest.

Value encoding (wasmtime-py): records are `Record`s with WIT field names,
enums are strings, options are `None` or the value, a `result` or `variant`
whose cases are distinguishable by Python type is passed untagged, otherwise
as `Variant(tag, payload)`. Each return below is written for its WIT type.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Optional

from wasmtime import component as wc

from . import _browser, _http
from ._callback import BindError, Listener
from ._engine import LISTENER_TYPE, field, record
from ._errors import AuthFailed, AuthorizationRequired, ConfigError, Declined, McpOAuthError, TimedOut
from ._signer import DpopError, DpopKeys
from ._seam import Lock, Store, StoreError, StoreUnavailable
from ._store import FileStore
from ._terminal import printable, printable_lines
from ._hooks import ConsentRequest, DeviceCode, Progress


def default_device_code(info: DeviceCode) -> None:
    """Where to go, the code and how long it is good for, on stderr."""
    mins, secs = divmod(int(info.expires_in), 60)
    left = f"{mins} min" if mins and not secs else f"{mins} min {secs} s" if mins else f"{secs} s"
    lines = [
        "mcp-oauth: to sign in, open this page on any device:",
        f"  {printable(info.verification_uri)}",
        f"and enter the code  {printable(info.user_code)}",
    ]
    if info.verification_uri_complete:
        lines.append(f"(or open {printable(info.verification_uri_complete)}, with the code in it)")
    lines.append(f"The code expires in {left}. Waiting for the approval...")
    if sys.stderr is not None:
        print("\n".join(lines), file=sys.stderr, flush=True)


NOTICES = {"callback-rejected", "browser-open-failed", "storage-warning", "pkce-check-overridden", "legacy-issuer-differs"}


def default_progress(p: Progress) -> None:
    """Engine notices on stderr (a browser failure always: the user must open the URL)."""
    if p.kind == "browser-open-failed" or (p.kind in NOTICES and sys.stderr is not None and sys.stderr.isatty()):
        # Line by line: the message's own layout stays, any control in it is shown.
        print(f"mcp-oauth: {printable_lines(p.message)}", file=sys.stderr)


def _shown(x: Any) -> str:
    """A value a server may have chosen, for a message a terminal may show."""
    return printable(str(x))


def describe_event(ev: wc.Variant) -> Progress:
    tag, v = ev.tag, ev.payload
    if tag == "callback-rejected":
        return Progress(tag, f"ignored a request to the callback: {_shown(v)}; still waiting")
    if tag == "browser-open-failed":
        url = field(v, "url")
        why = _shown(field(v, "reason"))
        return Progress(tag, f"could not open a browser ({why}). Open this URL yourself:\n\n  {_shown(url)}\n", url)
    if tag == "storage-warning":
        kind, why = _shown(field(v, "record_kind")), _shown(field(v, "message"))
        return Progress(tag, f"could not save the {kind} record: {why}")
    if tag == "pkce-check-overridden":
        return Progress(tag, f"warning: {_shown(v)} does not advertise PKCE S256; going on because the configuration allows it")
    if tag == "legacy-issuer-differs":
        origin, issuer = _shown(field(v, "origin")), _shown(field(v, "issuer"))
        return Progress(tag, f"note: legacy server {origin} names its issuer {issuer}")
    if tag == "device-code":
        uri, code = field(v, "verification_uri"), field(v, "user_code")
        return Progress(tag, f"device code {_shown(code)} for {_shown(uri)}: waiting for the approval", uri)
    return Progress(tag, _shown(tag))


def error_from(err: Any, waited_for: str = "browser") -> McpOAuthError:
    """The typed exception for an engine `auth-error`; `waited_for`: what the
    last interactive flow waited for ("browser" or "device"), for TimedOut."""
    tag = getattr(err, "tag", None)
    if tag == "authorization-required":
        return AuthorizationRequired(
            "authorization required: no usable token is stored; call McpOAuth.token() (or run `mcp-oauth login <url>`)"
        )
    if tag == "declined":
        return Declined(
            "authorization was declined (or the sign-in was cancelled); nothing more will be asked until you call McpOAuth.retry()"
        )
    if tag == "timed-out" and waited_for == "device":
        return TimedOut("timed out waiting for the device code's approval (or it expired); call again for a new code")
    if tag == "timed-out":
        return TimedOut(
            "timed out waiting for the browser to come back; call again (or pass paste=True and paste the redirect URL)"
        )
    if tag == "failed":
        f = err.payload
        oauth = field(f, "oauth")
        # The message is for people (tracebacks print it): shown escaped; the
        # OAuth fields stay as the server sent them.
        return AuthFailed(
            field(f, "kind"),
            printable(field(f, "message")),
            field(oauth, "error") if oauth is not None else None,
            field(oauth, "description") if oauth is not None else None,
            field(oauth, "status") if oauth is not None else None,
        )
    return McpOAuthError(f"the engine returned an unexpected value ({type(err).__name__})")


class _Abort(Exception):
    """Raised in an import to stop the guest at once (a trap): the call then
    fails with the store error the host recorded, and the instance, whose
    memory may hold a read that failed as "absent", is dropped."""


# A shared store that cannot answer, or refuses the credentials: the call
# fails with it (a read reported as absent would fork the fleet's state).
_FATAL = (StoreUnavailable, ConfigError)

PAUSE_CAP_S = 600.0  # a device-grant pause never lasts longer, whatever is asked
PAUSE_STEP_S = 0.1  # a cancel ends a pause within this
_sleep = time.sleep  # tests replace it


class HostImpl:
    """What one session's engine instance may touch."""

    def __init__(
        self,
        store: "Store | os.PathLike | str",
        open_browser: Optional[Callable[[str], Any]],
        consent: Optional[Callable[[ConsentRequest], bool]],
        progress: Optional[Callable[[Progress], Any]],
        signer: Optional[Callable[[bytes], bytes]],
        paste: bool,
        on_device_code: Optional[Callable[[DeviceCode], Any]] = None,
        cancel: Optional[threading.Event] = None,
    ) -> None:
        self.store: Store = store if isinstance(store, Store) else FileStore(store)
        self.dpop = DpopKeys(self.store)
        self._held: dict[str, Lock] = {}  # the engine's locks, released after each call
        self.open_browser = open_browser or _browser.open_system_browser
        self.consent = consent
        self.progress = progress or default_progress
        self.signer = signer
        self.paste = paste
        self.on_device_code = on_device_code or default_device_code
        self.cancel = cancel if cancel is not None else threading.Event()
        self.waited_for = "browser"  # what the last interactive flow waited for: "browser" or "device"
        self.listeners: dict[int, Listener] = {}
        self._next_rep = 1
        self._failure: Optional[BaseException] = None  # what the running call fails with

    def _fail(self, e: BaseException) -> None:
        if self._failure is None:
            self._failure = e

    def _interrupted(self) -> None:
        """Ctrl-C during a wait: the engine is told the user cancelled (it ends
        the sign-in as declined), and the call then raises KeyboardInterrupt.
        Caught here because wasmtime-py turns only an `Exception` in an import
        into a trap: a KeyboardInterrupt would escape its callback."""
        self._fail(KeyboardInterrupt())

    def _abort(self, e: Exception):
        self._fail(e)
        raise _Abort(str(e))

    def take_failure(self) -> Optional[BaseException]:
        """The store error the call met, once (the engine call raises it)."""
        failed, self._failure = self._failure, None
        return failed

    def _emit(self, p: Progress) -> None:
        try:
            self.progress(p)
        except Exception:
            pass  # a progress hook cannot break the flow

    def after_call(self) -> None:
        for key in list(self._held):
            self.storage_unlock(None, key)

    def reset(self) -> None:
        """The instance trapped: close what it held."""
        for rep in list(self.listeners):
            self.listener_drop(rep)

    # -- http ------------------------------------------------------------
    def http_send(self, _s: Any, req: Any) -> Any:  # result<response, http-error> (untagged)
        method = "GET" if field(req, "method") == "get" else "POST"
        url = field(req, "url")
        self._renew_leases(method, url)
        headers = [(field(h, "name"), field(h, "value")) for h in field(req, "headers")]
        try:
            r = _http.send(method, url, headers, field(req, "body"))
        except _http.HttpError as e:
            self._emit(Progress("http", f"{method} {printable(url)} -> failed ({e.kind})"))
            payload = None if e.kind in ("timeout", "too-large") else e.message
            return wc.Variant(e.kind, payload)
        except Exception as e:  # never trap on a transport surprise
            return wc.Variant("other", str(e) or type(e).__name__)
        self._emit(Progress("http", f"{method} {printable(url)} -> {r.status}"))
        return record(status=r.status, headers=[record(name=k, value=v) for k, v in r.headers], body=r.body)

    def _renew_leases(self, method: str, url: str) -> None:
        """Before a request made under locks: every lease renewed, or the
        request is not sent (a holder past its lease must not spend a refresh
        token another replica may have spent already)."""
        for lock in list(self._held.values()):
            try:
                lock.renew()
            except _FATAL as e:
                self._abort(type(e)(f"{e}; {method} {printable(url[:200])} was not sent"))
            except StoreError as e:
                self._abort(StoreUnavailable(f"{e}; {method} {printable(url[:200])} was not sent"))

    # -- storage ---------------------------------------------------------
    def storage_get(self, _s: Any, key: str) -> Any:
        # result<option<list<u8>>, storage-error>: wasmtime-py cannot lower the
        # error case of this type (every value matches the option), so a
        # failure reads as absent, which the contract allows; a shared store
        # that cannot answer stops the call instead.
        try:
            return self.store.get(key)
        except _FATAL as e:
            self._abort(e)
        except (StoreError, OSError):
            return None

    def storage_set(self, _s: Any, key: str, value: bytes) -> Any:  # result<_, storage-error>
        try:
            self.store.set(key, value)
        except (StoreError, OSError) as e:
            return wc.Variant("io", str(e))
        self._emit(Progress("saved", f"saved the {key.split('-')[0]} record"))
        return None

    def storage_delete(self, _s: Any, key: str) -> Any:
        try:
            self.store.delete(key)
        except (StoreError, OSError) as e:
            return wc.Variant("io", str(e))
        return None

    def storage_lock(self, _s: Any, key: str) -> Any:
        if key in self._held:
            return None  # held already by this session
        try:
            self._held[key] = self.store.lock(key)
        except _FATAL as e:
            # The engine would go on unlocked: on a shared store, never.
            self._abort(e)
        except (StoreError, OSError) as e:
            return wc.Variant("io", str(e))
        return None

    def storage_unlock(self, _s: Any, key: str) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            held.release()

    # -- browser and prompts --------------------------------------------
    def browser_open(self, _s: Any, url: str) -> Any:  # result<_, browser-error>
        try:
            _browser.check_openable(url)
        except ValueError as e:
            return wc.Variant("refused", str(e))
        self._emit(Progress("browser-opened", f"browser opened at {printable(url[:90])}...", url))
        try:
            self.open_browser(url)
        except Exception as e:
            return wc.Variant("failed", str(e) or type(e).__name__)
        return None

    def prompts_consent(self, _s: Any, ask: Any) -> Any:
        # result<consent-answer, prompt-error>: both sides may be a string,
        # so wasmtime-py wants it tagged; prompt-error is None (unavailable).
        if self.consent is None:
            return wc.Variant("ok", "allow")  # the application chose to connect: go on
        req = ConsentRequest(field(ask, "server_url"), field(ask, "issuer"), list(field(ask, "scopes")), field(ask, "reason"))
        try:
            allowed = bool(self.consent(req))
        except Exception:
            return wc.Variant("err", None)  # no answer counts as no
        return wc.Variant("ok", "allow" if allowed else "deny")

    def prompts_notify(self, _s: Any, ev: Any) -> None:
        self._emit(describe_event(ev))
        if getattr(ev, "tag", None) == "device-code":
            self.cancel.clear()  # the wait for the approval starts: an earlier cancel is spent
            self.waited_for = "device"
            v = ev.payload
            info = DeviceCode(
                field(v, "verification_uri"),
                field(v, "verification_uri_complete"),
                field(v, "user_code"),
                int(field(v, "expires_in_s")),
            )
            try:
                self.on_device_code(info)
            except Exception:
                pass  # a display hook cannot break the flow

    def prompts_pause(self, _s: Any, ms: int) -> Any:
        # result<_, prompt-error>: both sides may be None, so tagged; the
        # error's payload is untagged (a str is `other`).
        self._emit(Progress("polling", f"waiting {ms} ms before asking the authorization server again"))
        deadline = time.monotonic() + min(ms / 1000.0, PAUSE_CAP_S)
        try:
            while True:  # bounded by the deadline: each step sleeps at most PAUSE_STEP_S
                if self.cancel.is_set():
                    return wc.Variant("err", "cancelled by the user")
                left = deadline - time.monotonic()
                if left <= 0:
                    return wc.Variant("ok", None)
                _sleep(min(left, PAUSE_STEP_S))
        except KeyboardInterrupt:
            self._interrupted()
            return wc.Variant("err", "cancelled by the user (Ctrl-C)")

    # -- callback listener -----------------------------------------------
    def listener_bind(self, _s: Any, port: Optional[int]) -> Any:
        # result<own<listener>, listener-error>; listener-error is untagged:
        # an int (port-in-use) or a string (other).
        self.cancel.clear()  # a new flow: an earlier cancel is spent
        self.waited_for = "browser"
        try:
            l = Listener(port, paste=self.paste, cancel=self.cancel)
        except BindError as e:
            return e.port_in_use if e.port_in_use is not None else str(e)
        rep, self._next_rep = self._next_rep, self._next_rep + 1
        self.listeners[rep] = l
        self._emit(Progress("listening", f"loopback listener ready at {l.redirect_uri()}"))
        return wc.ResourceHost.own(rep, LISTENER_TYPE)

    def _listener(self, store: Any, this: Any) -> Optional[Listener]:
        try:
            return self.listeners.get(this.to_host(store).rep)
        except Exception:
            return None

    def listener_redirect_uri(self, store: Any, this: Any) -> str:
        l = self._listener(store, this)
        return l.redirect_uri() if l else ""

    def listener_next(self, store: Any, this: Any, timeout_ms: int) -> Any:
        l = self._listener(store, this)
        if l is None:
            return "the listener is gone"
        self._emit(Progress("waiting", "waiting for the browser to finish signing in"))
        try:
            tag, query = l.next(timeout_ms / 1000.0)
        except KeyboardInterrupt:
            self._interrupted()
            return wc.Variant("cancelled", None)
        if tag == "redirect":
            self._emit(Progress("callback-arrived", "the browser came back to the loopback listener"))
        return wc.Variant(tag, query)

    def listener_respond(self, store: Any, this: Any, page: Any) -> None:
        l = self._listener(store, this)
        if l is None:
            return
        headers = [(field(h, "name"), field(h, "value")) for h in field(page, "headers")]
        try:
            l.respond(int(field(page, "status")), headers, field(page, "body"))
        except Exception:
            pass  # a tab that went away: nothing to tell the engine

    def listener_drop(self, rep: int) -> None:
        l = self.listeners.pop(rep, None)
        if l is not None:
            l.close()
            if l.junk:  # a count, not each one: a flood must not flood the log
                self._emit(Progress("callback-junk", f"the loopback listener turned away {l.junk} stray request(s)"))

    # -- clock, random, signer -------------------------------------------
    def clock_now_ms(self, _s: Any) -> int:
        return int(time.time() * 1000)

    def random_bytes(self, _s: Any, n: int) -> bytes:
        return os.urandom(min(n, 4096))

    def signer_sign(self, _s: Any, data: bytes) -> Any:
        # result<list<u8>, signer-error>: bytes, or None (no-key) / str (failed).
        if self.signer is None:
            return None
        try:
            sig = bytes(self.signer(data))
        except Exception as e:
            return str(e) or type(e).__name__
        return sig if len(sig) == 64 else f"the signer returned {len(sig)} bytes, not a 64-byte ES256 r||s"

    def signer_dpop_proof(self, _s: Any, key_id: str, claims: str) -> Any:
        # result<string, signer-error>: both sides may be a string, so tagged;
        # signer-error is untagged: a str is `failed`.
        try:
            return wc.Variant("ok", self.dpop.proof(key_id, claims))
        except _FATAL as e:
            self._fail(e)  # the engine fails the flow; the call raises this
            return wc.Variant("err", f"DPoP proof: {e}")
        except DpopError as e:
            return wc.Variant("err", f"DPoP proof: {e}")
        except Exception as e:  # never trap; never show key material
            return wc.Variant("err", f"DPoP proof failed ({type(e).__name__})")
