// Test helpers: the demo servers (`mcp-oauth demo --serve`, stopped by PID),
// a throwaway Redis server (tests/redis/server, stopped by PID), a headless
// browser (redirect-following with fetch), temp stores, the CLI, raw
// requests to a loopback listener.

import { spawn, execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm, readdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const CLI = process.env.MCP_OAUTH_BIN;
export const HEADLESS = process.env.MCP_OAUTH_HEADLESS;
if (!CLI || !HEADLESS) throw new Error('set MCP_OAUTH_BIN and MCP_OAUTH_HEADLESS (packages/node/test does)');
// Tests keep secrets in plain files unless one asks otherwise (secrets.test.mjs
// does, for every mode): a run never leaves items in the developer's keychain.
process.env.MCP_OAUTH_SECRETS ??= 'file';

const AS_PATHS = ['/.well-known/', '/register', '/authorize', '/token'];

// Demo servers still running when this process exits (a test crashed) are
// stopped too, by their PIDs.
const started = new Set();
process.on('exit', () => {
  for (const dir of redisDirs) {
    try {
      execFileSync(REDIS_SCRIPT, ['stop', dir], { timeout: 10_000, stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
});

const REDIS_SCRIPT = path.join(process.env.MCP_OAUTH_ROOT ?? path.resolve('../..'), 'tests', 'redis', 'server');
const redisDirs = new Set();

/**
 * Starts a Redis server on a free loopback port with its data in a temp
 * directory (append-only: a restart keeps it), by tests/redis/server (which
 * installs Debian's redis-server when missing). `url(query)` is a store URL
 * for it; `cli(...args)` runs redis-cli against it; `stop()` and `start()`
 * (the same port and data) stop and restart it by PID.
 */
export async function startRedis() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-redis-'));
  redisDirs.add(dir);
  const run = (args) => execFileSync(REDIS_SCRIPT, args, { timeout: 120_000, encoding: 'utf8' }).trim();
  const port = Number(run(['start', dir]));
  let up = true;
  const server = {
    dir,
    port,
    url: (query = '') => `redis://127.0.0.1:${port}/0${query}`,
    /** redis-cli against this server: its stdout (60 s deadline); `auth` a password. */
    cli(args, { auth } = {}) {
      const a = ['-h', '127.0.0.1', '-p', String(port), ...(auth ? ['--no-auth-warning', '-a', auth] : []), ...args];
      return execFileSync('redis-cli', a, { timeout: 60_000, encoding: 'utf8' }).trim();
    },
    stop() {
      if (!up) return;
      up = false;
      run(['stop', dir]);
    },
    start() {
      if (up) return;
      run(['start', dir, String(port)]);
      up = true;
    },
    async remove() {
      server.stop();
      redisDirs.delete(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * Starts the demo servers; resolves once the MCP URL is printed (10 s
 * deadline). `faults`: `--fault` values (`deny`, `token-error`).
 */
export async function startDemo({ accessTtl, faults = [] } = {}) {
  const args = ['demo', '--serve', ...(accessTtl ? ['--access-ttl', String(accessTtl)] : []), ...faults.flatMap((f) => ['--fault', f])];
  const proc = spawn(CLI, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  started.add(proc.pid);
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`demo server did not start: ${out}`)), 10_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /MCP server:\s+(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.once('exit', (code) => reject(new Error(`demo server exited (${code}): ${out}`)));
  });
  const base = new URL(url).origin;
  return {
    url,
    base,
    async log() {
      const r = await fetch(`${base}/_demo/log`);
      return r.json();
    },
    /** The requests seen since `from` (an index into the log). */
    async requestsSince(from) {
      return (await this.log()).requests.slice(from);
    },
    async revoke() {
      const r = await fetch(`${base}/_demo/revoke`, { method: 'POST' });
      if (r.status !== 204) throw new Error(`revoke answered ${r.status}`);
    },
    /** Revokes the access tokens only: refresh tokens still work. */
    async revokeAccess() {
      const r = await fetch(`${base}/_demo/revoke-access`, { method: 'POST' });
      if (r.status !== 204) throw new Error(`revoke-access answered ${r.status}`);
    },
    stop() {
      started.delete(proc.pid);
      process.kill(proc.pid, 'SIGTERM'); // by PID, the one we started
    },
  };
}

export const isAsRequest = (line) => AS_PATHS.some((p) => line.split(' ')[1].startsWith(p));

/** Follows redirects from `url` until the loopback callback has been requested. */
export async function follow(url) {
  let current = new URL(url);
  for (let hop = 0; hop < 10; hop++) {
    const callback = current.hostname === '127.0.0.1' && current.pathname === '/callback';
    const r = await fetch(current, { redirect: 'manual', signal: AbortSignal.timeout(30_000) });
    await r.arrayBuffer();
    if (callback) return;
    const loc = r.headers.get('location');
    if (r.status < 300 || r.status >= 400 || !loc) throw new Error(`${current} answered ${r.status} without a redirect`);
    current = new URL(loc, current);
    if (!/^https?:$/.test(current.protocol)) throw new Error('refusing a non-http redirect');
  }
  throw new Error('too many redirects');
}

/** A counting headless browser for `openBrowser` (returns at once, like a real one). */
export function headlessBrowser() {
  const b = {
    opened: 0,
    errors: [],
    open: (url) => {
      b.opened++;
      follow(url).catch((e) => b.errors.push(e));
    },
  };
  return b;
}

/** A browser that must not be opened. */
export function noBrowser() {
  return () => {
    throw new Error('no browser expected in this test');
  };
}

export async function tempHome() {
  return mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-node-test-'));
}

export async function removeHome(dir) {
  await rm(dir, { recursive: true, force: true });
}

/** Runs the CLI; resolves { code, stdout, stderr } (60 s deadline). */
export function cli(args, env) {
  return new Promise((resolve) => {
    execFile(CLI, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * Runs `code` (an ES module) in a new Node process from the test directory
 * (so `import('mcp-oauth')` works), with no keychain in reach unless `env`
 * brings one: no session bus, an empty XDG_RUNTIME_DIR, no secrets choice
 * and no key file from this process. Resolves { code, stdout, stderr } (60 s deadline).
 */
export async function runNode(code, env = {}, args = []) {
  const runtime = await mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-node-runtime-'));
  const base = { ...process.env, XDG_RUNTIME_DIR: runtime };
  for (const k of ['DBUS_SESSION_BUS_ADDRESS', 'MCP_OAUTH_SECRETS', 'MCP_OAUTH_STORE_KEY_FILE']) delete base[k];
  try {
    return await new Promise((resolve) => {
      execFile(process.execPath, ['--input-type=module', '-e', code, ...args], { env: { ...base, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
      });
    });
  } finally {
    await rm(runtime, { recursive: true, force: true });
  }
}

/** Every file under `dir` (recursively) whose bytes contain `needle` (a string). */
export async function filesContaining(dir, needle) {
  const hits = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath ?? e.path, e.name);
    if ((await readFile(file)).includes(needle)) hits.push(file);
  }
  return hits;
}

/** POSTs a JSON-RPC ping to the MCP server with `token`; the HTTP status. */
export async function pingStatus(url, token) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  await r.arrayBuffer();
  return r.status;
}

/**
 * Sends raw bytes to 127.0.0.1:`port` and resolves the answer's status line,
 * or 'closed' when the connection ends without one (`ms` deadline: 'no answer').
 */
export function rawRequest(port, bytes, ms = 10_000) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (v) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done('no answer'), ms);
    s.on('connect', () => bytes && s.write(bytes));
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => done(got ? got.split('\r\n')[0] : 'closed'));
  });
}

/** A raw HTTP/1.1 GET of `target`. */
export const GET = (target) => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

/** The start of a TLS ClientHello: a browser that tried https on an http port. */
export const CLIENT_HELLO = Buffer.concat([Buffer.from('16030100a5010000a10303', 'hex'), randomBytes(32), Buffer.from('00000413011302', 'hex')]);

/** 150 junk requests to a loopback listener, of five kinds (what a busy machine may send). */
export function callbackJunk(port, n = 150) {
  const kinds = [
    GET('/favicon.ico'),
    GET('/callback?junk'),
    'POST /callback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello',
    CLIENT_HELLO,
    GET('/callback?code=x&state=wrong'),
  ];
  return Array.from({ length: n }, (_, i) => rawRequest(port, kinds[i % kinds.length]));
}
