// The `dpop-proof` effect (RFC 9449 §4): one ES256 (P-256) key pair per key
// id, made on first use and kept in the store beside the tokens as
// `<key-id>.pem` (PKCS#8, 0600): a token bound to it is useless without it.
// The private key never leaves this module: not to the engine, not into an
// error message, not into a log.

import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto';

/** Loaded keys, per process: `<store dir>\n<key id>` -> Promise<{ key, header }>. */
const shared = new Map();

const b64url = (bytes) => Buffer.from(bytes).toString('base64url');

/** The private key in `pem` when it is a P-256 key, else null. */
function parseKey(pem) {
  try {
    const key = createPrivateKey({ key: pem, format: 'pem' });
    if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return key;
  } catch {
    // corrupt: the caller makes a new one
  }
  return null;
}

/** The proof's protected header, base64url: typ, alg and the public key only. */
function headerFor(key) {
  const { x, y } = createPublicKey(key).export({ format: 'jwk' });
  return b64url(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x, y } }));
}

export class DpopKeys {
  /**
   * @param {import('./store.js').FileStore} store  where the key files live
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
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  }

  #load(keyId) {
    const id = `${this.store.dir}\n${keyId}`;
    let p = this.cache.get(id);
    if (!p) {
      p = this.#loadOrCreate(keyId);
      this.cache.set(id, p);
      p.catch(() => this.cache.delete(id)); // a failure is not remembered
    }
    return p;
  }

  async #loadOrCreate(keyId) {
    const stored = await this.store.getKey(keyId);
    let key = stored === null ? null : parseKey(stored);
    if (!key) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
      // A corrupt file is replaced; an absent one is created only if no other
      // process made it meanwhile (then its key is the one to use).
      const kept = await this.store.putKey(keyId, pem, stored !== null);
      key = kept === pem ? privateKey : parseKey(kept);
      if (!key) throw new Error(`the DPoP key file ${this.store.keyPath(keyId)} is not a P-256 private key`);
    }
    return { key, header: headerFor(key) };
  }
}
