// rediss:// against a redis-server with TLS and a private CA (made here by
// openssl; skipped without it): the CA from MCP_OAUTH_CA_FILE, else
// SSL_CERT_FILE, verifies the server; without it the error says TLS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { McpOAuthError } from 'mcp-oauth';
import { tempHome, removeHome } from './helpers.mjs';

const { openRedisStore, parseStoreUrl } = await import(path.join(process.cwd(), 'node_modules', 'mcp-oauth', 'dist', 'lazy.js'));

const have = (cmd, arg) => {
  try {
    execFileSync(cmd, [arg], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
};
const skip = !have('openssl', 'version') || !have('redis-server', '--version') ? 'openssl or redis-server is missing' : false;

let dir, server, port, keyFile;
const stores = [];

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise((r) => s.close(r));
  return p;
}

before(async () => {
  if (skip) return;
  dir = await tempHome();
  const ssl = (...a) => execFileSync('openssl', a, { cwd: dir, stdio: 'ignore', timeout: 30_000 });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=mcp-oauth test CA');
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  await fs.writeFile(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  keyFile = path.join(dir, 'fleet.key');
  await fs.writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  port = await freePort();
  const args = ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--tls-cert-file', 'server.pem', '--tls-key-file', 'server.key', '--tls-ca-cert-file', 'ca.pem', '--tls-auth-clients', 'no'];
  server = spawn('redis-server', args, { cwd: dir, stdio: 'ignore' });
  // Up when it accepts a TCP connection (10 s deadline).
  for (let i = 0; ; i++) {
    const up = await new Promise((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (up) break;
    if (i > 200) throw new Error('redis-server with TLS did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
});
after(async () => {
  await Promise.all(stores.map((s) => s.close()));
  if (server) process.kill(server.pid, 'SIGTERM'); // by PID, the one started here
  if (dir) await removeHome(dir);
});

const open = async (env) => {
  const s = await openRedisStore({ url: parseStoreUrl(`rediss://127.0.0.1:${port}/0`), env: { MCP_OAUTH_STORE_KEY_FILE: keyFile, ...env } });
  stores.push(s);
  return s;
};

test('rediss: the private CA from MCP_OAUTH_CA_FILE or SSL_CERT_FILE verifies the server; without it, an error that says TLS', { skip }, async () => {
  const ca = path.join(dir, 'ca.pem');
  for (const env of [{ MCP_OAUTH_CA_FILE: ca }, { SSL_CERT_FILE: ca }]) {
    const s = await open(env);
    await s.set('tokens-tls', new TextEncoder().encode('{"v":1}'));
    assert.equal(new TextDecoder().decode(await s.get('tokens-tls')), '{"v":1}');
  }
  await assert.rejects(open({}), (e) => e instanceof McpOAuthError && e.kind === 'invalid-config' && /TLS failed/.test(e.message) && e.message.includes(`rediss://127.0.0.1:${port}/0`));
  await assert.rejects(open({ MCP_OAUTH_CA_FILE: path.join(dir, 'missing.pem') }), (e) => e.kind === 'invalid-config' && /MCP_OAUTH_CA_FILE/.test(e.message));
});
