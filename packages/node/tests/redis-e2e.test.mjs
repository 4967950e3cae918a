// The Redis store end to end, against `mcp-oauth demo --serve`: one sign-in
// serves a replica with another home and no request to the AS; a warm
// token() costs no Redis command; replicas refreshing at once make one
// refresh; a store that goes away mid-session is an error, never a new
// sign-in, and the next call after it is back needs no request; the fleet
// replica program; a user on the file store.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { McpOAuth } from 'mcp-oauth';
import { startDemo, startRedis, headlessBrowser, noBrowser, tempHome, removeHome, isAsRequest, pingStatus } from './helpers.mjs';

// A 6 s token is fresh for 3 s (the engine refreshes at most half its lifetime early).
const TTL_S = 6;
const STALE_AFTER_MS = 3300;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let demo, shortLived, redis, keyFile;
const homes = [];
const auths = [];
before(async () => {
  [demo, shortLived, redis] = await Promise.all([startDemo(), startDemo({ accessTtl: TTL_S }), startRedis()]);
  keyFile = path.join(await home(), 'fleet.key');
  await fs.writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  process.env.MCP_OAUTH_STORE_KEY_FILE = keyFile;
  delete process.env.MCP_OAUTH_SECRETS; // sealed: the key file, as a fleet runs
});
after(async () => {
  await Promise.all(auths.map((a) => a.close()));
  demo?.stop();
  shortLived?.stop();
  await redis?.remove();
  await Promise.all(homes.map(removeHome));
});
async function home() {
  const h = await tempHome();
  homes.push(h);
  return h;
}
let prefixes = 0;
const freshStore = () => redis.url(`?prefix=e${++prefixes}-${randomBytes(3).toString('hex')}:`);
async function open(url, options) {
  const a = await McpOAuth.open(url, { home: await home(), ...options });
  auths.push(a);
  return a;
}
const asRequests = async (server, from) => (await server.requestsSince(from)).filter(isAsRequest);
/** Redis commands served so far (INFO itself left out). */
function commandsServed() {
  let n = 0;
  for (const m of redis.cli(['info', 'commandstats']).matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+)/gm)) if (m[1] !== 'info') n += Number(m[2]);
  return n;
}

test('one sign-in serves another replica (another home) with no request to the AS; a warm token() costs no Redis command', async () => {
  const store = freshStore();
  const browser = headlessBrowser();
  const first = await open(demo.url, { store, openBrowser: browser.open });
  const token = await first.token();
  assert.equal(browser.opened, 1);
  const from = (await demo.log()).requests.length;
  const replica = await open(demo.url, { store, openBrowser: noBrowser(), interactive: false });
  assert.equal(replica.home, undefined, 'no directory: the store is Redis');
  assert.equal(await replica.token(), token);
  assert.deepEqual(await asRequests(demo, from), []);
  assert.equal(await pingStatus(demo.url, token), 200);
  const before = commandsServed();
  for (let i = 0; i < 20; i++) assert.equal(await replica.token(), token);
  assert.equal(commandsServed() - before, 0, 'memory first');
  const status = await replica.status();
  assert.equal(status.secrets.mode, 'sealed');
  assert.equal(status.secrets.where, `the key file ${keyFile}`);
  assert.equal(status.store, store, 'the store as shown');
});

test('replicas refreshing at once: one refresh at the AS, the same new token for all, no reuse', async () => {
  const store = freshStore();
  const browser = headlessBrowser();
  const first = await open(shortLived.url, { store, openBrowser: browser.open });
  const old = await first.token();
  const replicas = [first];
  for (let i = 0; i < 3; i++) replicas.push(await open(shortLived.url, { store, openBrowser: noBrowser(), interactive: false }));
  await Promise.all(replicas.slice(1).map((r) => r.token())); // loaded while fresh
  await sleep(STALE_AFTER_MS);
  const from = (await shortLived.log()).requests.length;
  const tokens = await Promise.all(replicas.map((r) => r.token()));
  assert.equal(new Set(tokens).size, 1, 'one token for all');
  assert.notEqual(tokens[0], old);
  assert.deepEqual(await asRequests(shortLived, from), ['POST /token'], 'one refresh');
  assert.equal((await shortLived.log()).refresh_token_reuse_detected, false);
  assert.equal(browser.opened, 1);
});

test('the store going away mid-session is an error naming it (no new sign-in); once back, no request is needed', async () => {
  const store = freshStore();
  const signIn = await open(demo.url, { store, openBrowser: headlessBrowser().open });
  const token = await signIn.token();
  const later = await open(demo.url, { store, openBrowser: noBrowser() }); // interactive: a fork would open the browser
  const from = (await demo.log()).requests.length;
  redis.stop();
  try {
    const t0 = Date.now();
    await assert.rejects(later.token(), (e) => e.kind === 'storage' && e.message.includes(`redis://127.0.0.1:${redis.port}/0`));
    assert.ok(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
  } finally {
    redis.start();
  }
  assert.equal(await later.token(), token);
  assert.deepEqual(await asRequests(demo, from), []);
});

test('fleet-replica.mjs: silent token() every 50 ms, one JSON line', async () => {
  const store = freshStore();
  await (await open(demo.url, { store, openBrowser: headlessBrowser().open })).token();
  const run = (args, env) =>
    new Promise((resolve) => {
      execFile(process.execPath, ['fleet-replica.mjs', ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
    });
  const from = (await demo.log()).requests.length;
  const ok = await run([demo.url, '1'], { MCP_OAUTH_STORE: store, MCP_OAUTH_HOME: await home() });
  assert.equal(ok.code, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n');
  assert.equal(lines.length, 1, ok.stdout);
  const r = JSON.parse(lines[0]);
  assert.equal(r.host, 'node');
  assert.ok(r.calls >= 10 && r.ok === r.calls && r.errors === 0, lines[0]);
  assert.deepEqual(r.first_errors, []);
  assert.deepEqual(await asRequests(demo, from), []);
  // Another user has no grant: errors counted, never a browser.
  const none = JSON.parse((await run([demo.url, '1'], { MCP_OAUTH_STORE: store, MCP_OAUTH_USER: 'nobody' })).stdout);
  assert.equal(none.ok, 0);
  assert.ok(none.errors > 0 && none.first_errors.length >= 1 && none.first_errors.length <= 3);
  assert.match(none.first_errors[0], /authorization required/);
  const bad = await run([demo.url, '1'], { MCP_OAUTH_STORE: 'redis://h?nope=1' });
  assert.equal(bad.code, 1);
});

test('a user on the file store: records under <home>/users/<user>/, apart from the default principal', async () => {
  const h = await home();
  const alice = await open(demo.url, { home: h, user: 'alice', secrets: 'file', openBrowser: headlessBrowser().open });
  await alice.token();
  assert.equal(alice.home, path.join(h, 'users', 'alice'));
  assert.ok((await fs.readdir(alice.home)).some((f) => f.startsWith('tokens-')));
  assert.ok(!(await fs.readdir(h)).some((f) => f.startsWith('tokens-')));
  const nobody = await open(demo.url, { home: h, secrets: 'file', openBrowser: noBrowser(), interactive: false });
  assert.equal((await nobody.status()).hasToken, false);
  assert.equal((await nobody.status()).store, h);
});
