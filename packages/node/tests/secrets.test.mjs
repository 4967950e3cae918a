// Where secrets live (docs/store.md): the choice pinned in store.json, the
// errors that name the converting command, `auto` without a keychain (plain
// files, one line per process), the keychain bounded to 2 s, the key file,
// the migration of a store from before, a lost or changed key, a sign-in
// that leaves no token in any file, logout removing the DPoP key file, and
// (MCP_OAUTH_TEST_KEYCHAIN=1, inside a session with a Secret Service) the
// real keychain. Processes whose environment matters run as children.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { McpOAuth, McpOAuthError, FileStore, SealedStore, openStore } from 'mcp-oauth';
import { startDemo, headlessBrowser, noBrowser, tempHome, removeHome, runNode, filesContaining, isAsRequest, pingStatus } from './helpers.mjs';

// Internals, by file (the package's exports map covers only the public API).
const { dpopKeyId } = await import(path.join(process.cwd(), 'node_modules', 'mcp-oauth', 'dist', 'lazy.js'));

const URL_ = 'https://mcp.example.com/mcp'; // opening makes no request
// Installed with the package unless npm could not fetch it (offline): then the
// keychain is unavailable for that reason first, as on a platform without it.
const HAS_KEYRING = (() => {
  try {
    createRequire(path.join(process.cwd(), 'x.js')).resolve('@napi-rs/keyring');
    return true;
  } catch {
    return false;
  }
})();
const NO_BUS = HAS_KEYRING ? 'no session bus \\(DBUS_SESSION_BUS_ADDRESS is not set\\)' : 'the optional package @napi-rs/keyring is not installed';
const needsKeyring = { skip: !HAS_KEYRING && '@napi-rs/keyring is not installed' };
let demo;
const homes = [];
before(async () => {
  demo = await startDemo();
});
after(async () => {
  demo?.stop();
  await Promise.all(homes.map(removeHome));
});
async function home() {
  const h = await tempHome();
  homes.push(h);
  return h;
}
async function keyFile(key = randomBytes(32)) {
  const file = path.join(await home(), 'store.key');
  await fs.writeFile(file, `${key.toString('base64')}\n`, { mode: 0o600 });
  return { file, key };
}
const lines = (text) => text.split('\n').filter(Boolean);
const readJson = async (file) => JSON.parse(await fs.readFile(file, 'utf8'));

/** Runs `fn` with MCP_OAUTH_* variables set for McpOAuth.open in this process, then puts them back. */
async function withEnv(vars, fn) {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

// A child that counts the keychain helpers it starts (child_process.spawn of
// keychain-child.cjs), opens each home given in argv and prints what it saw.
const OPEN_EACH = `
import { syncBuiltinESMExports, createRequire } from 'node:module';
const cp = createRequire(import.meta.url)('node:child_process');
const spawn = cp.spawn;
let helpers = 0;
cp.spawn = (cmd, args, ...rest) => { if (String(args?.[0]).endsWith('keychain-child.cjs')) helpers++; return spawn(cmd, args, ...rest); };
syncBuiltinESMExports();
const { McpOAuth, McpOAuthError } = await import('mcp-oauth');
const out = [];
for (const home of process.argv.slice(1)) {
  const t0 = Date.now();
  try {
    const auth = await McpOAuth.open('${URL_}', { home, ...(process.env.SECRETS_OPTION ? { secrets: process.env.SECRETS_OPTION } : {}) });
    out.push({ ok: true, secrets: (await auth.status()).secrets, ms: Date.now() - t0 });
  } catch (e) {
    out.push({ ok: false, typed: e instanceof McpOAuthError, kind: e.kind, message: e.message, ms: Date.now() - t0 });
  }
}
process.stdout.write(JSON.stringify({ out, helpers }));
`;
async function openEach(homesToOpen, env = {}) {
  const r = await runNode(OPEN_EACH, env, homesToOpen);
  assert.equal(r.code, 0, r.stderr);
  return { ...JSON.parse(r.stdout), stderr: r.stderr };
}

test('file on a sealed store, keychain on a plain one: errors naming the command that converts it', async () => {
  const sealedHome = path.join(await home(), 'store');
  const { file } = await keyFile();
  await openStore({ home: sealedHome, secrets: 'auto', env: { MCP_OAUTH_STORE_KEY_FILE: file } });
  await assert.rejects(McpOAuth.open(URL_, { home: sealedHome, secrets: 'file' }), (e) => e instanceof McpOAuthError && e.kind === 'store-mode' && e.message.includes('`mcp-oauth store unseal`'));
  const plainHome = await home();
  await openStore({ home: plainHome, secrets: 'file', env: {} });
  assert.deepEqual(await readJson(path.join(plainHome, 'store.json')), { format: 1, mode: 'plain' });
  await assert.rejects(McpOAuth.open(URL_, { home: plainHome, secrets: 'keychain' }), (e) => e instanceof McpOAuthError && e.kind === 'store-mode' && e.message.includes('`mcp-oauth store seal`'));
  await assert.rejects(McpOAuth.open(URL_, { home: plainHome, secrets: 'sometimes' }), { kind: 'invalid-config' });
  // The pinned mode wins over the choice in auto: the plain store stays plain.
  assert.equal((await (await McpOAuth.open(URL_, { home: plainHome, secrets: 'auto' })).status()).secrets.mode, 'plain');
  // Through the environment too.
  const r = await openEach([sealedHome], { MCP_OAUTH_SECRETS: 'file' });
  assert.equal(r.out[0].kind, 'store-mode', JSON.stringify(r.out));
  assert.match(r.out[0].message, /mcp-oauth store unseal/);
});

test('keychain with no keychain: a typed error and nothing written (no store.json, no records)', async () => {
  const parent = await home();
  const fresh = path.join(parent, 'not-made-yet');
  const empty = await home();
  for (const env of [{ SECRETS_OPTION: 'keychain' }, { MCP_OAUTH_SECRETS: 'keychain' }]) {
    const r = await openEach([fresh, empty], env);
    for (const o of r.out) {
      assert.equal(o.ok, false, JSON.stringify(o));
      assert.equal(o.typed, true);
      assert.equal(o.kind, 'keychain-unavailable');
      assert.match(o.message, new RegExp(`no keychain to keep the store key in \\(${NO_BUS}`));
      assert.match(o.message, /nothing was written/);
      assert.match(o.message, /MCP_OAUTH_STORE_KEY_FILE/);
    }
    assert.equal(r.stderr, '', 'no notice: an error instead');
    assert.equal(r.helpers, 0, 'no session bus: no keychain helper started');
    assert.deepEqual(await fs.readdir(parent), [], 'the store directory was not even made');
    assert.deepEqual(await fs.readdir(empty), []);
  }
  // A sealed store whose keychain cannot be reached: an error too, never plain files.
  const sealedHome = await home();
  await fs.writeFile(path.join(sealedHome, 'store.json'), '{"format":1,"mode":"sealed","key_id":"630dcd2966c43366"}', { mode: 0o600 });
  const r = await openEach([sealedHome]);
  assert.equal(r.out[0].kind, 'keychain-unavailable', JSON.stringify(r.out));
  assert.match(r.out[0].message, /is sealed and its key is kept in the keychain \(Secret Service\), which cannot be reached/);
  assert.deepEqual(await fs.readdir(sealedHome), ['store.json']);
});

test('auto with no keychain: plain files, and exactly one line on stderr per process saying why and how to silence it', async () => {
  const fresh = await Promise.all([home(), home(), home()]);
  const first = await openEach(fresh);
  for (const o of first.out) assert.deepEqual(o.secrets, { mode: 'plain', where: `plain files in ${fresh[first.out.indexOf(o)]}`, unreadable: 0 });
  assert.equal(lines(first.stderr).length, 1, first.stderr);
  assert.match(first.stderr, new RegExp(`^mcp-oauth: keeping secrets in plain files under .* \\(${NO_BUS}\\); set MCP_OAUTH_SECRETS=file to silence this\n$`));
  assert.equal(first.helpers, 0);
  for (const h of fresh) assert.deepEqual(await readJson(path.join(h, 'store.json')), { format: 1, mode: 'plain' });
  // Pinned: the next process follows store.json and says nothing.
  const again = await openEach(fresh);
  assert.equal(again.stderr, '');
  assert.equal(again.helpers, 0, 'a plain store never looks for a keychain');
  // MCP_OAUTH_SECRETS=file: silent.
  const quiet = await openEach([await home()], { MCP_OAUTH_SECRETS: 'file' });
  assert.equal(quiet.stderr, '');
  assert.equal(quiet.out[0].secrets.mode, 'plain');
  if (!HAS_KEYRING) return;
  // A session bus that is not there: the helper is tried (once per store) and fails fast.
  const nobus = await openEach([await home(), await home()], { DBUS_SESSION_BUS_ADDRESS: `unix:path=${path.join(os.tmpdir(), `no-bus-${process.pid}`)}` });
  assert.equal(nobus.helpers, 2);
  assert.deepEqual(nobus.out.map((o) => o.secrets?.mode), ['plain', 'plain'], JSON.stringify(nobus.out));
  assert.equal(lines(nobus.stderr).length, 1, nobus.stderr);
  assert.match(nobus.stderr, /keeping secrets in plain files under .* \(no session bus where DBUS_SESSION_BUS_ADDRESS says\); set MCP_OAUTH_SECRETS=file/);
});

test('a keychain that never answers costs at most 2 s: auto falls back, keychain fails, the process exits', needsKeyring, async () => {
  // A "session bus" that accepts connections and never says a word.
  const dir = await home();
  const sock = path.join(dir, 'bus');
  const silent = new Set();
  const server = net.createServer((c) => {
    silent.add(c);
    c.on('error', () => {});
    c.on('close', () => silent.delete(c));
  });
  await new Promise((r) => server.listen(sock, r));
  try {
    const env = { DBUS_SESSION_BUS_ADDRESS: `unix:path=${sock}` };
    const t0 = Date.now();
    const auto = await openEach([await home()], env);
    assert.ok(Date.now() - t0 < 10_000, `the process ended after ${Date.now() - t0} ms`);
    assert.equal(auto.out[0].secrets?.mode, 'plain', JSON.stringify(auto.out));
    assert.ok(auto.out[0].ms >= 1900 && auto.out[0].ms < 6000, `${auto.out[0].ms} ms`);
    assert.match(auto.stderr, /the keychain did not answer within 2 s/);
    const strict = await openEach([await home()], { ...env, SECRETS_OPTION: 'keychain' });
    assert.equal(strict.out[0].kind, 'keychain-unavailable', JSON.stringify(strict.out));
    assert.match(strict.out[0].message, /did not answer within 2 s/);
  } finally {
    for (const c of silent) c.destroy();
    server.close();
  }
});

test('a key file store never starts the keychain helper; status says where the key is', async () => {
  const { file } = await keyFile();
  const h = await home();
  const r = await openEach([h], { MCP_OAUTH_STORE_KEY_FILE: file, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' });
  assert.equal(r.helpers, 0);
  assert.equal(r.stderr, '');
  assert.deepEqual(r.out[0].secrets, { mode: 'sealed', where: `the key file ${file}`, unreadable: 0 });
  // A key file readable by others is refused, with what to do.
  await fs.chmod(file, 0o644);
  const refused = await openEach([await home()], { MCP_OAUTH_STORE_KEY_FILE: file });
  assert.equal(refused.out[0].kind, 'store-key');
  assert.match(refused.out[0].message, /readable by others \(mode 644\); run: chmod 600/);
});

test('migration: a plain store from before store.json is sealed in place on first use (announced once), and still works', async () => {
  // A plain sign-in, then store.json removed: a store as an older version left it.
  const h = await home();
  const browser = headlessBrowser();
  const plain = await McpOAuth.open(demo.url, { home: h, openBrowser: browser.open, secrets: 'file' });
  const token = await plain.token();
  await fs.rm(path.join(h, 'store.json'));
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  await fs.writeFile(path.join(h, 'dpop-0123.pem'), pem, { mode: 0o600 });
  const before = (await fs.readdir(h)).filter((n) => n.endsWith('.json') || n.endsWith('.pem')).sort();
  assert.ok(before.some((n) => n.startsWith('tokens-')), String(before));
  assert.notDeepEqual(await filesContaining(h, token), [], 'plain: the token is in a file');

  const { file, key } = await keyFile();
  const r = await openEach([h], { MCP_OAUTH_STORE_KEY_FILE: file });
  assert.equal(r.out[0].ok, true, JSON.stringify(r.out));
  assert.equal(lines(r.stderr).length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^mcp-oauth: sealed ${before.length} records of .* with a store key kept in the key file `));
  assert.deepEqual(await filesContaining(h, token), [], 'no file holds the token now');
  assert.deepEqual(await filesContaining(h, pem.split('\n')[1]), [], 'nor the private key');
  assert.deepEqual((await fs.readdir(h)).filter((n) => n.endsWith('.json') || n.endsWith('.pem')).sort(), [...before, 'store.json'].sort(), 'the same names');
  const store = new SealedStore(new FileStore(h), key);
  assert.deepEqual(await readJson(path.join(h, 'store.json')), { format: 1, mode: 'sealed', key_id: store.keyId });
  assert.equal(await store.getKey('dpop-0123'), pem);
  // Still readable: the token, with no request to the authorization server.
  const from = (await demo.log()).requests.length;
  const sealed = await withEnv({ MCP_OAUTH_STORE_KEY_FILE: file, MCP_OAUTH_SECRETS: 'auto' }, () => McpOAuth.open(demo.url, { home: h, openBrowser: noBrowser() }));
  assert.equal(await sealed.token(), token);
  assert.deepEqual((await demo.requestsSince(from)).filter(isAsRequest), []);
  // Once: the next process finds it sealed and says nothing.
  const again = await openEach([h], { MCP_OAUTH_STORE_KEY_FILE: file });
  assert.equal(again.stderr, '');
  assert.equal(browser.opened, 1);
});

test('a sign-in with MCP_OAUTH_STORE_KEY_FILE leaves no token in any file; a lost key reads as absent, then a new sign-in works', async () => {
  const h = await home();
  const k1 = await keyFile();
  const browser = headlessBrowser();
  const auth = await withEnv({ MCP_OAUTH_STORE_KEY_FILE: k1.file, MCP_OAUTH_SECRETS: 'auto' }, () => McpOAuth.open(demo.url, { home: h, openBrowser: browser.open }));
  const token = await auth.token();
  assert.equal(await pingStatus(demo.url, token), 200);
  const st = await auth.status();
  assert.deepEqual(st.secrets, { mode: 'sealed', where: `the key file ${k1.file}`, unreadable: 0 });
  // Every secret the AS issued, read back through the key: in no file.
  const store = new SealedStore(new FileStore(h), k1.key);
  const [tokensKey] = await store.list('tokens-');
  const { record } = JSON.parse(new TextDecoder().decode(await store.get(tokensKey)));
  const secrets = [record.tokens.access_token, record.tokens.refresh_token].filter(Boolean);
  assert.equal(record.tokens.access_token, token);
  assert.ok(record.tokens.refresh_token, 'the demo AS issues a refresh token');
  for (const s of secrets) assert.deepEqual(await filesContaining(h, s), [], 'a secret in a file');
  for (const name of await fs.readdir(h)) {
    if (name.endsWith('.json') && name !== 'store.json') assert.match(await fs.readFile(path.join(h, name), 'utf8'), /^\{"sealed":1,"kid":"[0-9a-f]{16}","nonce":"/, name);
  }
  // A new process: the same token, no AS request.
  const from = (await demo.log()).requests.length;
  const warm = await withEnv({ MCP_OAUTH_STORE_KEY_FILE: k1.file, MCP_OAUTH_SECRETS: 'auto' }, () => McpOAuth.open(demo.url, { home: h, openBrowser: noBrowser() }));
  assert.equal(await warm.token(), token);
  assert.deepEqual((await demo.requestsSince(from)).filter(isAsRequest), []);

  // The key changed (the file replaced): records read as absent, never a crash; status counts them.
  const k2 = await keyFile();
  const lost = await runNode(
    `const { McpOAuth } = await import('mcp-oauth');
     const auth = await McpOAuth.open(process.argv[1], { home: process.argv[2], interactive: false });
     const st = await auth.status();
     let kind; try { await auth.token(); } catch (e) { kind = e.kind; }
     process.stdout.write(JSON.stringify({ st, kind }));`,
    { MCP_OAUTH_STORE_KEY_FILE: k2.file },
    [demo.url, h],
  );
  assert.equal(lost.code, 0, lost.stderr);
  const { st: lostStatus, kind } = JSON.parse(lost.stdout);
  assert.equal(kind, 'authorization-required', 'absent: sign in again');
  assert.equal(lostStatus.hasToken, false);
  assert.ok(lostStatus.secrets.unreadable >= 2, JSON.stringify(lostStatus.secrets));
  assert.match(lostStatus.secrets.message, /records cannot be read with the store key from the key file .*; sign in again/);
  assert.equal(lines(lost.stderr).length, 1, lost.stderr);
  assert.match(lost.stderr, /is not the one this store was sealed with: \d+ records cannot be read; sign in again/);
  const k2store = new SealedStore(new FileStore(h), k2.key);
  assert.equal((await readJson(path.join(h, 'store.json'))).key_id, k2store.keyId, 'store.json names the key in use');
  // A new sign-in with the new key replaces the records.
  const again = await withEnv({ MCP_OAUTH_STORE_KEY_FILE: k2.file, MCP_OAUTH_SECRETS: 'auto' }, () => McpOAuth.open(demo.url, { home: h, openBrowser: browser.open }));
  const token2 = await again.token();
  assert.notEqual(token2, token);
  assert.equal(await pingStatus(demo.url, token2), 200);
  const after = await again.status();
  assert.equal(after.hasToken, true);
  assert.ok(after.secrets.unreadable < lostStatus.secrets.unreadable, `${after.secrets.unreadable} unreadable after a new sign-in`);
  assert.equal(browser.opened, 2);
});

test('logout removes the tokens and the DPoP key file of that server (the engine\'s key id), nothing else', async () => {
  const h = await home();
  const { file, key } = await keyFile();
  const auth = await withEnv({ MCP_OAUTH_STORE_KEY_FILE: file, MCP_OAUTH_SECRETS: 'auto' }, () => McpOAuth.open(demo.url, { home: h, openBrowser: headlessBrowser().open }));
  await auth.token();
  const { issuer, resource } = await auth.status();
  const store = new SealedStore(new FileStore(h), key);
  const mine = dpopKeyId(issuer, resource);
  assert.match(mine, /^dpop-[0-9a-f]{40}$/);
  await store.putKeyOnce(mine, 'the server key');
  await store.putKeyOnce(dpopKeyId(issuer, `${resource}/other`), 'another server key');
  await auth.logout();
  assert.equal((await auth.status()).hasToken, false);
  assert.deepEqual((await fs.readdir(h)).filter((n) => n.endsWith('.pem')), [`${dpopKeyId(issuer, `${resource}/other`)}.pem`]);
  await auth.logout(); // nothing left to remove: fine
});

const keychainWanted = process.env.MCP_OAUTH_TEST_KEYCHAIN === '1';
test('the real keychain (Secret Service): one item per store, no token in any file, read once by a new process, a deleted item is a lost key', { skip: !keychainWanted && 'set MCP_OAUTH_TEST_KEYCHAIN=1 inside a session with a Secret Service' }, async () => {
  const h = await home();
  const account = `store:${realpathSync(h)}`;
  // secret-tool prints each item's attributes on stderr (and its secret on stdout, unread here).
  const items = () => {
    const r = spawnSync('secret-tool', ['search', '--all', 'service', 'mcp-oauth'], { encoding: 'utf8', timeout: 10_000 });
    return lines(r.stderr).filter((l) => l === `attribute.username = ${account}`).length;
  };
  try {
    const browser = headlessBrowser();
    const auth = await McpOAuth.open(demo.url, { home: h, secrets: 'keychain', openBrowser: browser.open });
    const token = await auth.token();
    const st = await auth.status();
    assert.deepEqual(st.secrets, { mode: 'sealed', where: 'the keychain (Secret Service)', unreadable: 0 });
    assert.equal((await readJson(path.join(h, 'store.json'))).mode, 'sealed');
    assert.equal(items(), 1, 'exactly one keychain item for this store');
    assert.deepEqual(await filesContaining(h, token), []);
    // A new process reads the key from the keychain: the token, no AS request.
    const child = `const { McpOAuth } = await import('mcp-oauth');
      const auth = await McpOAuth.open(process.argv[1], { home: process.argv[2], secrets: process.argv[3], interactive: false });
      const st = await auth.status();
      let token = null; try { token = await auth.token(); } catch (e) { token = e.kind; }
      process.stdout.write(JSON.stringify({ st, token }));`;
    const env = { DBUS_SESSION_BUS_ADDRESS: process.env.DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
    const from = (await demo.log()).requests.length;
    const warm = await runNode(child, env, [demo.url, h, 'keychain']);
    assert.equal(warm.code, 0, warm.stderr);
    assert.equal(JSON.parse(warm.stdout).token, token);
    assert.deepEqual((await demo.requestsSince(from)).filter(isAsRequest), []);
    // The item deleted: records read as absent, status says so, a new key is made (still one item).
    execFileSync('secret-tool', ['clear', 'service', 'mcp-oauth', 'username', account], { timeout: 10_000 });
    assert.equal(items(), 0);
    const lost = await runNode(child, env, [demo.url, h, 'auto']);
    assert.equal(lost.code, 0, lost.stderr);
    const { st: lostSt, token: lostToken } = JSON.parse(lost.stdout);
    assert.equal(lostToken, 'authorization-required');
    assert.ok(lostSt.secrets.unreadable > 0);
    assert.match(lostSt.secrets.message, /^the store's key is not in the keychain: \d+ records cannot be read; sign in again$/);
    assert.match(lost.stderr, /the store's key is not in the keychain \(Secret Service\): \d+ records cannot be read; sign in again/);
    assert.equal(items(), 1);
  } finally {
    try {
      execFileSync('secret-tool', ['clear', 'service', 'mcp-oauth', 'username', account], { timeout: 10_000 });
    } catch {
      // nothing to clear
    }
  }
});

test('a store given by the program is used as it is (no store.json); one lacking the seam is refused', async () => {
  const h = await home();
  const key = randomBytes(32);
  const store = new SealedStore(new FileStore(h), key, { keyFrom: 'my vault' });
  const auth = await McpOAuth.open(demo.url, { store, openBrowser: headlessBrowser().open });
  assert.equal(auth.home, h);
  const token = await auth.token();
  assert.deepEqual((await auth.status()).secrets, { mode: 'sealed', where: 'my vault', unreadable: 0 });
  assert.deepEqual(await filesContaining(h, token), []);
  assert.ok(!(await fs.readdir(h)).includes('store.json'), 'the program decides, nothing is pinned');
  await assert.rejects(McpOAuth.open(URL_, { store: { id: 'x', get() {} } }), (e) => e.kind === 'invalid-config' && /lacks set, delete, list, lock/.test(e.message));
  await assert.rejects(McpOAuth.open(URL_, { store, secrets: 'file' }), { kind: 'invalid-config' });
});
