// A real authorization server we did not write (node-oidc-provider, DPoP on)
// and a tiny MCP resource server that checks DPoP-bound JWT access tokens
// (RFC 9449) the way a resource server should. Used by ./run, ./device and
// ./device-selftest. Also does the device authorization grant (RFC 8628) and
// token revocation (RFC 7009).
//
//   node server.mjs [port] [--access-ttl SECS] [--rfc8414] [--stock-refresh-policy]
//                   [--device-interval SECS] [--device-ttl SECS] [--slow-down-first] [--bearer-ok]
//
// --access-ttl: access token lifetime (default 75 s: the engine treats a
//   token as stale 60 s before it expires, so a shorter one is refreshed on
//   every call). --rfc8414: also serve the RFC 8414 path-inserted metadata URL
//   (oidc-provider itself serves only <issuer>/.well-known/openid-configuration).
// --stock-refresh-policy: keep oidc-provider's default issueRefreshToken (see
//   below), under which a client gets a refresh token only with prompt=consent.
// --device-interval: the `interval` added to device authorization responses
//   (default 5; oidc-provider itself sends none and never answers slow_down,
//   so both are done here, see devicePoll). --device-ttl: device code lifetime
//   (default 600 s). --slow-down-first: the first poll of each device code,
//   while it is pending, is answered slow_down (and the interval owed grows
//   by 5 s), however late it comes: a client must then wait 5 s more.
// --bearer-ok: /mcp also accepts a Bearer access token that is not DPoP-bound
//   (no cnf); a bound token sent as Bearer is still refused.
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
//   /oidc/device/auth, /oidc/device             device authorization, user code pages (stock)
//   /oidc/token/revocation                      revocation (refresh tokens; JWT access tokens are refused)
//   /mcp                                        the MCP server (DPoP only, unless --bearer-ok)
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
let deviceInterval = 5;
let deviceTtl = 600;
let bearerOk = false;
let slowDownFirst = false;
const usage = 'usage: server.mjs [port] [--access-ttl SECS] [--rfc8414] [--stock-refresh-policy]'
  + ' [--device-interval SECS] [--device-ttl SECS] [--slow-down-first] [--bearer-ok]';
const secs = (v, name) => {
  if (!/^\d+$/.test(v ?? '') || Number(v) < 1) { console.error(`${name} wants a whole number of seconds >= 1; ${usage}`); process.exit(2); }
  return Number(v);
};
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--access-ttl') accessTtl = Number(args[++i]);
  else if (args[i] === '--rfc8414') rfc8414 = true;
  else if (args[i] === '--stock-refresh-policy') stockRefresh = true;
  else if (args[i] === '--device-interval') deviceInterval = secs(args[++i], '--device-interval');
  else if (args[i] === '--device-ttl') deviceTtl = secs(args[++i], '--device-ttl');
  else if (args[i] === '--slow-down-first') slowDownFirst = true;
  else if (args[i] === '--bearer-ok') bearerOk = true;
  else if (/^\d+$/.test(args[i])) port = Number(args[i]);
  else {
    console.error(`${usage} (got ${args[i]})`);
    process.exit(2);
  }
}

const ACCOUNT = 'test-user';
const SCOPE = 'mcp:tools';
const IAT_WINDOW = 60; // seconds either side for DPoP proofs at the RS
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const SLOW_DOWN_STEP = 5; // RFC 8628 §3.5: the client adds 5 s to its interval
const POLL_GRACE_MS = 200; // network jitter allowed on the interval

const log = (...a) => console.error(new Date().toISOString(), ...a);

const stats = {
  dpop_accepted: 0, // requests to /mcp accepted with a valid DPoP-bound token
  bearer_accepted: 0, // ... with an unbound Bearer token (only with --bearer-ok)
  rejected: {}, // reason -> count (requests to /mcp refused)
  grants: {}, // grant_type -> count of successful token requests
  grants_with_dpop_proof: 0,
  refresh_grants: 0,
  registrations: 0,
  interactions: { login: 0, consent: 0 },
  metadata_requests: {}, // path -> status
  token_responses: [], // shape of each token endpoint response
  errors: [], // provider error events (name: error code/description); not authorization_pending
  device_authorizations: 0, // successful device authorization requests
  device_polls: 0, // token requests with the device_code grant (any answer)
  device_slow_down: 0, // of those, answered slow_down
  device_poll_gaps: [], // per device poll: { gap_ms (null for a code's first), owed_ms (the interval owed then), answer }
  revocations: [], // per revocation request: { token_type_hint, known, kind?, status, error? }
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
    // The stock user code pages (input, confirm with an abort button, success).
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
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
    DeviceCode: deviceTtl,
    Grant: 3600,
    IdToken: 600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
});

for (const ev of ['grant.error', 'registration_create.error', 'authorization.error', 'server_error',
  'discovery.error', 'interaction.error', 'jwks.error', 'resume.error', 'check_session.error',
  'device_authorization.error', 'code_verification.error', 'device_resume.error', 'revocation.error']) {
  provider.on(ev, (ctx, err) => {
    const e = err || ctx;
    if (ev === 'grant.error' && e?.error === 'authorization_pending') return; // routine while polling
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

// Device code polling (RFC 8628 §3.5), which oidc-provider leaves to the
// deployment: it neither sends `interval` nor answers slow_down. Per device
// code (by a hash, never the code): the time of the last token request and
// the interval the client owes. A request sooner than that after the previous
// one, while the code is still pending, is answered slow_down instead of
// authorization_pending, and the interval owed grows by 5 s, as the client's
// must. The first poll is never too early (but with --slow-down-first it is
// answered slow_down all the same).
const polls = new Map(); // sha256(device_code) -> { last: ms, interval: s, expires: ms }
function devicePoll(ctx, arrived) {
  stats.device_polls += 1;
  const code = ctx.oidc?.params?.device_code;
  if (typeof code !== 'string' || !code) return;
  for (const [k, p] of polls) if (p.expires < arrived) polls.delete(k);
  const key = crypto.createHash('sha256').update(code).digest('hex');
  const p = polls.get(key) || { interval: deviceInterval };
  const first = p.last === undefined;
  const early = !first && arrived - p.last < p.interval * 1000 - POLL_GRACE_MS;
  const gapEntry = { gap_ms: first ? null : arrived - p.last, owed_ms: first ? null : p.interval * 1000 };
  const gap = first ? 'first poll' : `${arrived - p.last} ms after the last`;
  p.last = arrived;
  p.expires = arrived + (deviceTtl + 60) * 1000;
  polls.set(key, p);
  if ((early || (first && slowDownFirst)) && ctx.status === 400 && ctx.body?.error === 'authorization_pending') {
    p.interval += SLOW_DOWN_STEP;
    stats.device_slow_down += 1;
    ctx.body = { error: 'slow_down', error_description: `polled ${gap}; wait at least ${p.interval} s between requests` };
    ctx.status = 400;
    log('device poll: slow_down,', gap, '; interval now', p.interval, 's');
  } else {
    log('device poll:', gap, ctx.body?.error ? `-> ${ctx.body.error}` : '-> tokens');
  }
  gapEntry.answer = ctx.body?.error || 'tokens';
  stats.device_poll_gaps.push(gapEntry);
}

provider.use(async (ctx, next) => {
  const arrived = Date.now();
  await next();
  if (ctx.method !== 'POST') return;
  const b = ctx.body && typeof ctx.body === 'object' ? ctx.body : undefined;
  if (ctx.path === '/device/auth' && b?.device_code && ctx.status === 200) {
    b.interval = deviceInterval;
    stats.device_authorizations += 1;
    log('device authorization: client', ctx.oidc?.client?.clientId, 'scope', JSON.stringify(ctx.oidc?.params?.scope),
      'resource', JSON.stringify(ctx.oidc?.params?.resource), 'expires_in', b.expires_in, 'interval', b.interval);
  } else if (ctx.path === '/token/revocation') {
    const e = ctx.oidc?.entities || {};
    const kind = ['RefreshToken', 'AccessToken', 'ClientCredentials'].find((k) => e[k]);
    const entry = { token_type_hint: ctx.oidc?.params?.token_type_hint ?? null, known: Boolean(kind), status: ctx.status };
    if (kind) entry.kind = kind;
    if (b?.error) entry.error = b.error;
    stats.revocations.push(entry);
    log('revocation', JSON.stringify(entry));
  } else if (ctx.path === '/token' && b) {
    // The shape of each token response (never a token).
    if (ctx.oidc?.params?.grant_type === DEVICE_GRANT) devicePoll(ctx, arrived);
    const r = ctx.body;
    const shape = r.error
      ? { grant_type: ctx.oidc?.params?.grant_type, status: ctx.status, error: r.error, error_description: r.error_description }
      : {
        grant_type: ctx.oidc?.params?.grant_type,
        status: ctx.status,
        token_type: r.token_type,
        expires_in: r.expires_in,
        scope: r.scope,
        refresh_token: r.refresh_token ? 'issued' : 'none',
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

// The access token: a JWT from our provider, for this resource, with our
// scope. Returns { at } or { why }.
async function verifyAccessToken(token) {
  let at;
  try {
    ({ payload: at } = await jose.jwtVerify(token, providerJwks, {
      issuer, audience: mcpUrl, typ: 'at+jwt', algorithms: ['ES256'],
    }));
  } catch (e) {
    return { why: `access token: ${e.code || e.message}` };
  }
  if (!String(at.scope || '').split(' ').includes(SCOPE)) return { why: `access token lacks scope ${SCOPE}` };
  return { at };
}

// Checks `Authorization: DPoP <jwt>` + `DPoP: <proof>` (or, with
// --bearer-ok, `Authorization: Bearer <jwt>` for a token with no cnf);
// returns null when accepted, or the reason.
async function checkDpop(req) {
  const authz = req.headers.authorization || '';
  const m = /^(\S+) (\S+)$/.exec(authz);
  if (!m) return 'no token';
  const token = m[2];
  if (bearerOk && m[1].toLowerCase() === 'bearer') {
    const { at, why } = await verifyAccessToken(token);
    if (why) return why;
    if (at.cnf) return 'DPoP-bound access token sent as Bearer';
    return null;
  }
  if (m[1].toLowerCase() !== 'dpop') return `scheme ${m[1]} (want DPoP${bearerOk ? ' or Bearer' : ''})`;
  const proof = req.headers.dpop;
  if (!proof || Array.isArray(proof) || proof.includes(',')) return 'missing or multiple DPoP headers';

  // The access token, bound to a key.
  const { at, why } = await verifyAccessToken(token);
  if (why) return why;
  if (!at.cnf || typeof at.cnf.jkt !== 'string') return 'access token has no cnf.jkt (not DPoP-bound)';

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
    const params = [`resource_metadata="${prmUrl}"`];
    if (why !== 'no token') params.unshift('error="invalid_token"');
    const challenges = [`DPoP ${[...params, 'algs="ES256"'].join(', ')}`];
    if (bearerOk) challenges.push(`Bearer ${params.join(', ')}`);
    return send(res, 401, { error: 'invalid_token' }, { 'www-authenticate': challenges });
  }
  if (/^bearer /i.test(req.headers.authorization)) stats.bearer_accepted += 1;
  else stats.dpop_accepted += 1;
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
        dpop_bound_access_tokens_required: !bearerOk,
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
  device_interval: deviceInterval, device_ttl: deviceTtl, slow_down_first: slowDownFirst, bearer_ok: bearerOk,
})}\n`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(); process.exit(0); });
