// A replica of a fleet, for the fleet test (and by hand):
//
//   node fleet-replica.mjs URL SECONDS
//
// Opens McpOAuth for the MCP server at URL with the store, user and key file
// the environment names (MCP_OAUTH_STORE, MCP_OAUTH_USER,
// MCP_OAUTH_STORE_KEY_FILE, MCP_OAUTH_STORE_PASSWORD, MCP_OAUTH_SECRETS),
// asks for a token the silent way every 50 ms for SECONDS (never a browser:
// a sign-in that would be needed is an error), then prints one JSON line
// {"host":"node","calls":N,"ok":N,"errors":N,"first_errors":[up to 3],
//  "failures":[{"at","ms"}...],"last_ok_at":T}  (times: Unix seconds)
// and exits 0; 1 when it could not start. Run it where the package is
// installed (packages/node/test copies it beside the installed package).

const [url, seconds] = process.argv.slice(2);
const fail = (why) => {
  process.stderr.write(`fleet-replica: ${why}\n`);
  process.exit(1);
};
if (!url || !(Number(seconds) > 0)) fail('usage: node fleet-replica.mjs URL SECONDS');

let McpOAuth;
try {
  ({ McpOAuth } = await import('mcp-oauth'));
} catch (e) {
  fail(`cannot load the mcp-oauth package (${e.code || e.message}); run this beside an install of it`);
}

let auth;
try {
  auth = await McpOAuth.open(url, {
    interactive: false,
    openBrowser: () => {
      throw new Error('a replica never opens a browser');
    },
    onProgress: () => {}, // one line of output: the result
  });
} catch (e) {
  fail(`cannot open ${url}: ${e.message}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const result = { host: 'node', calls: 0, ok: 0, errors: 0, first_errors: [], failures: [], last_ok_at: null };
const began = Date.now();
const until = began + Number(seconds) * 1000;
while (Date.now() < until) {
  const started = Date.now();
  result.calls++;
  try {
    await auth.token();
    result.ok++;
    result.last_ok_at = Date.now() / 1000;
  } catch (e) {
    result.errors++;
    // When and how long: the fleet test's outage checks each failure.
    if (result.failures.length < 200) result.failures.push({ at: started / 1000, ms: Date.now() - started });
    if (result.first_errors.length < 3) result.first_errors.push(String(e?.message ?? e));
  }
  await sleep(Math.max(0, 50 - (Date.now() - started)));
}
await auth.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
