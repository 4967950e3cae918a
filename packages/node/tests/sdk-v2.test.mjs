// The MCP TypeScript SDK v2 (@modelcontextprotocol/client): its Client and
// StreamableHTTPClientTransport with `authProvider: auth.authProvider`, the
// shape that SDK takes for auth. Cold (one sign-in in the headless browser),
// warm (no AS request), a 401 mid-session (one sign-in for concurrent
// calls, a stale 401 answered without another), a decline (fails fast), a
// DPoP-bound token (refused with the way out: fetch).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { McpOAuth, McpOAuthError } from 'mcp-oauth';
import { startDemo, headlessBrowser, noBrowser, tempHome, removeHome, isAsRequest, follow } from './helpers.mjs';

let demo, home;
before(async () => {
  demo = await startDemo();
  home = await tempHome();
});
after(async () => {
  demo?.stop();
  await removeHome(home);
});

/**
 * A fetch for the transport that records each MCP request's method, status
 * and authorization scheme (never the token).
 */
function recordingFetch() {
  const seen = [];
  const spy = async (input, init) => {
    const r = await fetch(input, init);
    const scheme = new Headers(init?.headers).get('authorization')?.split(' ')[0] ?? null;
    seen.push({ method: init?.method ?? 'GET', status: r.status, scheme });
    return r;
  };
  return { seen, fetch: spy };
}

async function connect(auth, fetchFn) {
  const client = new Client({ name: 'mcp-oauth-node-test-v2', version: '0.1.0' });
  const transport = new StreamableHTTPClientTransport(new URL(demo.url), { authProvider: auth.authProvider, ...(fetchFn ? { fetch: fetchFn } : {}) });
  await client.connect(transport);
  return client;
}

const echo = async (client, text) => (await client.callTool({ name: 'echo', arguments: { text } })).content[0].text;

test('v2 cold: the first request goes without a token, its 401 signs in once (one browser open), then tools/list and tools/call', async () => {
  const browser = headlessBrowser();
  const progress = [];
  const auth = await McpOAuth.open(demo.url, { home, openBrowser: browser.open, onProgress: (p) => progress.push(p.kind) });
  const rec = recordingFetch();
  const from = (await demo.log()).requests.length;
  const client = await connect(auth, rec.fetch);
  const tools = await client.listTools();
  assert.deepEqual(tools.tools.map((t) => t.name), ['echo']);
  assert.equal(await echo(client, 'hello from the v2 client'), 'hello from the v2 client');
  await client.close();
  assert.equal(browser.opened, 1, 'one browser open');
  assert.deepEqual(browser.errors, []);
  const seen = await demo.requestsSince(from);
  for (const r of ['POST /register', 'GET /authorize', 'POST /token']) assert.equal(seen.filter((l) => l === r).length, 1, `${r} once in ${seen}`);
  assert.ok(progress.includes('callback-arrived'), String(progress));
  // The transport's first request carried nothing and was refused; after the sign-in every one is Bearer.
  assert.deepEqual(rec.seen[0], { method: 'POST', status: 401, scheme: null });
  assert.equal(rec.seen.filter((r) => r.status === 401).length, 1, JSON.stringify(rec.seen));
  assert.ok(rec.seen.slice(1).every((r) => r.scheme === 'Bearer'), JSON.stringify(rec.seen));
  assert.equal((await auth.status()).hasToken, true);
});

test('v2 warm: a new McpOAuth uses the stored token (no AS request, no browser, no 401)', async () => {
  const auth = await McpOAuth.open(demo.url, { home, openBrowser: noBrowser() });
  const rec = recordingFetch();
  const from = (await demo.log()).requests.length;
  const client = await connect(auth, rec.fetch);
  assert.equal(await echo(client, 'warm'), 'warm');
  await client.close();
  const seen = await demo.requestsSince(from);
  assert.deepEqual(seen.filter(isAsRequest), [], `no AS request: ${seen}`);
  assert.ok(seen.includes('POST /mcp'));
  assert.ok(rec.seen.every((r) => r.scheme === 'Bearer' && r.status !== 401), JSON.stringify(rec.seen));
});

test('v2 through fetch: auth.fetch as the transport\'s fetch works the same (warm: no AS request)', async () => {
  const auth = await McpOAuth.open(demo.url, { home, openBrowser: noBrowser() });
  const from = (await demo.log()).requests.length;
  const client = new Client({ name: 'mcp-oauth-node-test-v2', version: '0.1.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(demo.url), { fetch: auth.fetch }));
  assert.equal(await echo(client, 'through fetch'), 'through fetch');
  await client.close();
  assert.deepEqual((await demo.requestsSince(from)).filter(isAsRequest), []);
});

test('v2 401 mid-session: concurrent calls refused share one new sign-in; a stale 401 after it asks for nothing', async () => {
  const browser = headlessBrowser();
  const auth = await McpOAuth.open(demo.url, { home, openBrowser: browser.open });
  const rec = recordingFetch();
  const client = await connect(auth, rec.fetch);
  assert.equal(await echo(client, 'before'), 'before');
  const before = await auth.token();
  const from = (await demo.log()).requests.length;
  const at = rec.seen.length;
  await demo.revoke(); // every token issued so far, the refresh token too: a new sign-in is needed
  const texts = ['a', 'b', 'c', 'd'];
  assert.deepEqual(await Promise.all(texts.map((t) => echo(client, t))), texts);
  assert.equal(browser.opened, 1, 'one browser open for four refused calls');
  assert.deepEqual(browser.errors, []);
  const seen = await demo.requestsSince(from);
  assert.equal(seen.filter((l) => l === 'GET /authorize').length, 1, `one sign-in: ${seen}`);
  assert.ok(rec.seen.slice(at).some((r) => r.status === 401), JSON.stringify(rec.seen.slice(at)));
  const after = await auth.token();
  assert.ok(after !== before, 'a new token'); // compared, never printed
  // A 401 that reaches the provider now, for a request sent with the old
  // token, is stale: the engine answers with the current token, no request.
  const mark = (await demo.log()).requests.length;
  const stale = new Response(null, { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
  await auth.authProvider.onUnauthorized({ response: stale, serverUrl: new URL(demo.url) });
  assert.deepEqual(await demo.requestsSince(mark), []);
  assert.ok((await auth.authProvider.token()) === after, 'token() still gives the current token');
  assert.equal(await echo(client, 'after'), 'after');
  await client.close();
});

test('v2 declined: connect rejects with the McpOAuthError; later connects fail fast until retry()', async () => {
  const other = await tempHome();
  try {
    let asked = 0;
    const auth = await McpOAuth.open(demo.url, {
      home: other,
      openBrowser: noBrowser(),
      consent: () => (asked++, false),
    });
    const isDeclined = (e) => e instanceof McpOAuthError && e.kind === 'declined';
    await assert.rejects(connect(auth), isDeclined);
    assert.equal(asked, 1);
    const from = (await demo.log()).requests.length;
    await assert.rejects(connect(auth), isDeclined);
    assert.equal(asked, 1, 'no second consent');
    assert.deepEqual(await demo.requestsSince(from), [], 'no request at all: token() rejects');
    await auth.retry(); // the user may be asked again
    await assert.rejects(connect(auth), isDeclined);
    assert.equal(asked, 2);
    // Another server's transport is refused, not signed in for.
    const elsewhere = new Response(null, { status: 401 });
    await assert.rejects(auth.authProvider.onUnauthorized({ response: elsewhere, serverUrl: new URL('http://127.0.0.2:9/mcp') }), (e) => e instanceof McpOAuthError && e.kind === 'invalid-config');
  } finally {
    await removeHome(other);
  }
});

test('v2 with a DPoP-bound token: token() refuses (the authProvider sends Bearer only) and names fetch: auth.fetch', async () => {
  // A minimal AS that binds tokens with DPoP (ES256), and the MCP server's metadata.
  const server = createServer((req, res) => {
    const base = `http://127.0.0.1:${server.address().port}`;
    const url = new URL(req.url, base);
    const json = (status, v) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
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
      json(404, {});
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const other = await tempHome();
  try {
    const base = `http://127.0.0.1:${server.address().port}`;
    const auth = await McpOAuth.open(`${base}/mcp`, { home: other, openBrowser: (url) => void follow(url) });
    assert.ok((await auth.authProvider.token()) === undefined, 'nothing stored: the request goes without');
    const challenge = `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", DPoP algs="ES256"`;
    await auth.authProvider.onUnauthorized({ response: new Response(null, { status: 401, headers: { 'www-authenticate': challenge } }), serverUrl: new URL(`${base}/mcp`) });
    await assert.rejects(auth.authProvider.token(), (e) => e instanceof McpOAuthError && e.kind === 'invalid-config' && /DPoP/.test(e.message) && /fetch: auth\.fetch/.test(e.message));
  } finally {
    server.close();
    server.closeAllConnections();
    await removeHome(other);
  }
});
