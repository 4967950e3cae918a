// The store shared with the Rust CLI, both ways, and the cross-host lock.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { McpOAuth } from 'mcp-oauth';
import { startDemo, headlessBrowser, noBrowser, tempHome, removeHome, isAsRequest, cli, pingStatus, HEADLESS } from './helpers.mjs';

let demo, shortLived;
const homes = [];
before(async () => {
  [demo, shortLived] = await Promise.all([startDemo(), startDemo({ accessTtl: 5 })]);
});
after(async () => {
  demo?.stop();
  shortLived?.stop();
  await Promise.all(homes.map(removeHome));
});
async function home() {
  const h = await tempHome();
  homes.push(h);
  return h;
}

test('a token from `mcp-oauth login` is used by Node without any AS request', async () => {
  const h = await home();
  const login = await cli(['login', demo.url], { MCP_OAUTH_HOME: h, BROWSER: HEADLESS });
  assert.equal(login.code, 0, login.stderr);
  const printed = await cli(['token', demo.url], { MCP_OAUTH_HOME: h });
  assert.equal(printed.code, 0, printed.stderr);
  const from = (await demo.log()).requests.length;
  const auth = await McpOAuth.open(demo.url, { home: h, openBrowser: noBrowser() });
  assert.equal(await auth.token(), printed.stdout.trim(), 'the CLI token');
  const r = await auth.fetch(demo.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
  assert.equal(r.status, 200);
  const seen = await demo.requestsSince(from);
  assert.deepEqual(seen.filter(isAsRequest), [], String(seen));
});

test('`mcp-oauth token` and `status` work after a Node login', async () => {
  const h = await home();
  const browser = headlessBrowser();
  const auth = await McpOAuth.open(demo.url, { home: h, openBrowser: browser.open });
  const token = await auth.token();
  const from = (await demo.log()).requests.length;
  const printed = await cli(['token', demo.url], { MCP_OAUTH_HOME: h });
  assert.equal(printed.code, 0, printed.stderr);
  assert.equal(printed.stdout.trim(), token);
  assert.deepEqual(await demo.requestsSince(from), [], 'the CLI made no request');
  const status = await cli(['status', '--json'], { MCP_OAUTH_HOME: h });
  assert.equal(status.code, 0, status.stderr);
  const [st] = JSON.parse(status.stdout);
  assert.equal(st.server_url, demo.url);
  assert.equal(st.has_token, true);
  assert.ok(!status.stdout.includes(token), 'status shows no token');
});

test('cross-host lock: Node and CLI refresh at the same moment without spending a refresh token twice', async () => {
  const h = await home();
  const browser = headlessBrowser();
  const first = await McpOAuth.open(shortLived.url, { home: h, openBrowser: browser.open });
  await first.token();
  // Protocol 2: a CLI refresh takes and removes locks/<key>.lock. A lasting
  // empty lock file is protocol 1 (flock), which Node cannot take part in.
  const alone = await cli(['token', shortLived.url], { MCP_OAUTH_HOME: h });
  assert.equal(alone.code, 0, alone.stderr);
  assert.deepEqual(await readdir(path.join(h, 'locks')), [], 'the CLI left its lock file behind: it does not use lock protocol 2 (docs/store.md)');
  for (let round = 0; round < 4; round++) {
    // Fresh sessions load the stored (soon expiring) token, so each refreshes.
    const nodes = await Promise.all([0, 1].map(() => McpOAuth.open(shortLived.url, { home: h, openBrowser: noBrowser() })));
    const [a, b, c, d] = await Promise.all([
      nodes[0].token(),
      cli(['token', shortLived.url], { MCP_OAUTH_HOME: h }),
      nodes[1].token(),
      cli(['token', shortLived.url], { MCP_OAUTH_HOME: h }),
    ]);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(d.code, 0, d.stderr);
    assert.equal((await shortLived.log()).refresh_token_reuse_detected, false, `round ${round}: a refresh token was spent twice`);
    for (const t of [a, b.stdout.trim(), c, d.stdout.trim()]) assert.equal(await pingStatus(shortLived.url, t), 200, `round ${round}`);
  }
  assert.equal(browser.opened, 1);
});

test('cross-process lock between Node processes', async () => {
  const h = await home();
  const browser = headlessBrowser();
  await (await McpOAuth.open(shortLived.url, { home: h, openBrowser: browser.open })).token();
  const child = `const { McpOAuth } = await import('mcp-oauth');
    const auth = await McpOAuth.open(process.argv[1], { home: process.argv[2], openBrowser: () => { throw new Error('no'); } });
    process.stdout.write(await auth.token());`;
  const run = () => new Promise((resolve) => execFile(process.execPath, ['--input-type=module', '-e', child, shortLived.url, h], { timeout: 60_000 }, (err, stdout, stderr) => resolve({ err, stdout, stderr })));
  for (let round = 0; round < 3; round++) {
    const outs = await Promise.all([run(), run(), run()]);
    for (const o of outs) assert.equal(o.err, null, o.stderr);
    assert.equal((await shortLived.log()).refresh_token_reuse_detected, false, `round ${round}: a refresh token was spent twice`);
    for (const o of outs) assert.equal(await pingStatus(shortLived.url, o.stdout), 200);
  }
});
