// The store seam on Redis or Valkey, shared by the replicas of a fleet
// (docs/store.md, "A shared store on Redis or Valkey"): records are hashes
// {v (version), d (bytes)}, key files strings written once, locks leases
// (SET NX PX) released and renewed only by their owner, and a write under a
// lock fenced by the owner and the version read, so a replica that lost its
// lease or read an older rotation never overwrites a newer one. Sealed with
// the fleet's key file (the user and name bound as associated data), or
// plain records when MCP_OAUTH_SECRETS=file says so (announced once).

import { nodeCrypto } from '../builtins.js';
import { McpOAuthError } from '../errors.js';
import { MAX_KEY_BYTES, MAX_RECORD_BYTES } from './file.js';
import { keyId, open, seal } from './sealed.js';
import { noticeOnce, readKeyFile, secretsChoice } from './choose.js';
import { keysFor, userNamespace } from './redis-url.js';
import { acquire, caFrom } from './redis-conn.js';

const LOCK_GRACE_MS = 10_000; // a lock is waited for its lease and this much more
const SCAN_COUNT = 1000;
const SCAN_ROUNDS = 10_000;
const PREFIX = /^[A-Za-z0-9_-]{0,128}$/;
const PLAIN = '{"format":1,"mode":"plain"}';
const sealedManifest = (kid) => `{"format":1,"mode":"sealed","key_id":"${kid}"}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const storageError = (message) => new McpOAuthError('storage', message);

export class RedisStore {
  #url;
  #conn;
  #release;
  #keys;
  #ns;
  #key; // the store key, or null for plain records
  #keyFile;
  #versions = new Map(); // name -> the version last read or written (step 3)
  #held = new Map(); // name -> the owner of the lease this store holds on it
  #closed = false;

  /**
   * @param {import('./redis-url.js').StoreUrl} url
   * @param {object} o  { ns, key (32 bytes, or null: plain), keyFile (its path, for status), handle (from acquire) }
   */
  constructor(url, { ns, key, keyFile, handle }) {
    this.#url = url;
    this.#ns = ns;
    this.#keys = keysFor(url.prefix, ns);
    this.#key = key ? Buffer.from(key) : null;
    this.#keyFile = keyFile;
    this.#conn = handle.conn;
    this.#release = handle.release;
  }

  /** The store as shown to people: the URL with the password as `***`. */
  get display() {
    return this.#url.display;
  }

  /** The user namespace (`<user>/` or ''). */
  get namespace() {
    return this.#ns;
  }

  get id() {
    return `${this.#url.display} user=${this.#ns}`;
  }

  get leaseMs() {
    return this.#url.leaseMs;
  }

  describe() {
    if (!this.#key) return { mode: 'plain', where: `plain records in the shared store ${this.display}`, store: this.display };
    return { mode: 'sealed', where: `the key file ${this.#keyFile}`, source: 'key-file', keyId: keyId(this.#key), store: this.display };
  }

  #run(what, fn) {
    if (this.#closed) return Promise.reject(storageError(`the store ${this.display} was closed; open McpOAuth again`));
    return this.#conn.run(what, fn);
  }

  #aad(name) {
    return this.#keys.aadName(name);
  }

  async get(name) {
    const rkey = this.#keys.record(name);
    const [v, d] = await this.#run(`read ${rkey}`, (c) => c.hmgetBuffer(rkey, 'v', 'd'));
    this.#versions.set(name, v ? Number(v.toString('latin1')) || 0 : 0);
    if (!d) return null;
    if (d.length > MAX_RECORD_BYTES) return null; // a record is a few KB: something else wrote this
    const bytes = this.#key ? open(this.#key, 'record', this.#aad(name), d) : d;
    return bytes === null ? null : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Fenced while this store holds the lock on `name` (step 4), else last writer wins (step 5). */
  async set(name, value) {
    const rkey = this.#keys.record(name);
    const bytes = this.#key ? Buffer.from(seal(this.#key, 'record', this.#aad(name), value)) : Buffer.from(value);
    const owner = this.#held.get(name);
    if (owner === undefined) {
      this.#versions.set(name, await this.#run(`write ${rkey}`, (c) => c.mcpPlainSet(rkey, bytes)));
      return;
    }
    const lkey = this.#keys.lock(name);
    const base = this.#versions.get(name) ?? 0;
    const r = await this.#run(`write ${rkey}`, (c) => c.mcpFencedSet(lkey, rkey, owner, base, bytes));
    if (r === -1) {
      throw storageError(`refused to write ${rkey}: this process lost its lease on ${lkey} (it was paused or slow past ${this.leaseMs} ms); the record another holder wrote stands`);
    }
    if (r === -2) {
      throw storageError(`refused to write ${rkey}: another process wrote a newer version since it was read; the next refresh reads that one`);
    }
    this.#versions.set(name, r);
  }

  async delete(name) {
    const rkey = this.#keys.record(name);
    await this.#run(`delete ${rkey}`, (c) => c.del(rkey));
    this.#versions.set(name, 0);
  }

  /** The names whose keys of `suffix` start with `start`, sorted (SCAN, bounded). */
  async #scan(start, suffix) {
    if (typeof start !== 'string' || !PREFIX.test(start)) {
      throw new Error(`refused storage key prefix ${JSON.stringify(String(start).slice(0, 64))}: letters, digits, '-' and '_' only`);
    }
    const pattern = this.#keys.pattern(start, suffix);
    const names = new Set();
    let cursor = '0';
    for (let round = 0; round < SCAN_ROUNDS; round++) {
      const [next, keys] = await this.#run(`list ${pattern}`, (c) => c.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT));
      for (const k of keys) {
        const n = this.#keys.nameOf(k, suffix);
        if (n !== null) names.add(n); // another user's keys never match the namespace
      }
      cursor = next;
      if (cursor === '0') return [...names].sort();
    }
    throw storageError(`listing ${pattern} in the store ${this.display} did not finish within ${SCAN_ROUNDS} rounds`);
  }

  list(prefix = '') {
    return this.#scan(prefix, 'r');
  }

  listKeys() {
    return this.#scan('', 'pem');
  }

  /**
   * Takes the lease on `name` (step 1): SET NX PX with a fresh owner,
   * retried every 10-50 ms until `deadlineMs` (the lease and 10 s: a holder
   * that died frees it when its lease ends). Resolves { key, lock, release(),
   * renew() }; release is idempotent and deletes only this owner's lease.
   */
  async lock(name, deadlineMs = this.leaseMs + LOCK_GRACE_MS) {
    const lkey = this.#keys.lock(name);
    const owner = `${process.pid}:${nodeCrypto().randomBytes(16).toString('hex')}`;
    const lease = this.leaseMs;
    const until = Date.now() + deadlineMs;
    for (;;) {
      const ok = await this.#run(`take ${lkey}`, (c) => c.set(lkey, owner, 'PX', lease, 'NX'));
      if (ok === 'OK') break;
      if (Date.now() >= until) {
        throw storageError(`the lock ${lkey} in the store ${this.display} is still held by another process after ${deadlineMs / 1000} s; a holder that died frees it when its lease (${lease} ms) ends`);
      }
      await sleep(10 + Math.floor(Math.random() * 41));
    }
    this.#held.set(name, owner);
    let released = false;
    return {
      key: name,
      lock: lkey,
      release: async () => {
        if (released) return;
        released = true;
        if (this.#held.get(name) === owner) this.#held.delete(name);
        // Unreachable store: the lease ends by itself.
        await this.#run(`release ${lkey}`, (c) => c.mcpRelease(lkey, owner)).catch(() => {});
      },
      /** Extends the lease (step 2): false when it was lost (another owner, or expired). */
      renew: async () => {
        if (released) return false;
        return (await this.#run(`renew ${lkey}`, (c) => c.mcpRenew(lkey, owner, lease))) === 1;
      },
    };
  }

  async withLock(name, fn) {
    const held = await this.lock(name);
    try {
      return await fn();
    } finally {
      await held.release();
    }
  }

  keyPath(name) {
    return `${this.#keys.keyFile(name)} in the store ${this.display}`;
  }

  /** A key file's text, or null when absent or when it does not open. */
  async getKey(name) {
    const pkey = this.#keys.keyFile(name);
    const stored = await this.#run(`read ${pkey}`, (c) => c.getBuffer(pkey));
    return stored === null ? null : this.#openKey(name, stored);
  }

  #openKey(name, stored) {
    if (stored.length > MAX_KEY_BYTES) return null;
    if (!this.#key) return stored.toString('utf8');
    return open(this.#key, 'key', this.#aad(name), stored)?.toString('utf8') ?? null;
  }

  /** Writes a key file unless one exists (SET NX, then GET): the text stored, the first writer's. */
  async putKeyOnce(name, text) {
    const pkey = this.#keys.keyFile(name);
    const mine = this.#key ? seal(this.#key, 'key', this.#aad(name), text) : text;
    if ((await this.#run(`write ${pkey}`, (c) => c.set(pkey, mine, 'NX'))) === 'OK') return text;
    const kept = await this.#run(`read ${pkey}`, (c) => c.getBuffer(pkey));
    if (kept === null) throw new Error(`the DPoP key ${this.keyPath(name)} vanished as it was written; try again`);
    const opened = this.#openKey(name, kept);
    if (opened === null) {
      throw new Error(`cannot use the DPoP key ${this.keyPath(name)}: it does not open with the store key; it is left as it is: delete it to make a new key (tokens bound to it then need a new sign-in)`);
    }
    return opened;
  }

  async deleteKey(name) {
    const pkey = this.#keys.keyFile(name);
    await this.#run(`delete ${pkey}`, (c) => c.del(pkey));
  }

  /** How many records and key files of this user the store key cannot open. */
  async unreadable() {
    if (!this.#key) return 0;
    let n = 0;
    for (const name of await this.list('')) {
      const rkey = this.#keys.record(name);
      const d = await this.#run(`read ${rkey}`, (c) => c.hgetBuffer(rkey, 'd'));
      if (d !== null && open(this.#key, 'record', this.#aad(name), d) === null) n++;
    }
    for (const name of await this.listKeys()) {
      const pkey = this.#keys.keyFile(name);
      const t = await this.#run(`read ${pkey}`, (c) => c.getBuffer(pkey));
      if (t !== null && this.#openKey(name, t) === null) n++;
    }
    return n;
  }

  /** Lets go of the connection (the last store of the process on it closes it). Idempotent. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#key?.fill(0);
    this.#release();
  }

  [Symbol.asyncDispose]() {
    return this.close();
  }
}

/** The manifest's mode: { mode: null | 'plain' | 'sealed', keyId }; anything else is an error. */
function readManifest(text, where) {
  if (text === null) return { mode: null };
  let v = null;
  try {
    v = JSON.parse(text);
  } catch {
    // not JSON: refused below
  }
  if (v && v.format === 1 && v.mode === 'plain') return { mode: 'plain' };
  if (v && v.format === 1 && v.mode === 'sealed' && typeof v.key_id === 'string' && /^[0-9a-fA-F]{16}$/.test(v.key_id)) {
    return { mode: 'sealed', keyId: v.key_id.toLowerCase() };
  }
  throw storageError(`${where} is not a store description this version understands; upgrade mcp-oauth`);
}

/**
 * Opens the Redis store at `url` (a StoreUrl) for `user` in the mode its
 * manifest pins, written once (SET NX) by the first user: sealed with the
 * key in MCP_OAUTH_STORE_KEY_FILE (auto, keychain), plain records only with
 * `secrets` 'file'. A manifest naming another key is an error, never a
 * re-key (a replica with the wrong key must not lock the others out).
 */
export async function openRedisStore({ url, user, secrets, env = process.env }) {
  const ns = userNamespace(user);
  const choice = secretsChoice(secrets, env);
  const keys = keysFor(url.prefix, ns);
  const where = `the manifest ${keys.manifest()} of the store ${url.display}`;
  const needKey = () => {
    const file = env.MCP_OAUTH_STORE_KEY_FILE;
    if (!file) {
      throw new McpOAuthError(
        'invalid-config',
        `the shared store ${url.display} seals its records with a key from MCP_OAUTH_STORE_KEY_FILE, which is not set: set it to the fleet's key file (or MCP_OAUTH_SECRETS=file for plain records)`,
      );
    }
    return file;
  };
  const handle = acquire(url, url.tls ? caFrom(env) : undefined);
  const make = (key, keyFile) => new RedisStore(url, { ns, key, keyFile, handle });
  try {
    // The manifest changes under us only when another replica writes it first.
    for (let round = 0; round < 4; round++) {
      const mkey = keys.manifest();
      const m = readManifest(await handle.conn.run(`read ${mkey}`, (c) => c.get(mkey)), where);
      if (m.mode === 'plain') {
        if (choice === 'keychain') {
          throw new McpOAuthError('store-mode', `the shared store ${url.display} keeps its secrets in plain records (${where}); a store key cannot be used with it`);
        }
        noticeOnce('redis-plain', `the shared store ${url.display} holds its secrets unsealed (plain records)`);
        return make(null);
      }
      if (m.mode === 'sealed') {
        if (choice === 'file') {
          throw new McpOAuthError('store-mode', `the shared store ${url.display} is sealed (${where}); set MCP_OAUTH_STORE_KEY_FILE to its key file instead of asking for plain records`);
        }
        const file = needKey();
        const key = await readKeyFile(file);
        if (keyId(key) !== m.keyId) {
          throw new McpOAuthError(
            'store-key',
            `the store key in ${file} (key id ${keyId(key)}) is not the one the shared store ${url.display} is sealed with (key id ${m.keyId}, in ${keys.manifest()}); give this replica the fleet's key file`,
          );
        }
        return make(key, file);
      }
      let text = PLAIN;
      if (choice !== 'file') text = sealedManifest(keyId(await readKeyFile(needKey())));
      await handle.conn.run(`write ${mkey}`, (c) => c.set(mkey, text, 'NX'));
    }
    throw storageError(`${where} kept changing while this process read it; try again`);
  } catch (e) {
    handle.release();
    throw e;
  }
}
