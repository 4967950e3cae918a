// The shared host-rule vectors (tests/vectors/*.json, the same files the Rust
// and Python hosts check): every case against the Node host. Each file's
// "rule" is the spec; this file only feeds its cases to the host.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

// The repository (packages/node/test sets it; the tests run from a temp install).
const root =
  process.env.MCP_OAUTH_ROOT ?? (process.env.MCP_OAUTH_BIN ? path.resolve(path.dirname(process.env.MCP_OAUTH_BIN), '..', '..') : undefined);
if (!root) throw new Error('set MCP_OAUTH_ROOT to the repository (packages/node/test does)');
const VECTORS = path.join(root, 'tests', 'vectors');
const vectors = (name) => JSON.parse(readFileSync(path.join(VECTORS, name), 'utf8'));

// Internals, by file (the package's exports map covers only the public API).
const internal = await import(path.join(process.cwd(), 'node_modules', 'mcp-oauth', 'dist', 'lazy.js'));
const { FileStore, lockVerdict, breakStale, alive, Host, printable, escapeTerminal, McpOAuthError, dpopNonceSignal } = internal;
const { SealedStore, sealWithNonce, open: openSealed, keyId, keyFromBase64, parseStoreUrl, keysFor, userNamespace, storeSpec } = internal;
const fast = internal; // sha256Hex, recordKey, fastToken
const { McpOAuth } = await import('mcp-oauth');

const COVERED = [
  'dpop_nonce_signals.json',
  'fast_path.json',
  'key_files.json',
  'lock_verdicts.json',
  'record_files.json',
  'redis_keys.json',
  'redis_urls.json',
  'sealed_records.json',
  'terminal_text.json',
];

const homes = [];
after(() => Promise.all(homes.map((h) => fs.rm(h, { recursive: true, force: true }))));
async function home() {
  const h = await fs.mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-vectors-'));
  homes.push(h);
  await fs.chmod(h, 0o700);
  return h;
}

/** `promise`, or a rejection after `ms` (a read that blocks fails the test instead of hanging it). */
function within(ms, promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const DEAD = 2147483000; // above any pid_max: never alive
const holders = (text) => text.replaceAll('$LIVE', String(process.pid)).replaceAll('$DEAD', String(DEAD));
const setAge = (file, ageS) => {
  const t = new Date(Date.now() - ageS * 1000);
  return fs.utimes(file, t, t);
};

test('vectors: every file in tests/vectors is checked here', () => {
  assert.deepEqual(readdirSync(VECTORS).filter((n) => n.endsWith('.json')).sort(), COVERED);
});

test('vectors: lock verdicts (the pure judgement)', () => {
  const v = vectors('lock_verdicts.json');
  assert.equal(v.max_age_s, 60);
  assert.equal(v.unreadable_age_s, 5);
  assert.equal(alive(DEAD), false);
  assert.equal(alive(process.pid), true);
  for (const c of v.cases) {
    const content = holders(c.content);
    assert.equal(lockVerdict(content, c.age_s * 1000, alive), c.verdict, c.name);
    assert.equal(lockVerdict(new TextEncoder().encode(content), c.age_s * 1000, alive), c.verdict, `${c.name} (bytes)`);
  }
});

test('vectors: lock verdicts on disk (a stale lock is taken, a busy one waited on)', async () => {
  const dir = await home();
  const store = new FileStore(dir);
  await store.open();
  for (const c of vectors('lock_verdicts.json').cases) {
    const file = path.join(dir, 'locks', 'tokens-vector.lock');
    await fs.writeFile(file, holders(c.content), { mode: 0o600 });
    await setAge(file, c.age_s);
    if (c.verdict === 'stale') {
      await (await store.lock('tokens-vector', 2000)).release();
    } else {
      await assert.rejects(store.lock('tokens-vector', 150), (e) => e.message.includes(file), c.name);
      await fs.rm(file);
    }
  }
  assert.deepEqual(await fs.readdir(path.join(dir, 'locks')), []);
});

test('vectors: breaking a stale lock puts back a fresh one that replaced it (the race)', async () => {
  const { race } = vectors('lock_verdicts.json');
  const dir = await home();
  const locks = path.join(dir, 'locks');
  await fs.mkdir(locks, { mode: 0o700 });
  const file = path.join(locks, 'tokens-race.lock');
  await fs.writeFile(file, holders(race.judged.content), { mode: 0o600 });
  await setAge(file, race.judged.age_s);
  const judged = await fs.lstat(file);
  const judgedContent = await fs.readFile(file);
  assert.equal(lockVerdict(judgedContent, Date.now() - judged.mtimeMs), 'stale');
  // Another process breaks it and takes a fresh lock (a new file, a new inode).
  const fresh = path.join(locks, 'fresh.tmp');
  await fs.writeFile(fresh, holders(race.replacement.content), { mode: 0o600 });
  await fs.rename(fresh, file);
  assert.notEqual((await fs.lstat(file)).ino, judged.ino);
  await breakStale(file, judged, judgedContent);
  assert.equal(await fs.readFile(file, 'utf8'), holders(race.replacement.content), race.after);
  assert.deepEqual(await fs.readdir(locks), ['tokens-race.lock'], race.after);
  // The replacement may reuse the judged file's inode (removed, then
  // created): the content still tells them apart.
  await fs.writeFile(file, holders(race.judged.content), { mode: 0o600 });
  const judged2 = await fs.lstat(file);
  const content2 = await fs.readFile(file);
  await fs.rm(file);
  await fs.writeFile(file, holders(race.replacement.content), { mode: 0o600 });
  await breakStale(file, judged2, content2);
  assert.equal(await fs.readFile(file, 'utf8'), holders(race.replacement.content), race.after);
  // And the lock judged stale itself is removed.
  await breakStale(file, await fs.lstat(file), await fs.readFile(file));
  assert.deepEqual(await fs.readdir(locks), []);
});

/** Creates `<dir>/<name>` as the vector's `kind`; false when the case cannot run here. */
async function plant(dir, name, c) {
  const file = path.join(dir, name);
  const content = c.fill !== undefined ? `"${'a'.repeat(c.fill - 2)}"` : c.content;
  switch (c.kind) {
    case 'regular':
      await fs.writeFile(file, content, { mode: 0o600 });
      return true;
    case 'symlink': {
      const target = path.join(await home(), 'target.json');
      await fs.writeFile(target, c.target, { mode: 0o600 });
      await fs.symlink(target, file);
      return true;
    }
    case 'fifo':
      execFileSync('mkfifo', ['-m', '600', file]); // no shell
      return true;
    case 'directory':
      await fs.mkdir(file, { mode: 0o700 });
      return true;
    case 'foreign_owner':
      if (process.geteuid?.() !== 0) return false;
      await fs.writeFile(file, content, { mode: 0o600 });
      await fs.chown(file, 65534, 65534);
      return true;
    default:
      throw new Error(`unknown kind ${c.kind}`);
  }
}

test('vectors: record files (only small regular JSON files of ours are read; the rest is absent, with a warning)', async (t) => {
  const v = vectors('record_files.json');
  for (const c of v.cases) {
    const dir = await home();
    if (!(await plant(dir, `${v.key}.json`, c))) {
      t.diagnostic(`skipped "${c.name}": needs root`);
      continue;
    }
    const warnings = [];
    const store = new FileStore(dir, (m) => warnings.push(m));
    const got = await within(5000, store.get(v.key), c.name);
    if (c.expect === 'read') {
      const want = c.fill !== undefined ? `"${'a'.repeat(c.fill - 2)}"` : c.content;
      assert.ok(got, c.name);
      assert.equal(got.byteLength, Buffer.byteLength(want), c.name);
      assert.equal(Buffer.from(got).toString('utf8'), want, c.name);
      assert.deepEqual(warnings, [], c.name);
    } else {
      assert.equal(got, null, c.name);
      assert.equal(warnings.length, 1, `${c.name}: one warning`);
      assert.ok(warnings[0].includes(path.join(dir, `${v.key}.json`)), `${c.name}: the warning names the file`);
    }
  }
});

const CLAIMS = '{"jti":"AAECAwQFBgcICQoLDA0ODw","htm":"POST","htu":"https://mcp.example/mcp","iat":1700000000}';
const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const thumbprint = ({ x, y }) => createHash('sha256').update(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`).digest('base64url');
const proofFrom = (dir, keyId) => new Host({ store: new FileStore(dir), progress: () => {} }).perform({ tag: 'dpop-proof', val: { keyId, claims: CLAIMS } }, {});

/** True when no recognizable piece of `content` (a line of 8+ characters) is in `text`. */
const leaksNothing = (text, content) => content.split('\n').every((line) => line.length < 8 || !text.includes(line));

test('vectors: DPoP key files (a usable key signs; anything else is refused, named, and left exactly as it was)', async () => {
  const v = vectors('key_files.json');
  for (const c of v.cases) {
    const dir = await home();
    const file = path.join(dir, `${v.key_id}.pem`);
    await fs.writeFile(file, c.content, { mode: 0o600 });
    const before = await fs.lstat(file);
    const r = await within(5000, proofFrom(dir, v.key_id), c.name);
    assert.equal(r.tag, 'dpop-proof');
    if (c.expect === 'refuse') {
      assert.equal(r.val.tag, 'err', c.name);
      assert.ok(r.val.val.includes(file), `${c.name}: the error names the file: ${r.val.val}`);
      assert.ok(leaksNothing(r.val.val, c.content), `${c.name}: no content in the error`);
    } else {
      assert.equal(r.val.tag, 'ok', `${c.name}: ${r.val.val}`);
      const { jwk } = b64json(r.val.val.split('.')[0]);
      assert.equal(jwk.x, c.expect.x, c.name);
      assert.equal(jwk.y, c.expect.y, c.name);
      assert.equal(thumbprint(jwk), c.expect.jkt, c.name);
    }
    // Used or refused, the file is untouched and nothing else was written.
    assert.equal(await fs.readFile(file, 'utf8'), c.content, c.name);
    const after = await fs.lstat(file);
    assert.equal(after.ino, before.ino, `${c.name}: not replaced`);
    assert.equal(after.mtimeMs, before.mtimeMs, `${c.name}: not rewritten`);
    assert.deepEqual(await fs.readdir(dir), [`${v.key_id}.pem`], c.name);
  }
});

test('vectors: DPoP key files get the record rules too (no symlink, FIFO, directory, foreign owner, or over 64 KiB)', async (t) => {
  const v = vectors('key_files.json');
  const good = v.cases.find((c) => c.expect !== 'refuse');
  const kinds = [
    { name: 'a symlink to a good key', kind: 'symlink', target: good.content },
    { name: 'a FIFO', kind: 'fifo' },
    { name: 'a directory', kind: 'directory' },
    { name: 'a good key owned by another user', kind: 'foreign_owner', content: good.content },
    { name: 'a good key padded past 64 KiB', kind: 'regular', content: good.content + '\n'.repeat(64 * 1024) },
  ];
  for (const c of kinds) {
    const dir = await home();
    const file = path.join(dir, `${v.key_id}.pem`);
    if (!(await plant(dir, `${v.key_id}.pem`, c))) {
      t.diagnostic(`skipped "${c.name}": needs root`);
      continue;
    }
    const before = await fs.lstat(file);
    const r = await within(5000, proofFrom(dir, v.key_id), c.name);
    assert.equal(r.val.tag, 'err', c.name);
    assert.ok(r.val.val.includes(file), `${c.name}: ${r.val.val}`);
    assert.ok(leaksNothing(r.val.val, good.content), `${c.name}: no key in the error`);
    const after = await fs.lstat(file);
    assert.equal(after.ino, before.ino, `${c.name}: left in place`);
    assert.equal(after.mode, before.mode, c.name);
  }
  // Exactly at the cap is still read.
  const dir = await home();
  const file = path.join(dir, `${v.key_id}.pem`);
  await fs.writeFile(file, good.content + '\n'.repeat(64 * 1024 - Buffer.byteLength(good.content)), { mode: 0o600 });
  const r = await proofFrom(dir, v.key_id);
  assert.equal(r.val.tag, 'ok', r.val.val);
  assert.equal(thumbprint(b64json(r.val.val.split('.')[0]).jwk), good.expect.jkt);
});

test('vectors: terminal text (server text is printable: every Cc escaped, the rest kept)', () => {
  for (const c of vectors('terminal_text.json').cases) {
    assert.equal(printable(c.input), c.printable, c.name);
    assert.equal(escapeTerminal(c.input), c.printable, `${c.name} (escapeTerminal)`);
    // What reaches errors: the message and a server's OAuth error fields.
    const e = new McpOAuthError('other', c.input, { status: 400, error: c.input, description: c.input });
    assert.equal(e.message, c.printable, `${c.name} (error message)`);
    assert.equal(e.oauth.error, c.printable, `${c.name} (oauth.error)`);
    assert.equal(e.oauth.description, c.printable, `${c.name} (oauth.description)`);
  }
});

test('vectors: DPoP-Nonce signals (pairs, and the Headers of a fetch Response)', () => {
  for (const c of vectors('dpop_nonce_signals.json').cases) {
    const retried = c.retried ?? false;
    assert.deepEqual(dpopNonceSignal(c.status, c.headers, retried), c.expect, c.name);
    // fetch joins repeated fields with ", ": the first must still count.
    const headers = new Headers();
    for (const [name, value] of c.headers) headers.append(name, value);
    assert.deepEqual(dpopNonceSignal(c.status, headers, retried), c.expect, `${c.name} (Headers)`);
  }
});

test('vectors: sealed records (the same bytes from the same nonce; every case that must not open reads as absent)', async () => {
  const v = vectors('sealed_records.json');
  const key = keyFromBase64(v.key_base64);
  assert.equal(key.length, 32);
  assert.equal(keyId(key), v.key_id);
  for (const c of v.seal) {
    const plaintext = Buffer.from(c.plaintext, 'utf8');
    assert.equal(sealWithNonce(key, c.kind, c.key, plaintext, Buffer.from(c.nonce_hex, 'hex')), c.sealed, `${c.name}: sealed bytes`);
    assert.equal(openSealed(key, c.kind, c.key, c.sealed)?.toString('utf8'), c.plaintext, `${c.name}: opened`);
    assert.equal(openSealed(key, c.kind, c.key, Buffer.from(c.sealed))?.toString('utf8'), c.plaintext, `${c.name}: opened from bytes`);
  }
  for (const c of v.absent) assert.equal(openSealed(key, c.kind, c.key, c.sealed), null, c.name);
  // The same through the sealed store on disk: records and key files.
  for (const [cases, expect] of [
    [v.seal, (c) => c.plaintext],
    [v.absent, () => null],
  ]) {
    for (const c of cases) {
      const dir = await home();
      const file = path.join(dir, c.kind === 'record' ? `${c.key}.json` : `${c.key}.pem`);
      await fs.writeFile(file, c.sealed, { mode: 0o600 });
      const store = new SealedStore(new FileStore(dir, () => {}), key);
      const got = c.kind === 'record' ? await within(5000, store.get(c.key), c.name) : await within(5000, store.getKey(c.key), c.name);
      const text = got === null ? null : Buffer.from(got).toString('utf8');
      assert.equal(text, expect(c), `${c.name} (on disk)`);
      assert.equal(await fs.readFile(file, 'utf8'), c.sealed, `${c.name}: left as it was`);
    }
  }
});

// The Redis store's rules: what a store URL means, how it is shown, what is
// refused and with which word; the keys of a name, the name sealed into the
// associated data, the users refused. No server: opening with a refused
// store or user makes no connection and no request.
const REDIS_URLS = vectors('redis_urls.json');
const REDIS_KEYS = vectors('redis_keys.json');
const REDIS_SERVER_URL = 'https://mcp.example.com/mcp';

test('redis_urls.json: each URL parses to its store, shown without the password', () => {
  for (const c of REDIS_URLS.cases.filter((c) => c.store)) {
    const u = parseStoreUrl(c.url, c.password_env);
    const got = {
      tls: u.tls,
      host: u.host,
      port: u.port,
      db: u.db,
      username: u.username,
      has_password: u.hasPassword,
      prefix: u.prefix,
      lease_ms: u.leaseMs,
      display: u.display,
    };
    assert.deepEqual(got, c.store, c.name);
    // The password reaches the connection and nothing else.
    const inUrl = /^[a-z]+:\/\/[^:@/]*:([^@/]*)@/.exec(c.url)?.[1];
    const secret = inUrl ? decodeURIComponent(inUrl) : c.password_env;
    if (secret) {
      assert.equal(u.password(), secret, c.name);
      for (const shown of [u.display, String(u), JSON.stringify({ u }), JSON.stringify(u)]) assert.ok(!shown.includes(secret), `${c.name}: ${shown}`);
    }
    if (c.password_env) assert.ok(!u.display.includes(c.password_env), c.name);
  }
});

test('redis_urls.json: each refused URL is an invalid-config error with its word, never the password', async () => {
  for (const c of REDIS_URLS.cases.filter((c) => c.error)) {
    const check = (e) => {
      assert.ok(e instanceof McpOAuthError, `${c.name}: ${e}`);
      assert.equal(e.kind, 'invalid-config', c.name);
      assert.ok(e.message.includes(c.error), `${c.name}: "${e.message}" lacks "${c.error}"`);
      if (c.never) assert.ok(!e.message.includes(c.never), `${c.name}: ${e.message}`);
      if (c.password_env) assert.ok(!e.message.includes(c.password_env), c.name);
      return true;
    };
    assert.throws(() => parseStoreUrl(c.url, c.password_env), check);
    // The same through McpOAuth.open (the store option), before any connection.
    await assert.rejects(McpOAuth.open(REDIS_SERVER_URL, { store: c.url }), check);
  }
});

test('redis_keys.json: the keys of a name, the manifest, the associated data name', () => {
  for (const c of REDIS_KEYS.cases) {
    const k = keysFor(c.prefix, userNamespace(c.user ?? undefined));
    const label = `${c.user} ${c.name}`;
    assert.equal(k.record(c.name), c.record, label);
    assert.equal(k.lock(c.name), c.lock, label);
    assert.equal(k.keyFile(c.name), c.key_file, label);
    assert.equal(k.manifest(), c.manifest, label);
    assert.equal(k.aadName(c.name), c.aad_name, label);
    assert.equal(k.nameOf(c.record, 'r'), c.name, label);
  }
});

test('redis_keys.json: bad users are usage errors (userNamespace, McpOAuth.open with the file store and with a Redis URL)', async () => {
  for (const user of REDIS_KEYS.bad_users) {
    const bad = (e) => e instanceof McpOAuthError && e.kind === 'invalid-config' && /user/.test(e.message);
    assert.throws(() => userNamespace(user), bad, user);
    await assert.rejects(McpOAuth.open(REDIS_SERVER_URL, { user, home: '/nonexistent/mcp-oauth-test' }), bad, user);
    await assert.rejects(McpOAuth.open(REDIS_SERVER_URL, { user, store: 'redis://127.0.0.1:1' }), bad, user);
  }
  assert.equal(userNamespace(undefined), '');
  assert.equal(userNamespace(''), '');
});

test('the store option wins over MCP_OAUTH_STORE; an empty option means the file store', async () => {
  const saved = process.env.MCP_OAUTH_STORE;
  process.env.MCP_OAUTH_STORE = 'redis://u:envsecret@h?bogus=1';
  try {
    await assert.rejects(McpOAuth.open(REDIS_SERVER_URL, { home: '/nonexistent/x' }), (e) => e.kind === 'invalid-config' && /parameter/.test(e.message) && !e.message.includes('envsecret'));
    await assert.rejects(McpOAuth.open(REDIS_SERVER_URL, { store: 'redis://h?prefix=*' }), (e) => e.kind === 'invalid-config' && /prefix/.test(e.message));
    assert.equal(storeSpec({ store: '' }), '');
    assert.equal(storeSpec({}), 'redis://u:envsecret@h?bogus=1');
  } finally {
    if (saved === undefined) delete process.env.MCP_OAUTH_STORE;
    else process.env.MCP_OAUTH_STORE = saved;
  }
});

// The silent fast path (fast_path.json): the rule over each case's records,
// through a plain map, the file store and the sealed store. McpOAuth itself
// runs every case in fast-path.test.mjs.
const FAST = vectors('fast_path.json');
const served = (t) => t && { access_token: t.token, expires_at: Number(t.expiresAt), refresh_at: Number(t.refreshAt), scopes: t.scopes };
/** The rule's answer in the vectors' terms: { serve, nothing_stored }. */
const answer = (t) => (t === fast.NOTHING_STORED ? { serve: null, nothing_stored: true } : { serve: served(t), nothing_stored: false });
const wanted = (c) => ({ serve: c.serve, nothing_stored: c.nothing_stored });
const bytesOf = (text) => new TextEncoder().encode(text);

test('fast_path.json: the record keys (SHA-256 in JS, as the engine derives them)', () => {
  for (let n = 0; n < 200; n += 7) {
    const b = Buffer.alloc(n, n % 251);
    assert.equal(fast.sha256Hex(b), createHash('sha256').update(b).digest('hex'), `${n} bytes`);
  }
  assert.equal(fast.sha256Hex(new Uint8Array()), createHash('sha256').digest('hex'));
  for (const c of FAST.cases) {
    const want = new Set(Object.keys(c.records));
    const keys = [
      fast.recordKey('binding', [c.server_url]),
      fast.recordKey('tokens', ['https://mcp.example.com/mcp', 'https://auth.example.com']),
      fast.recordKey('metadata', ['https://auth.example.com']),
    ];
    for (const k of want) assert.ok(keys.includes(k), `${c.name}: ${k}`);
  }
  // Parts are separated by a 0 byte and hashed as UTF-8.
  const h = createHash('sha256').update('tokens').update(Buffer.from([0])).update('https://é.example/').update(Buffer.from([0])).update('i');
  assert.equal(fast.recordKey('tokens', ['https://é.example/', 'i']), `tokens-${h.digest('hex').slice(0, 40)}`);
});

test('fast_path.json: every case served exactly as the vectors say (a map, the file store, the sealed store)', async () => {
  assert.ok(FAST.cases.filter((c) => c.nothing_stored).length >= 2);
  const key = keyFromBase64(vectors('sealed_records.json').key_base64);
  for (const c of FAST.cases) {
    const map = { get: async (k) => (k in c.records ? bytesOf(c.records[k]) : null) };
    assert.deepEqual(answer(await fast.fastToken(map, c.server_url, c.now, FAST.skew_ms)), wanted(c), c.name);
    const plain = await home();
    const sealedDir = await home();
    for (const [k, text] of Object.entries(c.records)) {
      await fs.writeFile(path.join(plain, `${k}.json`), text, { mode: 0o600 });
      await fs.writeFile(path.join(sealedDir, `${k}.json`), sealWithNonce(key, 'record', k, Buffer.from(text), Buffer.alloc(12, 1)), { mode: 0o600 });
    }
    const stores = [new FileStore(plain, () => {}), new SealedStore(new FileStore(sealedDir, () => {}), key)];
    for (const store of stores) {
      const got = answer(await fast.fastToken(store, c.server_url, c.now, FAST.skew_ms));
      // A file store reads a record that is not JSON as absent (it warns),
      // and hands the engine the same: nothing stored, through that store.
      let hidden = false;
      for (const k of Object.keys(c.records)) hidden ||= (await store.get(k)) == null;
      const want = got.nothing_stored && hidden ? { serve: null, nothing_stored: true } : wanted(c);
      assert.deepEqual(got, want, `${c.name} (${store.describe().mode})`);
    }
  }
});

test('fast_path.json: the skew is the instance\'s, and anything odd goes to the engine', async () => {
  const c = FAST.cases.find((x) => x.name.includes('60 s before expiry'));
  const map = (records) => ({ get: async (k) => (k in records ? bytesOf(records[k]) : null) });
  assert.equal(await fast.fastToken(map(c.records), c.server_url, c.now, FAST.skew_ms), null);
  const t = await fast.fastToken(map(c.records), c.server_url, c.now, 0);
  assert.equal(Number(t.refreshAt), Number(t.expiresAt), 'no margin with no skew');
  const fresh = FAST.cases.find((x) => x.name === 'fresh bearer token');
  const tokensKey = Object.keys(fresh.records).find((k) => k.startsWith('tokens-'));
  const edit = (from, to) => map({ ...fresh.records, [tokensKey]: fresh.records[tokensKey].replace(from, to) });
  // Numbers the engine does not read as u64, strings it cannot hold, fields of the wrong type, a store that throws.
  for (const [from, to] of [
    ['"expires_at":1800003600000', '"expires_at":1800003600000.0'],
    ['"expires_at":1800003600000', '"expires_at":1.8000036e12'],
    ['"expires_at":1800003600000', '"expires_at":18000036000000000000'],
    ['"expires_at":1800003600000', '"expires_at":"1800003600000"'],
    ['"access_token":"at-1"', '"access_token":"at-\\ud800"'],
    ['"client_id":"client-1",', ''],
    ['"scope":"mcp:tools offline_access"', '"scope":["mcp:tools"]'],
  ]) {
    assert.equal(await fast.fastToken(edit(from, to), fresh.server_url, fresh.now, FAST.skew_ms), null, to);
  }
  assert.equal(await fast.fastToken({ get: async () => { throw new Error('down'); } }, fresh.server_url, fresh.now, FAST.skew_ms), null);
  assert.deepEqual(served(await fast.fastToken(edit('"scope":"mcp:tools offline_access"', '"scope":" a  a b "'), fresh.server_url, fresh.now, FAST.skew_ms)).scopes, ['a', 'b']);
});
