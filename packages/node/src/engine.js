// Loads the jco-transpiled sans-IO component (engine/, made by ./build from
// target/components/sans-io.wasm). The core module is compiled once per
// process; each session gets its own instance, and a trapped instance is
// replaced by a fresh one (nothing is lost: the store is on disk).

import { readFile } from 'node:fs/promises';
import { instantiate } from '../engine/sans-io.js';

const compiled = new Map();

function getCoreModule(name) {
  let m = compiled.get(name);
  if (!m) {
    m = readFile(new URL(`../engine/${name}`, import.meta.url)).then((bytes) => WebAssembly.compile(bytes));
    compiled.set(name, m);
  }
  return m;
}

/** A fresh instance's `machine` interface (SessionMachine class). */
export async function loadMachine() {
  const exports = await instantiate(getCoreModule, {});
  return exports.machine ?? exports['mcp:oauth/machine@0.1.0'] ?? exports['mcp:oauth/machine'];
}
