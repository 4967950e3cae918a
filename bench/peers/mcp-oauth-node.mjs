// The project's npm package with the MCP TypeScript SDK's Client: the SDK's
// transport gets `fetch: auth.fetch`; the engine does the OAuth.
//
//   node mcp-oauth-node.mjs workload <server-url> <store-dir>   connect, initialize, tools/list, tools/call echo
//   node mcp-oauth-node.mjs token    <server-url> <store-dir>   auth.token() (never interactive), prints the token
//
// The "browser" is $BROWSER (the package runs it without a shell).

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpOAuth } from 'mcp-oauth';

const [mode, url, home] = process.argv.slice(2);
if (!['workload', 'token'].includes(mode) || !url || !home) {
  console.error('usage: mcp-oauth-node.mjs workload|token <server-url> <store-dir>');
  process.exit(2);
}

async function main() {
  const auth = await McpOAuth.open(url, { home, interactive: mode === 'workload', callbackTimeoutMs: 30_000 });
  if (mode === 'token') {
    process.stdout.write(`${await auth.token()}\n`);
    return;
  }
  const client = new Client({ name: 'bench-peers-mcp-oauth-node', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: auth.fetch }));
  const tools = await client.listTools();
  if (!tools.tools.some((t) => t.name === 'echo')) throw new Error('tools/list has no echo');
  const out = await client.callTool({ name: 'echo', arguments: { text: 'bench' } });
  if (out.content?.[0]?.text !== 'bench') throw new Error(`echo answered ${JSON.stringify(out)}`);
  await client.close();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`mcp-oauth-node: ${e?.stack ?? e}`);
    process.exit(1);
  },
);
