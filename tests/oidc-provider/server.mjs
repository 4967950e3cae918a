// A real authorization server we did not write (node-oidc-provider, DPoP on)
// and a tiny MCP resource server that checks DPoP-bound JWT access tokens
// (RFC 9449) the way a resource server should. Used by ./run.
//
//   node server.mjs [port] [--access-ttl SECS] [--rfc8414] [--stock-refresh-policy]
//
// --access-ttl: access token lifetime (default 75 s: the engine treats a
//   token as stale 60 s before it expires, so a shorter one is refreshed on
//   every call). --rfc8414: also serve the RFC 8414 path-inserted metadata URL
//   (oidc-provider itself serves only <issuer>/.well-known/openid-configuration).
// --stock-refresh-policy: keep oidc-provider's default issueRefreshToken (see
//   below), under which a client gets a refresh token only with prompt=consent.
//
// Binds 127.0.0.1 only. Prints one JSON line on stdout with the URLs, then
// logs (never a token) on stderr. GET /_test/stats gives the counters.
//
// Layout on http://127.0.0.1:<port>:
//   /oidc/...                                   oidc-provider (issuer <origin>/oidc);
//                                               its metadata at /oidc/.well-known/openid-configuration
//   /.well-known/oauth-authorization-server/oidc  only with --rfc8414 (an alias of the above)
//   /interaction/<uid>                          automatic login + consent for a fixed account
//   /.well-known/oauth-protected-resource/mcp   RFC 9728 metadata of the MCP server
//   /mcp                                        the MCP server (DPoP only)
//   /_test/stats                                counters for the test

import http from 'node:http';
import crypto from 'node:crypto';
import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

const args = process.argv.slice(2);
let port = 0;
let accessTtl = 75;
let rfc8414 = false;
let stockRefresh = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--access-ttl') accessTtl = Number(args[++i]);
  else if (args[i] === '--rfc8414') rfc8414 = true;
  else if (args[i] === '--stock-refresh-policy') stockRefresh = true;
  else if (/^\d+$/.test(args[i])) port = Number(args[i]);
  else {
    console.error(`usage: server.mjs [port] [--access-ttl SECS] [--rfc8414] [--stock-refresh-policy] (got ${args[i]})`);
    process.exit(2);
  }
}

const ACCOUNT = 'test-user';
const SCOPE = 'mcp:tools';
const IAT_WINDOW = 60; // seconds either side for DPoP proofs at the RS

const log = (...a) => console.error(new Date().toISOString(), ...a);

const stats = {
  dpop_accepted: 0, // requests to /mcp accepted with a valid DPoP-bound token
  rejected: {}, // reason -> count (requests to /mcp refused)
  grants: {}, // grant_type -> count of successful token requests
  grants_with_dpop_proof: 0,
  refresh_grants: 0,
  registrations: 0,
  interactions: { login: 0, consent: 0 },
  metadata_requests: {}, // path -> status
  token_responses: [], // shape of each token endpoint response
  errors: [], // provider error events (name: error code/description)
};
const reject = (why) => { stats.rejected[why] = (stats.rejected[why] || 0) + 1; return why; };

// Listen first: the issuer needs the port.
let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
port = server.address().port;
const origin = `http://127.0.0.1:${port}`;
const issuer = `${origin}/oidc`;
const mcpUrl = `${origin}/mcp`;
const prmUrl = `${origin}/.well-known/oauth-protected-resource/mcp`;

// Signing keys for the provider: ES256 (access tokens) and RS256 (ID tokens' default).
async function privateJwk(alg, opts) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true, ...opts });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}` };
}
const jwks = { keys: [await privateJwk('ES256'), await privateJwk('RS256', { modulusLength: 2048 })] };

const provider = new Provider(issuer, {
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    dPoP: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => mcpUrl,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== mcpUrl) throw new errors.InvalidTarget();
        return {
          scope: SCOPE,
          audience: mcpUrl,
          accessTokenTTL: accessTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  // Refresh tokens. oidc-provider's default issueRefreshToken issues one when
  // the client may use the refresh_token grant and `offline_access` was
  // granted; but its authorization endpoint drops `offline_access` from the
  // request unless it also has prompt=consent (OIDC Core §11), which the
  // engine does not send. So by default a public client that asks for
  // `mcp:tools offline_access` gets no refresh token. Here: any client
  // registered for the refresh_token grant gets one.
  ...(stockRefresh ? {} : {
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  }),
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
});

for (const ev of ['grant.error', 'registration_create.error', 'authorization.error', 'server_error',
  'discovery.error', 'interaction.error', 'jwks.error', 'resume.error', 'check_session.error']) {
  provider.on(ev, (ctx, err) => {
    const e = err || ctx;
    const what = `${ev}: ${e?.error || e?.name || 'error'}${e?.error_description ? ` (${e.error_description})` : ''}${e?.message && !e?.error ? ` ${e.message}` : ''}`;
    stats.errors.push(what);
    log('provider', what);
  });
}
provider.on('grant.success', (ctx) => {
  const gt = ctx.oidc.params.grant_type;
  stats.grants[gt] = (stats.grants[gt] || 0) + 1;
  if (gt === 'refresh_token') stats.refresh_grants += 1;
  if (ctx.get('dpop')) stats.grants_with_dpop_proof += 1;
  log('provider grant.success', gt, ctx.get('dpop') ? 'with DPoP proof' : 'without DPoP proof');
});
provider.on('registration_create.success', (_ctx, client) => {
  stats.registrations += 1;
  log('provider registered', client.clientId, 'auth', client.clientAuthMethod,
    'type', client.applicationType, 'redirect_uris', JSON.stringify(client.redirectUris));
});

// The shape of each token response (never a token).
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.method === 'POST' && ctx.body && typeof ctx.body === 'object') {
    const b = ctx.body;
    const shape = b.error
      ? { grant_type: ctx.oidc?.params?.grant_type, status: ctx.status, error: b.error, error_description: b.error_description }
      : {
        grant_type: ctx.oidc?.params?.grant_type,
        status: ctx.status,
        token_type: b.token_type,
        expires_in: b.expires_in,
        scope: b.scope,
        refresh_token: b.refresh_token ? 'issued' : 'none',
      };
    stats.token_responses.push(shape);
    log('token response', JSON.stringify(shape));
  }
});

const providerCallback = provider.callback();
const providerJwks = jose.createLocalJWKSet({
  keys: jwks.keys.map(({ d, p, q, dp, dq, qi, ...pub }) => pub),
});
const jtis = new Map(); // DPoP proof jti -> expiry (ms)

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

const b64sha256 = (s) => crypto.createHash('sha256').update(s).digest('base64url');

// Checks `Authorization: DPoP <jwt>` + `DPoP: <proof>`; returns null when
// accepted, or the reason.
async function checkDpop(req) {
  const authz = req.headers.authorization || '';
  const m = /^(\S+) (\S+)$/.exec(authz);
  if (!m) return 'no token';
  if (m[1].toLowerCase() !== 'dpop') return `scheme ${m[1]} (want DPoP)`;
  const token = m[2];
  const proof = req.headers.dpop;
  if (!proof || Array.isArray(proof) || proof.includes(',')) return 'missing or multiple DPoP headers';

  // The access token: a JWT from our provider, for this resource, bound to a key.
  let at;
  try {
    ({ payload: at } = await jose.jwtVerify(token, providerJwks, {
      issuer, audience: mcpUrl, typ: 'at+jwt', algorithms: ['ES256'],
    }));
  } catch (e) {
    return `access token: ${e.code || e.message}`;
  }
  if (!at.cnf || typeof at.cnf.jkt !== 'string') return 'access token has no cnf.jkt (not DPoP-bound)';
  if (!String(at.scope || '').split(' ').includes(SCOPE)) return `access token lacks scope ${SCOPE}`;

  // The proof (RFC 9449 §4.3).
  let header;
  let claims;
  try {
    header = jose.decodeProtectedHeader(proof);
    if (header.typ !== 'dpop+jwt') return `proof typ ${header.typ}`;
    if (header.alg !== 'ES256') return `proof alg ${header.alg}`;
    if (!header.jwk || header.jwk.d !== undefined) return 'proof jwk missing or private';
    ({ payload: claims } = await jose.jwtVerify(proof, jose.EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] }));
  } catch (e) {
    return `proof: ${e.code || e.message}`;
  }
  if (claims.htm !== req.method) return `proof htm ${claims.htm} (want ${req.method})`;
  const path = new URL(req.url, origin).pathname;
  let htu;
  try {
    const u = new URL(claims.htu);
    htu = `${u.origin}${u.pathname}`;
  } catch {
    return 'proof htu not a URL';
  }
  if (htu !== `${origin}${path}`) return `proof htu ${htu} (want ${origin}${path})`;
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.iat !== 'number' || Math.abs(now - claims.iat) > IAT_WINDOW) return 'proof iat outside the window';
  if (typeof claims.jti !== 'string' || !claims.jti) return 'proof without jti';
  for (const [j, exp] of jtis) if (exp < Date.now()) jtis.delete(j);
  if (jtis.has(claims.jti)) return 'proof jti replayed';
  if (claims.ath !== b64sha256(token)) return 'proof ath does not match the token';
  const jkt = await jose.calculateJwkThumbprint(header.jwk, 'sha256');
  if (jkt !== at.cnf.jkt) return 'proof key thumbprint != token cnf.jkt';
  jtis.set(claims.jti, Date.now() + 2 * IAT_WINDOW * 1000);
  return null;
}

async function mcp(req, res) {
  const why = await checkDpop(req);
  if (why) {
    reject(why);
    log('mcp 401:', why);
    const params = [`resource_metadata="${prmUrl}"`, 'algs="ES256"'];
    if (why !== 'no token') params.unshift('error="invalid_token"');
    return send(res, 401, { error: 'invalid_token' }, { 'www-authenticate': `DPoP ${params.join(', ')}` });
  }
  stats.dpop_accepted += 1;
  if (req.method !== 'POST') return send(res, 405, { error: 'POST only' }, { allow: 'POST' });
  let msg;
  try {
    msg = JSON.parse(await readBody(req));
  } catch {
    return send(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
  }
  if (msg.id === undefined) { res.writeHead(202); return res.end(); }
  const result = msg.method === 'initialize'
    ? { protocolVersion: msg.params?.protocolVersion || '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'oidc-provider-test', version: '0' } }
    : {};
  log('mcp 200:', msg.method);
  return send(res, 200, { jsonrpc: '2.0', id: msg.id, result });
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    stats.interactions.login += 1;
    result = { login: { accountId: ACCOUNT } };
  } else if (prompt.name === 'consent') {
    stats.interactions.consent += 1;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    result = { consent: { grantId: await grant.save() } };
    log('interaction consent: scope', JSON.stringify(params.scope), 'resource', JSON.stringify(params.resource),
      'granted oidc', JSON.stringify(d.missingOIDCScope || []), 'resource scopes', JSON.stringify(d.missingResourceScopes || {}));
  } else {
    log('interaction: unexpected prompt', prompt.name);
    result = { error: 'access_denied', error_description: `unexpected prompt ${prompt.name}` };
  }
  if (prompt.name === 'login') log('interaction login as', ACCOUNT);
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

handler = async (req, res) => {
  const path = new URL(req.url, origin).pathname;
  res.on('finish', () => {
    if (path.includes('well-known')) stats.metadata_requests[path] = res.statusCode;
    if (path !== '/_test/stats') log(req.method, path, res.statusCode);
  });
  try {
    if (path === '/oidc' || path.startsWith('/oidc/')) {
      // Mounted under /oidc, as the provider's docs show for Express.
      req.originalUrl = req.url;
      req.url = req.url.slice('/oidc'.length) || '/';
      return providerCallback(req, res);
    }
    if (rfc8414 && path === '/.well-known/oauth-authorization-server/oidc') {
      const r = await fetch(`${issuer}/.well-known/openid-configuration`);
      return send(res, r.status, await r.text());
    }
    if (path.startsWith('/interaction/')) return await interaction(req, res);
    if (path === '/.well-known/oauth-protected-resource/mcp') {
      return send(res, 200, {
        resource: mcpUrl,
        authorization_servers: [issuer],
        scopes_supported: [SCOPE],
        bearer_methods_supported: ['header'],
        dpop_signing_alg_values_supported: ['ES256'],
        dpop_bound_access_tokens_required: true,
      });
    }
    if (path === '/mcp') return await mcp(req, res);
    if (path === '/_test/stats' && req.method === 'GET') return send(res, 200, stats);
    return send(res, 404, { error: 'not found' });
  } catch (e) {
    log('handler error on', path, e?.name, e?.message);
    if (!res.headersSent) send(res, 500, { error: 'server_error', error_description: String(e?.message || e) });
    else res.end();
  }
};

process.stdout.write(`${JSON.stringify({
  origin, issuer, mcp: mcpUrl, prm: prmUrl, stats: `${origin}/_test/stats`, access_ttl: accessTtl,
})}\n`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(); process.exit(0); });
