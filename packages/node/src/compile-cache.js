// Node's compile cache (module.enableCompileCache, Node 22.1+): V8's compiled
// code for the package, read back instead of parsing the source again. The
// package's `import` entry (entry.js) turns it on before it loads the bundle
// (about 75 KB, a few ms to parse); the lazily loaded modules and the jco
// glue (about 150 KB) go through it too. Node keeps it on for what the
// process loads afterwards. Self-contained (built-ins through
// process.getBuiltinModule, Node 22.3+): the entry bundles it on its own.

import path from 'node:path';

/**
 * A private directory for it, machine state rather than store state (every
 * store and server loads the same code): `<tmp>/mcp-oauth-<uid>/node`, made
 * 0700. Used only when each level is a real directory of this user (a cache
 * planted by someone else would be code run here), tightened to 0700 as the
 * Rust host does its own cache; else null. Synchronous: a few local calls, once.
 */
function cacheDir(fs, os) {
  const uid = process.getuid?.();
  const top = path.join(os.tmpdir(), `mcp-oauth-${uid ?? 'user'}`);
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

/**
 * Turns the cache on once, unless the process has one (NODE_COMPILE_CACHE),
 * NODE_DISABLE_COMPILE_CACHE is set, or this Node lacks it. Never throws.
 * Returns the directory in use, or null.
 */
export function enableCompileCache() {
  if (done) return null;
  done = true;
  try {
    const builtin = process.getBuiltinModule;
    const module = builtin?.('node:module');
    if (typeof module?.enableCompileCache !== 'function' || process.env.NODE_DISABLE_COMPILE_CACHE) return null;
    const current = module.getCompileCacheDir?.();
    if (current) return current;
    const dir = cacheDir(builtin('node:fs'), builtin('node:os'));
    if (dir) module.enableCompileCache(dir);
    return dir;
  } catch {
    return null; // no cache: the code is parsed as usual
  }
}
