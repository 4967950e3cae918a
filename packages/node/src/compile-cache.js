// Node's compile cache (module.enableCompileCache, Node 22.1+) for what
// loads on first need: the lazily loaded modules and the engine's jco glue
// (about 150 KB; parsed in a few ms, read from the cache in about one).
// Turned on only then: a process served by the silent fast path never turns
// it on. Node keeps it on for what the process loads afterwards.

import path from 'node:path';
import { nodeFs, nodeModule, nodeOs } from './builtins.js';

/**
 * A private directory for it, machine state rather than store state (every
 * store and server loads the same code): `<tmp>/mcp-oauth-<uid>/node`, made
 * 0700. Used only when each level is a real directory of this user (a cache
 * planted by someone else would be code run here), tightened to 0700 as the
 * Rust host does its own cache; else null. Synchronous: a few local calls, once.
 */
function cacheDir() {
  const fs = nodeFs();
  const uid = process.getuid?.();
  const top = path.join(nodeOs().tmpdir(), `mcp-oauth-${uid ?? 'user'}`);
  const dir = path.join(top, 'node');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const d of [top, dir]) {
    const st = fs.lstatSync(d);
    if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) return null;
    if (process.platform !== 'win32' && st.mode & 0o077) fs.chmodSync(d, 0o700);
  }
  return dir;
}

let done = false;

/** Turns the cache on once, unless the process has one (NODE_COMPILE_CACHE) or NODE_DISABLE_COMPILE_CACHE is set. Never throws. */
export function enableCompileCache() {
  if (done) return;
  done = true;
  try {
    const module = nodeModule();
    if (typeof module.enableCompileCache !== 'function' || module.getCompileCacheDir?.() || process.env.NODE_DISABLE_COMPILE_CACHE) return;
    const dir = cacheDir();
    if (dir) module.enableCompileCache(dir);
  } catch {
    // no cache: the code is parsed as usual
  }
}
