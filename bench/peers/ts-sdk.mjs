// The MCP TypeScript SDK's own OAuth, as an application would write it: an
// OAuthClientProvider kept in files (so a new process finds the client, the
// tokens and the discovery state), a loopback listener for the callback, and
// the SDK's transport doing discovery, registration, refresh and token
// exchange through `authProvider`.
//
//   node ts-sdk.mjs workload <server-url> <store-dir>   connect, initialize, tools/list, tools/call echo
//   node ts-sdk.mjs token    <server-url> <store-dir>   the SDK's auth() (never a browser), prints the token
//
// The "browser" is $BENCH_BROWSER run with the authorization URL (no shell).
//
// --load-engine also loads the npm package's engine and uses nothing of it:
// the jco glue imported, the core module compiled and instantiated, started
// at the beginning and awaited before the end, as the package overlaps it
// with the application's own start. What any package running a
// jco-transpiled component pays on top of this program's own OAuth (the
// bench's floor row for the npm package).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { auth, UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const args = process.argv.slice(2);
const loadEngine = args.includes('--load-engine');
const [mode, url, dir] = args.filter((a) => a !== '--load-engine');
if (!['workload', 'token'].includes(mode) || !url || !dir) {
  console.error('usage: ts-sdk.mjs workload|token <server-url> <store-dir> [--load-engine]');
  process.exit(2);
}
mkdirSync(dir, { recursive: true, mode: 0o700 });

const read = (name) => {
  try {
    return JSON.parse(readFileSync(join(dir, name), 'utf8'));
  } catch {
    return undefined;
  }
};
const write = (name, value) => writeFileSync(join(dir, name), JSON.stringify(value), { mode: 0o600 });
const remove = (name) => rmSync(join(dir, name), { force: true });

class FileProvider {
  constructor(port, interactive) {
    this.port = port;
    this.interactive = interactive;
    this.expectedState = undefined;
  }
  get redirectUrl() {
    return `http://127.0.0.1:${this.port}/callback`;
  }
  get clientMetadata() {
    return {
      client_name: 'bench-peers ts-sdk',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    };
  }
  state() {
    this.expectedState = randomBytes(16).toString('base64url');
    return this.expectedState;
  }
  clientInformation() {
    return read('client.json');
  }
  saveClientInformation(info) {
    write('client.json', info);
  }
  tokens() {
    return read('tokens.json');
  }
  saveTokens(tokens) {
    write('tokens.json', tokens);
  }
  redirectToAuthorization(authorizationUrl) {
    if (!this.interactive) throw new Error('authorization required (token mode never opens a browser)');
    const child = spawn(process.env.BENCH_BROWSER, [authorizationUrl.href], { stdio: 'ignore' });
    child.on('error', (e) => console.error(`browser: ${e.message}`));
  }
  saveCodeVerifier(v) {
    write('verifier.json', v);
  }
  codeVerifier() {
    const v = read('verifier.json');
    if (!v) throw new Error('no code verifier saved');
    return v;
  }
  discoveryState() {
    return read('discovery.json');
  }
  saveDiscoveryState(s) {
    write('discovery.json', s);
  }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') remove('client.json');
    if (scope === 'all' || scope === 'tokens') remove('tokens.json');
    if (scope === 'all' || scope === 'verifier') remove('verifier.json');
    if (scope === 'all' || scope === 'discovery') remove('discovery.json');
  }
}

// The loopback listener: on the port of the registration when there is one
// (the redirect URI must match it), else any free port.
function listen(port) {
  let deliver, fail;
  const code = new Promise((res, rej) => {
    deliver = res;
    fail = rej;
  });
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    if (u.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end('You can close this window.');
    const err = u.searchParams.get('error');
    if (err) fail(new Error(`authorization failed: ${err}`));
    else deliver({ code: u.searchParams.get('code'), state: u.searchParams.get('state') });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, port: server.address().port, code }));
  });
}

/** The npm package's engine, loaded and instantiated (its internal module, beside the entry). */
async function engineOnly() {
  const { loadMachine } = await import(new URL('./lazy.js', import.meta.resolve('mcp-oauth')).href);
  const machine = await loadMachine();
  if (typeof machine?.SessionMachine?.open !== 'function') throw new Error('the engine has no SessionMachine');
}

async function main() {
  const engine = loadEngine ? engineOnly() : null;
  engine?.catch(() => {}); // awaited below
  const stored = read('port.json');
  let cb;
  try {
    cb = await listen(stored ?? 0);
  } catch {
    cb = await listen(0);
  }
  write('port.json', cb.port);
  const provider = new FileProvider(cb.port, mode === 'workload');

  if (mode === 'token') {
    const result = await auth(provider, { serverUrl: url });
    if (result !== 'AUTHORIZED') throw new Error(`auth() returned ${result}`);
    process.stdout.write(`${(await provider.tokens()).access_token}\n`);
    cb.server.close();
    return;
  }

  const connect = async () => {
    const client = new Client({ name: 'bench-peers-ts-sdk', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
    return client;
  };
  let client;
  try {
    client = await connect();
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    // The SDK redirected to the browser; wait for the callback, then finish.
    const got = await Promise.race([
      cb.code,
      new Promise((_, rej) => setTimeout(() => rej(new Error('no callback within 30 s')), 30_000).unref()),
    ]);
    if (got.state !== provider.expectedState) throw new Error('state mismatch on the callback');
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    await transport.finishAuth(got.code);
    client = new Client({ name: 'bench-peers-ts-sdk', version: '1.0.0' });
    await client.connect(transport);
  }
  cb.server.close();
  const tools = await client.listTools();
  if (!tools.tools.some((t) => t.name === 'echo')) throw new Error('tools/list has no echo');
  const out = await client.callTool({ name: 'echo', arguments: { text: 'bench' } });
  if (out.content?.[0]?.text !== 'bench') throw new Error(`echo answered ${JSON.stringify(out)}`);
  await client.close();
  await engine;
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`ts-sdk: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
