// Sealed records (docs/store.md, "Sealed records (format 1)"): every record
// and key file sealed with the store key by AES-256-GCM, a fresh 96-bit
// nonce per write, the name bound as associated data (a ciphertext moved
// over another name does not open). The bytes are the same in the three
// hosts (tests/vectors/sealed_records.json). Anything that does not open
// reads as absent: never an error, never a crash.

import { nodeCrypto } from '../builtins.js';

const TAG_BYTES = 16;
const NONCE_BYTES = 12;
const ENVELOPE_KEYS = ['sealed', 'kid', 'nonce', 'ct'];

/** The key id: the first 16 lowercase hex digits of SHA-256(key). */
export function keyId(key) {
  return nodeCrypto().createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** A 32-byte store key from its base64 (standard alphabet; padding and surrounding whitespace optional), or null. */
export function keyFromBase64(text) {
  const t = String(text).trim();
  if (!/^[A-Za-z0-9+/]{43}=?$/.test(t)) return null;
  const key = Buffer.from(t, 'base64');
  // Canonical only: the last character's unused bits are zero.
  return key.length === 32 && key.toString('base64').slice(0, 43) === t.slice(0, 43) ? key : null;
}

const aad = (kind, name) => Buffer.from(`mcp-oauth:${kind}:${name}`, 'utf8');

function checkKind(kind) {
  if (kind !== 'record' && kind !== 'key') throw new Error(`unknown sealed kind ${JSON.stringify(kind)}`);
}

/**
 * Seals `plaintext` (bytes or text) for `<name>` of `kind` ('record' or
 * 'key') with `nonce` (12 bytes: callers pass fresh randomness, tests the
 * vectors' nonces). Returns the file's text.
 */
export function sealWithNonce(key, kind, name, plaintext, nonce) {
  checkKind(kind);
  if (nonce.length !== NONCE_BYTES) throw new Error('a nonce is 12 bytes');
  const cipher = nodeCrypto().createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(kind, name));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  // The documented bytes: this key order, no whitespace.
  return `{"sealed":1,"kid":"${keyId(key)}","nonce":"${Buffer.from(nonce).toString('base64url')}","ct":"${ct.toString('base64url')}"}`;
}

/** Seals with a fresh random nonce. */
export function seal(key, kind, name, plaintext) {
  return sealWithNonce(key, kind, name, plaintext, nodeCrypto().randomBytes(NONCE_BYTES));
}

/** base64url without padding, canonical (what every host writes), else null. */
function b64url(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  const bytes = Buffer.from(s, 'base64url');
  return bytes.toString('base64url') === s ? bytes : null;
}

/** The envelope in `bytes` (text or bytes) when it is one, else null. */
function envelope(bytes) {
  try {
    const text = typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    const v = JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
    const keys = Object.keys(v);
    if (keys.length !== ENVELOPE_KEYS.length || !ENVELOPE_KEYS.every((k) => keys.includes(k))) return null;
    if (v.sealed !== 1 || typeof v.kid !== 'string' || typeof v.nonce !== 'string' || typeof v.ct !== 'string') return null;
    return v;
  } catch {
    return null;
  }
}

/** Whether `bytes` are a sealed envelope (of any key). */
export function isSealed(bytes) {
  return envelope(bytes) !== null;
}

/** The key id a sealed envelope names, or null when `bytes` are not one. */
export function sealedKid(bytes) {
  return envelope(bytes)?.kid ?? null;
}

/**
 * Opens sealed `bytes` for `<name>` of `kind`: the plaintext (a Buffer), or
 * null for anything that does not open (another key, a bad tag, a wrong
 * length, a plain record, garbage).
 */
export function open(key, kind, name, bytes) {
  checkKind(kind);
  const env = envelope(bytes);
  if (!env || env.kid !== keyId(key)) return null;
  const nonce = b64url(env.nonce);
  const ct = b64url(env.ct);
  if (!nonce || nonce.length !== NONCE_BYTES || !ct || ct.length < TAG_BYTES) return null;
  try {
    const d = nodeCrypto().createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    d.setAAD(aad(kind, name));
    d.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
    return Buffer.concat([d.update(ct.subarray(0, ct.length - TAG_BYTES)), d.final()]);
  } catch {
    return null; // a bad tag
  }
}

/** Runs `fn` holding `store`'s lock on `key` (through its withLock when it has one). */
async function withLock(store, key, fn) {
  if (typeof store.withLock === 'function') return store.withLock(key, fn);
  const held = await store.lock(key);
  try {
    return await fn();
  } finally {
    await held.release();
  }
}

/**
 * The store seam over another store (`inner`, e.g. a FileStore), sealing
 * every record and key file with `key` (32 bytes). `keyFrom` says where the
 * key lives, for status ("the keychain (Secret Service)", "the key file
 * /run/secrets/k"), `source` what kind of place that is. Locks, names and
 * listing are the inner store's.
 */
export class SealedStore {
  #key;
  #kid;

  constructor(inner, key, { keyFrom = 'a key given by the program', source = 'program' } = {}) {
    if (!Buffer.isBuffer(key) && !(key instanceof Uint8Array)) throw new TypeError('the store key is 32 bytes');
    if (key.length !== 32) throw new TypeError('the store key is 32 bytes');
    this.inner = inner;
    this.#key = Buffer.from(key); // a copy of our own
    this.#kid = keyId(this.#key);
    this.keyFrom = keyFrom;
    this.source = source; // 'keychain' | 'key-file' | 'program'
  }

  get id() {
    return this.inner.id;
  }

  get dir() {
    return this.inner.dir;
  }

  /** The id of the key this store seals with. */
  get keyId() {
    return this.#kid;
  }

  describe() {
    return { mode: 'sealed', where: this.keyFrom, source: this.source, keyId: this.#kid };
  }

  async get(key) {
    const bytes = await this.inner.get(key);
    if (bytes === null) return null;
    const plain = open(this.#key, 'record', key, bytes);
    return plain === null ? null : new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
  }

  async set(key, value) {
    await this.inner.set(key, new TextEncoder().encode(seal(this.#key, 'record', key, value)));
  }

  delete(key) {
    return this.inner.delete(key);
  }

  list(prefix = '') {
    return this.inner.list(prefix);
  }

  listKeys() {
    return this.inner.listKeys();
  }

  lock(key, ...rest) {
    return this.inner.lock(key, ...rest);
  }

  withLock(key, fn) {
    return withLock(this.inner, key, fn);
  }

  keyPath(key) {
    return this.inner.keyPath(key);
  }

  /** A key file's text, or null when absent or when it does not open (an unsafe file is still an error). */
  async getKey(key) {
    const text = await this.inner.getKey(key);
    if (text === null) return null;
    return open(this.#key, 'key', key, text)?.toString('utf8') ?? null;
  }

  /**
   * Writes a key file once, sealed; returns the key text that is stored
   * (another writer's, if it came first). A key file left sealed by a lost
   * store key is replaced (whatever was bound to it cannot be read either),
   * under the lock `store` so that two replacers agree on one key; any other
   * file that does not open is refused, named, and left as it is.
   */
  async putKeyOnce(key, text) {
    const mine = seal(this.#key, 'key', key, text);
    const kept = await this.inner.putKeyOnce(key, mine);
    if (kept === mine) return text;
    const opened = open(this.#key, 'key', key, kept);
    if (opened) return opened.toString('utf8');
    if (!this.#lostKeys(kept)) throw this.#refused(key);
    return withLock(this.inner, 'store', async () => {
      const now = await this.inner.getKey(key);
      if (now !== null) {
        const o = open(this.#key, 'key', key, now);
        if (o) return o.toString('utf8'); // another process replaced it first
        if (!this.#lostKeys(now)) throw this.#refused(key);
        await this.inner.deleteKey(key);
      }
      const stored = await this.inner.putKeyOnce(key, mine);
      const o = open(this.#key, 'key', key, stored);
      if (!o) throw this.#refused(key);
      return o.toString('utf8');
    });
  }

  /** Sealed by another store key: what a lost or replaced key left behind. */
  #lostKeys(bytes) {
    const kid = sealedKid(bytes);
    return kid !== null && kid !== this.#kid;
  }

  #refused(key) {
    return new Error(
      `cannot use the DPoP key file ${this.inner.keyPath?.(key) ?? key}: it does not open with the store key; it is left as it is: move it away to make a new key (tokens bound to it then need a new sign-in)`,
    );
  }

  deleteKey(key) {
    return this.inner.deleteKey(key);
  }

  /** How many records and key files this key cannot open (a lost or changed key, tampering). */
  async unreadable() {
    let n = 0;
    for (const k of await this.inner.list('')) {
      const b = await this.inner.get(k).catch(() => null);
      if (b !== null && open(this.#key, 'record', k, b) === null) n++;
    }
    for (const k of (await this.inner.listKeys?.()) ?? []) {
      const t = await this.inner.getKey(k).catch(() => null);
      if (t !== null && open(this.#key, 'key', k, t) === null) n++;
    }
    return n;
  }
}
