// The silent fast path (tests/vectors/fast_path.json, its "rule"): before an
// McpOAuth instance has started the engine, a token() is answered from the
// store when the engine would answer it the same way: the binding record for
// the server URL, then the tokens record it names, a Bearer token served
// while now < refresh_at. When either record is absent (no token stored), a
// silent call is answered authorization-required, as the engine would.
// Anything else, or anything unexpected, is left to the engine. The
// decoders are at least as strict as the engine's (the exact envelope, then
// the fields' types as its records declare them): refusing more only sends
// more calls to the engine.
//
// SHA-256 is done here in JS: node:crypto costs a few ms to load, most of
// the fast path's budget, and the keys hash a few hundred bytes.
//
// Every function on the path is written `(function ...)`, parenthesized:
// V8 compiles such a function with the module, so Node's compile cache
// (compile-cache.js) holds its bytecode. A plain declaration or an arrow is
// compiled at its first call, in every process: about 1.3 ms of a 3 ms
// first token() went to that (measured with the bench's fresh processes).
// For the same reason the functions here create no closures.

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

// Written for the interpreter (it runs once or twice per process, never
// hot): rotations inline, words read with shifts, no helper call per round.
/** SHA-256 of `bytes` (a Uint8Array), as 64 lowercase hex digits (FIPS 180-4). */
export const sha256Hex = (function sha256Hex(bytes) {
  const n = bytes.length;
  const padded = new Uint8Array(Math.ceil((n + 9) / 64) * 64);
  padded.set(bytes);
  padded[n] = 0x80;
  const bits = n * 8;
  const end = padded.length;
  padded[end - 5] = Math.floor(bits / 2 ** 32) & 0xff;
  padded[end - 4] = bits >>> 24;
  padded[end - 3] = (bits >>> 16) & 0xff;
  padded[end - 2] = (bits >>> 8) & 0xff;
  padded[end - 1] = bits & 0xff;
  let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
  let h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  const w = new Int32Array(64);
  for (let at = 0; at < end; at += 64) {
    for (let i = 0, j = at; i < 16; i++, j += 4) {
      w[i] = (padded[j] << 24) | (padded[j + 1] << 16) | (padded[j + 2] << 8) | padded[j + 3];
    }
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  let hex = '';
  for (const v of [h0, h1, h2, h3, h4, h5, h6, h7]) hex += (v >>> 0).toString(16).padStart(8, '0');
  return hex;
});

const utf8 = new TextEncoder();

/** A record's key as the engine names it: kind, '-', 40 hex digits of SHA-256(kind, then a 0 byte and each part). */
export const recordKey = (function recordKey(kind, parts) {
  const chunks = [utf8.encode(kind)];
  for (const p of parts) chunks.push(new Uint8Array(1), utf8.encode(p));
  let total = 0;
  for (const c of chunks) total += c.length;
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return `${kind}-${sha256Hex(all).slice(0, 40)}`;
});

const HEAD = '{"v":1,"record":';
// The engine reads its numbers as u64: `1.0`, `1e3` or `-0` are not one
// (JSON.parse would make them integers). Such a number becomes NaN here, which no check accepts.
const integersOnly = (function (_key, value, context) {
  return typeof value === 'number' && !/^[0-9]+$/.test(context?.source ?? '') ? NaN : value;
});

/** The record inside the exact envelope the engine writes, or null. */
export const envelope = (function envelope(bytes) {
  if (!(bytes instanceof Uint8Array)) return null;
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
  if (!text.startsWith(HEAD) || !text.endsWith('}')) return null;
  try {
    const r = JSON.parse(text.slice(HEAD.length, -1), integersOnly);
    return r !== null && typeof r === 'object' && !Array.isArray(r) ? r : null;
  } catch {
    return null;
  }
});

// A lone surrogate (\ud800) parses in JS, not in the engine.
const str = (function (v) {
  return typeof v === 'string' && v.isWellFormed();
});
const optional = (function (v, is) {
  return v === undefined || v === null || is(v);
});
const strings = (function (v) {
  return Array.isArray(v) && v.every(str);
});
// A u64 the engine reads exactly; a larger one is left to it.
const bool = (function (v) {
  return typeof v === 'boolean';
});
const count = (function (v) {
  return Number.isSafeInteger(v) && v >= 0;
});

/** { resource, issuer } of a binding that is this server's (records.rs `Binding`), else null. */
export const fromBinding = (function fromBinding(r, serverUrl) {
  if (!r || r.server_url !== serverUrl || !str(r.issuer) || typeof r.legacy !== 'boolean') return null;
  if (!optional(r.resource_metadata_url, str)) return null;
  const prm = r.prm;
  if (!prm || typeof prm !== 'object' || !str(prm.resource) || !strings(prm.authorization_servers)) return null;
  if (!optional(prm.scopes_supported, strings) || !optional(prm.dpop_bound_access_tokens_required, bool)) return null;
  return { resource: prm.resource, issuer: r.issuer };
});

/**
 * The token to serve from a tokens record of `binding` (records.rs
 * `TokenRecord`), at `nowMs` with the instance's skew, in the shape the
 * engine's access-token has; null: ask the engine.
 */
export const fromTokens = (function fromTokens(r, binding, nowMs, skewMs) {
  if (!r || r.resource !== binding.resource || r.issuer !== binding.issuer) return null;
  const t = r.tokens;
  if (!t || typeof t !== 'object' || !str(t.access_token) || !str(t.client_id)) return null;
  if (!optional(t.refresh_token, str) || !optional(t.scope, str) || !optional(t.dpop_key, str)) return null;
  if (!optional(t.expires_at, count) || !optional(t.lifetime_ms, count)) return null;
  // Bound tokens need a proof, and a token of unknown expiry is the engine's call.
  if (t.dpop_key != null || t.access_token === '' || t.expires_at == null) return null;
  const margin = t.lifetime_ms == null ? skewMs : Math.min(skewMs, Math.floor(t.lifetime_ms / 2));
  const refreshAt = Math.max(0, t.expires_at - margin);
  if (!(nowMs < refreshAt)) return null;
  const scopes = [];
  for (const s of (t.scope ?? '').split(' ')) if (s && !scopes.includes(s)) scopes.push(s);
  return { token: t.access_token, expiresAt: BigInt(t.expires_at), refreshAt: BigInt(refreshAt), scopes, dpop: false };
});

/**
 * What the rule answers when no token is stored for the server (the vectors'
 * `nothing_stored`): the binding record is absent, or its tokens record is.
 * A silent call then gets authorization-required without the engine.
 */
export const NOTHING_STORED = Object.freeze({ nothingStored: true });

/**
 * The rule over `store.get(key)` (the store seam: record bytes, unsealed by
 * a sealed store): the access token to serve, NOTHING_STORED, or null (ask
 * the engine). Never throws: a store that cannot answer is the engine's to
 * report. Only an absent record (null or undefined: what the engine is
 * handed too) counts as nothing stored.
 */
export const fastToken = (async function fastToken(store, serverUrl, nowMs, skewMs) {
  try {
    const bindingBytes = await store.get(recordKey('binding', [serverUrl]));
    if (bindingBytes == null) return NOTHING_STORED;
    const binding = fromBinding(envelope(bindingBytes), serverUrl);
    if (!binding) return null;
    const tokenBytes = await store.get(recordKey('tokens', [binding.resource, binding.issuer]));
    if (tokenBytes == null) return NOTHING_STORED;
    return fromTokens(envelope(tokenBytes), binding, nowMs, skewMs);
  } catch {
    return null;
  }
});
