"""`McpOAuth`: the engine as an `auth=` for httpx2 (mcp 2.x) and httpx (mcp 1.x).

The auth flow attaches the session's token (a DPoP-bound one as `DPoP` with
a fresh proof on every request), hands a 401/403 to the engine and retries
with the token it returns: once, or twice when the token is DPoP-bound (a
nonce challenge can follow a fresh authorization); a DPoP-Nonce on a 2xx is
handed to the engine for the next proof. Engine calls block (the browser
flow can wait minutes), so the async flow runs them in a worker thread and
never on the event loop. Concurrent callers share one flow: the session's
lock makes them take turns, and the engine hands the later ones the token
the first one obtained.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from . import _session
from ._errors import AuthorizationRequired, ConfigError, McpOAuthError
from ._seam import Secrets, Store, StoreError
from ._select import open_store
from ._signals import dpop_nonce_signal
from ._store import default_home
from ._token import AccessToken

if TYPE_CHECKING:
    from ._hooks import ConsentRequest, DeviceCode, Progress
    from ._types import IdentityAssertion, LogoutReport, Status, WorkloadIdentity

_bases: list = []
for _mod in ("httpx2", "httpx"):  # whichever HTTP clients are installed
    try:
        _bases.append(__import__(_mod).Auth)
    except ImportError:
        pass
_AuthBase: type = type("_AuthBase", tuple(_bases) or (object,), {})
MACHINE_GRANTS = ("client-credentials",)  # plus IdentityAssertion and WorkloadIdentity


async def _in_thread(fn: Callable[[], Any]) -> Any:
    """Runs a blocking engine call off the event loop (anyio when there, for trio too)."""
    try:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(fn)
    except ImportError:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, fn)


class McpOAuth(_AuthBase):  # type: ignore[misc, valid-type]
    """OAuth for one MCP server, usable as `auth=` of an httpx2 or httpx client.

    home: the store (default `$MCP_OAUTH_HOME`, else the platform data dir, as the CLI).
    secrets: where the store keeps its secrets: "auto" (default, or
      `$MCP_OAUTH_SECRETS`), "keychain" or "file" (docs/store.md).
    store: a shared store's URL, `redis://[user[:password]@]host[:port][/db]`
      or `rediss://` (default `$MCP_OAUTH_STORE`; empty: the file store at
      home), or a `Store` object (e.g. `SealedStore(FileStore(path), key)`).
    user: the principal whose records these are (default `$MCP_OAUTH_USER`;
      none: one principal); namespaces every record, lock and key file.
    open_browser: `callable(url)`; default `$BROWSER`, else the platform opener (as the CLI).
    consent: `callable(ConsentRequest) -> bool`, asked before registration or the
      browser; default None: go on (the application chose to connect).
    progress: `callable(Progress)`; default: notices on stderr.
    device: sign in with the device authorization grant (RFC 8628) when the
      AS offers it: the user opens a page on any device and types a code;
      for a machine no browser can reach (a remote shell, a container).
      Without a device endpoint at the AS the browser flow runs.
    on_device_code: `callable(DeviceCode)`, shows the page and the code;
      default: printed on stderr.
    callback_timeout: seconds to wait for the user: the browser's redirect,
      or the device code's approval.
    interactive: False never involves the user (AuthorizationRequired instead).
    """

    requires_request_body = True  # the retry resends the body

    def __init__(
        self,
        server_url: str,
        home: Union[str, Path, None] = None,
        open_browser: Optional[Callable[[str], Any]] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        client_metadata_url: Optional[str] = None,
        scope: Optional[str] = None,
        consent: Optional[Callable[[ConsentRequest], bool]] = None,
        *,
        progress: Optional[Callable[[Progress], Any]] = None,
        client_issuer: Optional[str] = None,
        client_name: Optional[str] = None,
        callback_port: Optional[int] = None,
        callback_timeout: float = 300.0,
        allow_missing_s256: tuple = (),
        expiry_skew: Optional[float] = None,
        max_step_ups: Optional[int] = None,
        request_offline_access: Optional[bool] = None,
        authorize_params: Optional[dict] = None,
        grant: Union[str, IdentityAssertion, WorkloadIdentity, None] = None,
        signing_key: Union[str, bytes, None] = None,
        signer: Optional[Callable[[bytes], bytes]] = None,
        paste: Optional[bool] = None,
        device: bool = False,
        on_device_code: Optional[Callable[[DeviceCode], Any]] = None,
        interactive: bool = True,
        cache_dir: Union[str, Path, None, bool] = None,
        secrets: Optional[str] = None,
        store: Union[Store, str, None] = None,
        user: Optional[str] = None,
    ) -> None:
        self.server_url = server_url
        machine = _is_machine(grant)
        if not machine and grant not in (None, "authorization-code"):
            raise ValueError(
                "grant must be 'authorization-code', 'client-credentials', an IdentityAssertion or a WorkloadIdentity"
            )
        if isinstance(store, Store):
            if secrets is not None:
                raise ValueError("pass secrets= or store=, not both: a store object keeps its secrets its own way")
            if user is not None:
                raise ConfigError("pass user= with a store URL or the file store, not with a Store object")
        if home is None:
            home = _store_dir(store)  # a store in files: the compiled engine is cached beside its records
        self.home = Path(home) if home is not None else default_home()
        # Settled before anything else: a refusal (KeychainUnavailable, a
        # sealed store asked for as plain files, a shared store that cannot
        # be reached or refuses the password) writes nothing.
        self._own_store = not isinstance(store, Store)  # closed with this object
        if isinstance(store, Store):
            self.store: Store = store
        else:
            self.store = open_store(self.home, secrets, store=store, user=user)
        if signing_key is not None and signer is None:
            from ._signer import es256_signer

            signer = es256_signer(signing_key)
        skew_ms = 60_000 if expiry_skew is None else int(expiry_skew * 1000)
        # The engine's configuration, built when the engine is opened: until
        # then nothing of wasmtime is imported.
        config = dict(
            client_id=client_id,
            client_secret=client_secret,
            client_issuer=client_issuer,
            client_metadata_url=client_metadata_url,
            client_name=client_name,
            scope=scope,
            callback_port=callback_port,
            callback_timeout_ms=int(callback_timeout * 1000),
            device_grant=bool(device),
            allow_missing_s256=list(allow_missing_s256),
            grant=grant,
            private_key_jwt=signer is not None,
            expiry_skew_ms=None if expiry_skew is None else skew_ms,
            max_step_ups=max_step_ups,
            request_offline_access=request_offline_access,
            authorize_params=[(k, str(v)) for k, v in (authorize_params or {}).items()],
        )
        if paste is None:  # as the CLI: paste when someone can type
            paste = bool(sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty())
        self._mode = "interactive" if interactive else "silent"
        cache = None if cache_dir is False else Path(cache_dir) if cache_dir not in (None, True) else self.home / "cache"
        self._cancel = threading.Event()
        self._host: Any = None  # the engine's imports, made when the engine is opened

        def make_host() -> Any:
            from ._host import HostImpl

            self._host = HostImpl(self.store, open_browser, consent, progress, signer, paste, on_device_code, self._cancel)
            return self._host

        self._s = _session.Session(
            server_url,
            self.store,
            cache,
            # The store fast path: never for a machine grant (its tokens are
            # the engine's to judge), nor a margin the engine would refuse.
            None if machine or skew_ms < 0 else skew_ms,
            make_host,
            lambda: _engine_config(config),
        )
        # A store in files (sealed or plain, opened here or given) keeps what
        # this read finds, as the npm package's open(); a shared store (or
        # another kind given) is read again at the first call.
        if self._s.engine_needed(keep=_store_dir(self.store) is not None):
            _session.prewarm(cache)  # loads while the application goes on

    def __repr__(self) -> str:
        return f"McpOAuth({self.server_url!r}, store={self.store.display!r})"

    def close(self) -> None:
        """Lets go of the store's connections (a shared store's pool) when
        this object opened the store. The object is not used after."""
        if self._own_store:
            self.store.close()

    def __enter__(self) -> "McpOAuth":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- engine calls (blocking) -------------------------------------------
    def _call(self, name: str, *args: Any) -> Any:
        """One engine call. Those that may change the engine's tokens forget
        the fast path's token before and after."""
        keeps = name in ("status", "dpop-proof") or (name == "on-response" and _field(args[0], "status") not in (401, 403))
        if keeps:
            return self._s.call(name, *args)
        self._s.forget()
        return self._s.call(name, *args, then=self._s.forget)

    def _authorize(self, mode: str) -> AccessToken:
        out = self._s.silent() if mode == "silent" else self._call("authorize", mode)
        if isinstance(out, AccessToken):
            return out
        if getattr(out, "tag", None) is not None:  # Variant: an auth-error
            raise self._error(out)
        return _session.token_of(out)

    def _fresh(self) -> Optional[AccessToken]:
        """The token served without the engine now, if any (never blocks)."""
        return self._s.fresh()

    def _silent(self) -> Optional[AccessToken]:
        """The current token without involving anyone; None when there is none."""
        try:
            return self._authorize("silent")
        except AuthorizationRequired:
            return None

    def _challenge(
        self, status: int, www_authenticate: list, sent: Optional[str], dpop_nonce: Optional[str] = None
    ) -> Optional[AccessToken]:
        """The engine's answer to a 401/403: a token to retry with, or None."""
        response = _record(status=status, www_authenticate=list(www_authenticate), sent_token=sent, dpop_nonce=dpop_nonce)
        out = self._call("on-response", response, self._mode)
        if out is None:
            return None  # unchanged: not an authorization problem
        if getattr(out, "tag", None) is not None:
            raise self._error(out)
        return _session.token_of(out)

    def _error(self, out: Any) -> McpOAuthError:
        """The typed exception for an engine auth-error (a timeout names what
        the last interactive flow waited for: the browser or a device code)."""
        from ._host import error_from

        return error_from(out, getattr(self._host, "waited_for", "browser"))

    def _note_success(self, status: int, sent_token: Optional[str], nonce: Optional[str]) -> None:
        """Tells the engine of a 2xx: the DPoP-Nonce it carried, for the next
        proof (RFC 9449 §8), and, after a retry, that the token sent works
        (`sent_token`), which re-arms the engine's once-per-rejection refresh.
        An on-response with that status and no challenge, as the Rust host's
        `note_success`. The response stands whatever the engine answers, so
        nothing here fails the request."""
        try:
            ok = _record(status=status, www_authenticate=[], sent_token=sent_token, dpop_nonce=nonce)
            self._call("on-response", ok, "silent")
        except McpOAuthError:
            pass

    def access_token(self) -> AccessToken:
        """A usable token, with expiry and scopes (see `token()`)."""
        try:
            return self._authorize("silent")
        except AuthorizationRequired:
            if self._mode == "silent":
                raise
        # As `mcp-oauth login`: ask the server first, its 401 names the
        # metadata (one request instead of probing well-known URLs).
        from . import _http

        try:
            r = _http.send(
                "POST",
                self.server_url,
                [("content-type", "application/json"), ("accept", "application/json, text/event-stream")],
                b'{"jsonrpc":"2.0","id":0,"method":"ping"}',
            )
        except _http.HttpError:
            r = None
        signal, nonce = dpop_nonce_signal(r.status, r.headers) if r is not None else ("none", None)
        if r is not None and signal == "challenge":
            t = self._challenge(r.status, r.header_values("www-authenticate"), None, nonce)
            if t is not None:
                return t
        return self._authorize(self._mode)

    def dpop_proof(self, method: str, url: str) -> Optional[str]:
        """The `DPoP` header value for one request to the server with the current
        token (a fresh, single-use proof), or None when the token is not
        DPoP-bound. The auth flow calls it for every request."""
        out = self._call("dpop-proof", method.upper(), url)
        if getattr(out, "tag", None) is not None:  # Variant: an auth-error
            raise self._error(out)
        return out

    def _headers(self, method: str, url: str, token: Optional[AccessToken]) -> dict:
        """The authorization headers for one request (blocking: a proof is an engine call)."""
        if token is None:
            return {}
        if not token.dpop:
            return {"Authorization": f"Bearer {token.token}"}
        proof = self.dpop_proof(method, url)
        if not proof:
            raise McpOAuthError("the engine gave no DPoP proof for a DPoP-bound token; try again")
        return {"Authorization": f"DPoP {token.token}", "DPoP": proof}

    async def _aheaders(self, method: str, url: str, token: Optional[AccessToken]) -> dict:
        if token is None or not token.dpop:
            return self._headers(method, url, token)  # no engine call: no thread
        return await _in_thread(lambda: self._headers(method, url, token))

    def token(self) -> str:
        """A usable access token: stored, refreshed, or newly authorized (may open
        the browser and block until the user is done). Thread-safe."""
        return self.access_token().token

    async def atoken(self) -> str:
        """`token()` for asyncio/trio code: runs in a worker thread (unless a
        fresh token is at hand)."""
        t = self._fresh()
        return t.token if t is not None else await _in_thread(self.token)

    def retry(self) -> None:
        """Clears the decline latch: the next call may ask the user again."""
        self._call("retry")

    def cancel(self) -> None:
        """Stops a wait for the user in progress, for the browser or for the
        device code's approval (it ends as declined). Ctrl-C does the same,
        then raises KeyboardInterrupt."""
        self._cancel.set()

    def logout(self, revoke: bool = True) -> LogoutReport:
        """Removes the stored tokens for this server, and its DPoP key file.
        With `revoke` (the default), revokes them at the authorization server
        first when it offers that (RFC 7009: the refresh token, then the
        access token); the report says what was revoked, what failed, what
        was skipped. The tokens are forgotten locally either way."""
        from ._terminal import printable
        from ._types import LogoutReport

        self._s.forget()
        before = self._call("status")
        out = self._call("logout", bool(revoke))
        if getattr(out, "tag", None) is not None:  # Variant: an auth-error
            raise self._error(out)
        failed, skipped = _field(out, "failed"), _field(out, "skipped")
        report = LogoutReport(
            [str(r) for r in _field(out, "revoked")],
            printable(failed) if failed is not None else None,
            printable(skipped) if skipped is not None else None,
        )
        if getattr(before, "tag", None) is None:
            self._forget_dpop_key(before)
        return report

    async def alogout(self, revoke: bool = True) -> LogoutReport:
        """`logout()` for asyncio/trio code: runs in a worker thread."""
        return await _in_thread(lambda: self.logout(revoke))

    def _forget_dpop_key(self, before: Any) -> None:
        issuer, resource = _field(before, "issuer"), _field(before, "resource")
        if issuer and resource:
            key_id = dpop_key_id(issuer, resource)
            try:
                self.store.delete_key(key_id)
            except StoreError as e:
                raise McpOAuthError(f"signed out, but the DPoP key was not removed: {e}") from None
            from ._signer import forget

            forget(self.store, key_id)

    def status(self) -> Status:
        """What is stored for this server, and where the store keeps its secrets."""
        from ._types import Status

        out = self._call("status")
        if getattr(out, "tag", None) is not None:
            raise self._error(out)
        try:
            secrets: Optional[Secrets] = self.store.secrets()
        except StoreError:
            secrets = None
        engine = {k: _field(out, k) for k in Status.__dataclass_fields__ if k not in ("secrets", "store")}
        return Status(**engine, secrets=secrets, store=self.store.display)

    # -- the httpx / httpx2 auth flow ---------------------------------------
    # After a 401/403: one retry with the engine's token; a second only when
    # a DPoP-bound token was sent (a nonce challenge, RFC 9449 §9, can follow
    # a fresh authorization). Bearer requests are retried once, as ever. The
    # response that stands, when a 2xx with a DPoP-Nonce, is noted (§8).
    MAX_RETRIES = 2

    def sync_auth_flow(self, request: Any):  # type: ignore[override]
        if self.requires_request_body:
            request.read()
        token = self._silent()
        proof = _attach(request, self._headers(request.method, str(request.url), token), False)
        response = yield request
        retried = False
        for retry in range(self.MAX_RETRIES):
            signal, nonce = dpop_nonce_signal(response.status_code, response.headers.multi_items())
            if signal != "challenge" or (retry > 0 and not (token and token.dpop)):
                break
            response.read()
            new = self._challenge(
                response.status_code,
                response.headers.get_list("www-authenticate"),
                token.token if token else None,
                nonce,
            )
            if new is None:
                return
            token = new
            proof = _attach(request, self._headers(request.method, str(request.url), token), proof)
            response = yield request
            retried = True
        signal, nonce = dpop_nonce_signal(response.status_code, response.headers.multi_items(), retried)
        if signal == "note":
            self._note_success(response.status_code, token.token if retried and token else None, nonce)

    async def async_auth_flow(self, request: Any):  # type: ignore[override]
        if self.requires_request_body:
            await request.aread()
        method, url = request.method, str(request.url)
        token = self._fresh() or await _in_thread(self._silent)  # no thread hop for a fresh token
        proof = _attach(request, await self._aheaders(method, url, token), False)
        response = yield request
        retried = False
        for retry in range(self.MAX_RETRIES):
            signal, nonce = dpop_nonce_signal(response.status_code, response.headers.multi_items())
            if signal != "challenge" or (retry > 0 and not (token and token.dpop)):
                break
            await response.aread()
            status, challenge = response.status_code, response.headers.get_list("www-authenticate")
            sent = token.token if token else None
            new = await _in_thread(lambda: self._challenge(status, challenge, sent, nonce))
            if new is None:
                return
            token = new
            proof = _attach(request, await self._aheaders(method, url, new), proof)
            response = yield request
            retried = True
        signal, nonce = dpop_nonce_signal(response.status_code, response.headers.multi_items(), retried)
        if signal == "note":
            status = response.status_code
            sent = token.token if retried and token else None
            await _in_thread(lambda: self._note_success(status, sent, nonce))

    def auth_flow(self, request: Any):  # type: ignore[override]
        return self.sync_auth_flow(request)


def dpop_key_id(issuer: str, resource: str) -> str:
    """The DPoP key file's name for a server, as the engine names it
    (guest/core/src/wire/dpop.rs, key_id)."""
    return "dpop-" + hashlib.sha256(f"{issuer}\n{resource}".encode("utf-8")).hexdigest()[:40]


def _record(**fields: Any) -> Any:
    from ._engine import record

    return record(**fields)


def _field(r: Any, name: str) -> Any:
    return getattr(r, name.replace("_", "-"))


def _store_dir(store: Any) -> Optional[Path]:
    """The directory of a store in files (plain, or sealed over one); None
    for a shared store or another kind."""
    return getattr(getattr(store, "inner", store), "dir", None)


def _is_machine(grant: Any) -> bool:
    """A grant without a user (client credentials, an identity assertion, workload identity)."""
    if grant is None or isinstance(grant, str):
        return grant in MACHINE_GRANTS
    from ._types import IdentityAssertion, WorkloadIdentity

    return isinstance(grant, (IdentityAssertion, WorkloadIdentity))


def _engine_config(c: dict) -> Any:
    """The engine's `config` record (wasmtime imported by now)."""
    from wasmtime.component import Variant

    from ._engine import record
    from ._types import IdentityAssertion, WorkloadIdentity

    grant = c["grant"]
    if isinstance(grant, IdentityAssertion):
        a = record(idp_token_endpoint=grant.idp_token_endpoint, id_token=grant.id_token, idp_client_id=grant.idp_client_id)
        wit_grant: Any = Variant("identity-assertion", a)
    elif isinstance(grant, WorkloadIdentity):
        wit_grant = Variant("workload-identity", grant.assertion)
    else:
        wit_grant = Variant(grant, None) if grant else None
    params = [record(name=k, value=v) for k, v in c["authorize_params"]]
    return record(**dict(c, grant=wit_grant, authorize_params=params))


def _attach(request: Any, headers: dict, had_proof: bool) -> bool:
    """Sets the authorization headers of one try, replacing those of an earlier
    one; a `DPoP` header is touched only when this flow sets or set one. True
    when it sets a proof."""
    if "Authorization" in headers:
        request.headers["Authorization"] = headers["Authorization"]
    elif "Authorization" in request.headers:
        del request.headers["Authorization"]
    if "DPoP" in headers:
        request.headers["DPoP"] = headers["DPoP"]
        return True
    if had_proof and "DPoP" in request.headers:
        del request.headers["DPoP"]
    return False
