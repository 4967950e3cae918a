// The options as the engine's WIT `config`, the client-assertion key, and
// which configs may take the silent fast path.

import { checkPolicy } from './http.js';
import { McpOAuthError } from './errors.js';
import { nodeCrypto } from './builtins.js';

// The functions a silent token() calls are parenthesized, `(function ...)`:
// V8 then compiles them with the module and Node's compile cache keeps them
// (fast.js says why).

/** The WIT `config` record from the options. */
export const engineConfig = (function engineConfig(o, signingKey) {
  let grant;
  if (o.grant === 'client-credentials') grant = { tag: 'client-credentials' };
  else if (o.grant && typeof o.grant === 'object' && 'workloadToken' in o.grant) {
    grant = { tag: 'workload-identity', val: String(o.grant.workloadToken) };
  }
  else if (o.grant && typeof o.grant === 'object') {
    grant = {
      tag: 'identity-assertion',
      val: { idpTokenEndpoint: o.grant.idpTokenEndpoint, idToken: o.grant.idToken, idpClientId: o.grant.idpClientId },
    };
  } else if (o.grant === undefined || o.grant === 'authorization-code') grant = undefined;
  else throw new McpOAuthError('invalid-config', `unknown grant ${JSON.stringify(o.grant)}; use 'authorization-code', 'client-credentials', { idToken, idpTokenEndpoint } or { workloadToken }`);
  if (o.device !== undefined && typeof o.device !== 'boolean') throw new McpOAuthError('invalid-config', 'the device option is true or false');
  return {
    clientId: o.clientId,
    clientSecret: o.clientSecret,
    clientIssuer: o.clientIssuer,
    clientMetadataUrl: o.clientMetadataUrl,
    clientName: o.clientName,
    scope: o.scope,
    callbackPort: o.callbackPort,
    callbackTimeoutMs: o.callbackTimeoutMs === undefined ? undefined : BigInt(o.callbackTimeoutMs),
    // The device authorization grant (RFC 8628) when the AS offers it; the browser flow otherwise.
    deviceGrant: o.device === true,
    allowMissingS256: o.allowMissingS256 ?? [],
    grant,
    privateKeyJwt: Boolean(signingKey),
    expirySkewMs: o.expirySkewMs === undefined ? undefined : BigInt(o.expirySkewMs),
    maxStepUps: o.maxStepUps,
    requestOfflineAccess: o.requestOfflineAccess,
    authorizeParams: Object.entries(o.authorizeParams ?? {}).map(([name, value]) => ({ name, value: String(value) })),
  };
});

/** The privateKey option as a P-256 KeyObject (node:crypto loads only for it). */
export const loadSigningKey = (function loadSigningKey(pk) {
  if (pk === undefined) return undefined;
  let key;
  try {
    key = typeof pk === 'string' || Buffer.isBuffer(pk) ? nodeCrypto().createPrivateKey(pk) : pk;
  } catch {
    throw new McpOAuthError('invalid-config', 'privateKey is not a private key in PEM; give a P-256 key (-----BEGIN PRIVATE KEY-----)');
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new McpOAuthError('invalid-config', 'privateKey must be a P-256 (ES256) private key');
  }
  return key;
});

const DEFAULT_SKEW_MS = 60_000;
const isInt = (function (v, max) {
  return Number.isSafeInteger(v) && v >= 0 && v <= max;
});
const optional = (function (v, ok) {
  return v === undefined || ok(v);
});

/**
 * The skew (ms) the silent fast path uses for these options, or null when
 * the engine must see them first. The engine checks its config when it
 * starts; the fast path starts no engine, so it takes only options whose
 * validity is plain from their type (the WIT types jco checks, and the
 * engine's own plain rules: a non-empty client id, a timeout above zero)
 * and a server URL the host's rules allow (https, or http on loopback; no
 * fragment). Anything else (a machine grant, a client secret or metadata
 * URL, extra authorization parameters) starts the engine in open(), which
 * reports what it refuses there, as it always has.
 */
export const fastPathSkew = (function fastPathSkew(serverUrl, o) {
  if (o.grant !== undefined && o.grant !== 'authorization-code') return null;
  if (o.clientSecret !== undefined || o.clientMetadataUrl !== undefined) return null;
  if (o.authorizeParams !== undefined && !(o.authorizeParams && typeof o.authorizeParams === 'object' && Object.keys(o.authorizeParams).length === 0)) return null;
  const str = (v) => typeof v === 'string';
  const plain =
    optional(o.clientId, (v) => str(v) && v !== '') &&
    [o.clientIssuer, o.clientName, o.scope].every((v) => optional(v, str)) &&
    optional(o.callbackPort, (v) => isInt(v, 65_535)) &&
    optional(o.callbackTimeoutMs, (v) => isInt(v, Number.MAX_SAFE_INTEGER) && v > 0) &&
    optional(o.expirySkewMs, (v) => isInt(v, Number.MAX_SAFE_INTEGER)) &&
    optional(o.maxStepUps, (v) => isInt(v, 2 ** 32 - 1)) &&
    optional(o.requestOfflineAccess, (v) => typeof v === 'boolean') &&
    optional(o.device, (v) => typeof v === 'boolean') &&
    optional(o.allowMissingS256, (v) => Array.isArray(v) && v.every(str));
  if (!plain || serverUrl.includes('#') || checkPolicy(serverUrl).refused) return null;
  return o.expirySkewMs ?? DEFAULT_SKEW_MS;
});
