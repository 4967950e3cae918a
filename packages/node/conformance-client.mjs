// The client the official MCP conformance suite drives (mirrors the Rust
// host's conformance-client):
//
//     node conformance-client.mjs <server-url>
//
// with MCP_CONFORMANCE_SCENARIO and, for some scenarios,
// MCP_CONFORMANCE_CONTEXT (JSON: pre-registered credentials, a signing key,
// an ID token). An empty store per run, a headless browser that follows the
// redirect chain to the loopback listener, and
// https://conformance-test.local/client-metadata.json as the client ID
// metadata document URL. It connects with the SDK's Client over
// StreamableHTTPClientTransport with `fetch: auth.fetch`, initializes, lists
// the tools and calls each one, then exits 0; a failure prints why, exits 1.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpOAuth } from 'mcp-oauth';

const CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';

/** Follows redirects from `url` until the loopback callback has been requested. */
async function follow(url) {
  let current = new URL(url);
  for (let hop = 0; hop < 10; hop++) {
    if (!/^https?:$/.test(current.protocol)) throw new Error('refusing a non-http URL');
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(current.hostname) && current.pathname === '/callback';
    const r = await fetch(current, { redirect: 'manual', signal: AbortSignal.timeout(30_000) });
    await r.arrayBuffer();
    if (loopback) return;
    const loc = r.headers.get('location');
    if (r.status < 300 || r.status >= 400 || !loc) throw new Error(`${current.origin}${current.pathname} answered HTTP ${r.status} instead of redirecting`);
    current = new URL(loc, current);
  }
  throw new Error('too many redirects');
}

/** Arguments for a tool from its input schema: a plausible value per property. */
function sampleArguments(schema) {
  const args = {};
  Object.entries(schema?.properties ?? {}).forEach(([name, p], i) => {
    args[name] = { number: i + 2, integer: i + 2, boolean: true, array: [], object: {} }[p?.type] ?? 'test';
  });
  return args;
}

async function run(url) {
  let context = {};
  try {
    context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || '{}');
  } catch {
    // no context
  }
  const scenario = process.env.MCP_CONFORMANCE_SCENARIO || '';
  // The grant follows what the scenario hands this application: a signing
  // key means private_key_jwt client credentials, an ID token the enterprise
  // flow; the client-credentials scenarios otherwise carry the same context
  // as pre-registration, so their name decides.
  let grant;
  if (context.idp_id_token) {
    if (!context.idp_token_endpoint) throw new Error('the context has no idp_token_endpoint');
    grant = { idToken: context.idp_id_token, idpTokenEndpoint: context.idp_token_endpoint, idpClientId: context.idp_client_id };
  } else if (context.private_key_pem || scenario.includes('client-credentials')) {
    grant = 'client-credentials';
  }
  const home = await mkdtemp(path.join(os.tmpdir(), 'mcp-oauth-conformance-node-'));
  try {
    const auth = await McpOAuth.open(url, {
      home,
      secrets: 'file', // a throwaway store: a keychain item would outlive it
      clientId: context.client_id,
      clientSecret: context.client_secret,
      privateKey: context.private_key_pem,
      grant,
      clientMetadataUrl: CLIENT_METADATA_URL,
      clientName: 'mcp-oauth conformance client (node)',
      callbackTimeoutMs: 20_000,
      openBrowser: (u) => {
        follow(u).catch((e) => console.error(`headless browser: ${e.message}`));
      },
      onProgress: (p) => {
        if (p.kind === 'callback-rejected' || p.kind === 'storage-warning') console.error(`mcp-oauth: ${p.kind}: ${p.reason}`);
      },
    });
    const client = new Client({ name: 'mcp-oauth-conformance-client-node', version: '0.1.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: auth.fetch }));
    const { tools } = await client.listTools();
    for (const tool of tools) {
      const out = await client.callTool({ name: tool.name, arguments: sampleArguments(tool.inputSchema) });
      console.error(`called ${tool.name}: ${JSON.stringify(out).slice(0, 200)}`);
    }
    await client.close();
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

const url = process.argv[2];
if (!url) {
  console.error('usage: conformance-client.mjs <server-url>');
  process.exit(2);
}
// Every run has a deadline (the suite's own is 60 s).
setTimeout(() => {
  console.error('conformance-client: no result within 55 s');
  process.exit(1);
}, 55_000).unref();
run(url).then(
  () => process.exit(0),
  (e) => {
    console.error(`conformance-client: ${e?.kind ? `[${e.kind}] ` : ''}${e?.message ?? e}`);
    process.exit(1);
  },
);
