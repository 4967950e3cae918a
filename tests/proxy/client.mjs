// The cases of tests/proxy/run: the MCP TypeScript SDK's Client with
// StdioClientTransport spawning `mcp-oauth proxy <url>`, with the small
// environment desktop clients give (the SDK's default: HOME, PATH, USER,
// SHELL, TERM, plus the config's env), so the store is under HOME.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, access } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CreateMessageRequestSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startSdkServer } from './sdk-server.mjs';

const bin = process.argv[2];
const CLI = path.join(bin, 'mcp-oauth');
const BROWSER = path.join(bin, 'mcp-oauth-headless-browser');
let pass = 0, fail = 0;
const cleanup = [];

function assert(cond, msg) { if (!cond) throw new Error(msg); }
const exists = (p) => access(p).then(() => true, () => false);

async function test(name, fn) {
  const started = Date.now();
  try {
    await fn();
    console.log(`PASS ${name} (${Date.now() - started} ms)`);
    pass++;
  } catch (e) {
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
    fail++;
  }
}

async function startDemo() {
  const child = spawn(CLI, ['demo', '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanup.push(() => child.kill());
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const m = line.match(/^MCP server:\s+(\S+)/);
    if (m) return { url: m[1], base: m[1].replace(/\/mcp$/, '') };
  }
  throw new Error('demo --serve printed no URL');
}

async function connect(url, home, { record, args = [], env = {}, capabilities = {} } = {}) {
  const browser = record ? `${BROWSER} --record ${record}` : BROWSER;
  const transport = new StdioClientTransport({
    command: CLI,
    args: ['proxy', url, ...args],
    env: { HOME: home, BROWSER: browser, ...env },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (d) => { stderr += d; });
  const client = new Client({ name: 'proxy-test', version: '1.0.0' }, { capabilities });
  const errors = [];
  client.onerror = (e) => errors.push(String(e));
  await client.connect(transport);
  return { client, transport, errors, stderr: () => stderr };
}

const demo = await startDemo();
const log = async () => (await (await fetch(`${demo.base}/_demo/log`)).json()).requests;
const asRequests = async () => (await log()).filter((l) => /^(GET \/\.well-known\/oauth-authorization-server|POST \/register|GET \/authorize|POST \/token)/.test(l)).length;
const count = async (line) => (await log()).filter((l) => l === line).length;
const homeA = await mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-proxy-sdk-'));
const homeB = await mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-proxy-sdk-'));
cleanup.push(() => rm(homeA, { recursive: true, force: true }), () => rm(homeB, { recursive: true, force: true }));

await test('cold: Client + StdioClientTransport through the proxy, the browser once', async () => {
  const record = path.join(homeA, 'opened');
  const c = await connect(demo.url, homeA, { record });
  const tools = await c.client.listTools();
  assert(tools.tools[0]?.name === 'echo', JSON.stringify(tools));
  const r = await c.client.callTool({ name: 'echo', arguments: { text: 'hello via stdio' } });
  assert(r.content[0].text === 'hello via stdio', JSON.stringify(r));
  await c.client.close();
  assert(await exists(record), 'the browser was not opened');
  assert(await count('GET /authorize') === 1, 'one authorization');
  assert(c.errors.length === 0, `client errors (stdout not pure JSON-RPC?): ${c.errors}`);
  assert(await exists(path.join(homeA, '.local/share/mcp-oauth')), 'store under HOME with a stripped environment');
});

await test('warm: a new proxy process makes no AS request and opens no browser', async () => {
  const record = path.join(homeA, 'opened-warm');
  const before = await asRequests();
  const c = await connect(demo.url, homeA, { record });
  await c.client.listTools();
  await c.client.close();
  assert(await asRequests() === before, 'the AS was asked');
  assert(!(await exists(record)), 'the browser opened');
});

await test('mid-session 401: the engine re-authorizes and the request is answered', async () => {
  const c = await connect(demo.url, homeA);
  await c.client.listTools();
  await fetch(`${demo.base}/_demo/revoke`, { method: 'POST' });
  const tools = await c.client.listTools();
  assert(tools.tools[0]?.name === 'echo', JSON.stringify(tools));
  await c.client.close();
});

await test('two clients at once on an empty store: one browser flow', async () => {
  const before = await count('GET /authorize');
  const r1 = path.join(homeB, 'opened-1'), r2 = path.join(homeB, 'opened-2');
  const [a, b] = await Promise.all([connect(demo.url, homeB, { record: r1 }), connect(demo.url, homeB, { record: r2 })]);
  await Promise.all([a.client.listTools(), b.client.listTools()]);
  await Promise.all([a.client.close(), b.client.close()]);
  const opened = (await exists(r1)) + (await exists(r2));
  assert(opened === 1, `${opened} browsers opened`);
  assert(await count('GET /authorize') === before + 1, 'one authorization');
});

await test('SDK server: sampling and progress inside the response stream, GET stream, headers, DELETE', async () => {
  const srv = await startSdkServer();
  cleanup.push(() => srv.stop());
  const home = await mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-proxy-sdk-'));
  cleanup.push(() => rm(home, { recursive: true, force: true }));
  const c = await connect(srv.url, home, {
    args: ['--header', 'X-Test: ${PROXY_TEST_VALUE}'],
    env: { PROXY_TEST_VALUE: 'from-env' },
    capabilities: { sampling: {} },
  });
  c.client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
    role: 'assistant', model: 'test', content: { type: 'text', text: `echo ${req.params.messages[0].content.text}` },
  }));
  let changed = 0;
  c.client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed++; });
  const progress = [];
  const r = await c.client.callTool({ name: 'ask', arguments: { q: 'hi' } }, undefined, { onprogress: (p) => progress.push(p.progress) });
  assert(r.content[0].text === 'client said: echo hi', JSON.stringify(r));
  assert(progress.length === 1, `progress ${progress}`);
  await c.client.callTool({ name: 'touch', arguments: {} });
  for (let i = 0; i < 50 && changed === 0; i++) await new Promise((res) => setTimeout(res, 100));
  assert(changed === 1, 'list_changed from the GET stream');
  await c.client.close();
  for (let i = 0; i < 50 && srv.seen.deletes === 0; i++) await new Promise((res) => setTimeout(res, 100));
  assert(srv.seen.deletes === 1, 'the session was deleted at exit');
  assert(srv.seen.headers.every((h) => h === 'from-env'), `headers ${srv.seen.headers}`);
  assert(srv.seen.versions.length > 0 && srv.seen.versions.every((v) => v === srv.seen.versions[0]), `versions ${srv.seen.versions}`);
  assert(c.errors.length === 0, `client errors: ${c.errors}`);
});

// The MCP Inspector's CLI mode spawns the proxy with its own small
// environment; -e passes what a config's "env" would.
const inspectorBin = path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules/@modelcontextprotocol/inspector/package.json');
async function inspector(home, args) {
  const pkg = JSON.parse(await (await import('node:fs/promises')).readFile(inspectorBin, 'utf8'));
  const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin['mcp-inspector'] ?? Object.values(pkg.bin)[0];
  const script = path.join(path.dirname(inspectorBin), bin);
  const env = { ...process.env, HOME: home, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, '--cli', '-e', `HOME=${home}`, '-e', `BROWSER=${BROWSER}`, CLI, 'proxy', demo.url, ...args],
      { env, cwd: home, timeout: 60000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err}\n${stderr}`)) : resolve(JSON.parse(stdout))));
  });
}

await test('Inspector CLI: cold tools/list (browser once), then warm tools/call (no AS request)', async () => {
  const home = await mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-proxy-inspector-'));
  cleanup.push(() => rm(home, { recursive: true, force: true }));
  const before = await count('GET /authorize');
  const list = await inspector(home, ['--method', 'tools/list']);
  assert(list.tools[0]?.name === 'echo', JSON.stringify(list));
  assert(await count('GET /authorize') === before + 1, 'one authorization');
  const as = await asRequests();
  const out = await inspector(home, ['--method', 'tools/call', '--tool-name', 'echo', '--tool-arg', 'text=inspected']);
  assert(out.content[0].text === 'inspected', JSON.stringify(out));
  assert(await asRequests() === as, 'the warm call asked the AS');
});

for (const f of cleanup.reverse()) await f();
console.log(`${pass} passed, ${fail} failed`);
process.exit(fail === 0 ? 0 : 1);
