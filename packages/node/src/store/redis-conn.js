// One connection to a Redis/Valkey store (docs/store.md, "Faults"): connect
// within 3 s, each command within 5 s, no reconnect loop of the client's
// own (an unreachable store is an error naming it, at once); a command that
// fails on a broken connection is retried once on a new one (a restarted
// server with its data: the next call works). Connections are shared by the
// stores of one process that name the same server, database and
// credentials, and counted: the last close ends it. An idle connection does
// not keep Node running.

import { McpOAuthError } from '../errors.js';
import { nodeFs } from '../builtins.js';

export const CONNECT_MS = 3_000;
export const COMMAND_MS = 5_000;

// The scripts of the lease and fencing rules, word for word (steps 2, 4-6).
const SCRIPTS = {
  mcpRenew: {
    numberOfKeys: 1,
    lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 else return 0 end",
  },
  mcpRelease: {
    numberOfKeys: 1,
    lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
  },
  // KEYS: lock, record; ARGV: owner, base version, bytes.
  mcpFencedSet: {
    numberOfKeys: 2,
    lua: `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local v = tonumber(redis.call('HGET', KEYS[2], 'v') or '0')
if v ~= tonumber(ARGV[2]) then return -2 end
redis.call('HSET', KEYS[2], 'v', v + 1, 'd', ARGV[3])
return v + 1`,
  },
  // KEYS: record; ARGV: bytes. Last writer wins, as with files.
  mcpPlainSet: {
    numberOfKeys: 1,
    lua: "local v = redis.call('HINCRBY', KEYS[1], 'v', 1) redis.call('HSET', KEYS[1], 'd', ARGV[1]) return v",
  },
};

let Redis; // iovalkey, loaded on the first Redis store only (file stores never pay for it)
async function client() {
  Redis ??= (await import('iovalkey')).default;
  return Redis;
}

/** The CA bundle for rediss: MCP_OAUTH_CA_FILE, else SSL_CERT_FILE, else Node's roots (undefined). */
export function caFrom(env) {
  for (const name of ['MCP_OAUTH_CA_FILE', 'SSL_CERT_FILE']) {
    const file = env[name];
    if (!file) continue;
    try {
      return { file, pem: nodeFs().readFileSync(file) };
    } catch (e) {
      throw new McpOAuthError('invalid-config', `the CA file ${file} (${name}) cannot be read (${e.code || 'error'})`);
    }
  }
  return undefined;
}

const TLS_CODE = /CERT|SSL|TLS|EPROTO|SELF_SIGNED|UNABLE_TO|HOSTNAME|ALTNAME/i;

/** What an error from the connection means, as an McpOAuthError naming the store (never the password). */
function fault(display, e, phase) {
  const msg = String(e?.message ?? e);
  const word = msg.split(' ')[0];
  if (word === 'WRONGPASS' || word === 'NOAUTH') {
    const why = word === 'NOAUTH' ? 'asks for a password and none was given' : 'refused the user name and password';
    return new McpOAuthError('invalid-config', `the store ${display} ${why} (${word}): the password was refused; set it in the store URL or MCP_OAUTH_STORE_PASSWORD`);
  }
  if (e?.code && TLS_CODE.test(e.code)) {
    return new McpOAuthError('invalid-config', `the store ${display}: TLS failed (${e.code}); check rediss:// against the server, and MCP_OAUTH_CA_FILE or SSL_CERT_FILE for a private CA`);
  }
  if (e?.name === 'ReplyError') {
    return new McpOAuthError('storage', `the store ${display} answered ${phase}: ${msg.slice(0, 200)}`);
  }
  const code = e?.code ? ` (${e.code})` : '';
  return new McpOAuthError('storage', `the store ${display} cannot be reached${code} ${phase}: ${msg.slice(0, 200)}; nothing was read or written there`);
}

/** Errors of a live server (a reply), and a command that timed out: not retried. */
const isReply = (e) => e?.name === 'ReplyError';
const isTimeout = (e) => /Command timed out/.test(String(e?.message));

class Connection {
  #url;
  #ca;
  #client = null;
  #connecting = null;
  #busy = 0;

  constructor(url, ca) {
    this.#url = url;
    this.#ca = ca;
  }

  get display() {
    return this.#url.display;
  }

  async #open() {
    const Client = await client();
    const u = this.#url;
    const c = new Client({
      host: u.host.replace(/^\[(.*)\]$/, '$1'),
      port: u.port,
      db: u.db,
      username: u.username ?? undefined,
      password: u.password(),
      tls: u.tls ? { ...(this.#ca ? { ca: this.#ca.pem } : {}) } : undefined,
      lazyConnect: true,
      connectTimeout: CONNECT_MS,
      commandTimeout: COMMAND_MS,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null, // no reconnect loop: a broken connection is replaced on the next command
      enableOfflineQueue: false,
      autoResubscribe: false,
      scripts: SCRIPTS,
    });
    let last = null;
    // The client reports each failure as an event (AUTH refused, a TLS
    // alert, ECONNREFUSED) before connect() rejects with a generic message.
    c.on('error', (e) => {
      last = e;
    });
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${CONNECT_MS / 1000} s`), { code: 'ETIMEDOUT' })), CONNECT_MS);
    });
    try {
      await Promise.race([c.connect(), deadline]);
    } catch (e) {
      c.disconnect();
      let why = last ?? e;
      // A TLS client to a plain server gets no handshake, only the deadline.
      if (u.tls && why?.code === 'ETIMEDOUT') why = Object.assign(new Error('no TLS handshake (is the server speaking TLS on that port?)'), { code: 'TLS_HANDSHAKE_TIMEOUT' });
      throw fault(u.display, why, 'while connecting');
    } finally {
      clearTimeout(timer);
    }
    return c;
  }

  /** A ready client: the current one, or a new connection (one at a time). */
  async #ready() {
    if (this.#client?.status === 'ready') return this.#client;
    this.#drop(this.#client);
    this.#connecting ??= this.#open().finally(() => {
      this.#connecting = null;
    });
    const c = await this.#connecting;
    if (this.#client !== c) {
      this.#drop(this.#client);
      this.#client = c;
    }
    return c;
  }

  #drop(c) {
    if (!c) return;
    if (this.#client === c) this.#client = null;
    c.disconnect();
  }

  /** Runs `fn(client)`; on a broken connection once more on a new one. `what` names the command for errors. */
  async run(what, fn) {
    this.#busy++;
    try {
      for (let attempt = 0; ; attempt++) {
        const c = await this.#ready();
        c.stream?.ref?.();
        try {
          return await fn(c);
        } catch (e) {
          if (isReply(e)) throw fault(this.display, e, `to ${what}`);
          this.#drop(c);
          if (isTimeout(e)) throw new McpOAuthError('storage', `the store ${this.display} did not answer ${what} within ${COMMAND_MS / 1000} s`);
          if (attempt >= 1) throw fault(this.display, e, `(${what})`);
        }
      }
    } finally {
      // Idle: the socket no longer keeps the process alive (a pending
      // command's timer does while it runs).
      if (--this.#busy === 0) this.#client?.stream?.unref?.();
    }
  }

  close() {
    this.#drop(this.#client);
  }
}

const shared = new Map(); // identity -> { conn, refs }

/**
 * The connection for `url` (a StoreUrl) with `ca` (from caFrom), shared with
 * the other stores of this process that name the same server, database and
 * credentials. Resolves { conn, release() }; release is idempotent.
 */
export function acquire(url, ca) {
  const id = JSON.stringify([url.tls, url.host, url.port, url.db, url.username, url.password() ?? null, ca?.file ?? null]);
  let entry = shared.get(id);
  if (!entry) {
    entry = { conn: new Connection(url, ca), refs: 0 };
    shared.set(id, entry);
  }
  entry.refs++;
  let released = false;
  return {
    conn: entry.conn,
    release() {
      if (released) return;
      released = true;
      if (--entry.refs === 0) {
        shared.delete(id);
        entry.conn.close();
      }
    },
  };
}
