// Cold and warm through the real MCP SDK: Client + StreamableHTTPClientTransport
// with `fetch: auth.fetch`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { stat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpOAuth } from 'mcp-oauth';
import { startDemo, headlessBrowser, noBrowser, tempHome, removeHome, isAsRequest } from './helpers.mjs';

let demo, home;
before(async () => {
  demo = await startDemo();
  home = await tempHome();
});
after(async () => {
  demo?.stop();
  await removeHome(home);
});

async function session(auth) {
  const client = new Client({ name: 'mcp-oauth-node-test', version: '0.1.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(demo.url), { fetch: auth.fetch }));
  const tools = await client.listTools();
  const echo = await client.callTool({ name: 'echo', arguments: { text: 'hello from node' } });
  await client.close();
  return { tools: tools.tools.map((t) => t.name), echo: echo.content[0].text };
}

test('cold: the SDK client authorizes with one browser open, then initialize, tools/list, tools/call', async () => {
  const browser = headlessBrowser();
  const progress = [];
  const auth = await McpOAuth.open(demo.url, { home, openBrowser: browser.open, onProgress: (p) => progress.push(p.kind) });
  const from = (await demo.log()).requests.length;
  const got = await session(auth);
  assert.deepEqual(got, { tools: ['echo'], echo: 'hello from node' });
  assert.equal(browser.opened, 1, 'one browser open');
  assert.deepEqual(browser.errors, []);
  const seen = await demo.requestsSince(from);
  for (const r of ['POST /register', 'GET /authorize', 'POST /token']) assert.equal(seen.filter((l) => l === r).length, 1, `${r} once in ${seen}`);
  assert.ok(progress.includes('listening') && progress.includes('callback-arrived'), String(progress));
  // The store: 0700 directory, 0600 records.
  assert.equal((await stat(home)).mode & 0o777, 0o700);
  const records = (await readdir(home)).filter((n) => n.endsWith('.json'));
  assert.ok(records.some((n) => n.startsWith('tokens-')), String(records));
  for (const n of records) assert.equal((await stat(path.join(home, n))).mode & 0o777, 0o600, n);
  const st = await auth.status();
  assert.equal(st.hasToken, true);
  assert.equal(st.issuer, demo.base);
  assert.ok(st.expiresAt > Date.now());
});

test('warm: a new session uses the stored token (no AS request, no browser)', async () => {
  const auth = await McpOAuth.open(demo.url, { home, openBrowser: noBrowser() });
  const from = (await demo.log()).requests.length;
  const got = await session(auth);
  assert.equal(got.echo, 'hello from node');
  const seen = await demo.requestsSince(from);
  assert.deepEqual(seen.filter(isAsRequest), [], `no AS request: ${seen}`);
  assert.ok(seen.includes('POST /mcp'));
});

test('auth.fetch works unbound, passes init through and sends the token only to its server', async () => {
  const auth = await McpOAuth.open(demo.url, { home, openBrowser: noBrowser() });
  const { fetch: bare } = auth;
  const r = await bare(demo.url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list' }),
  });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).id, 7);
  // Another origin gets no Authorization header.
  let sent;
  const spy = await McpOAuth.open(demo.url, { home, openBrowser: noBrowser(), fetch: async (i, init) => ((sent = new Headers(init?.headers)), new Response('x')) });
  await spy.fetch('http://127.0.0.2:9/elsewhere', { headers: { x: '1' } });
  assert.equal(sent.get('authorization'), null);
  await spy.fetch(demo.url, { method: 'POST', body: '{}' });
  assert.match(sent.get('authorization'), /^Bearer /);
});
