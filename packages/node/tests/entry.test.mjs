// The package's two entries (package.json "exports"): `import` loads
// dist/entry.js, which turns on Node's compile cache and then loads the
// bundle; `require` (Node's require of ES modules) loads dist/index.js
// itself. Both must hand out the same objects, and the cache must be this
// user's private directory, or none when the user says so.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { lstatSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as viaImport from 'mcp-oauth';

const installed = path.join(process.cwd(), 'node_modules', 'mcp-oauth');

test('import and require give the same exports, the same objects', async () => {
  const bundle = await import(path.join(installed, 'dist', 'index.js'));
  const required = createRequire(path.join(process.cwd(), 'x.js'))('mcp-oauth');
  assert.deepEqual(Object.keys(viaImport).sort(), Object.keys(bundle).sort());
  assert.ok(Object.keys(bundle).includes('McpOAuth'));
  for (const name of Object.keys(bundle)) {
    assert.equal(viaImport[name], bundle[name], `${name} through import`);
    assert.equal(required[name], bundle[name], `${name} through require`);
  }
});

// What a fresh process that imports the package reports about the cache.
function cacheIn(extra, how = "await import('mcp-oauth')") {
  const env = { ...process.env };
  delete env.NODE_COMPILE_CACHE;
  delete env.NODE_DISABLE_COMPILE_CACHE;
  const code = `${how}; console.log(process.getBuiltinModule('node:module').getCompileCacheDir() ?? 'none')`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: process.cwd(),
    env: { ...env, ...extra },
    encoding: 'utf8',
    timeout: 30_000,
  }).trim();
}

test('import turns on the compile cache in a private directory of this user', () => {
  const ours = path.join(os.tmpdir(), `mcp-oauth-${process.getuid()}`, 'node');
  const dir = cacheIn({}); // Node's own subdirectory in it, per Node version
  assert.ok(dir.startsWith(`${ours}${path.sep}`), dir);
  for (const d of [ours, path.dirname(ours)]) {
    const st = lstatSync(d);
    assert.ok(st.isDirectory() && st.uid === process.getuid(), d);
    assert.equal(st.mode & 0o777, 0o700, d);
  }
});

test('NODE_DISABLE_COMPILE_CACHE keeps it off; require never turns it on', () => {
  assert.equal(cacheIn({ NODE_DISABLE_COMPILE_CACHE: '1' }), 'none');
  const viaRequire = "process.getBuiltinModule('node:module').createRequire(process.cwd() + '/x.js')('mcp-oauth')";
  assert.equal(cacheIn({}, viaRequire), 'none');
});
