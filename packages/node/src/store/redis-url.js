// What a Redis/Valkey store URL means, how it is shown, and the keys of a
// name (docs/store.md, "A shared store on Redis or Valkey"; pinned for every
// host by tests/vectors/redis_urls.json and redis_keys.json). The password
// never leaves this module except to the connection: it is kept in a
// private field, out of `display`, JSON and errors.

import { McpOAuthError } from '../errors.js';

// The functions a silent token() calls are parenthesized, `(function ...)`:
// V8 then compiles them with the module and Node's compile cache keeps them
// (fast.js says why).

export const DEFAULT_PREFIX = 'mcp-oauth:';
// Longer than one HTTP request's 30 s deadline: a live holder never loses
// its lease mid-request.
export const DEFAULT_LEASE_MS = 35_000;
const LEASE_MIN = 1_000;
const LEASE_MAX = 600_000;
const PREFIX = /^[A-Za-z0-9:._-]{0,64}$/;
const USER = /^[A-Za-z0-9._@+-]{1,128}$/;
const NAME = /^[A-Za-z0-9_-]{1,128}$/;

const usage = (message) => new McpOAuthError('invalid-config', message);
const short = (s, n = 32) => JSON.stringify(String(s).slice(0, n));

/** A store URL, parsed. `display` is what people see; the password only reaches the connection. */
export class StoreUrl {
  #password;

  constructor(fields, password) {
    Object.assign(this, fields);
    this.#password = password;
    Object.freeze(this);
  }

  /** The password for AUTH (from the URL, else MCP_OAUTH_STORE_PASSWORD), or undefined. */
  password() {
    return this.#password;
  }

  get hasPassword() {
    return this.#password !== undefined;
  }

  /** The URL with the password as `***`, the prefix only when not the default, never the lease. */
  get display() {
    const cred = this.username === null ? (this.hasPassword ? ':***@' : '') : `${this.username}${this.hasPassword ? ':***' : ''}@`;
    const prefix = this.prefix === DEFAULT_PREFIX ? '' : `?prefix=${this.prefix}`;
    return `${this.tls ? 'rediss' : 'redis'}://${cred}${this.host}:${this.port}/${this.db}${prefix}`;
  }

  toString() {
    return this.display;
  }

  toJSON() {
    return this.display;
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `StoreUrl(${this.display})`;
  }
}

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Parses `raw` (`redis://[user[:password]@]host[:port][/db][?prefix=P&lease_ms=N]`
 * or `rediss://`); `passwordEnv` is MCP_OAUTH_STORE_PASSWORD, used when the
 * URL has no password. Refusals are `invalid-config` errors naming what is
 * wrong, never the password.
 */
export function parseStoreUrl(raw, passwordEnv) {
  const text = String(raw).trim();
  const shape = 'use redis://[user:password@]host[:port][/db] or rediss://';
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)?.[1];
  if (!scheme) throw usage(`the store is not a URL with a scheme: ${shape}`);
  if (scheme !== 'redis' && scheme !== 'rediss') throw usage(`the store URL's scheme must be redis or rediss, not ${short(scheme, 16)}`);
  let u;
  try {
    u = new URL(text);
  } catch {
    throw usage(`the store is not a URL: ${shape}`);
  }
  if (!u.hostname) throw usage('the store URL has no host');
  // A non-special scheme keeps the host as written: take IPv6 and names as
  // they are, lower-cased as DNS and the Rust host do.
  const host = u.hostname.toLowerCase();
  if (!/^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)$/.test(host)) throw usage('the store URL\'s host must be a name, an IPv4 address or a bracketed IPv6 address');
  if (u.hash) throw usage('the store URL has a fragment (#...): remove it');
  const port = u.port === '' ? 6379 : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw usage('the store URL\'s port must be from 1 to 65535');
  const path = u.pathname.replace(/^\//, '');
  let db = 0;
  if (path !== '') {
    if (!/^\d{1,2}$/.test(path) || Number(path) > 15) throw usage('the store URL\'s path must be a db number from 0 to 15');
    db = Number(path);
  }
  let prefix = DEFAULT_PREFIX;
  let leaseMs = DEFAULT_LEASE_MS;
  for (const [k, v] of u.searchParams) {
    if (k === 'prefix') {
      if (!PREFIX.test(v)) throw usage("the store URL's prefix may hold up to 64 letters, digits, ':', '.', '_' and '-'");
      prefix = v;
    } else if (k === 'lease_ms') {
      const n = /^\d{1,9}$/.test(v) ? Number(v) : NaN;
      if (!(n >= LEASE_MIN && n <= LEASE_MAX)) throw usage(`the store URL's lease_ms must be a number of milliseconds from ${LEASE_MIN} to ${LEASE_MAX}`);
      leaseMs = n;
    } else {
      throw usage(`unknown store URL parameter ${short(k)}: the parameters are prefix and lease_ms`);
    }
  }
  const username = u.username ? decode(u.username) : null;
  const inUrl = u.password ? decode(u.password) : '';
  const password = inUrl || passwordEnv || undefined;
  return new StoreUrl({ tls: scheme === 'rediss', host, port, db, username, prefix, leaseMs }, password);
}

/** The user namespace for `user` (undefined or '' means none): '' or `<user>/`; a bad user is a usage error. */
export const userNamespace = (function userNamespace(user) {
  if (user === undefined || user === null || user === '') return '';
  // '.' and '..' would name the users/ directory itself or the store above it.
  if (typeof user !== 'string' || !USER.test(user) || user === '.' || user === '..') {
    throw usage(`the user ${short(user)} is not 1 to 128 letters, digits, '.', '_', '@', '+' or '-'`);
  }
  return `${user}/`;
});

/** Refuses a name the engine would never choose (the same words as the file store). */
export const checkName = (function checkName(name) {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new Error(`refused storage key ${JSON.stringify(String(name).slice(0, 64))}: keys are letters, digits, '-' and '_' only`);
  }
  return name;
});

/**
 * The Redis keys of a store with prefix `prefix` and namespace `ns`: the
 * braces are a hash tag, so a record, its lock and its key file share one
 * Cluster slot.
 */
export function keysFor(prefix, ns) {
  const tag = (name) => `${prefix}{${ns}${checkName(name)}}`;
  return {
    record: (name) => `${tag(name)}:r`,
    lock: (name) => `${tag(name)}:lock`,
    keyFile: (name) => `${tag(name)}:pem`,
    manifest: () => `${prefix}store.json`,
    aadName: (name) => `${ns}${checkName(name)}`,
    // Neither the prefix, the user nor a name holds a glob character.
    pattern: (start, suffix) => `${prefix}{${ns}${start}*}:${suffix}`,
    /** The name in a key SCAN found, or null when it is not one of this namespace's. */
    nameOf(key, suffix) {
      const head = `${prefix}{${ns}`;
      const tail = `}:${suffix}`;
      if (!key.startsWith(head) || !key.endsWith(tail)) return null;
      const name = key.slice(head.length, key.length - tail.length);
      return NAME.test(name) ? name : null;
    },
  };
}
