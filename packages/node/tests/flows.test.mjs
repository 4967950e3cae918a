// Refresh, decline and retry, concurrency, a mid-session 401, silent mode,
// junk on the loopback callback, DPoP nonces on 2xx responses.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { McpOAuth, McpOAuthError } from 'mcp-oauth';
import { startDemo, headlessBrowser, noBrowser, tempHome, removeHome, pingStatus, follow, callbackJunk } from './helpers.mjs';

// The engine refreshes a token 60 s before it expires, but at most half its
// lifetime before: a 6 s token is fresh for 3 s, then every call refreshes.
const TTL_S = 6;
const STALE_AFTER_MS = 3300;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Internals, by file (the package's exports map covers only the public API).
const { dpopKeyId } = await import(path.join(process.cwd(), 'node_modules', 'mcp-oauth', 'dist', 'lazy.js'));

let demo, shortLived;
const homes = [];
before(async () => {
  [demo, shortLived] = await Promise.all([startDemo(), startDemo({ accessTtl: TTL_S })]);
});
after(async () => {
  demo?.stop();
  shortLived?.stop();
  await Promise.all(homes.map(removeHome));
});
async function home() {
  const h = await tempHome();
  homes.push(h);
  return h;
}

const ping = (auth, url, id = 1) =>
  auth.fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' }),
  });

test('refresh: an expiring token is refreshed, the rotated refresh token kept and used next', async () => {
  const h = await home();
  const browser = headlessBrowser();
  const auth = await McpOAuth.open(shortLived.url, { home: h, openBrowser: browser.open });
  let previous = await auth.token();
  assert.equal(browser.opened, 1);
  assert.equal(await auth.token(), previous, 'fresh: no refresh yet');
  for (let i = 0; i < 2; i++) {
    await sleep(STALE_AFTER_MS);
    const from = (await shortLived.log()).requests.length;
    const t = await auth.token();
    assert.notEqual(t, previous, 'a new access token');
    assert.deepEqual(await shortLived.requestsSince(from), ['POST /token']);
    assert.equal(await pingStatus(shortLived.url, t), 200);
    previous = t;
  }
  // A new session reads the last rotated refresh token from the store.
  await sleep(STALE_AFTER_MS);
  const again = await McpOAuth.open(shortLived.url, { home: h, openBrowser: noBrowser() });
  assert.equal(await pingStatus(shortLived.url, await again.token()), 200);
  assert.equal(browser.opened, 1, 'no browser for refreshes');
  assert.equal((await shortLived.log()).refresh_token_reuse_detected, false);
});

test('decline latches: typed error, later calls fail fast with no HTTP, retry() asks again', async () => {
  const browser = headlessBrowser();
  let answer = false;
  let asked = 0;
  const auth = await McpOAuth.open(demo.url, {
    home: await home(),
    openBrowser: browser.open,
    consent: (req) => {
      asked++;
      assert.equal(req.reason, 'first-login');
      assert.equal(req.issuer, demo.base);
      return answer;
    },
  });
  await assert.rejects(ping(auth, demo.url), (e) => e instanceof McpOAuthError && e.kind === 'declined' && /retry\(\)/.test(e.message));
  assert.equal(asked, 1);
  const from = (await demo.log()).requests.length;
  for (let i = 0; i < 3; i++) {
    await assert.rejects(ping(auth, demo.url), { kind: 'declined' });
    await assert.rejects(auth.token(), { kind: 'declined' });
  }
  assert.deepEqual(await demo.requestsSince(from), [], 'no HTTP while declined');
  assert.equal(asked, 1, 'not asked again');
  assert.equal(browser.opened, 0);
  answer = true;
  await auth.retry();
  const r = await ping(auth, demo.url);
  assert.equal(r.status, 200);
  assert.equal(asked, 2);
  assert.equal(browser.opened, 1);
});

test('concurrent calls share one flow: one consent, one browser', async (t) => {
  // A server of its own: the demo server serves about four connections at a
  // time, and idle keep-alive connections from earlier tests would hold them.
  const demo = await startDemo();
  t.after(() => demo.stop());
  const browser = headlessBrowser();
  let asked = 0;
  const auth = await McpOAuth.open(demo.url, { home: await home(), openBrowser: browser.open, consent: () => (asked++, true) });
  const from = (await demo.log()).requests.length;
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => ping(auth, demo.url, i + 1)));
  assert.deepEqual(results.map((r) => r.status), Array(8).fill(200));
  const ids = await Promise.all(results.map(async (r) => (await r.json()).id));
  assert.deepEqual(ids.sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(browser.opened, 1);
  assert.equal(asked, 1);
  const seen = await demo.requestsSince(from);
  assert.equal(seen.filter((l) => l === 'GET /authorize').length, 1, String(seen));
  assert.equal(seen.filter((l) => l === 'POST /token').length, 1, String(seen));
});

test('a mid-session 401 (tokens revoked) is handed to the engine and the request retried', async () => {
  const browser = headlessBrowser();
  const auth = await McpOAuth.open(demo.url, { home: await home(), openBrowser: browser.open });
  assert.equal((await ping(auth, demo.url)).status, 200);
  const before = await auth.token();
  await demo.revoke();
  const from = (await demo.log()).requests.length;
  // A Request object this time: its body is sent again on the retry.
  const request = new Request(demo.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
  });
  const r = await auth.fetch(request);
  assert.equal(r.status, 200, 'retried with a new token');
  assert.equal((await r.json()).id, 2);
  assert.notEqual(await auth.token(), before);
  const seen = await demo.requestsSince(from);
  assert.equal(seen[0], 'POST /mcp', 'the rejected request');
  assert.ok(seen.includes('GET /authorize'), `re-authorized: ${seen}`);
  assert.equal(seen.at(-1), 'POST /mcp', 'the retry');
  assert.equal(browser.opened, 2);
});

test('every mid-session 401 of a long-lived client is answered with a refresh, not only the first (the 2xx after a retry is reported)', async () => {
  const browser = headlessBrowser();
  const auth = await McpOAuth.open(demo.url, { home: await home(), openBrowser: browser.open });
  assert.equal((await ping(auth, demo.url)).status, 200);
  for (let round = 1; round <= 3; round++) {
    await demo.revokeAccess();
    const from = (await demo.log()).requests.length;
    assert.equal((await ping(auth, demo.url, round + 1)).status, 200, `round ${round}`);
    const seen = await demo.requestsSince(from);
    assert.deepEqual(seen, ['POST /mcp', 'POST /token', 'POST /mcp'], `round ${round}: refused, refreshed, sent again`);
  }
  assert.equal(browser.opened, 1, 'signed in once');
});

test('paste fallback: a redirect URL pasted as a line completes the flow; a bad paste is refused', async () => {
  const pasted = new PassThrough();
  const progress = [];
  const auth = await McpOAuth.open(demo.url, {
    home: await home(),
    paste: pasted,
    onProgress: (p) => progress.push(p),
    // A browser elsewhere: it follows the AS's redirects but cannot reach
    // the callback, so the user pastes the address it ended on.
    openBrowser: async (url) => {
      let current = new URL(url);
      for (let hop = 0; hop < 10 && current.pathname !== '/callback'; hop++) {
        const r = await fetch(current, { redirect: 'manual' });
        await r.arrayBuffer();
        current = new URL(r.headers.get('location'), current);
      }
      pasted.write('hello\n');
      pasted.write(`${current.href}\n`);
    },
  });
  assert.equal((await ping(auth, demo.url)).status, 200);
  assert.ok(progress.some((p) => p.kind === 'callback-rejected' && /not a URL/.test(p.reason)), JSON.stringify(progress));
});

test('what a server says reaches errors and progress escaped for terminals', async () => {
  // A minimal hostile AS: metadata is fine, registration fails with escape sequences.
  const evil = '\u001b[2J\u001b]0;owned\u0007\u202eevil\r';
  const server = createServer((req, res) => {
    const base = `http://127.0.0.1:${server.address().port}`;
    const json = (status, v) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
    if (req.url === '/.well-known/oauth-protected-resource/mcp') return json(200, { resource: `${base}/mcp`, authorization_servers: [base] });
    if (req.url === '/.well-known/oauth-authorization-server') {
      return json(200, {
        issuer: base,
        authorization_endpoint: `${base}/authorize`,
        token_endpoint: `${base}/token`,
        registration_endpoint: `${base}/register`,
        code_challenge_methods_supported: ['S256'],
        response_types_supported: ['code'],
      });
    }
    if (req.url === '/register') return json(400, { error: `invalid_client_metadata${evil}`, error_description: `rejected ${evil}` });
    json(404, {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const progress = [];
    const auth = await McpOAuth.open(`http://127.0.0.1:${server.address().port}/mcp`, { home: await home(), openBrowser: noBrowser(), onProgress: (p) => progress.push(p) });
    const e = await auth.token().then(() => assert.fail('must fail'), (e) => e);
    assert.equal(e.kind, 'registration-failed', e.message);
    const control = /[\u0000-\u001f\u007f-\u009f]/;
    for (const text of [e.message, e.oauth?.error ?? '', e.oauth?.description ?? '', JSON.stringify(progress.map(Object.values))]) {
      assert.ok(!control.test(text), JSON.stringify(text));
    }
    assert.match(e.oauth.description, /rejected/);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test('silent mode fails with authorization-required and opens nothing', async () => {
  const auth = await McpOAuth.open(demo.url, { home: await home(), openBrowser: noBrowser(), interactive: false });
  await assert.rejects(auth.token(), (e) => e.kind === 'authorization-required' && /mcp-oauth login/.test(e.message));
  await assert.rejects(ping(auth, demo.url), { kind: 'authorization-required' });
});

test('errors never carry the secret and are typed', async () => {
  const secret = 'TOPSECRET-abc123';
  const auth = await McpOAuth.open(demo.url, {
    home: await home(),
    openBrowser: noBrowser(),
    grant: 'client-credentials',
    clientId: 'not-registered',
    clientSecret: secret,
  });
  const e = await auth.token().then(
    () => assert.fail('must fail'),
    (e) => e,
  );
  assert.ok(e instanceof McpOAuthError);
  assert.equal(e.kind, 'token-request-failed', e.message);
  assert.equal(e.oauth?.error, 'invalid_client');
  assert.ok(!JSON.stringify({ m: e.message, o: e.oauth, s: e.stack }).includes(secret));
  await assert.rejects(McpOAuth.open('ftp://example.com/mcp', {}), { name: 'McpOAuthError', kind: 'unsafe-url' });
});

test('junk flooding the loopback callback before the browser comes back does not end the sign-in', async () => {
  const progress = [];
  let browser;
  const auth = await McpOAuth.open(demo.url, {
    home: await home(),
    onProgress: (p) => progress.push(p),
    // Returns at once, like a real browser; then 150 junk requests hit the
    // listener (each answered or closed) before the browser comes back.
    openBrowser: (url) => {
      const port = Number(new URL(new URL(url).searchParams.get('redirect_uri')).port);
      browser = (async () => {
        const answers = await Promise.all(callbackJunk(port));
        await follow(url);
        return answers;
      })();
    },
  });
  assert.equal((await ping(auth, demo.url)).status, 200);
  const answers = await browser;
  for (const a of answers) assert.match(a, /^(HTTP\/1\.1 (400|404) |closed$)/);
  assert.ok(progress.some((p) => p.kind === 'callback-rejected'), 'the engine saw the junk /callback requests');
  const ignored = progress.find((p) => p.kind === 'callback-ignored');
  assert.ok(ignored && ignored.count >= 90, JSON.stringify(ignored));
});

test('a DPoP-Nonce on a 2xx from the MCP server goes into the next proof (RFC 9449 §9); logout removes the key file', async () => {
  // A minimal AS and MCP server that bind tokens with DPoP; the MCP server
  // hands out a new nonce on every success and records the proofs' nonces.
  const seen = [];
  let served = 0;
  const server = createServer((req, res) => {
    const base = `http://127.0.0.1:${server.address().port}`;
    const url = new URL(req.url, base);
    const json = (status, v, headers = {}) => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(v));
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body = (body + d).slice(0, 65_536)));
    req.on('end', () => {
      if (url.pathname === '/.well-known/oauth-protected-resource/mcp') return json(200, { resource: `${base}/mcp`, authorization_servers: [base] });
      if (url.pathname === '/.well-known/oauth-authorization-server') {
        return json(200, {
          issuer: base,
          authorization_endpoint: `${base}/authorize`,
          token_endpoint: `${base}/token`,
          registration_endpoint: `${base}/register`,
          code_challenge_methods_supported: ['S256'],
          response_types_supported: ['code'],
          dpop_signing_alg_values_supported: ['ES256'],
        });
      }
      if (url.pathname === '/register') return json(201, { ...JSON.parse(body), client_id: 'dpop-client' });
      if (url.pathname === '/authorize') {
        const back = new URL(url.searchParams.get('redirect_uri'));
        back.searchParams.set('code', 'the-code');
        back.searchParams.set('state', url.searchParams.get('state'));
        return res.writeHead(302, { location: back.href }).end();
      }
      if (url.pathname === '/token') {
        if (!req.headers.dpop) return json(400, { error: 'invalid_dpop_proof' });
        return json(200, { access_token: 'bound-token', token_type: 'DPoP', expires_in: 3600 });
      }
      if (url.pathname === '/mcp') {
        const [scheme, token] = (req.headers.authorization ?? '').split(' ');
        if (scheme !== 'DPoP' || token !== 'bound-token' || !req.headers.dpop) {
          return res
            .writeHead(401, { 'www-authenticate': `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", DPoP algs="ES256"` })
            .end();
        }
        const claims = JSON.parse(Buffer.from(req.headers.dpop.split('.')[1], 'base64url').toString('utf8'));
        if (claims.ath !== createHash('sha256').update(token).digest('base64url')) return json(400, { error: 'the proof is not for this token' });
        seen.push(claims.nonce ?? null);
        served++;
        return json(200, { jsonrpc: '2.0', id: served, result: {} }, { 'dpop-nonce': `nonce-${served}` });
      }
      json(404, {});
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const mcp = `http://127.0.0.1:${server.address().port}/mcp`;
    const h = await home();
    const auth = await McpOAuth.open(mcp, { home: h, openBrowser: (url) => void follow(url) });
    for (let i = 0; i < 3; i++) {
      const r = await ping(auth, mcp, i + 1);
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
    // The first proof knew no nonce; each later one carries the last 2xx's.
    assert.deepEqual(seen, [null, 'nonce-1', 'nonce-2']);
    // The key file is named by the engine's rule, which logout repeats to remove it.
    const st = await auth.status();
    const keyFile = `${dpopKeyId(st.issuer, st.resource)}.pem`;
    assert.deepEqual((await readdir(h)).filter((n) => n.endsWith('.pem')), [keyFile]);
    await auth.logout();
    assert.deepEqual((await readdir(h)).filter((n) => n.endsWith('.pem')), [], 'logout removed the DPoP key file');
    assert.equal((await auth.status()).hasToken, false);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});
