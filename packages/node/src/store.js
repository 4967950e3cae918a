// The `storage` effects: one file per record, in the layout and format every
// host shares (docs/store.md): the directory 0700, records `<key>.json` 0600
// (and DPoP key pairs `<key-id>.pem` 0600, created once, for dpop.js),
// atomic writes (O_EXCL temp file, fsync, rename, fsync of the directory),
// flat keys, and lock protocol 2 (exclusive-create lock files).

import fs from 'node:fs/promises';
import { constants as C } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

const KEY = /^[A-Za-z0-9_-]{1,128}$/;
const LOCK_DEADLINE_MS = 30_000;
const STALE_MTIME_MS = 60_000;
const STALE_NO_PID_MS = 5_000;

/** `$MCP_OAUTH_HOME` when set and not empty, else `<platform data dir>/mcp-oauth`. */
export function defaultHome(env = process.env) {
  if (env.MCP_OAUTH_HOME) return env.MCP_OAUTH_HOME;
  const home = os.homedir();
  let data;
  if (process.platform === 'darwin') data = path.join(home, 'Library', 'Application Support');
  else if (process.platform === 'win32') data = env.APPDATA || path.join(home, 'AppData', 'Roaming');
  // dirs::data_dir ignores a relative XDG_DATA_HOME, as the XDG spec says.
  else data = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(home, '.local', 'share');
  return path.join(data, 'mcp-oauth');
}

function checkKey(key) {
  if (!KEY.test(key)) throw new Error(`refused storage key ${JSON.stringify(key.slice(0, 64))}: keys are letters, digits, '-' and '_' only`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** True unless `kill(pid, 0)` says the process does not exist (ESRCH). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code !== 'ESRCH';
  }
}

export class FileStore {
  /** @param {string} dir  the store directory (created 0700, with locks/ inside) */
  constructor(dir, warn = () => {}) {
    this.dir = dir;
    this.locks = path.join(dir, 'locks');
    this.held = new Set();
    this.warn = warn;
    this.ready = null;
  }

  /** Creates the directories (0700) once. */
  async open() {
    this.ready ??= (async () => {
      for (const d of [this.dir, this.locks]) {
        await fs.mkdir(d, { recursive: true, mode: 0o700 });
        if (process.platform !== 'win32') await fs.chmod(d, 0o700);
      }
    })();
    try {
      await this.ready;
    } catch (e) {
      this.ready = null;
      throw e;
    }
  }

  recordPath(key) {
    checkKey(key);
    return path.join(this.dir, `${key}.json`);
  }

  /** The record, or null when absent, unreadable or not JSON (with a warning). */
  async get(key) {
    const file = this.recordPath(key);
    let bytes;
    try {
      bytes = await fs.readFile(file);
    } catch (e) {
      if (e.code !== 'ENOENT') this.warn(`cannot read ${file}: ${e.code || e.message}; treating it as absent`);
      return null;
    }
    try {
      JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      this.warn(`${file} is corrupt and is ignored (it will be rewritten)`);
      return null;
    }
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Writes atomically: temp file (O_EXCL, 0600), fsync, rename, fsync of the directory. */
  async set(key, value) {
    const file = this.recordPath(key);
    await this.open();
    const tmp = path.join(this.dir, `.${key}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`);
    let fh;
    try {
      fh = await fs.open(tmp, C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o600);
      await fh.writeFile(value);
      await fh.sync();
      await fh.close();
      fh = null;
      await fs.rename(tmp, file);
    } catch (e) {
      if (fh) await fh.close().catch(() => {});
      await fs.rm(tmp, { force: true }).catch(() => {});
      throw new Error(`writing ${file}: ${e.code || e.message}`);
    }
    await syncDir(this.dir);
  }

  /** Removes a record; absent is fine. */
  async delete(key) {
    const file = this.recordPath(key);
    try {
      await fs.unlink(file);
    } catch (e) {
      if (e.code !== 'ENOENT') throw new Error(`removing ${file}: ${e.code || e.message}`);
    }
  }

  keyPath(key) {
    checkKey(key);
    return path.join(this.dir, `${key}.pem`);
  }

  /** A key file's text (`<key>.pem`), or null when absent. Errors name the file, never its content. */
  async getKey(key) {
    const file = this.keyPath(key);
    try {
      return await fs.readFile(file, 'utf8');
    } catch (e) {
      if (e.code === 'ENOENT') return null;
      throw new Error(`cannot read ${file}: ${e.code || 'error'}`);
    }
  }

  /**
   * Writes a key file (`<key>.pem`, 0600) once and returns the text that is
   * stored: when another process created it first, its text, not `text`
   * (the temp file is hard-linked into place, which fails if the name
   * exists). `replace`: overwrite (a corrupt file).
   */
  async putKey(key, text, replace = false) {
    const file = this.keyPath(key);
    await this.open();
    const tmp = path.join(this.dir, `.${key}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`);
    let fh;
    try {
      fh = await fs.open(tmp, C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o600);
      await fh.writeFile(text);
      await fh.sync();
      await fh.close();
      fh = null;
      if (replace) {
        await fs.rename(tmp, file);
      } else {
        try {
          await fs.link(tmp, file);
        } catch (e) {
          if (e.code === 'EEXIST') return await fs.readFile(file, 'utf8');
          throw e;
        }
      }
    } catch (e) {
      throw new Error(`writing ${file}: ${e.code || 'error'}`);
    } finally {
      if (fh) await fh.close().catch(() => {});
      await fs.rm(tmp, { force: true }).catch(() => {});
    }
    await syncDir(this.dir);
    return text;
  }

  lockPath(key) {
    checkKey(key);
    return path.join(this.locks, `${key}.lock`);
  }

  /**
   * Takes the cross-process lock on `key` (protocol 2): create the lock file
   * exclusively; while another live holder has it, retry every 10-30 ms
   * until a 30 s deadline; break a stale one.
   */
  async lock(key, deadlineMs = LOCK_DEADLINE_MS) {
    const file = this.lockPath(key);
    if (this.held.has(key)) return;
    await this.open();
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      try {
        const fh = await fs.open(file, C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o600);
        try {
          await fh.writeFile(JSON.stringify({ pid: process.pid, created_ms: Date.now() }));
        } finally {
          await fh.close();
        }
        this.held.add(key);
        return;
      } catch (e) {
        if (e.code !== 'EEXIST') throw new Error(`creating the lock file ${file}: ${e.code || e.message}`);
      }
      await breakIfStale(file);
      if (Date.now() >= deadline) {
        throw new Error(`the lock ${file} is still held by another process after ${deadlineMs / 1000} s; if no other mcp-oauth process is running, remove that file`);
      }
      await sleep(10 + Math.floor(Math.random() * 21));
    }
  }

  /** Releases the lock on `key` (only the holder removes the file). */
  async unlock(key) {
    if (!this.held.delete(key)) return;
    await fs.rm(this.lockPath(key), { force: true }).catch(() => {});
  }
}

/**
 * Breaks `file` if it is stale: its pid is not a live process, or it is more
 * than 60 s old, or it has no readable pid and is more than 5 s old. The
 * rename makes breaking atomic; if the file renamed turns out to be a newer
 * lock than the one judged (another process broke and re-took it meanwhile),
 * it is put back.
 */
async function breakIfStale(file) {
  let st, text;
  try {
    st = await fs.stat(file);
    text = await fs.readFile(file, 'utf8');
  } catch {
    return; // gone already: the next create will tell
  }
  let pid = null;
  try {
    const v = JSON.parse(text);
    if (Number.isInteger(v.pid) && v.pid > 0) pid = v.pid;
  } catch {
    // no readable pid (a crash between create and write, or protocol 1)
  }
  const age = Date.now() - st.mtimeMs;
  const stale = age > STALE_MTIME_MS || (pid === null ? age > STALE_NO_PID_MS : !alive(pid));
  if (!stale) return;
  const aside = `${file}.stale-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await fs.rename(file, aside);
  } catch {
    return; // someone else broke it first
  }
  try {
    const moved = await fs.stat(aside);
    if (moved.ino !== st.ino || moved.dev !== st.dev) {
      // Not the file judged stale: restore it unless a lock exists again.
      await fs.link(aside, file).catch(() => {});
    }
  } finally {
    await fs.rm(aside, { force: true }).catch(() => {});
  }
}

async function syncDir(dir) {
  if (process.platform === 'win32') return;
  let fh;
  try {
    fh = await fs.open(dir, 'r');
    await fh.sync();
  } catch {
    // best effort, as in the Rust host
  } finally {
    await fh?.close().catch(() => {});
  }
}
