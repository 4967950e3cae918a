// The silent fast path through McpOAuth: every case of
// tests/vectors/fast_path.json, and a warm store against the demo server.
// The proof that the engine stays out: a copy of the package without its
// engine (no engine/ directory) serves what the fast path serves, and fails
// wherever the engine is asked.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { McpOAuth } from 'mcp-oauth';
import { startDemo, headlessBrowser, noBrowser, tempHome, removeHome } from './helpers.mjs';

const root = process.env.MCP_OAUTH_ROOT ?? path.resolve(path.dirname(process.env.MCP_OAUTH_BIN), '..', '..');
const FAST = JSON.parse(await (await import('node:fs/promises')).readFile(path.join(root, 'tests', 'vectors', 'fast_path.json'), 'utf8'));
const installed = path.join(process.cwd(), 'node_modules', 'mcp-oauth');

let demo, engineless, copy;
const homes = [];
before(async () => {
  demo = await startDemo();
  copy = await mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-engineless-'));
  await cp(path.join(installed, 'dist'), path.join(copy, 'dist'), { recursive: true });
  await cp(path.join(installed, 'package.json'), path.join(copy, 'package.json'));
  engineless = (await import(path.join(copy, 'dist', 'index.js'))).McpOAuth;
});
after(async () => {
  demo?.stop();
  await Promise.all(homes.map(removeHome));
  if (copy) await rm(copy, { recursive: true, force: true });
});
async function home() {
  const h = await tempHome();
  homes.push(h);
  return h;
}

const noEngine = (e) => e?.name === 'McpOAuthError' && e.kind === 'other' && /the engine could not start/.test(e.message);

/** A plain store holding `records`. */
async function storeWith(records) {
  const h = await home();
  await writeFile(path.join(h, 'store.json'), '{"format":1,"mode":"plain"}', { mode: 0o600 });
  for (const [k, text] of Object.entries(records)) await writeFile(path.join(h, `${k}.json`), text, { mode: 0o600 });
  return h;
}

/** Runs `f` with Date.now() at `ms` (the vectors' clock). */
async function at(ms, f) {
  const real = Date.now;
  Date.now = () => ms;
  try {
    return await f();
  } finally {
    Date.now = real;
  }
}

test('fast_path.json through McpOAuth: each served case without the engine, nothing stored answered as the engine would, every other case asks it', async () => {
  for (const c of FAST.cases) {
    const h = await storeWith(c.records);
    await at(c.now, async () => {
      const auth = await engineless.open(c.server_url, { home: h, interactive: false });
      // The file store reads a record that is not JSON as absent (it warns), as the engine gets it.
      const unreadable = Object.values(c.records).some((text) => {
        try {
          JSON.parse(text);
          return false;
        } catch {
          return true;
        }
      });
      if (c.serve) assert.equal(await auth.token(), c.serve.access_token, c.name);
      else if (c.nothing_stored || unreadable) {
        // The engine's answer, without it; an interactive call needs the engine.
        await assert.rejects(auth.token(), { kind: 'authorization-required' }, c.name);
        await assert.rejects((await engineless.open(c.server_url, { home: h })).token(), noEngine, `${c.name} (interactive)`);
      } else await assert.rejects(auth.token(), noEngine, c.name);
    });
  }
});

test('the skew option moves the margin; a config the engine must judge starts it in open()', async () => {
  const c = FAST.cases.find((x) => x.name.includes('60 s before expiry'));
  const h = await storeWith(c.records);
  await at(c.now, async () => {
    await assert.rejects((await engineless.open(c.server_url, { home: h })).token(), noEngine, 'the default skew: refresh');
    assert.equal(await (await engineless.open(c.server_url, { home: h, expirySkewMs: 0 })).token(), 'at-1', 'no skew: served');
  });
  for (const options of [{ grant: 'client-credentials', clientId: 'svc' }, { clientId: 'c', clientSecret: 's' }, { authorizeParams: { audience: 'a' } }, { callbackTimeoutMs: 0 }]) {
    await assert.rejects(engineless.open(c.server_url, { home: h, ...options }), noEngine, JSON.stringify(Object.keys(options)));
  }
  await assert.rejects(McpOAuth.open(c.server_url, { home: h, callbackTimeoutMs: 0 }), { kind: 'invalid-config' });
  await assert.rejects(McpOAuth.open('http://mcp.example.com/mcp', { home: h }), { kind: 'unsafe-url' });
});

test('a warm store: token() and fetch() served without the engine, until a 401; then the engine answers', async () => {
  const h = await home();
  const browser = headlessBrowser();
  const first = await McpOAuth.open(demo.url, { home: h, openBrowser: browser.open });
  const stored = await first.token();
  assert.equal(browser.opened, 1);

  const auth = await engineless.open(demo.url, { home: h, openBrowser: noBrowser() });
  const [a, b] = await Promise.all([auth.token(), auth.token()]);
  assert.equal(a, stored);
  assert.equal(b, stored);
  const ping = () =>
    auth.fetch(demo.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
  assert.equal((await ping()).status, 200, 'Bearer from the fast path');
  await demo.revoke();
  await assert.rejects(ping(), noEngine, 'the 401 goes to the engine');
  await assert.rejects(auth.token(), noEngine, 'and so does every call after it');

  // The same with the engine in place: the 401 refreshes or re-authorizes, and later calls get the new token.
  const real = await McpOAuth.open(demo.url, { home: h, openBrowser: browser.open });
  assert.equal(await real.token(), stored, 'the stored token, revoked but not expired');
  const r = await real.fetch(demo.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
  });
  assert.equal(r.status, 200, 'retried with a new token');
  const renewed = await real.token();
  assert.notEqual(renewed, stored);
  assert.equal(await (await engineless.open(demo.url, { home: h })).token(), renewed, 'a new instance reads the new token');
});

test('nothing stored: fetch sends its first request without a token, and only the 401 needs the engine', async () => {
  const auth = await engineless.open(demo.url, { home: await home(), openBrowser: noBrowser() });
  const from = (await demo.log()).requests.length;
  const ping = auth.fetch(demo.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  await assert.rejects(ping, noEngine, 'the 401 goes to the engine');
  assert.deepEqual(await demo.requestsSince(from), ['POST /mcp'], 'the request went out before the engine was asked');
});
