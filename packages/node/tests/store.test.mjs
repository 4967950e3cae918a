// The store seam: one contract suite run against every implementation (the
// plain file store, the sealed store over it with a key given by the
// program, what openStore gives for a key file and for plain files, and the
// Redis store sealed and plain on a real redis-server), then what the sealed
// store does with tampered, moved and truncated files.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FileStore, SealedStore, openStore } from 'mcp-oauth';
import { tempHome, removeHome, filesContaining as filesWith, startRedis } from './helpers.mjs';

const { openRedisStore, parseStoreUrl } = await import(path.join(process.cwd(), 'node_modules', 'mcp-oauth', 'dist', 'lazy.js'));

const homes = [];
const opened = []; // Redis stores, closed at the end
let redis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await redis?.remove();
  await Promise.all(homes.map(removeHome));
});
async function home() {
  const h = await tempHome();
  homes.push(h);
  return h;
}

const enc = (s) => new TextEncoder().encode(s);
const dec = (b) => (b === null ? null : new TextDecoder().decode(b));
const SECRET = 'contract-secret-7f3a9c';
const record = (n) => enc(JSON.stringify({ v: 1, record: { access_token: `${SECRET}-${n}` } }));

/** A key file for MCP_OAUTH_STORE_KEY_FILE (0600). */
async function keyFile(key = randomBytes(32)) {
  const file = path.join(await home(), 'store.key');
  await fs.writeFile(file, `${key.toString('base64')}\n`, { mode: 0o600 });
  return { file, key };
}

// What the suite asks of a file store's directory: no lock left, another
// store over the same files (the same id), and where a secret is in the raw bytes.
const files = {
  locksLeft: async (dir) => fs.readdir(path.join(dir, 'locks')),
  again: async (dir, impl) => (impl.sealed ? new SealedStore(new FileStore(dir), randomBytes(32)) : impl.make(dir)),
  rawHits: async (dir, needle) => (await filesWith(dir, needle)).map((f) => path.basename(f)).sort(),
  plainHits: ['dpop-ss.pem', 'tokens-s.json'],
};

// A Redis store per temp directory: its own key prefix, derived from the directory's name.
const redisKeyFiles = new Map();
const prefixOf = (dir) => `t-${path.basename(path.dirname(dir))}:`;
async function redisStore(dir, secrets) {
  if (secrets !== 'file' && !redisKeyFiles.has(dir)) redisKeyFiles.set(dir, (await keyFile()).file);
  const url = parseStoreUrl(redis.url(`?prefix=${prefixOf(dir)}`));
  const env = secrets === 'file' ? {} : { MCP_OAUTH_STORE_KEY_FILE: redisKeyFiles.get(dir) };
  const store = await openRedisStore({ url, user: 'contract', secrets, env });
  opened.push(store);
  return store;
}
const redisKeys = (dir, kind) => redis.cli(['--scan', '--pattern', `${prefixOf(dir)}*${kind}`]).split('\n').filter(Boolean);
const onRedis = {
  locksLeft: async (dir) => redisKeys(dir, ':lock'),
  again: async (dir, impl) => impl.make(dir),
  async rawHits(dir, needle) {
    const hits = [];
    for (const k of redisKeys(dir, '')) {
      const raw = k.endsWith(':r') ? redis.cli(['hget', k, 'd']) : k.endsWith(':pem') ? redis.cli(['get', k]) : '';
      if (raw.includes(needle)) hits.push(k.slice(prefixOf(dir).length));
    }
    return hits.sort();
  },
  plainHits: ['{contract/dpop-ss}:pem', '{contract/tokens-s}:r'],
};

const IMPLEMENTATIONS = {
  'FileStore (plain files)': { sealed: false, ...files, make: async (dir) => new FileStore(dir) },
  'SealedStore over a FileStore (a key given by the program)': { sealed: true, ...files, make: async (dir) => new SealedStore(new FileStore(dir), randomBytes(32)) },
  'openStore with MCP_OAUTH_STORE_KEY_FILE (sealed)': {
    sealed: true,
    ...files,
    make: async (dir) => openStore({ home: dir, secrets: 'auto', env: { MCP_OAUTH_STORE_KEY_FILE: (await keyFile()).file } }),
  },
  "openStore with secrets 'file' (plain, store.json)": { sealed: false, ...files, make: async (dir) => openStore({ home: dir, secrets: 'file', env: {} }) },
  'Redis store with MCP_OAUTH_STORE_KEY_FILE (sealed, a user)': { sealed: true, ...onRedis, make: (dir) => redisStore(dir, 'auto') },
  "Redis store with secrets 'file' (plain records, a user)": { sealed: false, ...onRedis, make: (dir) => redisStore(dir, 'file') },
};

for (const [name, impl] of Object.entries(IMPLEMENTATIONS)) {
  test(`contract: ${name}`, async (t) => {
    const dir = path.join(await home(), 'store');
    const store = await impl.make(dir);

    await t.test('records: absent, set, get, overwrite, delete (absent is fine)', async () => {
      assert.equal(await store.get('tokens-a'), null);
      await store.set('tokens-a', record(1));
      assert.equal(dec(await store.get('tokens-a')), dec(record(1)));
      await store.set('tokens-a', record(2));
      assert.equal(dec(await store.get('tokens-a')), dec(record(2)));
      await store.delete('tokens-a');
      await store.delete('tokens-a');
      assert.equal(await store.get('tokens-a'), null);
    });

    await t.test('keys that could escape the store are refused', async () => {
      for (const bad of ['../x', 'a/b', '', '.hidden', 'a.json', 'x\0y', '/etc/passwd', 'a'.repeat(129)]) {
        await assert.rejects(store.set(bad, record(0)), /refused storage key/, bad);
        await assert.rejects(async () => store.get(bad), /refused storage key/, bad);
        await assert.rejects(async () => store.putKeyOnce(bad, 'x'), /refused storage key/, bad);
      }
    });

    await t.test('list(prefix): record keys only, sorted (no key files, no store.json, no temp files)', async () => {
      for (const k of ['tokens-b', 'binding-c', 'tokens-a']) await store.set(k, record(k));
      await store.putKeyOnce('dpop-0a', 'key text');
      assert.deepEqual(await store.list('tokens-'), ['tokens-a', 'tokens-b']);
      assert.deepEqual(await store.list(''), ['binding-c', 'tokens-a', 'tokens-b']);
      assert.deepEqual(await store.list('nothing-'), []);
      assert.deepEqual(await store.listKeys(), ['dpop-0a']);
      for (const k of ['tokens-b', 'binding-c', 'tokens-a']) await store.delete(k);
      await store.deleteKey('dpop-0a');
      assert.deepEqual(await store.list(''), []);
    });

    await t.test('key files: written once, the first writer wins (also under a race), removable', async () => {
      assert.equal(await store.getKey('dpop-aa'), null);
      assert.equal(await store.putKeyOnce('dpop-aa', 'first'), 'first');
      assert.equal(await store.putKeyOnce('dpop-aa', 'second'), 'first', 'never replaced');
      assert.equal(await store.getKey('dpop-aa'), 'first');
      const raced = await Promise.all(['x', 'y', 'z'].map((v) => store.putKeyOnce('dpop-bb', v)));
      assert.equal(new Set(raced).size, 1, `all agree: ${raced}`);
      assert.equal(await store.getKey('dpop-bb'), raced[0]);
      await store.deleteKey('dpop-aa');
      await store.deleteKey('dpop-aa');
      assert.equal(await store.getKey('dpop-aa'), null);
      await store.deleteKey('dpop-bb');
    });

    await t.test('lock: exclusive, bounded, released once by its handle; withLock releases on a throw', async () => {
      const held = await store.lock('tokens-l');
      await assert.rejects(store.lock('tokens-l', 150), /still held/);
      let got = false;
      const waiting = store.lock('tokens-l').then((h) => ((got = true), h));
      await new Promise((r) => setTimeout(r, 80));
      assert.equal(got, false, 'a second holder waits');
      await held.release();
      await held.release(); // idempotent: the next holder keeps its lock
      const next = await waiting;
      await next.release();
      await assert.rejects(store.withLock('tokens-l', async () => Promise.reject(new Error('inside'))), /inside/);
      assert.equal(await store.withLock('tokens-l', async () => 42), 42, 'free again after the throw');
      assert.deepEqual(await impl.locksLeft(dir), []);
    });

    await t.test('id is stable per store; describe() says where secrets live; nothing unreadable', async () => {
      assert.equal(typeof store.id, 'string');
      assert.equal((await impl.again(dir, impl)).id, store.id, 'the same data, the same id');
      const d = store.describe();
      assert.equal(d.mode, impl.sealed ? 'sealed' : 'plain');
      assert.equal(typeof d.where, 'string');
      assert.equal(await store.unreadable(), 0);
    });

    await t.test(impl.sealed ? 'sealed: no secret in any file of the store' : 'plain: records are the bytes given', async () => {
      await store.set('tokens-s', record('s'));
      await store.putKeyOnce('dpop-ss', `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`);
      const hits = await impl.rawHits(dir, SECRET);
      assert.deepEqual(hits, impl.sealed ? [] : impl.plainHits);
      assert.match(await store.getKey('dpop-ss'), new RegExp(SECRET));
    });
  });
}

test('sealed store: a tampered, moved or truncated file reads as absent (never a throw); status counts it', async () => {
  const dir = await home();
  const store = new SealedStore(new FileStore(dir, () => {}), randomBytes(32));
  await store.set('tokens-a', record('a'));
  await store.putKeyOnce('dpop-aa', 'the key');
  const file = path.join(dir, 'tokens-a.json');
  const good = await fs.readFile(file, 'utf8');
  const env = JSON.parse(good);

  // One bit of the ciphertext flipped.
  const ct = Buffer.from(env.ct, 'base64url');
  ct[3] ^= 0x01;
  await fs.writeFile(file, JSON.stringify({ ...env, ct: ct.toString('base64url') }));
  assert.equal(await store.get('tokens-a'), null);
  // Moved over another record's name.
  await fs.writeFile(path.join(dir, 'tokens-b.json'), good);
  assert.equal(await store.get('tokens-b'), null);
  // A record copied over a key file's name.
  await fs.writeFile(path.join(dir, 'dpop-bb.pem'), good);
  assert.equal(await store.getKey('dpop-bb'), null);
  // Truncated, and empty.
  await fs.writeFile(file, good.slice(0, good.length - 10));
  assert.equal(await store.get('tokens-a'), null);
  await fs.writeFile(file, '');
  assert.equal(await store.get('tokens-a'), null);
  // A plain record in a sealed store.
  await fs.writeFile(file, dec(record('plain')));
  assert.equal(await store.get('tokens-a'), null);
  assert.equal(await store.unreadable(), 3, 'the plain record, the moved one, the record over a key file');
  // Put back, it opens again; a key file that does not open is refused, named and left.
  await fs.writeFile(file, good);
  assert.equal(dec(await store.get('tokens-a')), dec(record('a')));
  await assert.rejects(store.putKeyOnce('dpop-bb', 'new'), (e) => e.message.includes(path.join(dir, 'dpop-bb.pem')) && /left as it is/.test(e.message));
  assert.equal(await fs.readFile(path.join(dir, 'dpop-bb.pem'), 'utf8'), good);
});

test('sealed store: a key file sealed by a lost store key is replaced by the next key made (under the store lock)', async () => {
  const dir = await home();
  const old = new SealedStore(new FileStore(dir), randomBytes(32));
  await old.putKeyOnce('dpop-cc', 'old key');
  const fresh = new SealedStore(new FileStore(dir), randomBytes(32));
  assert.equal(await fresh.getKey('dpop-cc'), null, 'absent: it does not open');
  assert.equal(await fresh.unreadable(), 1);
  const raced = await Promise.all(['a', 'b', 'c'].map((v) => fresh.putKeyOnce('dpop-cc', v)));
  assert.equal(new Set(raced).size, 1, `one key for all: ${raced}`);
  assert.equal(await fresh.getKey('dpop-cc'), raced[0]);
  assert.equal(await fresh.unreadable(), 0);
  assert.deepEqual(await fs.readdir(path.join(dir, 'locks')), []);
});

test('openStore: the key file must be a 0600 regular file holding a 32-byte base64 key (named, never shown)', async () => {
  const { file, key } = await keyFile();
  const open = (keyFile, dir) => openStore({ home: dir, secrets: 'auto', env: { MCP_OAUTH_STORE_KEY_FILE: keyFile } });
  const refused = (re) => (e) => e.name === 'McpOAuthError' && e.kind === 'store-key' && e.message.includes('MCP_OAUTH_STORE_KEY_FILE') && re.test(e.message) && !e.message.includes(key.toString('base64').slice(0, 20));
  const dir = path.join(await home(), 'store');
  await fs.chmod(file, 0o644);
  await assert.rejects(open(file, dir), refused(/readable by others \(mode 644\); run: chmod 600/));
  await fs.chmod(file, 0o640);
  await assert.rejects(open(file, dir), refused(/readable by others/));
  await assert.rejects(open(path.dirname(file), dir), refused(/not a regular file/));
  await assert.rejects(open(`${file}.missing`, dir), refused(/does not exist/));
  await fs.chmod(file, 0o600);
  for (const bad of ['not base64 at all', randomBytes(16).toString('base64'), randomBytes(33).toString('base64'), '']) {
    await fs.writeFile(file, bad);
    await assert.rejects(open(file, dir), refused(/does not hold a 32-byte key/));
  }
  await assert.rejects(fs.stat(dir), { code: 'ENOENT' }, 'nothing written for a refused key file');
  // Padding and the newline are optional.
  await fs.writeFile(file, key.toString('base64').replace(/=+$/, ''));
  const store = await open(file, dir);
  assert.equal(store.describe().mode, 'sealed');
  assert.equal(store.describe().where, `the key file ${file}`);
  assert.deepEqual(JSON.parse(await fs.readFile(path.join(dir, 'store.json'), 'utf8')), { format: 1, mode: 'sealed', key_id: store.keyId });
});
