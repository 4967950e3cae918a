// The `dpop-proof` effect (RFC 9449 §4): one ES256 (P-256) key pair per key
// id, made on first use and kept in the store beside the tokens as
// `<key-id>.pem` (PKCS#8, 0600): a token bound to it is useless without it.
// The private key never leaves this module: not to the engine, not into an
// error message, not into a log. A key file that cannot be used is refused,
// never replaced: a token bound to it is useless without it, and the user
// decides what to do with the file.

import { nodeCrypto } from './builtins.js';

/** Loaded keys, per process: `<store id>\n<key id>` -> Promise<{ key, header }>. */
const shared = new Map();

const b64url = (bytes) => Buffer.from(bytes).toString('base64url');

/** The private key in `pem` when it is a P-256 key, else null. */
function parseKey(pem) {
  try {
    const key = nodeCrypto().createPrivateKey({ key: pem, format: 'pem' });
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return key;
  } catch {
    // not a key: the caller refuses the file
  }
  return null;
}

/** The proof's protected header, base64url: typ, alg and the public key only. */
function headerFor(key) {
  const { x, y } = nodeCrypto().createPublicKey(key).export({ format: 'jwk' });
  return b64url(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x, y } }));
}

/**
 * The id the engine keeps a server's DPoP key pair under: one per (issuer,
 * resource), `dpop-` and the first 40 hex digits of SHA-256(issuer "\n"
 * resource). The engine's rule, repeated here so that logout can remove the
 * key file: keep it in step with `key_id` in guest/core/src/wire/dpop.rs.
 */
export function dpopKeyId(issuer, resource) {
  return `dpop-${nodeCrypto().createHash('sha256').update(`${issuer}\n${resource}`, 'utf8').digest('hex').slice(0, 40)}`;
}

export class DpopKeys {
  /**
   * @param {object} store  where the key files live (the store seam: getKey, putKeyOnce, id)
   * @param {Map} [cache]  loaded keys (default: shared by the process)
   */
  constructor(store, cache = shared) {
    this.store = store;
    this.cache = cache;
  }

  /** The compact JWS over `claims` (a JSON string, signed exactly as given). */
  async proof(keyId, claims) {
    const { key, header } = await this.#load(keyId);
    const input = `${header}.${b64url(claims)}`;
    // ES256: the raw 64-byte r || s, as JWS wants.
    const sig = nodeCrypto().sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  }

  /** Drops a loaded key (its file is being removed: logout). */
  forget(keyId) {
    this.cache.delete(`${this.store.id}\n${keyId}`);
  }

  #load(keyId) {
    const id = `${this.store.id}\n${keyId}`;
    let p = this.cache.get(id);
    if (!p) {
      p = this.#loadOrCreate(keyId);
      this.cache.set(id, p);
      p.catch(() => this.cache.delete(id)); // a failure is not remembered
    }
    return p;
  }

  async #loadOrCreate(keyId) {
    const unusable = () =>
      new Error(`the DPoP key file ${this.store.keyPath?.(keyId) ?? keyId} is not a P-256 private key (PKCS#8 PEM); it is left as it is: move it away to make a new key (tokens bound to it then need a new sign-in)`);
    let stored = await this.store.getKey(keyId); // an unsafe file is an error, never absent
    if (stored === null) {
      const { privateKey } = nodeCrypto().generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
      // Created only if no other process made it meanwhile (then its key is the one to use).
      stored = await this.store.putKeyOnce(keyId, pem);
      if (stored === pem) return { key: privateKey, header: headerFor(privateKey) };
    }
    const key = parseKey(stored);
    if (!key) throw unusable();
    return { key, header: headerFor(key) };
  }
}
