// Types of the mcp-oauth npm package (hand-written; the code is plain ESM JS).

/** Why the engine asks the user. */
export type ConsentReason = 'first-login' | 'reauthorize' | 'step-up';

/** What the consent hook is asked, before any registration or browser. Fields are escaped. */
export interface ConsentRequest {
  /** The MCP server being connected to. */
  serverUrl: string;
  /** The authorization server that will be opened. */
  issuer: string;
  /** Scopes that will be requested; empty means the server's default. */
  scopes: string[];
  reason: ConsentReason;
}

/**
 * A notice from the engine or a step of the host. Never carries a secret;
 * every string that came from a server is escaped for terminals.
 */
export type Progress =
  | { kind: 'callback-rejected'; reason: string }
  | { kind: 'browser-open-failed'; url: string; reason: string }
  | { kind: 'storage-warning'; record: string; reason: string }
  | { kind: 'pkce-check-overridden'; issuer: string }
  | { kind: 'legacy-issuer-differs'; origin: string; issuer: string }
  | { kind: 'http'; method: string; url: string; status: number }
  | { kind: 'saved'; record: string }
  | { kind: 'listening'; redirectUri: string }
  | { kind: 'browser-opened'; url: string }
  | { kind: 'waiting' }
  | { kind: 'callback-arrived' }
  /** When a flow's listener closes: requests it answered without the engine (other paths, malformed, over a limit). */
  | { kind: 'callback-ignored'; count: number }
  /** A device code was shown (onDeviceCode); the flow polls until it is approved. */
  | ({ kind: 'device-code' } & DeviceCode);

/**
 * Sign in on another device (the device authorization grant, RFC 8628):
 * where the user goes and what they type. The engine has checked both URIs
 * (https, or http on loopback) and the code (letters, digits, `-`, spaces);
 * every string is escaped for terminals all the same.
 */
export interface DeviceCode {
  /** Where the user goes. */
  verificationUri: string;
  /** The same with the code filled in, when the server gave one: prefer it for a link or a QR code. */
  verificationUriComplete?: string;
  /** What the user types there. */
  userCode: string;
  /** How long the code is good for, in seconds. */
  expiresIn: number;
}

/** What `logout()` did at the authorization server (RFC 7009); the tokens are forgotten locally in every case. */
export interface LogoutReport {
  /** The tokens the server confirmed revoked, in order: `'refresh_token'`, `'access_token'`. */
  revoked: string[];
  /** Why a revocation failed, when one did. */
  failed?: string;
  /** What was not revoked and why, when that is no failure (asked not to, nothing stored, no `revocation_endpoint`...). */
  skipped?: string;
}

/** SEP-990 enterprise-managed authorization: ID token → ID-JAG → access token. */
/** Workload identity federation (SEP-1933): the workload's JWT from its platform, in the jwt-bearer grant. */
export interface WorkloadIdentityGrant {
  /** The JWT (a secret), e.g. a Kubernetes service account token. */
  workloadToken: string;
}

export interface IdentityAssertionGrant {
  /** The IdP's token endpoint (RFC 8693 token exchange). */
  idpTokenEndpoint: string;
  /** The user's ID token from the IdP (a secret). */
  idToken: string;
  /** This client's id at the IdP. */
  idpClientId?: string;
}

/**
 * Where secrets (tokens, client secrets, DPoP keys) live, chosen on a
 * store's first use and pinned in its `store.json`:
 * - `auto`: sealed with a store key from `MCP_OAUTH_STORE_KEY_FILE` or the OS
 *   keychain when one answers within 2 s; else plain files, with one line on
 *   stderr per process saying why (silence it with `MCP_OAUTH_SECRETS=file`);
 * - `keychain`: sealed, or an McpOAuthError `keychain-unavailable` (nothing written);
 * - `file`: plain files (0600), no notice.
 * A store already pinned is opened in its mode; asking for the other one is
 * an McpOAuthError `store-mode` naming `mcp-oauth store seal` or `mcp-oauth store unseal`.
 */
export type SecretsChoice = 'auto' | 'keychain' | 'file';

/** A held lock; `release()` removes it (once: later calls do nothing). */
export interface StoreLock {
  readonly key: string;
  release(): Promise<void>;
  /**
   * A lease (a shared store): extends it, false when it was lost. The host
   * renews before each request made while the lock is held, and does not
   * send the request when the lease was lost.
   */
  renew?(): Promise<boolean>;
}

/** Where a store keeps its secrets. */
export interface StoreDescription {
  mode: 'plain' | 'sealed';
  /** e.g. "plain files in /home/me/.local/share/mcp-oauth", "the keychain (Secret Service)", "the key file /run/secrets/k". */
  where: string;
  /** Where a sealed store's key comes from. */
  source?: 'keychain' | 'key-file' | 'program';
  /** The store key's id (first 16 hex digits of its SHA-256), for a sealed store. */
  keyId?: string;
  /** A shared store as shown to people: its URL with the password as `***`. */
  store?: string;
}

/**
 * The store seam: what the host needs from a store. Keys are flat names
 * chosen by the engine (`[A-Za-z0-9_-]{1,128}`); record bytes are opaque.
 * FileStore and SealedStore implement it; so can a store of your own.
 */
export interface McpOAuthStore {
  /** A stable name for this store (per-process caches are kept by it). */
  readonly id: string;
  /** The store directory, when there is one. */
  readonly dir?: string;
  describe(): StoreDescription;
  /** Records and key files that cannot be read (a lost or changed store key). */
  unreadable?(): Promise<number>;
  /** A record, or null when absent or unreadable (never an error for bad content). */
  get(key: string): Promise<Uint8Array | null>;
  /** Writes a record atomically. */
  set(key: string, value: Uint8Array): Promise<void>;
  /** Removes a record; absent is fine. */
  delete(key: string): Promise<void>;
  /** The record keys starting with `prefix`, sorted. */
  list(prefix?: string): Promise<string[]>;
  /** The key file names, sorted. */
  listKeys?(): Promise<string[]>;
  /** The cross-process lock on `key`, waiting a bounded time for another holder. */
  lock(key: string): Promise<StoreLock>;
  /** Runs `fn` holding the lock on `key`; released however `fn` ends. */
  withLock?<T>(key: string, fn: () => Promise<T>): Promise<T>;
  /** A DPoP key file's text, or null when absent. */
  getKey(key: string): Promise<string | null>;
  /** Writes a key file unless one exists; resolves the text stored (the first writer's). */
  putKeyOnce(key: string, text: string): Promise<string>;
  /** Removes a key file; absent is fine. */
  deleteKey(key: string): Promise<void>;
  /** Where a key file is, for messages. */
  keyPath?(key: string): string;
  /** Lets go of what the store holds open (a connection). */
  close?(): Promise<void>;
}

/** The store as plain files in one directory (the layout every mcp-oauth host shares). */
export class FileStore implements McpOAuthStore {
  /** `warn` gets storage warnings (a record that is not read, and why). */
  constructor(dir: string, warn?: (message: string) => void);
  readonly id: string;
  readonly dir: string;
  describe(): StoreDescription;
  unreadable(): Promise<number>;
  get(key: string): Promise<Uint8Array | null>;
  set(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  list(prefix?: string): Promise<string[]>;
  listKeys(): Promise<string[]>;
  lock(key: string, deadlineMs?: number): Promise<StoreLock>;
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  getKey(key: string): Promise<string | null>;
  putKeyOnce(key: string, text: string): Promise<string>;
  deleteKey(key: string): Promise<void>;
  keyPath(key: string): string;
}

/**
 * Another store with every record and key file sealed by a 32-byte store
 * key (AES-256-GCM, the record's name bound as associated data: the format
 * every mcp-oauth host reads). What does not open reads as absent.
 */
export class SealedStore implements McpOAuthStore {
  constructor(inner: McpOAuthStore, key: Uint8Array, options?: { keyFrom?: string; source?: 'keychain' | 'key-file' | 'program' });
  readonly inner: McpOAuthStore;
  readonly id: string;
  readonly dir?: string;
  readonly keyId: string;
  describe(): StoreDescription;
  unreadable(): Promise<number>;
  get(key: string): Promise<Uint8Array | null>;
  set(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  list(prefix?: string): Promise<string[]>;
  listKeys(): Promise<string[]>;
  lock(key: string): Promise<StoreLock>;
  withLock<T>(key: string, fn: () => Promise<T>): Promise<T>;
  getKey(key: string): Promise<string | null>;
  putKeyOnce(key: string, text: string): Promise<string>;
  deleteKey(key: string): Promise<void>;
  keyPath(key: string): string;
}

/**
 * The store McpOAuth.open uses for `home`: plain or sealed as its
 * `store.json` says, chosen on first use (see SecretsChoice). `env`
 * (default process.env) supplies MCP_OAUTH_SECRETS, MCP_OAUTH_STORE_KEY_FILE
 * and the session bus.
 */
export function openStore(options: {
  home: string;
  secrets?: SecretsChoice;
  env?: Record<string, string | undefined>;
  warn?: (message: string) => void;
}): Promise<FileStore | SealedStore>;

export interface McpOAuthOptions {
  /** The file store's directory. Default: `$MCP_OAUTH_HOME`, else `<platform data dir>/mcp-oauth` (as the CLI). */
  home?: string;
  /**
   * Where secrets live in a new store (default `$MCP_OAUTH_SECRETS`, else 'auto'); see SecretsChoice.
   * On a Redis store: sealed with the key in `MCP_OAUTH_STORE_KEY_FILE` (required),
   * or plain records with 'file' (one line on stderr per process says so).
   */
  secrets?: SecretsChoice;
  /**
   * The store. A URL: a Redis/Valkey store shared by a fleet,
   * `redis://[user[:password]@]host[:port][/db][?prefix=P&lease_ms=N]` or
   * `rediss://` (TLS; a private CA from `$MCP_OAUTH_CA_FILE`, else `$SSL_CERT_FILE`);
   * the password may come from `$MCP_OAUTH_STORE_PASSWORD` instead. `''`: the
   * file store at `home`. A store object of your own (instead of `home`,
   * `secrets` and `user`). Default: `$MCP_OAUTH_STORE`, else the file store.
   * A bad URL is an McpOAuthError 'invalid-config' naming what is wrong (never the password).
   */
  store?: string | McpOAuthStore;
  /**
   * The principal whose records these are (a gateway serving many users):
   * 1 to 128 of `[A-Za-z0-9._@+-]`; every record, lock and key file is kept
   * apart per user (in the file store, under `<home>/users/<user>/`).
   * Default: `$MCP_OAUTH_USER`, else none (one principal).
   */
  user?: string;
  /** Opens the authorization URL. Default: `$BROWSER` (run directly, URL last, no shell), else xdg-open / open. */
  openBrowser?: (url: string) => void | Promise<void>;
  /** A pre-registered client id. */
  clientId?: string;
  /** Its secret (confidential client). */
  clientSecret?: string;
  /** The issuer the pre-registered client belongs to. */
  clientIssuer?: string;
  /** Your Client ID Metadata Document URL (https, with a path). */
  clientMetadataUrl?: string;
  /** `client_name` for dynamic registration (default `mcp-oauth`). */
  clientName?: string;
  /** Scopes to request instead of the spec's selection, space-separated. */
  scope?: string;
  /** Pin the loopback callback port (default: any free port). */
  callbackPort?: number;
  /** How long to wait for the user, ms: the browser's redirect, or a device code's approval (default 5 minutes). */
  callbackTimeoutMs?: number;
  /**
   * Sign in with a code on any other device (the device authorization grant,
   * RFC 8628) when the authorization server offers it: for a machine no
   * browser can reach (an SSH session, a container), or when the user asks.
   * Without a device endpoint the usual browser flow runs. Default false.
   */
  device?: boolean;
  /**
   * Shows a device code to the user (called once per device sign-in; the
   * flow polls meanwhile, without waiting for the hook). Default: the
   * address, the code and its expiry on stderr, each line prefixed `mcp-oauth: `.
   */
  onDeviceCode?: (code: DeviceCode) => void | Promise<void>;
  /**
   * Cancels the wait for the user: the browser's redirect, or a device
   * code's approval (each poll's pause). A cancelled sign-in ends as
   * `declined` (calls fail fast until `retry()`); while the signal stays
   * aborted, every later wait ends at once.
   */
  signal?: AbortSignal;
  /** Issuers allowed to omit S256 from their metadata (S256 is still used). */
  allowMissingS256?: string[];
  /** A token this close to expiry, ms, is refreshed first (default 60000). */
  expirySkewMs?: number;
  /** Step-up authorizations allowed per session (default 3). */
  maxStepUps?: number;
  /** Add `offline_access` when the AS lists it (default true). */
  requestOfflineAccess?: boolean;
  /** Extra authorization request parameters, e.g. `{ audience: 'https://api.example/' }`;
   * naming one the engine sets (state, scope, resource...) fails with 'invalid-config'. */
  authorizeParams?: Record<string, string>;
  /** How tokens are obtained (default: 'authorization-code', a user in the browser). */
  grant?: 'authorization-code' | 'client-credentials' | IdentityAssertionGrant | WorkloadIdentityGrant;
  /** A P-256 private key (PKCS#8 PEM or KeyObject): authenticate with private_key_jwt (ES256). */
  privateKey?: string | Buffer | import('node:crypto').KeyObject;
  /** Asked before any registration or browser; false (or a throw) declines. Default: allow. */
  consent?: (request: ConsentRequest) => boolean | Promise<boolean>;
  /** Notices and progress. Default: notices on stderr when it is a terminal, a browser failure always. */
  onProgress?: (progress: Progress) => void;
  /** Also accept the redirect URL pasted as a line: true for stdin, or a readable stream. Default false. */
  paste?: boolean | NodeJS.ReadableStream;
  /** false: never prompt or open a browser; fail with kind 'authorization-required'. Default true. */
  interactive?: boolean;
  /** The fetch used for MCP requests (default: globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /** Total timeout of each engine HTTP request, ms (default 30000). */
  httpTimeoutMs?: number;
}

/** What is stored for a server. Never a secret. */
export interface McpOAuthStatus {
  serverUrl: string;
  resource?: string;
  issuer?: string;
  clientId?: string;
  scopes: string[];
  /** Expiry of the stored access token, Unix ms. */
  expiresAt?: number;
  hasToken: boolean;
  canRefresh: boolean;
  declined: boolean;
  legacy: boolean;
  /** Where secrets live. */
  secrets: SecretsStatus;
  /** The store: its directory, or a Redis URL with the password as `***`. */
  store?: string;
}

export interface SecretsStatus {
  mode: 'plain' | 'sealed';
  /** "plain files in <dir>", "the keychain (Secret Service)", "the key file <path>"... */
  where: string;
  /** Records and key files the store key cannot open (a lost or changed key). */
  unreadable: number;
  /** When some cannot be read: what happened and what to do ("... sign in again"). */
  message?: string;
}

export type McpOAuthErrorKind =
  | 'authorization-required'
  | 'declined'
  | 'timed-out'
  | 'invalid-config'
  | 'unsafe-url'
  | 'transport'
  | 'discovery-failed'
  | 'resource-mismatch'
  | 'issuer-mismatch'
  | 'pkce-unsupported'
  | 'no-client-identity'
  | 'client-issuer-mismatch'
  | 'registration-failed'
  | 'authorization-failed'
  | 'iss-mismatch'
  | 'token-request-failed'
  | 'invalid-response'
  | 'step-up-limit'
  | 'forbidden'
  | 'callback-listener'
  | 'storage'
  /** `secrets: 'keychain'` (or a sealed store) and no keychain answers; nothing was written. */
  | 'keychain-unavailable'
  /** The store is pinned to the other mode; the message names `mcp-oauth store seal` or `unseal`. */
  | 'store-mode'
  /** MCP_OAUTH_STORE_KEY_FILE cannot be used (missing, not a regular file, readable by others, not a key,
   * not the key a shared store's manifest names). */
  | 'store-key'
  | 'other';

/** Every failure: `kind` to branch on, a message that says what to do (never a secret). */
export class McpOAuthError extends Error {
  readonly name: 'McpOAuthError';
  readonly kind: McpOAuthErrorKind;
  /** The OAuth error answer, when a server sent one. */
  readonly oauth?: { status: number; error?: string; description?: string };
}

/**
 * The `AuthProvider` shape the MCP TypeScript SDK v2's HTTP transports take
 * as `authProvider` (declared here so the package needs no SDK types).
 */
export interface McpOAuthAuthProvider {
  /** Called before every request: the current token, or undefined (none without signing in). */
  token(): Promise<string | undefined>;
  /**
   * Called on a 401 before the transport retries once: the engine refreshes
   * or signs in, or rejects with an McpOAuthError (e.g. `declined`).
   * `serverUrl`, when given, must be on this McpOAuth's server's origin.
   */
  onUnauthorized(ctx: { response: Response; serverUrl?: URL | string }): Promise<void>;
}

export class McpOAuth {
  /** Opens the authorization of one MCP server; nothing is requested yet. */
  static open(serverUrl: string | URL, options?: McpOAuthOptions): Promise<McpOAuth>;
  /** The server URL. */
  readonly serverUrl: string;
  /** The file store's directory in use (undefined for a Redis store, or a store of your own without one). */
  readonly home: string | undefined;
  /**
   * fetch that attaches the token to requests to the server's origin and hands
   * 401/403 to the engine, retrying once (twice with a DPoP-bound token: a
   * nonce challenge can follow). A DPoP-bound token goes as
   * `Authorization: DPoP` with a fresh `DPoP` proof on every request. Works unbound:
   * `new StreamableHTTPClientTransport(url, { fetch: auth.fetch })`.
   */
  readonly fetch: typeof globalThis.fetch;
  /**
   * The auth option of the MCP TypeScript SDK v2 (`@modelcontextprotocol/client`):
   * `new StreamableHTTPClientTransport(url, { authProvider: auth.authProvider })`.
   * Its `token()` is the token the engine has without asking anyone
   * (undefined when there is none: the request goes without); a 401 goes to
   * `onUnauthorized`, where the engine refreshes or signs in (one flow for
   * concurrent 401s; after a decline every call fails fast until `retry()`).
   * Bearer tokens only: for a server that binds tokens with DPoP, or step-up
   * on a 403 `insufficient_scope`, give the transport `fetch: auth.fetch`.
   * Works unbound.
   */
  readonly authProvider: McpOAuthAuthProvider;
  /**
   * A usable access token: stored, refreshed, or (interactive) newly authorized.
   * A fresh Bearer token on a warm store is served before the engine loads
   * (the silent fast path, README "Start-up").
   */
  token(): Promise<string>;
  /** Clears the decline latch: the next call may ask again. */
  retry(): Promise<void>;
  /**
   * Removes the stored tokens for this server, and its DPoP key file. With
   * `revoke` (default true) they are first revoked at the authorization
   * server when it offers that (RFC 7009: the refresh token, then the
   * access token); a failed revocation is reported, never thrown, and the
   * tokens are forgotten anyway.
   */
  logout(options?: { revoke?: boolean }): Promise<LogoutReport>;
  /** What is stored for this server, and where secrets live. */
  status(): Promise<McpOAuthStatus>;
  /**
   * Ends what this object opened (a Redis store's connection, shared with
   * the other objects on the same store and closed with the last); waits for
   * a flow in progress. An idle connection never keeps Node running, closed or not.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The store directory the CLI uses: `$MCP_OAUTH_HOME`, else `<platform data dir>/mcp-oauth`. */
export function defaultHome(env?: Record<string, string | undefined>): string;
/** Opens a URL as the CLI does: `$BROWSER` (no shell) or the platform opener. */
export function systemOpenBrowser(url: string, env?: Record<string, string | undefined>): Promise<void>;
/**
 * Text for a terminal: every control character (Unicode Cc: C0, DEL, C1) shown
 * as a visible `\u{..}` escape, everything else kept (the rule every mcp-oauth
 * host applies to server text). `keepLines` keeps newlines and tabs (default false).
 */
export function escapeTerminal(text: string, keepLines?: boolean): string;
