// Where a store keeps its secrets, chosen once and pinned in `store.json`
// (docs/store.md, "Where secrets live"): sealed with the store key (from
// MCP_OAUTH_STORE_KEY_FILE or the OS keychain) or plain files. Every host
// follows `store.json`, so a store is never read in one mode and written in
// the other; asking for the other mode is an error naming the command that
// converts the store. Every write of `store.json` (and the key it names) is
// made under the store lock (`locks/store.lock`), so two first users agree.

import path from 'node:path';
import { nodeCrypto, nodeFs } from '../builtins.js';
import { FileStore, Refused } from './file.js';
import { SealedStore, isSealed, keyFromBase64, keyId, seal } from './sealed.js';
import { McpOAuthError } from '../errors.js';
import { printable } from '../terminal.js';

// The functions a silent token() calls are parenthesized, `(function ...)`:
// V8 then compiles them with the module and Node's compile cache keeps them
// (fast.js says why).

const fs = () => nodeFs().promises; // loaded only off the plain store's path
const C = nodeFs().constants;
// The keychain's module (and the child process it may start) loads only for a sealed store or a first use.
const keychain = async () => (await import('../lazy.js')).keychain;
const MANIFEST = 'store.json';
const PLAIN = '{"format":1,"mode":"plain"}';
const sealedManifest = (kid) => `{"format":1,"mode":"sealed","key_id":"${kid}"}`;
const CHOICES = ['auto', 'keychain', 'file'];
const MAX_KEY_FILE_BYTES = 4096;

/** Notices already printed by this process, by kind: one line each, at most. */
const said = new Set();

/** One line on stderr, once per process and kind (never a secret: paths and reasons only). */
export function noticeOnce(kind, text) {
  if (said.has(kind)) return;
  said.add(kind);
  process.stderr.write(`mcp-oauth: ${printable(text)}\n`);
}

/** The secrets choice: the `secrets` option, else MCP_OAUTH_SECRETS, else auto. */
export const secretsChoice = (function secretsChoice(option, env = process.env) {
  const from = option !== undefined ? 'the secrets option' : 'MCP_OAUTH_SECRETS';
  const v = option !== undefined ? option : env.MCP_OAUTH_SECRETS || 'auto';
  if (!CHOICES.includes(v)) {
    throw new McpOAuthError('invalid-config', `${from} is ${JSON.stringify(String(v).slice(0, 32))}: use auto, keychain or file`);
  }
  return v;
});

/** What store.json says: { mode: null } (absent), { mode: 'plain' } or { mode: 'sealed', keyId }. */
export const readManifest = (async function readManifest(file) {
  const where = path.join(file.dir, MANIFEST);
  let bytes;
  try {
    bytes = await file.readFile(MANIFEST, 4096);
  } catch (e) {
    const why = e instanceof Refused ? e.message : e.code || 'error';
    throw new McpOAuthError('storage', `${where} cannot be used: ${why}; remove it only if you know the store's mode`);
  }
  if (bytes === null) return { mode: null };
  let v;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch {
    v = null;
  }
  if (v && v.format === 1 && v.mode === 'plain') return { mode: 'plain' };
  if (v && v.format === 1 && v.mode === 'sealed' && typeof v.key_id === 'string' && /^[0-9a-fA-F]{16}$/.test(v.key_id)) {
    return { mode: 'sealed', keyId: v.key_id.toLowerCase() };
  }
  throw new McpOAuthError('storage', `${where} is not a store description this version understands; upgrade mcp-oauth, or remove it only if you know the store's mode`);
});

/**
 * The store key in MCP_OAUTH_STORE_KEY_FILE: a regular file (a symlink to
 * one is followed: secret mounts are links) holding the key's base64,
 * refused when group or others may read it. Errors name the file, never
 * its content.
 */
export async function readKeyFile(file) {
  const refuse = (why) => new McpOAuthError('store-key', `the store key file ${file} (MCP_OAUTH_STORE_KEY_FILE) ${why}`);
  let fh;
  try {
    fh = await fs().open(file, C.O_RDONLY | (C.O_NONBLOCK ?? 0)); // a FIFO cannot block
  } catch (e) {
    throw refuse(e.code === 'ENOENT' ? 'does not exist' : `cannot be opened (${e.code || 'error'})`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw refuse('is not a regular file');
    if (process.platform !== 'win32' && st.mode & 0o077) {
      throw refuse(`is readable by others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
    }
    if (st.size > MAX_KEY_FILE_BYTES) throw refuse('does not hold a 32-byte key in base64');
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const key = keyFromBase64(buf.subarray(0, bytesRead).toString('latin1'));
    buf.fill(0);
    if (!key) throw refuse('does not hold a 32-byte key in base64');
    return key;
  } finally {
    await fh.close().catch(() => {});
  }
}

/**
 * Where the key comes from: the key file when MCP_OAUTH_STORE_KEY_FILE is
 * set, else the keychain ({ key: null } when it has no item).
 */
async function keySource(file, env) {
  const keyFile = env.MCP_OAUTH_STORE_KEY_FILE;
  if (keyFile) return { key: await readKeyFile(keyFile), from: `the key file ${keyFile}`, source: 'key-file' };
  const kc = await keychain();
  const account = kc.keychainAccount(file.dir);
  const got = await kc.keychainGet(account, { env });
  if (got.unavailable) return { unavailable: got.unavailable, from: kc.keychainName() };
  return { key: got.key ?? null, account, from: kc.keychainName(), source: 'keychain' };
}

const exists = (p) => fs().lstat(p).then(
  () => true,
  () => false,
);

const noKeychain = (why) =>
  new McpOAuthError(
    'keychain-unavailable',
    `no keychain to keep the store key in (${why}); nothing was written. Set MCP_OAUTH_STORE_KEY_FILE to a key file, or MCP_OAUTH_SECRETS=file for plain files`,
  );

/**
 * Opens the store at `home` in the mode its `store.json` pins, choosing it
 * on first use from `secrets` ('auto' | 'keychain' | 'file', default
 * MCP_OAUTH_SECRETS, else 'auto'). Resolves a FileStore (plain) or a
 * SealedStore over one. `warn(message)` gets storage warnings.
 */
export const openStore = (async function openStore({ home, secrets, env = process.env, warn = () => {} }) {
  const choice = secretsChoice(secrets, env);
  const file = new FileStore(home, warn);
  // store.json changes under us only when another process settles it first.
  for (let round = 0; round < 4; round++) {
    const m = await readManifest(file);
    if (m.mode === 'plain') {
      if (choice === 'keychain') {
        throw new McpOAuthError(
          'store-mode',
          `the store ${home} keeps its secrets in plain files; run \`mcp-oauth store seal\` to move them under a key in the keychain`,
        );
      }
      return file;
    }
    if (m.mode === 'sealed') {
      if (choice === 'file') {
        throw new McpOAuthError('store-mode', `the store ${home} is sealed with a key in the keychain; run \`mcp-oauth store unseal\` to convert it to plain files`);
      }
      const s = await openSealed(file, m, env);
      if (s) return s;
      continue;
    }
    const s = choice === 'file' ? await settlePlain(file) : await firstUse(file, choice, env);
    if (s) return s;
  }
  throw new McpOAuthError('storage', `${path.join(home, MANIFEST)} kept changing while this process read it; try again`);
});

/** Pins plain files (under the store lock); null: read store.json again. */
async function settlePlain(file) {
  await file.withLock('store', () => file.createFileOnce(MANIFEST, PLAIN));
  return null;
}

/**
 * The first use of a store with no store.json: sealed when a key is at hand
 * (records from before are sealed in place, announced once), else plain
 * files (auto, said once) or an error (keychain, nothing written). Null:
 * read store.json again.
 */
async function firstUse(file, choice, env) {
  const src = await keySource(file, env);
  const made = { dir: !(await exists(file.dir)), locks: !(await exists(file.locks)) };
  const fallBack = async (why) => {
    if (choice === 'keychain') {
      // The store lock may have made the directories: take back what this call made.
      if (made.locks) await fs().rmdir(file.locks).catch(() => {});
      if (made.dir) await fs().rmdir(file.dir).catch(() => {});
      throw noKeychain(why);
    }
    noticeOnce('plain', `keeping secrets in plain files under ${file.dir} (${why}); set MCP_OAUTH_SECRETS=file to silence this`);
    return settlePlain(file);
  };
  if (src.unavailable) return fallBack(src.unavailable);
  const sealed = await file.withLock('store', async () => {
    if ((await readManifest(file)).mode) return null; // another process settled it first
    let key = src.key;
    if (!key) {
      // No item yet: look again under the lock (another process may have just
      // made one), else make the key and keep it in the keychain.
      const kc = await keychain();
      const again = await kc.keychainGet(src.account, { fresh: true, env });
      if (again.unavailable) return { why: again.unavailable };
      key = again.key;
      if (!key) {
        key = nodeCrypto().randomBytes(32);
        try {
          await kc.keychainSet(src.account, key, { env });
        } catch (e) {
          return { why: `${src.from} did not keep the key: ${e.message}` };
        }
      }
    }
    const n = await sealInPlace(file, key);
    if (!(await file.createFileOnce(MANIFEST, sealedManifest(keyId(key))))) return null;
    if (n > 0) noticeOnce('sealed', `sealed ${n} records of ${file.dir} with a store key kept in ${src.from}`);
    return new SealedStore(file, key, { keyFrom: src.from, source: src.source });
  });
  if (sealed?.why) return fallBack(sealed.why);
  return sealed;
}

/**
 * A sealed store: its key from the key file or the keychain. A lost key (no
 * item) or a changed one (another key than store.json names): a new key
 * seals from now on and store.json names it; what the old key sealed reads
 * as absent, and status counts it. Null: read store.json again.
 */
async function openSealed(file, m, env) {
  const src = await keySource(file, env);
  if (src.unavailable) {
    throw new McpOAuthError(
      'keychain-unavailable',
      `the store ${file.dir} is sealed and its key is kept in ${src.from}, which cannot be reached (${src.unavailable}); run where the keychain is unlocked, or set MCP_OAUTH_STORE_KEY_FILE`,
    );
  }
  if (src.key && keyId(src.key) === m.keyId) return new SealedStore(file, src.key, { keyFrom: src.from, source: src.source });
  return file.withLock('store', async () => {
    const now = await readManifest(file);
    if (now.mode !== 'sealed' || now.keyId !== m.keyId) return null; // another process replaced it
    let key = src.key;
    let made = false;
    if (src.account) {
      const kc = await keychain();
      const again = await kc.keychainGet(src.account, { fresh: true, env });
      if (again.unavailable) throw noKeychain(again.unavailable);
      key = again.key;
      if (!key) {
        key = nodeCrypto().randomBytes(32);
        made = true;
        try {
          await kc.keychainSet(src.account, key, { env });
        } catch (e) {
          throw noKeychain(e.message);
        }
      }
    }
    if (keyId(key) !== m.keyId) await file.replaceFile(MANIFEST, sealedManifest(keyId(key)));
    const store = new SealedStore(file, key, { keyFrom: src.from, source: src.source });
    const n = await store.unreadable();
    if (n > 0) {
      const what = made || src.source === 'keychain' ? `the store's key is not in ${src.from}` : `the store key from ${src.from} is not the one this store was sealed with`;
      noticeOnce('lost', `${what}: ${n} records cannot be read; sign in again`);
    }
    return store;
  });
}

/** Seals every plain record and key file in place (a store from before store.json); how many. */
async function sealInPlace(file, key) {
  let n = 0;
  for (const k of await file.list('')) {
    const bytes = await file.get(k); // unreadable or not JSON: absent, left as it is
    if (bytes !== null && !isSealed(bytes)) {
      await file.set(k, new TextEncoder().encode(seal(key, 'record', k, bytes)));
      n++;
    }
  }
  for (const k of await file.listKeys()) {
    let text;
    try {
      text = await file.getKey(k);
    } catch (e) {
      file.warn(`${e.message} (not sealed)`); // unsafe: never touched
      continue;
    }
    if (text !== null && !isSealed(text)) {
      await file.replaceKey(k, seal(key, 'key', k, text));
      n++;
    }
  }
  return n;
}
