// One keychain call through @napi-rs/keyring (an optional dependency), for
// keychain.js: run in a process of its own where the keychain is reached
// over D-Bus (a bus that never answers blocks the calling thread inside the
// addon, and Node cannot exit with such a thread: a child can be killed), or
// in-process elsewhere. The request comes on stdin and the answer goes to
// stdout, never in argv (which other users can read). Messages carry no
// secret: the addon's errors name the keychain, never the value.
'use strict';

const SERVICE = 'mcp-oauth';

/** Runs `req` ({ module, op: 'get'|'set'|'delete', account, secret? }): { ok, value? } or { ok: false, error }. */
function run(req) {
  try {
    const { Entry } = require(req.module);
    // Pinned to the Secret Service on Linux: the default falls back to the
    // kernel keyutils store, which neither the other hosts nor a reboot see.
    const entry = new Entry(SERVICE, req.account, { linux: { store: 'secret-service' } });
    if (req.op === 'get') return { ok: true, value: entry.getPassword() ?? null };
    if (req.op === 'set') {
      entry.setPassword(req.secret);
      return { ok: true };
    }
    if (req.op === 'delete') return { ok: true, value: entry.deleteCredential() };
    return { ok: false, error: `unknown keychain operation ${String(req.op)}` };
  } catch (e) {
    const message = String((e && e.message) || e).split('\n')[0].slice(0, 300);
    return { ok: false, error: message, code: e && e.code === 'MODULE_NOT_FOUND' ? 'no-module' : undefined };
  }
}

module.exports = { run };

if (require.main === module) {
  let input = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d) => {
    input += d;
  });
  process.stdin.on('end', () => {
    let answer;
    try {
      answer = run(JSON.parse(input));
    } catch {
      answer = { ok: false, error: 'the keychain helper got no request' };
    }
    process.stdout.write(JSON.stringify(answer));
  });
}
