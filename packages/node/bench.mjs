// Benchmarks of the Node package (run by ./bench, which sets things up):
//   node bench.mjs <server-url> <home>          warm per-call overhead, then cold start
//   node bench.mjs --child <server-url> <home>  one cold start (import + open + token)

import { spawnSync } from 'node:child_process';

const [mode, ...rest] = process.argv.slice(2);

if (mode === '--child') {
  const [url, home] = rest;
  const { McpOAuth } = await import('mcp-oauth');
  const auth = await McpOAuth.open(url, { home, openBrowser: () => { throw new Error('no browser in the bench'); } });
  await auth.token();
  process.exit(0);
}

const [url, home] = [mode, rest[0]];
const { McpOAuth } = await import('mcp-oauth');
const auth = await McpOAuth.open(url, { home, openBrowser: () => { throw new Error('no browser in the bench'); } });
await auth.token();

async function meanMicros(label, n, f) {
  for (let i = 0; i < 500; i++) await f(); // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await f();
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  console.log(`${label}: ${us.toFixed(1)} µs mean over ${n} calls`);
}

await meanMicros('warm auth.token() (engine authorize, silent, token in memory)', 20_000, () => auth.token());
// auth.fetch end to end with a stub transport: what the wrapper adds to each request.
const stub = await McpOAuth.open(url, { home, openBrowser: () => {}, fetch: async () => new Response('{}') });
await stub.token();
const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' };
await meanMicros('warm auth.fetch() overhead (stub transport, no I/O)', 20_000, () => stub.fetch(url, init));

const runs = [];
for (let i = 0; i < 15; i++) {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--child', url, home], { stdio: 'inherit', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`cold run ${i} failed`);
  runs.push(performance.now() - t0);
}
runs.sort((a, b) => a - b);
const bare = [];
for (let i = 0; i < 15; i++) {
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', '0'], { timeout: 30_000 });
  bare.push(performance.now() - t0);
}
bare.sort((a, b) => a - b);
console.log(`cold start (fresh node: import + McpOAuth.open + token() from the store): median ${runs[7].toFixed(0)} ms wall over 15 runs (min ${runs[0].toFixed(0)}, max ${runs[14].toFixed(0)}); an empty node process: ${bare[7].toFixed(0)} ms`);
