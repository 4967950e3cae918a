// mcp-oauth for Node: the sans-IO OAuth engine (WebAssembly, transpiled by
// jco) driven by a Node host. One McpOAuth per MCP server.
//
// Concurrency: the engine runs one flow at a time per session. A caller that
// finds a flow running gets `wait(id)` when that flow's outcome is its own
// (awaits the driver, then reads `outcome(id)`: N concurrent calls share one
// flow, one consent, one browser), or `busy(id)` when it is not (awaits the
// driver, then calls again). The decline latch inside the engine makes later
// calls fail fast until retry().

import { missingMethods, selectStore } from './store/select.js';
import { DEFAULT_HTTP, dpopNonceSignal, drain } from './http.js';
import { fastToken, NOTHING_STORED } from './fast.js';
import { engineConfig, fastPathSkew, loadSigningKey } from './config.js';
import { entropy } from './entropy.js';
import { publicLogoutReport, publicStatus } from './reports.js';
import { enableCompileCache } from './compile-cache.js';
import { McpOAuthError, fromAuthError } from './errors.js';
import { defaultDeviceCode, defaultProgress, printable } from './terminal.js';
import { authProvider } from './auth-provider.js';

export { McpOAuthError } from './errors.js';
export { defaultHome, FileStore } from './store/file.js';
export { SealedStore } from './store/sealed.js';
export { openStore } from './store/choose.js';
export { escapeTerminal } from './terminal.js';

// The engine, the host and the rest load on first need (./lazy.js), with
// Node's compile cache on from then (./compile-cache.js).
let lazyModules = null;
const lazy = () => (lazyModules ??= (enableCompileCache(), import('./lazy.js')));
/** Starts compiling the engine in the background: a flow will need it. */
const compileEngine = () => lazy().then((m) => m.compileEngine(), () => {});

/** Opens an http(s) URL in the system browser ($BROWSER, else xdg-open / open). */
export async function systemOpenBrowser(...args) {
  return (await lazy()).systemOpenBrowser(...args);
}

// A guard against a flow that never ends: a device grant polls up to 3600 times.
const MAX_EFFECTS_PER_FLOW = 20_000;
const MAX_WAIT_ROUNDS = 8;
const now = () => BigInt(Date.now());
export class McpOAuth {
  #serverUrl;
  #origin;
  #config;
  #machine = null; // a SessionMachine, or null after a trap
  #running = Promise.resolve(); // the driver of the flow in progress
  #host = null; // a promise of the Host, made when a flow first needs one
  #store = null;
  #fastSkew; // the silent fast path's skew (ms), or null: this config goes to the engine
  #fastRead = null; // the fast path's one read of the store: a token to serve, or null
  #engineStarted = false; // no fast path once the engine has had a call
  #quiet = false; // the fast path's reads warn nothing: the engine reads again and says it
  #ownsStore = false; // opened here (a Redis connection, a file store): closed by close()
  #progress;
  #hostOptions;
  #mode;
  #fetchImpl;

  /**
   * Opens the authorization of one MCP server. Nothing is requested yet.
   * @param {string | URL} serverUrl
   * @param {import('../index').McpOAuthOptions} [options]
   */
  static async open(serverUrl, options = {}) {
    const auth = new McpOAuth(String(serverUrl), options);
    // A config only the engine can judge (a machine grant, a client secret,
    // extra parameters, a URL the host's rules refuse) starts the engine
    // now, so open() reports what it refuses, as it always has. Otherwise
    // the engine loads when a call first needs it.
    const eager = auth.#fastSkew === null;
    // Side by side: a keychain read (a child process on Linux) overlaps the engine's compilation.
    if (eager) compileEngine();
    await auth.#openStore(options);
    // A store in files is read now (a few small files): when it holds no
    // fresh token, the engine compiles while the application sets up its
    // client. A shared store is read at the first call, as ever.
    if (!eager && auth.home !== undefined) auth.#readStore();
    if (eager) {
      try {
        await auth.#instance();
      } catch (e) {
        await auth.close(); // the store's connection is not left open
        throw e;
      }
    }
    return auth;
  }

  /**
   * The store: an object given, a Redis/Valkey URL (the store option, else
   * MCP_OAUTH_STORE), or the file store at `home` (for `user`, in
   * `<home>/users/<user>`), in the mode its manifest pins (chosen on first
   * use from `secrets`, else MCP_OAUTH_SECRETS, else auto).
   */
  async #openStore(options) {
    if (options.store !== undefined && typeof options.store !== 'string') {
      const missing = missingMethods(options.store);
      if (missing.length) throw new McpOAuthError('invalid-config', `the store option lacks ${missing.join(', ')}; give a store URL, a FileStore, a SealedStore, or an object with the same methods`);
    }
    const warn = (m) => this.#quiet || this.#progress({ kind: 'storage-warning', record: 'record', reason: printable(m) });
    const { store, owned, home } = await selectStore(options, { warn });
    this.#store = store;
    this.#ownsStore = owned;
    this.home = home;
  }

  /** The host that performs effects (its modules load with the first flow). */
  #getHost() {
    this.#host ??= lazy().then(
      ({ Host }) => new Host({ store: this.#store, ...this.#hostOptions }),
      (e) => {
        this.#host = null;
        throw e;
      },
    );
    return this.#host;
  }

  constructor(serverUrl, options) {
    this.#serverUrl = serverUrl;
    try {
      this.#origin = new URL(serverUrl).origin;
    } catch {
      throw new McpOAuthError('invalid-config', `the server URL ${JSON.stringify(serverUrl.slice(0, 200))} is not a URL`);
    }
    const signingKey = loadSigningKey(options.privateKey);
    this.#config = engineConfig(options, signingKey);
    this.#fastSkew = fastPathSkew(serverUrl, options);
    this.#mode = options.interactive === false ? 'silent' : 'interactive';
    this.#fetchImpl = options.fetch ?? ((...a) => globalThis.fetch(...a));
    const progress = options.onProgress ?? defaultProgress;
    this.#progress = progress;
    const { signal } = options;
    if (signal !== undefined && !(signal && typeof signal.addEventListener === 'function' && 'aborted' in signal)) {
      throw new McpOAuthError('invalid-config', 'the signal option is an AbortSignal (new AbortController().signal)');
    }
    this.#hostOptions = {
      http: { ...DEFAULT_HTTP, ...(options.httpTimeoutMs ? { timeoutMs: options.httpTimeoutMs } : {}) },
      openBrowser: options.openBrowser ?? ((url) => systemOpenBrowser(url)),
      consent: options.consent ?? (() => true),
      progress,
      deviceCode: options.onDeviceCode ?? defaultDeviceCode,
      signal,
      signingKey,
      paste: options.paste ?? false,
    };
    if (options.secrets !== undefined && options.store !== undefined && typeof options.store !== 'string') {
      throw new McpOAuthError('invalid-config', 'give either a store object or secrets: a store given by the program keeps its secrets its own way');
    }
    /** The store directory in use (undefined for a Redis store, or a store given without one); set by open(). */
    this.home = undefined;
    /**
     * fetch with authorization, for `new StreamableHTTPClientTransport(url, { fetch: auth.fetch })`.
     * Works unbound. Requests to other origins pass through untouched.
     */
    this.fetch = (input, init) => this.#authorizedFetch(input, init);
    /**
     * The auth option of the MCP TypeScript SDK v2 (`@modelcontextprotocol/client`),
     * its AuthProvider: `new StreamableHTTPClientTransport(url, { authProvider: auth.authProvider })`.
     * Works unbound.
     */
    this.authProvider = authProvider({
      serverUrl: this.#serverUrl,
      origin: this.#origin,
      silentToken: () => this.#authorize('silent'),
      onResponse: (challenge) => this.#run((m) => m.onResponse(now(), challenge, this.#mode, entropy())),
    });
  }

  /** The server URL this session authorizes. */
  get serverUrl() {
    return this.#serverUrl;
  }

  /** A usable access token: stored, refreshed, or (interactive) newly authorized. */
  async token() {
    return (await this.#authorize(this.#mode)).token;
  }

  /** Clears the decline latch (and the step-up count): the next call may prompt again. */
  async retry() {
    const m = await this.#instance();
    this.#call(m, () => m.retry());
  }

  /**
   * Removes the stored tokens for this server, and its DPoP key file; with
   * `revoke` (the default), revokes them at the authorization server first
   * when it offers that (RFC 7009). Resolves what the server revoked.
   */
  async logout({ revoke = true } = {}) {
    // Which key: the engine's status before the logout forgets the binding.
    const { issuer, resource } = await this.#engineStatus();
    const outcome = await this.#run((m) => m.logout(now(), revoke !== false));
    const report = publicLogoutReport(outcome.val);
    if (issuer !== undefined && resource !== undefined) {
      const { dpopKeyId } = await lazy();
      const keyId = dpopKeyId(issuer, resource);
      (await this.#getHost()).dpop.forget(keyId);
      try {
        await this.#store.deleteKey(keyId);
      } catch (e) {
        throw new McpOAuthError('storage', `logged out, but the DPoP key file could not be removed: ${e.message}`);
      }
    }
    return report;
  }

  /**
   * Ends what this object opened: the connection of its Redis store (shared
   * with other objects on the same store, closed with the last). Waits for a
   * flow in progress; later calls on a Redis store fail. Idempotent.
   */
  async close() {
    await this.#running;
    const store = this.#store;
    if (!this.#ownsStore || !store) return;
    this.#ownsStore = false;
    await store.close?.();
  }

  [Symbol.asyncDispose]() {
    return this.close();
  }

  /** What is stored for this server, and where secrets live (never a secret). */
  async status() {
    const status = publicStatus(await this.#engineStatus());
    // The store as shown to people: a directory, or a Redis URL with the password as ***.
    status.store = this.#store.display ?? this.#store.dir;
    const { mode, where, source } = this.#store.describe();
    const unreadable = (await this.#store.unreadable?.()) ?? 0;
    status.secrets = { mode, where, unreadable };
    if (unreadable > 0) {
      status.secrets.message =
        source === 'keychain'
          ? `the store's key is not in the keychain: ${unreadable} records cannot be read; sign in again`
          : `${unreadable} records cannot be read with the store key from ${where}; sign in again`;
    }
    return status;
  }

  async #engineStatus() {
    return (await this.#run((m) => m.inspect(now()))).val;
  }

  async #authorize(mode) {
    const fast = await this.#fastPath(mode);
    if (fast === NOTHING_STORED) throw fromAuthError({ tag: 'authorization-required' }, printable(this.#serverUrl));
    return fast ?? (await this.#run((m) => m.authorize(now(), mode, entropy()))).val;
  }

  /**
   * The fast path's read of the store (./fast.js), shared by concurrent
   * callers: a token, NOTHING_STORED or null. Anything but a token starts
   * compiling the engine: a flow (a refresh, or the sign-in the server's
   * 401 asks for) will need it.
   */
  #readStore() {
    if (this.#fastRead) return this.#fastRead;
    const read = (async () => {
      this.#quiet = true;
      try {
        return await fastToken(this.#store, this.#serverUrl, Date.now(), this.#fastSkew);
      } finally {
        this.#quiet = false;
      }
    })().then((t) => {
      if (t === null || t === NOTHING_STORED) compileEngine();
      // Nothing stored is never kept (another process may sign in): only
      // the calls that were waiting for this read get it.
      if (t === NOTHING_STORED && this.#fastRead === read) this.#fastRead = null;
      return t;
    });
    this.#fastRead = read;
    return read;
  }

  /**
   * The silent fast path: until the engine has had a call, a fresh Bearer
   * token in the store is served while now < its refresh_at, as the engine
   * would serve it from memory, and a silent call finds that no token is
   * stored (NOTHING_STORED: the engine would answer authorization-required).
   * Null: ask the engine.
   */
  async #fastPath(mode) {
    if (this.#fastSkew === null || this.#engineStarted) return null;
    const t = await this.#readStore();
    // A call that reached the engine meanwhile (a 401) ends the fast path.
    if (this.#engineStarted) return null;
    if (t === NOTHING_STORED) return mode === 'silent' ? t : null;
    return t && Date.now() < Number(t.refreshAt) ? t : null;
  }

  async #instance() {
    this.#engineStarted = true;
    const reading = this.#fastRead;
    this.#fastRead = null;
    if (this.#machine) return this.#machine;
    // A fast-path read in flight (open() starts one) ends first: while it
    // runs, the store's warnings are muted, and the engine's reads must be heard.
    await reading;
    this.#getHost().catch(() => {}); // its modules load beside the engine's; a flow reports a failure
    try {
      const api = await (await lazy()).loadMachine();
      if (this.#machine) return this.#machine; // a concurrent caller won
      this.#machine = api.SessionMachine.open(this.#serverUrl, this.#config);
    } catch (e) {
      // jco throws a result's error case as a ComponentError with `payload`.
      if (e && e.payload) throw fromAuthError(e.payload, printable(this.#serverUrl));
      throw new McpOAuthError('other', `the engine could not start (${String(e?.message ?? e).split('\n')[0]})`);
    }
    return this.#machine;
  }

  /** Calls into `m`; a trap drops that instance (the next call gets a fresh one). */
  #call(m, f) {
    try {
      return f();
    } catch (e) {
      if (this.#machine === m) this.#machine = null;
      const what = String(e?.message ?? e).split('\n')[0].slice(0, 200);
      throw new McpOAuthError('other', `the engine failed (${what}); it was restarted, nothing stored was lost, try again`);
    }
  }

  /**
   * Starts an operation and returns its outcome. When another caller's flow
   * is running, waits for it: takes its outcome when the engine says `wait`
   * (single flight), asks again when it says `busy`.
   */
  async #run(start) {
    for (let round = 0; round < MAX_WAIT_ROUNDS; round++) {
      const m = await this.#instance();
      const step = this.#call(m, () => start(m));
      let r;
      if (step.tag === 'wait' || step.tag === 'busy') {
        await this.#running;
        if (step.tag === 'busy') continue;
        r = this.#call(m, () => m.outcome(step.val));
        if (r === undefined) continue; // a newer flow finished since: ask again
      } else if (step.tag === 'done') {
        r = step.val;
      } else {
        const run = this.#drive(m, step);
        this.#running = run.then(
          () => {},
          () => {},
        );
        r = await run;
      }
      if (r.tag === 'err') throw fromAuthError(r.val, printable(this.#serverUrl));
      return r.val;
    }
    throw new McpOAuthError('other', 'other calls kept this one waiting for the engine; try again');
  }

  /** Performs effects until the flow is done; releases its locks and listener whatever happens. */
  async #drive(m, first) {
    const ctx = { locks: new Map(), listener: null };
    let step = first;
    let host = null;
    try {
      for (let n = 0; step.tag === 'effect' && n < MAX_EFFECTS_PER_FLOW; n++) {
        let input;
        try {
          host ??= await this.#getHost();
          input = await host.perform(step.val, ctx);
        } catch (e) {
          // A store fault mid-flow (Redis unreachable): the instance is left
          // waiting for an answer, so a fresh one takes the next call.
          if (this.#machine === m) this.#machine = null;
          throw e;
        }
        step = this.#call(m, () => m.handle(now(), input));
      }
      if (step.tag !== 'done') {
        if (this.#machine === m) this.#machine = null; // a flow that does not end is a bug: start afresh
        throw new McpOAuthError('other', 'the engine did not finish the flow; it was restarted, try again');
      }
      return step.val;
    } finally {
      for (const held of ctx.locks.values()) {
        try {
          await held.release();
        } catch {
          // a store's release that fails must not hide the flow's outcome
        }
      }
      await host?.closeListener(ctx);
    }
  }

  /** The `DPoP` header value for one request (a fresh, single-use proof), or undefined. */
  async #dpopProof(method, url) {
    return (await this.#run((m) => m.dpopProof(now(), method, url, entropy()))).val ?? undefined;
  }

  async #authorizedFetch(input, init) {
    const isRequest = typeof Request !== 'undefined' && input instanceof Request;
    let target;
    try {
      target = new URL(isRequest ? input.url : String(input));
    } catch {
      return this.#fetchImpl(input, init);
    }
    // The token goes only to the MCP server's origin.
    if (target.origin !== this.#origin) return this.#fetchImpl(input, init);
    const base = isRequest ? new Request(input, init) : null;
    const method = ((base ? base.method : init?.method) ?? 'GET').toUpperCase();
    /** Sends with `auth` (an access-token record, or undefined: none). */
    const send = async (auth) => {
      const headers = new Headers(base ? base.headers : init?.headers);
      headers.delete('authorization');
      if (auth?.dpop) {
        // RFC 9449 §7.1: the DPoP scheme and a fresh proof on every request.
        const proof = await this.#dpopProof(method, target.href);
        if (!proof) throw new McpOAuthError('other', 'the engine gave no DPoP proof for a DPoP-bound token; try again');
        headers.set('authorization', `DPoP ${auth.token}`);
        headers.set('dpop', proof);
      } else if (auth) {
        headers.set('authorization', `Bearer ${auth.token}`);
      }
      try {
        return base
          ? await this.#fetchImpl(new Request(base.clone(), { headers }))
          : await this.#fetchImpl(input, { ...init, headers });
      } catch (e) {
        if (e?.name === 'AbortError' || e?.name === 'TimeoutError') throw e; // the caller's own abort
        throw new McpOAuthError('transport', `${method} ${target.origin}${target.pathname}: ${e?.cause?.code ?? e?.message ?? e}; check that the server is reachable`);
      }
    };
    let auth;
    try {
      auth = await this.#authorize('silent');
    } catch (e) {
      if (e?.kind !== 'authorization-required') throw e;
    }
    let resp = await send(auth);
    let retried = false;
    // One retry with the token the engine gives; a second only after a
    // DPoP-bound token was sent (a nonce challenge can follow a fresh
    // authorization, RFC 9449 §9). Bearer requests are retried once, as ever.
    for (let retries = 0; retries < 2 && (resp.status === 401 || resp.status === 403); retries++) {
      if (retries === 1 && !auth?.dpop) break;
      const www = resp.headers.get('www-authenticate');
      const challenge = {
        status: resp.status,
        wwwAuthenticate: www ? [www] : [],
        sentToken: auth?.token,
        dpopNonce: dpopNonceSignal(resp.status, resp.headers).nonce ?? undefined,
      };
      const outcome = await this.#run((m) => m.onResponse(now(), challenge, this.#mode, entropy()));
      if (outcome.tag !== 'token') return resp;
      await drain(resp);
      auth = outcome.val;
      resp = await send(auth);
      retried = true;
    }
    const { signal, nonce } = dpopNonceSignal(resp.status, resp.headers, retried);
    if (signal === 'note') await this.#noteSuccess(resp.status, retried ? auth?.token : undefined, nonce);
    return resp;
  }

  /**
   * Tells the engine of a 2xx from the MCP server: its DPoP nonce (RFC 9449
   * §9), kept for the next proof, and, after a retry, that the token sent
   * works (`sentToken`), which re-arms the engine's once-per-rejection
   * refresh. An on-response with that status and no challenge, which the
   * engine answers Unchanged at once, even while another caller's flow
   * runs. Best effort: never fails the request.
   */
  async #noteSuccess(status, sentToken, nonce) {
    try {
      const m = await this.#instance();
      const ok = { status, wwwAuthenticate: [], sentToken, dpopNonce: nonce ?? undefined };
      // A 2xx starts no flow: the engine answers at once.
      this.#call(m, () => m.onResponse(now(), ok, 'silent', entropy()));
    } catch {
      // the response stands; only the nonce is lost
    }
  }
}
