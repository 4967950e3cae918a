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
  | { kind: 'callback-arrived' };

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

export interface McpOAuthOptions {
  /** The store directory. Default: `$MCP_OAUTH_HOME`, else `<platform data dir>/mcp-oauth` (as the CLI). */
  home?: string;
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
  /** How long to wait for the browser, ms (default 5 minutes). */
  callbackTimeoutMs?: number;
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
  | 'other';

/** Every failure: `kind` to branch on, a message that says what to do (never a secret). */
export class McpOAuthError extends Error {
  readonly name: 'McpOAuthError';
  readonly kind: McpOAuthErrorKind;
  /** The OAuth error answer, when a server sent one. */
  readonly oauth?: { status: number; error?: string; description?: string };
}

export class McpOAuth {
  /** Opens the authorization of one MCP server; nothing is requested yet. */
  static open(serverUrl: string | URL, options?: McpOAuthOptions): Promise<McpOAuth>;
  /** The server URL. */
  readonly serverUrl: string;
  /** The store directory in use. */
  readonly home: string;
  /**
   * fetch that attaches the token to requests to the server's origin and hands
   * 401/403 to the engine, retrying once (twice with a DPoP-bound token: a
   * nonce challenge can follow). A DPoP-bound token goes as
   * `Authorization: DPoP` with a fresh `DPoP` proof on every request. Works unbound:
   * `new StreamableHTTPClientTransport(url, { fetch: auth.fetch })`.
   */
  readonly fetch: typeof globalThis.fetch;
  /** A usable access token: stored, refreshed, or (interactive) newly authorized. */
  token(): Promise<string>;
  /** Clears the decline latch: the next call may ask again. */
  retry(): Promise<void>;
  /** Removes the stored tokens for this server. */
  logout(): Promise<void>;
  /** What is stored for this server. */
  status(): Promise<McpOAuthStatus>;
}

/** The store directory the CLI uses: `$MCP_OAUTH_HOME`, else `<platform data dir>/mcp-oauth`. */
export function defaultHome(env?: Record<string, string | undefined>): string;
/** Opens a URL as the CLI does: `$BROWSER` (no shell) or the platform opener. */
export function systemOpenBrowser(url: string, env?: Record<string, string | undefined>): Promise<void>;
/** Escapes control characters and bidi overrides for printing on a terminal. */
export function escapeTerminal(text: string, keepLines?: boolean): string;
