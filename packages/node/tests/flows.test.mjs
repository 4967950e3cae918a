// Refresh, decline and retry, concurrency, a mid-session 401, silent mode.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createServer } from 'node:http';
import { McpOAuth, McpOAuthError } from 'mcp-oauth';
import { startDemo, headlessBrowser, noBrowser, tempHome, removeHome, pingStatus } from './helpers.mjs';

let demo, shortLived;
const homes = [];
before(async () => {
  [demo, shortLived] = await Promise.all([startDemo(), startDemo({ accessTtl: 5 })]);
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
  // 5 s tokens are always inside the engine's 60 s expiry margin: each call refreshes.
  const h = await home();
  const browser = headlessBrowser();
  const auth = await McpOAuth.open(shortLived.url, { home: h, openBrowser: browser.open });
  let previous = await auth.token();
  assert.equal(browser.opened, 1);
  for (let i = 0; i < 3; i++) {
    const from = (await shortLived.log()).requests.length;
    const t = await auth.token();
    assert.notEqual(t, previous, 'a new access token');
    assert.deepEqual(await shortLived.requestsSince(from), ['POST /token']);
    assert.equal(await pingStatus(shortLived.url, t), 200);
    previous = t;
  }
  // A new session reads the last rotated refresh token from the store.
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
    const control = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;
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
