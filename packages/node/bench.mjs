// Benchmarks of the Node package (run by ./bench, which sets things up):
//   node bench.mjs <server-url> <home> [runs]      warm per-call overhead, then fresh processes
//   node bench.mjs --child fast|engine <server-url> <home>
//       one fresh start, timed inside the process from before the import:
//       fast: import + McpOAuth.open + the first token() (the silent fast path on a warm store);
//       engine: the same with status() first, so the engine loads and the token comes from it.
//       Prints {"import","open","token","total"} in ms.

import { spawnSync } from 'node:child_process';

const [mode, ...rest] = process.argv.slice(2);
const noBrowser = () => {
  throw new Error('no browser in the bench');
};

if (mode === '--child') {
  const [kind, url, home] = rest;
  const t0 = performance.now();
  const { McpOAuth } = await import('mcp-oauth');
  const t1 = performance.now();
  const auth = await McpOAuth.open(url, { home, openBrowser: noBrowser });
  const t2 = performance.now();
  if (kind === 'engine') await auth.status();
  const token = await auth.token();
  const t3 = performance.now();
  if (!token) process.exit(1);
  process.stdout.write(`${JSON.stringify({ import: t1 - t0, open: t2 - t1, token: t3 - t2, total: t3 - t0 })}\n`);
  process.exit(0);
}

const [url, home, runsArg] = [mode, rest[0], rest[1]];
const RUNS = Number(runsArg ?? 21);
const { McpOAuth } = await import('mcp-oauth');

async function meanMicros(label, n, f) {
  for (let i = 0; i < 500; i++) await f(); // warm up the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await f();
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  console.log(`${label}: ${us.toFixed(1)} µs mean over ${n} calls`);
}

const fast = await McpOAuth.open(url, { home, openBrowser: noBrowser });
await meanMicros('warm auth.token(), fast path (token in memory, no engine)', 20_000, () => fast.token());
const viaEngine = await McpOAuth.open(url, { home, openBrowser: noBrowser });
await viaEngine.status(); // the engine answers from here on
await meanMicros('warm auth.token(), engine (authorize, silent, token in memory)', 20_000, () => viaEngine.token());
// auth.fetch end to end with a stub transport: what the wrapper adds to each request.
const stub = await McpOAuth.open(url, { home, openBrowser: noBrowser, fetch: async () => new Response('{}') });
await stub.token();
const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' };
await meanMicros('warm auth.fetch() overhead (stub transport, no I/O)', 20_000, () => stub.fetch(url, init));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const child = (args) => {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  return { wall: performance.now() - t0, ...(r.stdout.trim() ? JSON.parse(r.stdout) : {}) };
};

// Fresh processes, interleaved (fast, engine, an empty node) so drift hits all alike.
const me = new URL(import.meta.url).pathname;
const runs = { fast: [], engine: [], bare: [] };
for (let i = 0; i < RUNS; i++) {
  runs.fast.push(child([me, '--child', 'fast', url, home]));
  runs.engine.push(child([me, '--child', 'engine', url, home]));
  runs.bare.push(child(['-e', '0']));
}
const row = (label, rs) => {
  const m = (k) => median(rs.map((r) => r[k])).toFixed(1);
  console.log(`${label}: import ${m('import')} ms, open ${m('open')} ms, first token ${m('token')} ms, total ${m('total')} ms (in the process); process wall ${m('wall')} ms`);
};
console.log(`fresh processes, medians over ${RUNS} each (timed inside from before the import to after the token):`);
row('  warm store, fast path ', runs.fast);
row('  engine (status, token)', runs.engine);
console.log(`  an empty node process: wall ${median(runs.bare.map((r) => r.wall)).toFixed(1)} ms`);
