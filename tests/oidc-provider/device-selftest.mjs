// The device authorization grant (RFC 8628) and token revocation (RFC 7009)
// of server.mjs, proved with plain fetch and approve.mjs, without our client:
// registration of device clients, the device authorization request bound to
// the MCP resource (RFC 8707), approval by a scripted second device, polling
// that honours `interval` and slow_down, a DPoP-bound token (proofs made here
// with node:crypto) used at /mcp, refresh, revocation; the denied, expired,
// too-fast and Bearer (--bearer-ok) cases.
//
//   node device-selftest.mjs [--server PATH] [--logs DIR]
//
// PATH: server.mjs where oidc-provider resolves (default
// <repo>/.cache/oidc-provider/server.mjs; ./device-selftest installs and
// copies it). Starts its servers itself (port 0) and stops them by PID.
// Prints one PASS/FAIL line per check and "N passed, M failed"; exits 1 on
// any failure. Never prints a token, a code or a cookie.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const opt = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const serverPath = path.resolve(opt('--server', path.join(root, '.cache/oidc-provider/server.mjs')));
const logs = path.resolve(opt('--logs', path.join(root, 'target/oidc-provider-device')));
const approvePath = path.join(here, 'approve.mjs');
if (!fs.existsSync(serverPath)) { console.error(`missing ${serverPath} (run ./device-selftest)`); process.exit(1); }
fs.rmSync(logs, { recursive: true, force: true });
fs.mkdirSync(logs, { recursive: true });

const DEVICE = 'urn:ietf:params:oauth:grant-type:device_code';
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) passed += 1; else failed += 1;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail !== undefined ? ` (${detail})` : ''}`);
  return ok;
}

// --- servers, stopped by PID on any exit ---
const children = [];
process.on('exit', () => { for (const c of children) if (c.exitCode === null) { try { process.kill(c.pid, 'SIGTERM'); } catch {} } });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

async function startServer(name, args) {
  const log = fs.openSync(path.join(logs, `server-${name}.log`), 'w');
  const child = spawn(process.execPath, [serverPath, '0', ...args], { stdio: ['ignore', 'pipe', log] });
  children.push(child);
  const line = await new Promise((resolve) => {
    let buf = '';
    const timer = setTimeout(() => resolve(undefined), 10000);
    child.stdout.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) { clearTimeout(timer); resolve(buf.slice(0, buf.indexOf('\n'))); }
    });
    child.on('exit', () => { clearTimeout(timer); resolve(undefined); });
  });
  if (!line) throw new Error(`server ${name} did not start; see ${logs}/server-${name}.log`);
  const info = JSON.parse(line);
  info.name = name;
  info.pid = child.pid;
  info.meta = await (await fetch(`${info.issuer}/.well-known/openid-configuration`)).json();
  return info;
}
function stopServer(s) {
  try { process.kill(s.pid, 'SIGTERM'); } catch {}
}
const stats = async (s) => (await fetch(s.stats)).json();

// --- HTTP helpers ---
async function postForm(url, form, headers = {}) {
  const res = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form),
  });
  const t = await res.text();
  let body;
  try { body = JSON.parse(t); } catch { body = { raw: t.slice(0, 200) }; }
  return { status: res.status, body };
}
async function register(s, metadata) {
  const res = await fetch(s.meta.registration_endpoint, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata),
  });
  return { status: res.status, body: await res.json() };
}
const deviceClient = { client_name: 'device selftest', grant_types: [DEVICE, 'refresh_token'], response_types: [], token_endpoint_auth_method: 'none' };
const deviceAuth = (s, clientId, extra = {}) => postForm(s.meta.device_authorization_endpoint, {
  client_id: clientId, scope: 'mcp:tools', resource: s.mcp, ...extra,
});

// --- DPoP (RFC 9449) with node:crypto: one ES256 key per "client" ---
const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
function dpopKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  const jwk = { kty, crv, x, y };
  const jkt = crypto.createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
  const proof = (htm, htu, token) => {
    const payload = { jti: crypto.randomUUID(), htm, htu, iat: Math.floor(Date.now() / 1000) };
    if (token) payload.ath = crypto.createHash('sha256').update(token).digest('base64url');
    const input = `${b64u({ typ: 'dpop+jwt', alg: 'ES256', jwk })}.${b64u(payload)}`;
    const sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${sig.toString('base64url')}`;
  };
  return { jkt, proof };
}
const jwtPayload = (t) => { try { return JSON.parse(Buffer.from(t.split('.')[1], 'base64url')); } catch { return {}; } };

// Token request; a DPoP proof when `key` is given.
const tokenRequest = (s, form, key) => postForm(s.meta.token_endpoint, form, key ? { dpop: key.proof('POST', s.meta.token_endpoint) } : {});
let pollsSent = 0;
const pollOnce = (s, clientId, deviceCode, key) => {
  pollsSent += 1;
  return tokenRequest(s, { grant_type: DEVICE, device_code: deviceCode, client_id: clientId }, key);
};

// Polls as RFC 8628 §3.5 asks: `interval` seconds between requests, 5 more
// after each slow_down, until an answer other than authorization_pending.
async function poll(s, clientId, da, key, maxSeconds = 30) {
  let interval = da.interval ?? 5;
  const seen = { polls: 0, pending: 0, slow_down: 0 };
  const deadline = Date.now() + maxSeconds * 1000;
  while (Date.now() < deadline) {
    await sleep(interval);
    const r = await pollOnce(s, clientId, da.device_code, key);
    seen.polls += 1;
    if (r.body.error === 'authorization_pending') { seen.pending += 1; continue; }
    if (r.body.error === 'slow_down') { seen.slow_down += 1; interval += 5; continue; }
    return { ...r, seen };
  }
  return { status: 0, body: { error: 'selftest timeout' }, seen };
}

function approve(uri, code, ...extra) {
  return new Promise((resolve) => {
    const out = fs.openSync(path.join(logs, 'approve.log'), 'a');
    fs.writeSync(out, `--- approve ${extra.join(' ')}\n`);
    const child = spawn(process.execPath, [approvePath, uri, code, ...extra], { stdio: ['ignore', out, out] });
    child.on('exit', (rc) => { fs.closeSync(out); resolve(rc); });
  });
}

async function mcpPost(s, authorization, dpop) {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization };
  if (dpop) headers.dpop = dpop;
  const res = await fetch(s.mcp, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
  await res.text();
  return res.status;
}
const shape = (r) => (r.body.error ? `HTTP ${r.status} ${r.body.error}${r.body.error_description ? `: ${r.body.error_description}` : ''}`
  : `HTTP ${r.status} token_type ${r.body.token_type}, refresh_token ${r.body.refresh_token ? 'issued' : 'none'}, scope ${r.body.scope}`);

// =============== server A: --device-interval 1 ===============
const A = await startServer('a', ['--device-interval', '1']);
console.log(`server a: ${A.origin} (pid ${A.pid}); logs in ${path.relative(root, logs)}/`);
const m = A.meta;
check('discovery advertises device_authorization_endpoint and revocation_endpoint',
  Boolean(m.device_authorization_endpoint && m.revocation_endpoint), `${m.device_authorization_endpoint}, ${m.revocation_endpoint}`);
check('discovery lists the device_code grant', (m.grant_types_supported || []).includes(DEVICE), (m.grant_types_supported || []).join(' '));

// Registration: device only, public; and code + device.
let reg = await register(A, deviceClient);
const cid = reg.body.client_id;
check('register a public device-only client (response_types [], no redirect_uris, auth none)',
  reg.status === 201 && cid && JSON.stringify(reg.body.grant_types) === JSON.stringify([DEVICE, 'refresh_token']),
  `HTTP ${reg.status}, grant_types ${JSON.stringify(reg.body.grant_types)}, response_types ${JSON.stringify(reg.body.response_types)}, redirect_uris ${JSON.stringify(reg.body.redirect_uris)}`);
reg = await register(A, {
  grant_types: ['authorization_code', DEVICE, 'refresh_token'], redirect_uris: ['http://127.0.0.1:9/callback'], token_endpoint_auth_method: 'none',
});
const both = reg.body.client_id;
let da = both ? await deviceAuth(A, both) : { status: 0, body: {} };
check('register a client for authorization_code and device_code; it may start a device grant',
  reg.status === 201 && da.status === 200, `registration HTTP ${reg.status}, grant_types ${JSON.stringify(reg.body.grant_types)}; device authorization HTTP ${da.status}`);
reg = await register(A, { redirect_uris: ['http://127.0.0.1:9/callback'], token_endpoint_auth_method: 'none' });
da = await deviceAuth(A, reg.body.client_id);
check('a client registered without the device grant is refused', da.status === 400, `HTTP ${da.status} ${da.body.error}`);
da = await deviceAuth(A, cid, { resource: 'https://elsewhere.example/mcp' });
check('a device request for an unknown resource is refused with invalid_target', da.body.error === 'invalid_target', `HTTP ${da.status} ${da.body.error}`);

// The happy path, DPoP-bound.
const key = dpopKey();
da = await deviceAuth(A, cid);
const d = da.body;
check('device authorization: 200 with device_code, user_code, verification_uri(_complete), expires_in, interval 1',
  da.status === 200 && d.device_code && d.user_code && d.verification_uri && d.verification_uri_complete?.includes('user_code=')
  && d.expires_in > 0 && d.interval === 1, `HTTP ${da.status}, verification_uri ${d.verification_uri}, expires_in ${d.expires_in}, interval ${d.interval}`);
let r = await pollOnce(A, cid, d.device_code, key);
check('polling before approval: authorization_pending', r.body.error === 'authorization_pending', shape(r));
let rc = await approve(d.verification_uri, d.user_code);
check('approve.mjs <verification_uri> <user_code> exits 0', rc === 0, `exit ${rc}`);
r = await poll(A, cid, d, key);
const tok = r.body;
const at = tok.access_token;
const claims = at ? jwtPayload(at) : {};
check('polling after approval: a DPoP token with a refresh token and scope mcp:tools',
  r.status === 200 && r.body.token_type === 'DPoP' && Boolean(r.body.refresh_token) && String(r.body.scope).split(' ').includes('mcp:tools'),
  `${shape(r)}; ${r.seen.polls} poll(s) at the interval`);
check('the access token is for the MCP resource and bound to our key',
  claims.aud === A.mcp && claims.cnf?.jkt === key.jkt, `aud ${claims.aud}, cnf.jkt ${claims.cnf?.jkt === key.jkt ? 'ours' : 'not ours'}`);
let status = at ? await mcpPost(A, `DPoP ${at}`, key.proof('POST', A.mcp, at)) : 0;
check('POST /mcp with that token and a DPoP proof: 200', status === 200, `HTTP ${status}`);
status = at ? await mcpPost(A, `Bearer ${at}`) : 0;
check('the same token as Bearer: 401', status === 401, `HTTP ${status}`);
rc = await approve(d.verification_uri, d.user_code);
check('approve.mjs with a used code fails', rc !== 0, `exit ${rc}`);

// Refresh (DPoP: the refresh token of a public client is bound to the key), then revoke it.
r = await tokenRequest(A, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: cid }, key);
const tok2 = r.body;
check('refresh with a DPoP proof: a new DPoP token', r.status === 200 && tok2.token_type === 'DPoP' && tok2.access_token !== at, shape(r));
status = tok2.access_token ? await mcpPost(A, `DPoP ${tok2.access_token}`, key.proof('POST', A.mcp, tok2.access_token)) : 0;
check('POST /mcp with the refreshed token: 200', status === 200, `HTTP ${status}`);
const rt = tok2.refresh_token || tok.refresh_token; // rotated or not
r = await postForm(m.revocation_endpoint, { client_id: cid, token: rt, token_type_hint: 'refresh_token' });
check('revoke the refresh token: 200', r.status === 200, `HTTP ${r.status}`);
r = await tokenRequest(A, { grant_type: 'refresh_token', refresh_token: rt, client_id: cid }, key);
check('a refresh with the revoked token: invalid_grant', r.body.error === 'invalid_grant', shape(r));
r = await postForm(m.revocation_endpoint, { client_id: cid, token: 'not-a-token-we-issued', token_type_hint: 'refresh_token' });
check('revoking an unknown token: 200 too (RFC 7009 §2.2)', r.status === 200, `HTTP ${r.status}`);
r = await postForm(m.revocation_endpoint, { client_id: cid, token: tok2.access_token || at, token_type_hint: 'access_token' });
check('revoking a JWT access token: unsupported_token_type (oidc-provider does not revoke structured tokens)',
  r.body.error === 'unsupported_token_type', `HTTP ${r.status} ${r.body.error}`);

// Denied on the second device.
da = await deviceAuth(A, cid);
rc = await approve(da.body.verification_uri, da.body.user_code, '--deny');
check('approve.mjs --deny exits 0 (the provider says the sign-in was interrupted)', rc === 0, `exit ${rc}`);
r = await poll(A, cid, da.body, key);
check('polling after the denial: access_denied', r.body.error === 'access_denied', shape(r));

// verification_uri_complete with `-`, no DPoP proof: a Bearer token, which this server's /mcp refuses.
da = await deviceAuth(A, cid);
rc = await approve(da.body.verification_uri_complete, '-');
check('approve.mjs <verification_uri_complete> - exits 0', rc === 0, `exit ${rc}`);
r = await poll(A, cid, da.body);
check('polling without a DPoP proof: a Bearer token', r.status === 200 && r.body.token_type === 'Bearer', shape(r));
const tok3 = r.body;
status = tok3.access_token ? await mcpPost(A, `Bearer ${tok3.access_token}`) : 0;
check('POST /mcp with that Bearer token (no --bearer-ok): 401', status === 401, `HTTP ${status}`);
r = await pollOnce(A, cid, da.body.device_code);
check('the device code cannot be redeemed twice', r.body.error === 'invalid_grant', shape(r));
r = await tokenRequest(A, { grant_type: 'refresh_token', refresh_token: tok3.refresh_token, client_id: cid });
check('and that replay revoked the grant: its refresh token is dead (invalid_grant)', r.body.error === 'invalid_grant', shape(r));
rc = await approve(da.body.verification_uri, 'WRONG-CODE');
check('approve.mjs with a wrong code fails', rc !== 0, `exit ${rc}`);

// Too fast: slow_down, and the interval owed grows by 5 s.
da = await deviceAuth(A, cid);
await pollOnce(A, cid, da.body.device_code, key);
r = await pollOnce(A, cid, da.body.device_code, key);
check('a second poll at once: slow_down', r.status === 400 && r.body.error === 'slow_down', shape(r));
await sleep(1.5);
r = await pollOnce(A, cid, da.body.device_code, key);
check('then after the advertised 1 s: slow_down again (5 s were added)', r.body.error === 'slow_down', shape(r));
await sleep(11.2);
r = await pollOnce(A, cid, da.body.device_code, key);
check('then after 1 + 5 + 5 s: authorization_pending', r.body.error === 'authorization_pending', shape(r));

const sentA = pollsSent;
const sa = await stats(A);
const lastRev = sa.revocations.find((x) => x.known) || {};
check('stats: device_authorizations, device_polls, device_slow_down, grants[device_code]',
  sa.device_authorizations === 5 && sa.device_polls === sentA && sa.device_slow_down === 2 && sa.grants[DEVICE] === 2,
  `device_authorizations ${sa.device_authorizations}, device_polls ${sa.device_polls} (sent ${sentA}), device_slow_down ${sa.device_slow_down}, grants ${JSON.stringify(sa.grants)}`);
check('stats: revocations record the hint and whether the token was known, never the token',
  sa.revocations.length === 3 && lastRev.token_type_hint === 'refresh_token' && lastRev.kind === 'RefreshToken'
  && sa.revocations.filter((x) => !x.known).length === 2 && !JSON.stringify(sa).includes(rt),
  JSON.stringify(sa.revocations));
check('stats: interactions went through login and consent', sa.interactions.login >= 2 && sa.interactions.consent >= 2, JSON.stringify(sa.interactions));
stopServer(A);

// =============== server B: --device-ttl 3, never approved ===============
const B = await startServer('b', ['--device-interval', '1', '--device-ttl', '3']);
reg = await register(B, deviceClient);
da = await deviceAuth(B, reg.body.client_id);
check('server b: expires_in 3', da.body.expires_in === 3, `expires_in ${da.body.expires_in}`);
r = await poll(B, reg.body.client_id, da.body, undefined, 15);
check('polling a code nobody approves: expired_token', r.body.error === 'expired_token', `${shape(r)} after ${r.seen.pending} pending`);
rc = await approve(da.body.verification_uri, da.body.user_code);
check('approve.mjs with an expired code fails', rc !== 0, `exit ${rc}`);
stopServer(B);

// =============== server C: --bearer-ok ===============
const C = await startServer('c', ['--device-interval', '1', '--bearer-ok']);
reg = await register(C, deviceClient);
const prm = await (await fetch(C.prm)).json();
check('server c: its resource metadata no longer requires DPoP', prm.dpop_bound_access_tokens_required === false);
da = await deviceAuth(C, reg.body.client_id);
rc = await approve(da.body.verification_uri_complete, '-');
r = await poll(C, reg.body.client_id, da.body);
status = r.body.access_token ? await mcpPost(C, `Bearer ${r.body.access_token}`) : 0;
check('with --bearer-ok: an unbound device-flow token works as Bearer at /mcp', rc === 0 && r.body.token_type === 'Bearer' && status === 200,
  `approve exit ${rc}, ${shape(r)}, /mcp HTTP ${status}`);
const key2 = dpopKey();
da = await deviceAuth(C, reg.body.client_id);
rc = await approve(da.body.verification_uri, da.body.user_code);
r = await poll(C, reg.body.client_id, da.body, key2);
const bound = r.body.access_token;
status = bound ? await mcpPost(C, `Bearer ${bound}`) : 0;
const status2 = bound ? await mcpPost(C, `DPoP ${bound}`, key2.proof('POST', C.mcp, bound)) : 0;
check('with --bearer-ok: a DPoP-bound token is still refused as Bearer, accepted with its proof',
  status === 401 && status2 === 200, `Bearer HTTP ${status}, DPoP HTTP ${status2}`);
const sc = await stats(C);
check('server c stats: bearer_accepted 1, dpop_accepted 1', sc.bearer_accepted === 1 && sc.dpop_accepted === 1,
  `bearer_accepted ${sc.bearer_accepted}, dpop_accepted ${sc.dpop_accepted}, rejected ${JSON.stringify(sc.rejected)}`);
stopServer(C);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
