// Loads the jco-transpiled sans-IO component (engine/, made by ./build from
// target/components/sans-io.wasm) on first need: the silent fast path never
// loads it. The core module is compiled once per process (WebAssembly.compile
// works off the main thread, so it may start early); each session gets its
// own instance, and a trapped instance is replaced by a fresh one (nothing
// is lost: the store is on disk).

import fs from 'node:fs/promises';

const compiled = new Map();
let glue = null;

function getCoreModule(name) {
  let m = compiled.get(name);
  if (!m) {
    m = fs.readFile(new URL(`../engine/${name}`, import.meta.url)).then((bytes) => WebAssembly.compile(bytes));
    m.catch(() => {}); // reported by instantiate, if it is ever asked for
    compiled.set(name, m);
  }
  return m;
}

/** Starts compiling the core module in the background (a flow will need it). */
export function compileEngine() {
  getCoreModule('sans-io.core.wasm');
  glue ??= import('../engine/sans-io.js');
  glue.catch(() => {}); // loadMachine reports it, and tries again
}

/** A fresh instance's `machine` interface (SessionMachine class). */
export async function loadMachine() {
  compileEngine();
  let instantiate;
  try {
    ({ instantiate } = await glue);
  } catch (e) {
    glue = null; // a later call may try again
    throw e;
  }
  const exports = await instantiate(getCoreModule, {});
  return exports.machine ?? exports['mcp:oauth/machine@0.1.0'] ?? exports['mcp:oauth/machine'];
}
