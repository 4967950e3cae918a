// The store key in the OS keychain (docs/store.md, "The store key"): one
// item per store, service `mcp-oauth`, account `store:<canonical path>`, the
// key's standard base64 as the secret, through @napi-rs/keyring (an optional
// dependency, loaded only here and only when a keychain is wanted). The key
// is read once per process and kept in memory.
//
// Every call is bounded to 2 s where a keychain can hang: on Linux and the
// BSDs the Secret Service is reached over D-Bus, and the addon blocks the
// calling thread while connecting (measured: a bus that accepts and never
// answers blocks the constructor forever; an AsyncEntry's AbortSignal does
// not help, and a worker thread stuck there keeps Node from exiting). So
// there the call runs in a child process (keychain-child.cjs) that is killed
// at the deadline. The macOS Keychain and the Windows Credential Manager
// answer locally, or show the user a prompt (a wait for the user, not a
// hang), so there the call runs in-process.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { keyFromBase64 } from './sealed.js';
import { printable } from '../terminal.js';
import { nodeChildProcess, nodeFs } from '../builtins.js';

/** How long the keychain may take to answer. */
export const KEYCHAIN_DEADLINE_MS = 2000;
const MODULE = '@napi-rs/keyring';
const CHILD = fileURLToPath(new URL('./keychain-child.cjs', import.meta.url));
let requireHere; // made on first use: createRequire is not free, and most processes never ask a keychain
const require = () => (requireHere ??= createRequire(import.meta.url));
const OVER_DBUS = !['darwin', 'win32'].includes(process.platform);

/** Keys read or made in this process, by account (never written anywhere else). */
const keys = new Map();
/** Calls in flight, by account: concurrent opens share one keychain read. */
const reading = new Map();

/** The platform's keychain, for messages and status. */
export function keychainName() {
  if (process.platform === 'darwin') return 'the macOS Keychain';
  if (process.platform === 'win32') return 'the Windows Credential Manager';
  return 'the keychain (Secret Service)';
}

/**
 * The keychain account of the store at `dir`: `store:` and its canonical
 * absolute path (symlinks resolved, as realpath gives it). A directory not
 * made yet is resolved through its nearest existing ancestor, so nothing is
 * created to name it.
 */
export function keychainAccount(dir) {
  let head = path.resolve(dir);
  const rest = [];
  for (;;) {
    try {
      return `store:${path.join(nodeFs().realpathSync(head), ...rest)}`;
    } catch {
      const up = path.dirname(head);
      if (up === head) return `store:${path.resolve(dir)}`;
      rest.unshift(path.basename(head));
      head = up;
    }
  }
}

/** Why no keychain can answer here, before trying one (a cheap check), or null. */
function precheck(env) {
  let found;
  try {
    found = require().resolve(MODULE);
  } catch {
    return { why: `the optional package ${MODULE} is not installed` };
  }
  // libdbus looks at DBUS_SESSION_BUS_ADDRESS, then $XDG_RUNTIME_DIR/bus.
  if (OVER_DBUS && !env.DBUS_SESSION_BUS_ADDRESS && !(env.XDG_RUNTIME_DIR && nodeFs().existsSync(path.join(env.XDG_RUNTIME_DIR, 'bus')))) {
    return { why: 'no session bus (DBUS_SESSION_BUS_ADDRESS is not set)' };
  }
  return { module: found };
}

/** The addon's error as a reason for messages (first line, escaped, short; the usual ones in words). */
function reason(error) {
  const e = String(error ?? 'no answer');
  if (/org\.freedesktop\.secrets|ServiceUnknown|not provided by any \.service/i.test(e)) return 'no Secret Service on the session bus';
  if (/autolaunch|DBUS_SESSION_BUS_ADDRESS/.test(e)) return 'no session bus (DBUS_SESSION_BUS_ADDRESS is not set)';
  if (/Failed to connect to socket/i.test(e)) return 'no session bus where DBUS_SESSION_BUS_ADDRESS says';
  // keyring-rs's NoResult: the service answers but has no default collection.
  if (/no result found/i.test(e)) return 'the Secret Service has no default keyring (create one, or unlock it)';
  return `${keychainName()}: ${printable(e.replace(/^(Platform failure|Couldn't access platform storage): /, '')).slice(0, 200)}`;
}

/** Runs one request in a child process, killed at the deadline. */
function inChild(request, env) {
  return new Promise((resolve) => {
    let out = '';
    let settled = false;
    let child;
    const done = (answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(answer);
    };
    const timer = setTimeout(() => {
      child?.kill('SIGKILL');
      done({ ok: false, error: `the keychain did not answer within ${KEYCHAIN_DEADLINE_MS / 1000} s`, timeout: true });
    }, KEYCHAIN_DEADLINE_MS);
    try {
      // ELECTRON_RUN_AS_NODE: under Electron, execPath is the app itself.
      child = nodeChildProcess().spawn(process.execPath, [CHILD], { stdio: ['pipe', 'pipe', 'ignore'], env: { ...env, ELECTRON_RUN_AS_NODE: '1' }, windowsHide: true });
    } catch (e) {
      done({ ok: false, error: `could not start the keychain helper (${e.code || 'error'})` });
      return;
    }
    child.on('error', (e) => done({ ok: false, error: `could not start the keychain helper (${e.code || 'error'})` }));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      if (out.length > 65_536) child.kill('SIGKILL');
    });
    child.on('close', () => {
      try {
        done(JSON.parse(out));
      } catch {
        done({ ok: false, error: 'the keychain helper gave no answer' });
      }
    });
    child.stdin.on('error', () => {}); // a helper that died early: 'close' tells
    child.stdin.end(JSON.stringify(request));
  });
}

async function call(op, account, env, secret) {
  const pre = precheck(env);
  if (!pre.module) return { unavailable: pre.why };
  const request = { module: pre.module, op, account, secret };
  const answer = OVER_DBUS ? await inChild(request, env) : require()('./keychain-child.cjs').run(request);
  if (!answer.ok) {
    if (answer.code === 'no-module') return { unavailable: `the optional package ${MODULE} has no binary for this platform` };
    return { unavailable: answer.timeout ? answer.error : reason(answer.error) };
  }
  return { value: answer.value };
}

/**
 * The store key kept for `account`: `{ key }` (a 32-byte Buffer), `{ missing }`
 * (the keychain answers and has no usable item), or `{ unavailable: why }`.
 * Read once per process; `fresh` reads the keychain again (under the store
 * lock, to see what another process did).
 */
export async function keychainGet(account, { fresh = false, env = process.env } = {}) {
  if (!fresh && keys.has(account)) return { key: keys.get(account) };
  if (!fresh && reading.has(account)) return reading.get(account);
  const p = (async () => {
    const r = await call('get', account, env);
    if (r.unavailable) return r;
    const key = typeof r.value === 'string' ? keyFromBase64(r.value) : null;
    if (!key) return { missing: true }; // no item, or one that holds no key: made anew
    keys.set(account, key);
    return { key };
  })();
  if (!fresh) {
    reading.set(account, p);
    p.finally(() => reading.delete(account)).catch(() => {});
  }
  return p;
}

/** Keeps `key` for `account` in the keychain; rejects with the reason when it cannot. */
export async function keychainSet(account, key, { env = process.env } = {}) {
  const r = await call('set', account, env, Buffer.from(key).toString('base64'));
  if (r.unavailable) throw new Error(r.unavailable);
  keys.set(account, Buffer.from(key));
}

/** Removes the item for `account` (absent is fine); true when one was removed. */
export async function keychainDelete(account, { env = process.env } = {}) {
  keys.delete(account);
  const r = await call('delete', account, env);
  if (r.unavailable) throw new Error(r.unavailable);
  return r.value === true;
}
