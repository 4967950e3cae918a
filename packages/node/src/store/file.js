// The file store: one file per record, in the layout and format every host
// shares (docs/store.md): the directory 0700, records `<key>.json` 0600
// (and DPoP key pairs `<key-id>.pem` 0600, created once, for dpop.js),
// atomic writes (O_EXCL temp file, fsync, rename, fsync of the directory),
// flat keys, and lock protocol 2 (exclusive-create lock files). Nothing on
// disk is trusted: a record or key file is read only when it is a regular file
// of this user and small (a planted symlink, FIFO or huge file is refused).

import path from 'node:path';
import { nodeCrypto, nodeFs, nodeOs } from '../builtins.js';
import { Refused, readSmall } from './small-file.js';

export { Refused, readSmall };

// The functions a silent token() calls are parenthesized, `(function ...)`:
// V8 then compiles them with the module and Node's compile cache keeps them
// (fast.js says why).

// node:fs/promises is loaded on first write (it loads readline with it);
// reads go through readSmall (small-file.js), synchronously.
const fsc = nodeFs();
const fsp = () => fsc.promises;
const C = fsc.constants;

const KEY = /^[A-Za-z0-9_-]{1,128}$/;
const LOCK_DEADLINE_MS = 30_000;
const STALE_MTIME_MS = 60_000;
const STALE_NO_PID_MS = 5_000;
/** The largest record read (a record is a few KB). */
export const MAX_RECORD_BYTES = 1024 * 1024;
/** The largest DPoP key file read (a P-256 PKCS#8 PEM is about 240 bytes). */
export const MAX_KEY_BYTES = 64 * 1024;
/** A lock file holds about 40 bytes; no more is read. */
const MAX_LOCK_BYTES = 256;
const MAX_PID = 2_147_483_647; // pid_t

/** `$MCP_OAUTH_HOME` when set and not empty, else `<platform data dir>/mcp-oauth`. */
export function defaultHome(env = process.env) {
  if (env.MCP_OAUTH_HOME) return env.MCP_OAUTH_HOME;
  const home = nodeOs().homedir();
  let data;
  if (process.platform === 'darwin') data = path.join(home, 'Library', 'Application Support');
  else if (process.platform === 'win32') data = env.APPDATA || path.join(home, 'AppData', 'Roaming');
  // dirs::data_dir ignores a relative XDG_DATA_HOME, as the XDG spec says.
  else data = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(home, '.local', 'share');
  return path.join(data, 'mcp-oauth');
}

const checkKey = (function checkKey(key) {
  if (!KEY.test(key)) throw new Error(`refused storage key ${JSON.stringify(key.slice(0, 64))}: keys are letters, digits, '-' and '_' only`);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** True unless `kill(pid, 0)` says the process does not exist (ESRCH). */
export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code !== 'ESRCH';
  }
}

/**
 * The store as plain files in one directory (docs/store.md): the layout and
 * format every host shares. One implementation of the store seam (see
 * ../store.js); the sealed store keeps its sealed bytes in one of these.
 */
export class FileStore {
  /** @param {string} dir  the store directory (created 0700, with locks/ inside, on first write) */
  constructor(dir, warn = () => {}) {
    this.dir = dir;
    this.locks = path.join(dir, 'locks');
    this.warn = warn;
    this.ready = null;
  }

  /** A stable name for caches: the absolute directory. */
  get id() {
    return path.resolve(this.dir);
  }

  /** Where secrets live (for status). */
  describe() {
    return { mode: 'plain', where: `plain files in ${this.dir}` };
  }

  /** Records that cannot be read with this store's key: plain files have none. */
  async unreadable() {
    return 0;
  }

  /** Creates the directories (0700) once. */
  async open() {
    this.ready ??= (async () => {
      for (const d of [this.dir, this.locks]) {
        await fsp().mkdir(d, { recursive: true, mode: 0o700 });
        if (process.platform !== 'win32') await fsp().chmod(d, 0o700);
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
      bytes = await readSmall(file, MAX_RECORD_BYTES);
    } catch (e) {
      this.warn(`ignoring ${file}: ${e.message}; treating it as absent`);
      return null;
    }
    if (bytes === null) return null;
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
    await this.#replace(this.recordPath(key), key, value);
  }

  /** Removes a record; absent is fine. */
  async delete(key) {
    await removeFile(this.recordPath(key));
  }

  /** The keys of the records (`<key>.json`) starting with `prefix`, sorted; never `store.json`. */
  async list(prefix = '') {
    return (await this.#names('.json')).filter((k) => k.startsWith(prefix) && k !== 'store');
  }

  /** The keys of the key files (`<key>.pem`), sorted. */
  async listKeys() {
    return this.#names('.pem');
  }

  async #names(ext) {
    let names;
    try {
      names = await fsp().readdir(this.dir);
    } catch (e) {
      if (e.code === 'ENOENT') return [];
      throw new Error(`listing ${this.dir}: ${e.code || e.message}`);
    }
    return names
      .filter((n) => n.endsWith(ext))
      .map((n) => n.slice(0, -ext.length))
      .filter((k) => KEY.test(k))
      .sort();
  }

  keyPath(key) {
    checkKey(key);
    return path.join(this.dir, `${key}.pem`);
  }

  /**
   * A key file's text (`<key>.pem`), or null when absent. A file that is not
   * a small regular file of this user is an error (never "absent": it would
   * be replaced). Errors name the file, never its content.
   */
  async getKey(key) {
    const file = this.keyPath(key);
    let bytes;
    try {
      bytes = await readSmall(file, MAX_KEY_BYTES);
    } catch (e) {
      throw new Error(`cannot use the DPoP key file ${file}: ${e.message}; it is left as it is`);
    }
    return bytes === null ? null : bytes.toString('utf8');
  }

  /**
   * Writes a key file (`<key>.pem`, 0600) once and returns the text that is
   * stored: when another process created it first, its text, not `text`
   * (the temp file is hard-linked into place, which fails if the name
   * exists). An existing file is never replaced.
   */
  async putKeyOnce(key, text) {
    const file = this.keyPath(key);
    for (let round = 0; round < 3; round++) {
      if (await this.#createOnce(file, key, text)) return text;
      // Another process made it first: its key is the one to use.
      const kept = await this.getKey(key);
      if (kept !== null) return kept;
      // Removed in between (a sealed store replacing a lost key's file under its lock): again.
    }
    throw new Error(`the DPoP key file ${file} vanished as it was written; try again`);
  }

  /** Replaces a key file's content (converting a store to sealed only: key files are otherwise written once). */
  async replaceKey(key, text) {
    await this.#replace(this.keyPath(key), key, text);
  }

  /** Removes a key file; absent is fine. */
  async deleteKey(key) {
    await removeFile(this.keyPath(key));
  }

  /** Reads `name`, a small file of the store itself (store.json): bytes or null; rejects with `Refused`. */
  async readFile(name, cap) {
    return readSmall(path.join(this.dir, checkName(name)), cap);
  }

  /** Writes `name` (store.json) unless it exists; true when this call created it. */
  async createFileOnce(name, text) {
    return this.#createOnce(path.join(this.dir, checkName(name)), name, text);
  }

  /** Replaces `name` (store.json) atomically. */
  async replaceFile(name, text) {
    await this.#replace(path.join(this.dir, checkName(name)), name, text);
  }

  /** A temp file beside the store's files, written and fsynced (0600, O_EXCL). */
  async #temp(base, value) {
    await this.open();
    const tmp = path.join(this.dir, `.${base}.${process.pid}.${nodeCrypto().randomBytes(8).toString('hex')}.tmp`);
    let fh;
    try {
      fh = await fsp().open(tmp, C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o600);
      await fh.writeFile(value);
      await fh.sync();
    } catch (e) {
      await fsp().rm(tmp, { force: true }).catch(() => {});
      throw new Error(`writing ${tmp}: ${e.code || 'error'}`);
    } finally {
      await fh?.close().catch(() => {});
    }
    return tmp;
  }

  async #replace(file, base, value) {
    const tmp = await this.#temp(base, value);
    try {
      await fsp().rename(tmp, file);
    } catch (e) {
      await fsp().rm(tmp, { force: true }).catch(() => {});
      throw new Error(`writing ${file}: ${e.code || e.message}`);
    }
    await syncDir(this.dir);
  }

  /** Hard-links a temp file into place: false when the name exists (never replaced). */
  async #createOnce(file, base, value) {
    const tmp = await this.#temp(base, value);
    try {
      await fsp().link(tmp, file);
    } catch (e) {
      if (e.code === 'EEXIST') return false;
      throw new Error(`writing ${file}: ${e.code || 'error'}`);
    } finally {
      await fsp().rm(tmp, { force: true }).catch(() => {});
    }
    await syncDir(this.dir);
    return true;
  }

  lockPath(key) {
    checkKey(key);
    return path.join(this.locks, `${key}.lock`);
  }

  /**
   * Takes the cross-process lock on `key` (protocol 2): create the lock file
   * exclusively; while another holder (another process, or another caller
   * in this one) has it, retry every 10-30 ms until a 30 s deadline; break
   * a stale one. Resolves a handle whose `release()` removes the lock file
   * (once; only while it is still the file this call created).
   */
  async lock(key, deadlineMs = LOCK_DEADLINE_MS) {
    const file = this.lockPath(key);
    await this.open();
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      let fh;
      try {
        fh = await fsp().open(file, C.O_CREAT | C.O_EXCL | C.O_WRONLY, 0o600);
      } catch (e) {
        if (e.code !== 'EEXIST') throw new Error(`creating the lock file ${file}: ${e.code || e.message}`);
      }
      if (fh) {
        let ours;
        try {
          await fh.writeFile(JSON.stringify({ pid: process.pid, created_ms: Date.now() }));
          ours = await fh.stat();
        } finally {
          await fh.close();
        }
        return lockHandle(key, file, ours);
      }
      await breakIfStale(file);
      if (Date.now() >= deadline) {
        throw new Error(`the lock ${file} is still held by another process after ${deadlineMs / 1000} s; if no other mcp-oauth process is running, remove that file`);
      }
      await sleep(10 + Math.floor(Math.random() * 21));
    }
  }

  /** Runs `fn` holding the lock on `key`; released however `fn` ends. */
  async withLock(key, fn) {
    const held = await this.lock(key);
    try {
      return await fn();
    } finally {
      await held.release();
    }
  }
}

/** The handle of a held lock: `release()` removes the lock file once, if it is still ours. */
function lockHandle(key, file, ours) {
  let released = false;
  return {
    key,
    async release() {
      if (released) return;
      released = true;
      // A lock broken as stale (held past 60 s) may be another holder's by now.
      const now = await fsp().lstat(file).catch(() => null);
      if (now && now.ino === ours.ino && now.dev === ours.dev) await fsp().rm(file, { force: true }).catch(() => {});
    },
  };
}

async function removeFile(file) {
  try {
    await fsp().unlink(file);
  } catch (e) {
    if (e.code !== 'ENOENT') throw new Error(`removing ${file}: ${e.code || e.message}`);
  }
}

/** The store's own files (not records): only store.json. */
function checkName(name) {
  if (name !== 'store.json') throw new Error(`refused store file name ${JSON.stringify(String(name).slice(0, 64))}`);
  return name;
}

/**
 * The verdict on a lock file (docs/store.md, protocol 2, step 2), pure:
 * `content` its bytes or text, `ageMs` now minus its mtime (one in the future
 * counts as 0), `isAlive(pid)` the liveness check. The holder is `pid`, a
 * JSON integer in 1..=2147483647 in a JSON object; anything else is no
 * readable pid. Stale when the holder is dead or the lock is over 60 s old;
 * with no readable pid, when it is over 5 s old (a crash between create and
 * write, or protocol 1's empty files).
 */
export function lockVerdict(content, ageMs, isAlive = alive) {
  const age = Math.max(0, Number(ageMs) || 0);
  let pid = null;
  try {
    const text = typeof content === 'string' ? content : new TextDecoder('utf-8', { fatal: true }).decode(content);
    const v = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v) && Number.isInteger(v.pid) && v.pid >= 1 && v.pid <= MAX_PID) pid = v.pid;
  } catch {
    // no readable pid
  }
  if (pid === null) return age > STALE_NO_PID_MS ? 'stale' : 'busy';
  return age > STALE_MTIME_MS || !isAlive(pid) ? 'stale' : 'busy';
}

/** Breaks `file` if `lockVerdict` says it is stale. */
async function breakIfStale(file) {
  let st;
  try {
    st = await fsp().lstat(file);
  } catch {
    return; // gone already: the next create will tell
  }
  // A lock that cannot be read safely (a FIFO, a symlink, too big) has no readable pid.
  const content = await readSmall(file, MAX_LOCK_BYTES).catch(() => null);
  if (lockVerdict(content ?? '', Date.now() - st.mtimeMs) === 'stale') await breakStale(file, st, content);
}

/**
 * Breaks the lock `file` judged stale when it had the identity in `judged`
 * (an lstat): renames it aside (atomic: of several breakers one wins), then
 * compares the moved file's (device, inode) and content with the judged
 * one's (an inode number can be reused at once by the lock that replaced
 * it). If either differs, another process broke the judged lock and took a fresh one in
 * between: that fresh lock is put back (a hard link; if a lock exists again
 * by then, nothing), and only the moved name is removed.
 */
export async function breakStale(file, judged, judgedContent) {
  const aside = `${file}.stale-${process.pid}-${nodeCrypto().randomBytes(6).toString('hex')}`;
  try {
    await fsp().rename(file, aside);
  } catch {
    return; // someone else broke it first
  }
  try {
    const moved = await fsp().lstat(aside);
    const movedContent = await readSmall(aside, MAX_LOCK_BYTES).catch(() => null);
    const same = moved.ino === judged.ino && moved.dev === judged.dev && sameBytes(movedContent, judgedContent);
    if (!same) await fsp().link(aside, file).catch(() => {});
  } catch {
    // the aside name is removed below regardless
  } finally {
    await fsp().rm(aside, { force: true }).catch(() => {});
  }
}

/** Byte equality of two lock contents (null: unreadable). */
function sameBytes(a, b) {
  if (a == null || b == null) return a == b;
  return Buffer.from(a).equals(Buffer.from(b));
}

async function syncDir(dir) {
  if (process.platform === 'win32') return;
  let fh;
  try {
    fh = await fsp().open(dir, 'r');
    await fh.sync();
  } catch {
    // best effort, as in the Rust host
  } finally {
    await fh?.close().catch(() => {});
  }
}
