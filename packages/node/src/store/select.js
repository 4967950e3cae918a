// Which store McpOAuth.open uses: a store object the program gives, a
// Redis/Valkey URL (the `store` option, else MCP_OAUTH_STORE), or the file
// store at `home`; for one user (the `user` option, else MCP_OAUTH_USER) or
// one principal. An option wins over its variable, even when empty.

import path from 'node:path';
import { McpOAuthError } from '../errors.js';
import { defaultHome } from './file.js';
import { openStore } from './choose.js';
import { parseStoreUrl, userNamespace } from './redis-url.js';

// The functions a silent token() calls are parenthesized, `(function ...)`:
// V8 then compiles them with the module and Node's compile cache keeps them
// (fast.js says why).

const REQUIRED = ['get', 'set', 'delete', 'list', 'lock', 'getKey', 'putKeyOnce', 'deleteKey', 'describe'];

/** The names of the seam's methods `store` lacks (for a clear error on a store given by the program). */
export function missingMethods(store) {
  if (!store || typeof store !== 'object') return ['id', ...REQUIRED];
  const missing = REQUIRED.filter((m) => typeof store[m] !== 'function');
  return typeof store.id === 'string' ? missing : ['id (a string)', ...missing];
}

/** The store URL in effect (the option, else MCP_OAUTH_STORE), or '' for the file store. */
export const storeSpec = (function storeSpec(options, env = process.env) {
  const v = typeof options.store === 'string' ? options.store : (env.MCP_OAUTH_STORE ?? '');
  return v.trim();
});

/** The user in effect: the option, else MCP_OAUTH_USER ('' or undefined: none). Checked. */
export const userOf = (function userOf(options, env = process.env) {
  const user = options.user !== undefined ? options.user : env.MCP_OAUTH_USER;
  userNamespace(user);
  return user || undefined;
});

/**
 * Opens the store the options and environment name. Resolves
 * { store, owned, home }: `owned` when McpOAuth opened it (and so closes
 * it), `home` the directory of a file store.
 */
export const selectStore = (async function selectStore(options, { env = process.env, warn = () => {} } = {}) {
  if (options.store !== undefined && typeof options.store !== 'string') {
    if (options.user !== undefined && options.user !== '') {
      throw new McpOAuthError('invalid-config', 'give user with a store URL or the file store: a store object of your own keeps its users apart itself');
    }
    return { store: options.store, owned: false, home: options.store?.dir };
  }
  const user = userOf(options, env);
  const spec = storeSpec(options, env);
  if (spec === '') {
    const base = options.home ?? defaultHome(env);
    const home = user ? path.join(base, 'users', user) : base;
    return { store: await openStore({ home, secrets: options.secrets, env, warn }), owned: true, home };
  }
  const url = parseStoreUrl(spec, env.MCP_OAUTH_STORE_PASSWORD);
  const { openRedisStore } = await import('../lazy.js'); // a Redis store's modules load with it
  return { store: await openRedisStore({ url, user, secrets: options.secrets, env }), owned: true, home: undefined };
});
