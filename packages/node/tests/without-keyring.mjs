// Run by packages/node/test in an install made with `npm install
// --omit=optional`, as on a platform with no @napi-rs/keyring binary: the
// package still works, `auto` falls back to plain files with its one line,
// `keychain` is a typed error that writes nothing, a key file still seals.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-no-keyring-'));
process.on('exit', () => spawnSync('rm', ['-rf', tmp]));

/** Opens a store in a child (a fresh process: its own once-per-process notice). */
function open(home, env) {
  const code = `const { McpOAuth } = await import('mcp-oauth');
    try { const a = await McpOAuth.open('https://mcp.example.com/mcp', { home: process.argv[1] }); process.stdout.write(JSON.stringify((await a.status()).secrets)); }
    catch (e) { process.stdout.write(JSON.stringify({ kind: e.kind, message: e.message })); }`;
  const base = { ...process.env, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' };
  delete base.MCP_OAUTH_SECRETS;
  delete base.MCP_OAUTH_STORE_KEY_FILE;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code, home], { env: { ...base, ...env }, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return { out: JSON.parse(r.stdout), stderr: r.stderr };
}

test('the optional keychain module is absent here', () => {
  assert.throws(() => createRequire(path.join(process.cwd(), 'x.js')).resolve('@napi-rs/keyring'), { code: 'MODULE_NOT_FOUND' });
});

test('auto: plain files, one line saying why', () => {
  const r = open(path.join(tmp, 'auto'), {});
  assert.equal(r.out.mode, 'plain', JSON.stringify(r.out));
  assert.match(r.stderr, /^mcp-oauth: keeping secrets in plain files under .* \(the optional package @napi-rs\/keyring is not installed\); set MCP_OAUTH_SECRETS=file to silence this\n$/);
});

test('keychain: a typed error, nothing written', async () => {
  const home = path.join(tmp, 'keychain');
  const r = open(home, { MCP_OAUTH_SECRETS: 'keychain' });
  assert.equal(r.out.kind, 'keychain-unavailable', JSON.stringify(r.out));
  assert.match(r.out.message, /@napi-rs\/keyring is not installed/);
  await assert.rejects(fs.stat(home), { code: 'ENOENT' });
});

test('a key file seals without the keychain module', async () => {
  const keyFile = path.join(tmp, 'key');
  await fs.writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  const r = open(path.join(tmp, 'sealed'), { MCP_OAUTH_STORE_KEY_FILE: keyFile });
  assert.equal(r.out.mode, 'sealed', JSON.stringify(r.out));
  assert.equal(r.stderr, '');
});
