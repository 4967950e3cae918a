// Node built-ins loaded on first use rather than at import: node:crypto and
// node:child_process take a few ms each to load, and an ESM import of
// node:fs builds its facade (loading every stream class); the silent fast
// path needs none of them. This hands back the built-in itself.

import { createRequire } from 'node:module';

let require;
/** The built-in `id` (process.getBuiltinModule from Node 22.3, require before). */
const builtin = (id) => process.getBuiltinModule?.(id) ?? (require ??= createRequire(import.meta.url))(id);
const once = (id) => {
  let m;
  return () => (m ??= builtin(id));
};

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
