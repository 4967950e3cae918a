// Test helpers: the demo servers (`mcp-oauth demo --serve`, stopped by PID),
// a headless browser (redirect-following with fetch), temp stores, the CLI.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const CLI = process.env.MCP_OAUTH_BIN;
export const HEADLESS = process.env.MCP_OAUTH_HEADLESS;
if (!CLI || !HEADLESS) throw new Error('set MCP_OAUTH_BIN and MCP_OAUTH_HEADLESS (packages/node/test does)');

const AS_PATHS = ['/.well-known/', '/register', '/authorize', '/token'];

// Demo servers still running when this process exits (a test crashed) are
// stopped too, by their PIDs.
const started = new Set();
process.on('exit', () => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
});

/** Starts the demo servers; resolves once the MCP URL is printed (10 s deadline). */
export async function startDemo({ accessTtl } = {}) {
  const args = ['demo', '--serve', ...(accessTtl ? ['--access-ttl', String(accessTtl)] : [])];
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
