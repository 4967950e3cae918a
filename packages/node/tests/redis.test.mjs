// The Redis store on a real redis-server (tests/redis/server, stopped by
// PID): users kept apart, sealed names bound (a record copied to another
// user reads as absent), leases (exclusion, a vanished holder, renewal after
// loss), fenced writes (a lost lease, a stale version), faults (a closed
// port, a wrong password, TLS, a restart with the data), the manifest (another
// key id, no key file, plain records announced once), renewal before a
// request is sent, and a process that ends by itself.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { McpOAuth, McpOAuthError } from 'mcp-oauth';
import { startRedis, tempHome, removeHome, runNode } from './helpers.mjs';

const { openRedisStore, parseStoreUrl, Host } = await import(path.join(process.cwd(), 'node_modules', 'mcp-oauth', 'dist', 'lazy.js'));

const SERVER = 'https://mcp.example.com/mcp'; // opening makes no request to it
const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => (b === null ? null : new TextDecoder().decode(b));
const rec = (s) => enc(JSON.stringify({ v: 1, record: { access_token: s } }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let redis;
let keyFile;
const homes = [];
const opened = [];
before(async () => {
  redis = await startRedis();
  const h = await tempHome();
  homes.push(h);
  keyFile = path.join(h, 'fleet.key');
  await fs.writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
});
after(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await redis?.remove();
  await Promise.all(homes.map(removeHome));
});

let prefixes = 0;
/** A fresh key prefix: each test its own keys on the one server. */
const freshPrefix = () => `t${++prefixes}-${randomBytes(3).toString('hex')}:`;
/** Opens a Redis store (sealed with the test key file unless `secrets` is 'file'). */
async function store({ prefix, user, secrets = 'auto', lease, file = keyFile, url } = {}) {
  const q = `?prefix=${prefix}${lease ? `&lease_ms=${lease}` : ''}`;
  const env = secrets === 'file' ? {} : { MCP_OAUTH_STORE_KEY_FILE: file };
  const s = await openRedisStore({ url: parseStoreUrl(url ?? redis.url(q)), user, secrets, env });
  opened.push(s);
  return s;
}
const keysUnder = (prefix) => redis.cli(['--scan', '--pattern', `${prefix}*`]).split('\n').filter(Boolean).sort();

/** A loopback port nothing listens on. */
async function closedPort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

test('two users never meet: the same name holds different records; a list shows only its own user', async () => {
  const prefix = freshPrefix();
  const [alice, bob, nobody] = await Promise.all([store({ prefix, user: 'alice' }), store({ prefix, user: 'bob' }), store({ prefix })]);
  await alice.set('tokens-x', rec('alice'));
  await bob.set('tokens-x', rec('bob'));
  await alice.set('tokens-only-alice', rec('a2'));
  assert.equal(dec(await alice.get('tokens-x')), dec(rec('alice')));
  assert.equal(dec(await bob.get('tokens-x')), dec(rec('bob')));
  assert.equal(await nobody.get('tokens-x'), null);
  assert.deepEqual(await alice.list(''), ['tokens-only-alice', 'tokens-x']);
  assert.deepEqual(await bob.list(''), ['tokens-x']);
  assert.deepEqual(await nobody.list(''), [], 'one principal sees no user');
  await alice.putKeyOnce('dpop-k', 'alice key');
  assert.equal(await bob.getKey('dpop-k'), null);
  assert.deepEqual(await bob.listKeys(), []);
  assert.notEqual(alice.id, bob.id, 'caches are kept per user');
});

test('a sealed record copied to another user, name or kind reads as absent', async () => {
  const prefix = freshPrefix();
  const [alice, bob] = await Promise.all([store({ prefix, user: 'alice' }), store({ prefix, user: 'bob' })]);
  await alice.set('tokens-x', rec('alice-secret'));
  await alice.putKeyOnce('dpop-k', 'alice key');
  redis.cli(['copy', `${prefix}{alice/tokens-x}:r`, `${prefix}{bob/tokens-x}:r`]);
  redis.cli(['copy', `${prefix}{alice/tokens-x}:r`, `${prefix}{alice/tokens-y}:r`]);
  redis.cli(['copy', `${prefix}{alice/dpop-k}:pem`, `${prefix}{bob/dpop-k}:pem`]);
  assert.equal(await bob.get('tokens-x'), null, 'another user');
  assert.equal(await alice.get('tokens-y'), null, 'another name');
  assert.equal(await bob.getKey('dpop-k'), null, 'a key file of another user');
  assert.equal(await bob.unreadable(), 2);
  assert.equal(dec(await alice.get('tokens-x')), dec(rec('alice-secret')), 'the original still opens');
  assert.ok(!redis.cli(['hget', `${prefix}{alice/tokens-x}:r`, 'd']).includes('alice-secret'), 'sealed at rest');
});

test('a lease excludes a second taker until released; a holder that vanished frees it when its lease ends', async () => {
  const prefix = freshPrefix();
  const [a, b] = await Promise.all([store({ prefix, lease: 1000 }), store({ prefix, lease: 1000 })]);
  const held = await a.lock('tokens-l');
  assert.match(redis.cli(['get', `${prefix}{tokens-l}:lock`]), new RegExp(`^${process.pid}:[0-9a-f]{32}$`), 'the owner: pid and 32 hex');
  await assert.rejects(b.lock('tokens-l', 300), (e) => e instanceof McpOAuthError && /still held/.test(e.message) && e.message.includes(`${prefix}{tokens-l}:lock`));
  await held.release();
  await held.release();
  const next = await b.lock('tokens-l', 300);
  // b vanishes without releasing: a takes it once the 1 s lease has ended, well before its lease + 10 s wait.
  const t0 = Date.now();
  const after = await a.lock('tokens-l');
  const waited = Date.now() - t0;
  assert.ok(waited >= 700 && waited < 3000, `waited ${waited} ms`);
  assert.equal(await next.renew(), false, 'the vanished holder learns it lost the lease');
  await next.release(); // not its lease any more: deletes nothing
  assert.equal(await after.renew(), true, "a's lease stands");
  await after.release();
  assert.deepEqual(keysUnder(prefix).filter((k) => k.endsWith(':lock')), []);
});

test('renew: extends a held lease, reports one that was lost', async () => {
  const prefix = freshPrefix();
  const [a, b] = await Promise.all([store({ prefix, lease: 1000 }), store({ prefix, lease: 1000 })]);
  const held = await a.lock('tokens-r');
  await sleep(600);
  assert.equal(await held.renew(), true);
  assert.ok(Number(redis.cli(['pttl', `${prefix}{tokens-r}:lock`])) > 800, 'the lease starts again');
  await sleep(1200);
  const other = await b.lock('tokens-r', 500);
  assert.equal(await held.renew(), false, 'lost: another owner');
  await other.release();
  assert.equal(await held.renew(), false, 'lost: gone');
});

test('fencing: a write after the lease was lost is refused, naming the record; the other writer\'s record stands', async () => {
  const prefix = freshPrefix();
  const [slow, fast] = await Promise.all([store({ prefix, lease: 1000 }), store({ prefix, lease: 1000 })]);
  await slow.set('tokens-f', rec('v1'));
  const held = await slow.lock('tokens-f');
  assert.equal(dec(await slow.get('tokens-f')), dec(rec('v1')));
  await sleep(1200); // slow is paused past its lease
  await fast.withLock('tokens-f', async () => {
    await fast.get('tokens-f');
    await fast.set('tokens-f', rec('v2-fast'));
  });
  await assert.rejects(slow.set('tokens-f', rec('v2-slow')), (e) => e.kind === 'storage' && e.message.includes(`${prefix}{tokens-f}:r`) && /lost its lease/.test(e.message));
  await held.release();
  assert.equal(dec(await fast.get('tokens-f')), dec(rec('v2-fast')));
  assert.equal(redis.cli(['hget', `${prefix}{tokens-f}:r`, 'v']), '2', 'v1 unlocked, v2 fenced: version 2');
});

test('fencing: a stale base version is refused even with the lease held', async () => {
  const prefix = freshPrefix();
  const [a, b] = await Promise.all([store({ prefix }), store({ prefix })]);
  await a.set('tokens-v', rec('v1'));
  const held = await a.lock('tokens-v');
  await a.get('tokens-v');
  await b.set('tokens-v', rec('unlocked-write')); // outside the lock: last writer wins
  await assert.rejects(a.set('tokens-v', rec('stale')), (e) => e.kind === 'storage' && e.message.includes(`${prefix}{tokens-v}:r`) && /newer version/.test(e.message));
  await a.get('tokens-v'); // re-read under the lock: now the write goes through
  await a.set('tokens-v', rec('fresh'));
  await held.release();
  assert.equal(dec(await b.get('tokens-v')), dec(rec('fresh')));
});

test('renew before sending: a request made while a lost lease is held is not sent, and fails naming the lock', async () => {
  const prefix = freshPrefix();
  const [s, other] = await Promise.all([store({ prefix, lease: 1000 }), store({ prefix, lease: 1000 })]);
  let hits = 0;
  const srv = createServer((req, res) => {
    hits++;
    res.end('{}');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${srv.address().port}/token`;
  const host = new Host({ store: s, http: { timeoutMs: 5000, maxBody: 65536 }, progress: () => {} });
  const ctx = { locks: new Map([['tokens-h', await s.lock('tokens-h')]]), listener: null };
  const request = { tag: 'http', val: { method: 'post', url, headers: [], body: new Uint8Array(0) } };
  try {
    const ok = await host.perform(request, ctx);
    assert.equal(ok.val.tag, 'ok', 'the lease holds: sent');
    assert.equal(hits, 1);
    await sleep(1200);
    await (await other.lock('tokens-h', 500)).release();
    const lost = await host.perform(request, ctx);
    assert.equal(lost.val.tag, 'err');
    assert.match(lost.val.val.val, new RegExp(`lease on the lock ${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\{tokens-h\\}:lock was lost.*not sent`));
    assert.equal(hits, 1, 'nothing sent');
  } finally {
    for (const h of ctx.locks.values()) await h.release();
    srv.close();
  }
});

test('an unreachable store fails within 5 s with an error naming it (password shown as ***)', async () => {
  const port = await closedPort();
  const t0 = Date.now();
  await assert.rejects(McpOAuth.open(SERVER, { store: `redis://app:pw-0x77@127.0.0.1:${port}/2` }), (e) => {
    assert.ok(e instanceof McpOAuthError);
    assert.equal(e.kind, 'storage');
    assert.ok(e.message.includes(`redis://app:***@127.0.0.1:${port}/2`), e.message);
    assert.ok(!e.message.includes('pw-0x77'), e.message);
    return true;
  });
  assert.ok(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
});

test('a wrong or missing password is an invalid-config error saying so, never showing it', async () => {
  redis.cli(['config', 'set', 'requirepass', 'right-pw-5']);
  try {
    const refused = (e) => e instanceof McpOAuthError && e.kind === 'invalid-config' && /password was refused/.test(e.message) && !/wrong-pw-3|right-pw-5/.test(e.message);
    await assert.rejects(McpOAuth.open(SERVER, { store: redis.url().replace('//', '//:wrong-pw-3@') }), refused);
    // Database 1: the connections of this process to database 0 were authenticated before the password was set.
    await assert.rejects(McpOAuth.open(SERVER, { store: redis.url().replace(/\/0$/, '/1') }), (e) => refused(e) && /NOAUTH/.test(e.message));
    // MCP_OAUTH_STORE_PASSWORD when the URL has none.
    const r = await runNode(
      `import { McpOAuth } from 'mcp-oauth';
       const a = await McpOAuth.open('${SERVER}', {});
       console.log((await a.status()).store); await a.close();`,
      { MCP_OAUTH_STORE: redis.url(`?prefix=${freshPrefix()}`), MCP_OAUTH_STORE_PASSWORD: 'right-pw-5', MCP_OAUTH_SECRETS: 'file' },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0\?prefix=/);
    assert.ok(!(r.stdout + r.stderr).includes('right-pw-5'));
  } finally {
    redis.cli(['config', 'set', 'requirepass', ''], { auth: 'right-pw-5' });
  }
});

test('rediss:// against a plain server: an error that says TLS, within the connect deadline', async () => {
  const t0 = Date.now();
  await assert.rejects(McpOAuth.open(SERVER, { store: redis.url().replace('redis:', 'rediss:') }), (e) => e.kind === 'invalid-config' && /TLS/.test(e.message) && e.message.includes('rediss://127.0.0.1'));
  assert.ok(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
});

test('the server stopped then restarted with its data: calls fail fast meanwhile, then work with the data intact', async () => {
  const prefix = freshPrefix();
  const s = await store({ prefix });
  await s.set('tokens-p', rec('kept'));
  redis.stop();
  try {
    const t0 = Date.now();
    await assert.rejects(s.get('tokens-p'), (e) => e.kind === 'storage' && e.message.includes(`redis://127.0.0.1:${redis.port}/0`));
    assert.ok(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
  } finally {
    redis.start();
  }
  assert.equal(dec(await s.get('tokens-p')), dec(rec('kept')));
  // And a connection broken under a live store object: the next command goes on a new one.
  redis.cli(['client', 'kill', 'type', 'normal']);
  assert.equal(dec(await s.get('tokens-p')), dec(rec('kept')));
});

test('the manifest: another key id is an error and nothing is written; no key file is a usage error naming the variable', async () => {
  const prefix = freshPrefix();
  const s = await store({ prefix, user: 'u1' });
  await s.set('tokens-m', rec('m'));
  const before = keysUnder(prefix);
  assert.deepEqual(JSON.parse(redis.cli(['get', `${prefix}store.json`])), { format: 1, mode: 'sealed', key_id: s.describe().keyId });
  const other = path.join(path.dirname(keyFile), 'other.key');
  await fs.writeFile(other, randomBytes(32).toString('base64'), { mode: 0o600 });
  await assert.rejects(store({ prefix, user: 'u2', file: other }), (e) => e.kind === 'store-key' && e.message.includes(s.describe().keyId) && e.message.includes(other));
  await assert.rejects(store({ prefix, user: 'u2', file: '' }), (e) => e.kind === 'invalid-config' && /MCP_OAUTH_STORE_KEY_FILE/.test(e.message) && /MCP_OAUTH_SECRETS=file/.test(e.message));
  await assert.rejects(store({ prefix, user: 'u2', secrets: 'file' }), (e) => e.kind === 'store-mode');
  assert.deepEqual(keysUnder(prefix), before, 'nothing written');
  const fresh = freshPrefix();
  await assert.rejects(store({ prefix: fresh, file: '' }), (e) => e.kind === 'invalid-config');
  assert.deepEqual(keysUnder(fresh), [], 'no manifest written without a key');
});

test('MCP_OAUTH_SECRETS=file: plain records, one warning line per process; a plain store refuses keychain', async () => {
  const prefix = freshPrefix();
  const r = await runNode(
    `import { McpOAuth } from 'mcp-oauth';
     const a = await McpOAuth.open('${SERVER}', {});
     const b = await McpOAuth.open('https://other.example.com/mcp', { user: 'bob' });
     console.log(JSON.stringify([(await a.status()).secrets, (await b.status()).store]));
     await a.close(); await b.close();`,
    { MCP_OAUTH_STORE: redis.url(`?prefix=${prefix}`), MCP_OAUTH_SECRETS: 'file' },
  );
  assert.equal(r.code, 0, r.stderr);
  const [secrets, shown] = JSON.parse(r.stdout);
  assert.equal(secrets.mode, 'plain');
  assert.match(secrets.where, /plain records in the shared store redis:\/\/127\.0\.0\.1/);
  assert.equal(shown, redis.url(`?prefix=${prefix}`).replace(/\/0\?/, '/0?'));
  const warnings = r.stderr.split('\n').filter(Boolean);
  assert.equal(warnings.length, 1, r.stderr);
  assert.match(warnings[0], /^mcp-oauth: the shared store redis:\/\/127\.0\.0\.1:\d+\/0\?prefix=\S+ holds its secrets unsealed/);
  assert.deepEqual(JSON.parse(redis.cli(['get', `${prefix}store.json`])), { format: 1, mode: 'plain' });
  const plain = await store({ prefix, secrets: 'file' });
  await plain.set('tokens-p', rec('in the clear'));
  assert.equal(redis.cli(['hget', `${prefix}{tokens-p}:r`, 'd']), dec(rec('in the clear')));
  await assert.rejects(store({ prefix, secrets: 'keychain' }), (e) => e.kind === 'store-mode');
});

test('a process with a Redis store ends by itself, closed or not', async () => {
  for (const close of ['await a.close();', '']) {
    const t0 = Date.now();
    const r = await runNode(
      `import { McpOAuth } from 'mcp-oauth';
       const a = await McpOAuth.open('${SERVER}', {});
       console.log((await a.status()).hasToken); ${close}`,
      { MCP_OAUTH_STORE: redis.url(`?prefix=${freshPrefix()}`), MCP_OAUTH_STORE_KEY_FILE: keyFile },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'false');
    assert.ok(Date.now() - t0 < 10_000, `${close || 'not closed'}: ${Date.now() - t0} ms`);
  }
});
