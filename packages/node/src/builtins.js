// Node built-ins loaded on first use rather than at import: node:crypto and
// node:child_process take a few ms each to load, and an ESM import of
// node:fs builds its facade (loading every stream class); the silent fast
// path needs none of them. process.getBuiltinModule (Node 22.3+) hands back
// the built-in itself, without the static import of node:module that
// createRequire would need (half a millisecond at every start).

/** The built-in `id`. */
// Parenthesized functions are compiled with the module (see fast.js).
const builtin = (function (id) {
  if (typeof process.getBuiltinModule !== 'function') {
    throw new Error(`mcp-oauth needs Node 22.3 or later (process.getBuiltinModule); this is Node ${process.version}`);
  }
  return process.getBuiltinModule(id);
});
const once = (function (id) {
  let m;
  return (function () {
    return (m ??= builtin(id));
  });
});

/** node:crypto */
export const nodeCrypto = once('node:crypto');
/** node:child_process */
export const nodeChildProcess = once('node:child_process');
/** node:fs (the callback and sync API; Node has it loaded from the start) */
export const nodeFs = once('node:fs');
/** node:os */
export const nodeOs = once('node:os');
/** node:module */
export const nodeModule = once('node:module');
