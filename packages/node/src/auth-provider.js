// The auth option of the MCP TypeScript SDK v2 (`@modelcontextprotocol/client`):
// its AuthProvider, `{ token(), onUnauthorized(ctx) }`, on top of the engine
// calls the package already makes, so the engine still decides everything
// (refresh, sign-in, the decline latch, one flow for concurrent 401s).

import { McpOAuthError } from './errors.js';
import { printable } from './terminal.js';

// The functions a silent token() calls are parenthesized, `(function ...)`:
// V8 then compiles them with the module and Node's compile cache keeps them
// (fast.js says why).

// A 401 this soon after the token handed out changed is taken for one to a
// request sent before the change (see sentToken).
const SUPERSEDED_WINDOW_MS = 10_000;

/**
 * @param {{ serverUrl: string, origin: string,
 *           silentToken: () => Promise<{ token: string, dpop: boolean } | undefined>,
 *           onResponse: (challenge: object) => Promise<unknown> }} session
 */
export const authProvider = (function authProvider({ serverUrl, origin, silentToken, onResponse }) {
  // The token last handed out, the one before, and when it changed.
  const handed = { current: undefined, previous: undefined, changedAt: -Infinity };

  /**
   * token(), called by the SDK's transport before each request: the token
   * the engine has without asking anyone (stored, refreshed), or undefined.
   * With none the request goes without, and the server's 401 starts the
   * sign-in through onUnauthorized, as with auth.fetch.
   */
  async function token() {
    let t;
    try {
      t = await silentToken();
    } catch (e) {
      if (e?.kind !== 'authorization-required') throw e; // declined: fails fast, no request
      t = undefined;
    }
    if (t?.dpop) {
      throw new McpOAuthError('invalid-config', `${printable(serverUrl)} binds its tokens to a DPoP key, and the SDK's authProvider sends Bearer tokens only: give the transport fetch: auth.fetch instead`);
    }
    if (t?.token !== handed.current) {
      // Only a token replacing another opens the window: a first one (a
      // stored token at start-up, a sign-in's) is what the 401s that follow are about.
      handed.changedAt = handed.current === undefined ? -Infinity : Date.now();
      handed.previous = handed.current;
      handed.current = t?.token;
    }
    return t?.token;
  }

  /**
   * Which token the refused request carried, which the AuthProvider
   * interface does not say: the one handed out last, unless it replaced
   * another moments ago. Then the refused request was most likely sent
   * before, with the one before (several in flight when a token is
   * refreshed), and the engine answers that stale 401 with the current token
   * instead of refreshing (or signing in) again.
   */
  function sentToken() {
    return Date.now() - handed.changedAt < SUPERSEDED_WINDOW_MS ? handed.previous : handed.current;
  }

  /**
   * onUnauthorized(ctx), called by the SDK's transport on a 401 before it
   * retries once: the engine refreshes, signs in, or fails (a decline, a
   * refused sign-in); concurrent 401s share one flow. The retry's token()
   * gets the engine's new token.
   */
  async function onUnauthorized(ctx) {
    const response = ctx?.response;
    if (!response || typeof response.status !== 'number' || !response.headers) {
      throw new McpOAuthError('invalid-config', 'authProvider.onUnauthorized is called by the SDK\'s transport with { response }');
    }
    let from;
    try {
      from = ctx.serverUrl === undefined ? origin : new URL(String(ctx.serverUrl)).origin;
    } catch {
      from = null;
    }
    if (from !== origin) {
      throw new McpOAuthError('invalid-config', `this authProvider is for ${printable(serverUrl)}; give each server's transport its own McpOAuth`);
    }
    const www = response.headers.get('www-authenticate');
    await onResponse({
      status: response.status,
      wwwAuthenticate: www ? [www] : [],
      sentToken: sentToken(),
      dpopNonce: undefined,
    });
  }

  return Object.freeze({ token, onUnauthorized });
});
