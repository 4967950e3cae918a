// An MCP server built from the TypeScript SDK (stateful Streamable HTTP,
// SSE responses): a tool that asks the client (sampling) and reports
// progress inside its response stream, one that makes the server announce a
// tool list change on the GET stream. Counts what the proxy must do.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest, CreateMessageResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

export async function startSdkServer() {
  const seen = { deletes: 0, headers: [], versions: [] };
  const transports = {};
  const makeServer = () => {
    const server = new McpServer({ name: 'sdk-server', version: '1.0.0' });
    server.registerTool('ask', { description: 'asks the client', inputSchema: { q: z.string() } }, async ({ q }, extra) => {
      const token = extra._meta?.progressToken;
      if (token !== undefined) {
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: 1, total: 2 } });
      }
      const r = await extra.sendRequest(
        { method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: q } }], maxTokens: 5 } },
        CreateMessageResultSchema,
      );
      return { content: [{ type: 'text', text: `client said: ${r.content.text}` }] };
    });
    server.registerTool('touch', { description: 'changes the tool list' }, async () => {
      server.sendToolListChanged();
      return { content: [{ type: 'text', text: 'ok' }] };
    });
    return server;
  };
  const httpServer = http.createServer(async (req, res) => {
    seen.headers.push(req.headers['x-test'] ?? '-');
    if (req.headers['mcp-protocol-version']) seen.versions.push(req.headers['mcp-protocol-version']);
    let body;
    if (req.method === 'POST') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    }
    if (req.method === 'DELETE') seen.deletes++;
    const sid = req.headers['mcp-session-id'];
    let t = sid && transports[sid];
    if (!t) {
      if (req.method === 'POST' && isInitializeRequest(body)) {
        t = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => { transports[id] = t; } });
        t.onclose = () => { if (t.sessionId) delete transports[t.sessionId]; };
        await makeServer().connect(t);
      } else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
        return;
      }
    }
    await t.handleRequest(req, res, body);
  });
  await new Promise((r) => httpServer.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${httpServer.address().port}/mcp`;
  return { url, seen, stop: () => { httpServer.closeAllConnections?.(); httpServer.close(); } };
}
