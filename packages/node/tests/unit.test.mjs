// The host's parts on their own: URL policy, terminal escaping, the store and
// its lock protocol, DPoP proofs and their keys, the loopback listener, the
// browser opener.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, verify } from 'node:crypto';
import { readFile, writeFile, stat, utimes, readdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { escapeTerminal, defaultHome, systemOpenBrowser } from 'mcp-oauth';
import { tempHome, removeHome, rawRequest, GET, callbackJunk } from './helpers.mjs';

// Internals, from the bundle's lazy.js (the package's exports map covers only the public API).
const { checkPolicy, FileStore, Listener, MAX_QUEUE, browserCommand, DpopKeys, Host, deviceCodeLines } = await import(path.join(process.cwd(), 'node_modules', 'mcp-oauth', 'dist', 'lazy.js'));

const homes = [];
after(() => Promise.all(homes.map(removeHome)));
async function home() {
  const h = await tempHome();
  homes.push(h);
  return h;
}

test('URL policy: https anywhere, http only to loopback', () => {
  for (const ok of ['https://example.com/x', 'http://127.0.0.1:9/x', 'http://localhost/x', 'http://[::1]/x', 'http://127.1/x']) assert.ok(checkPolicy(ok).url, ok);
  for (const bad of ['http://example.com/', 'http://10.0.0.1/', 'file:///etc/passwd', 'javascript:alert(1)', 'nonsense', 'http://127.0.0.1.evil.com/']) assert.ok(checkPolicy(bad).refused, bad);
});

test('terminal escaping: every control character (C0, DEL, C1) escaped; keepLines keeps newlines and tabs only', () => {
  const s = escapeTerminal('evil\u001b[2J\u001b]0;title\u0007 \u202eabc\u009b\r\nnext\tx');
  assert.ok(!/[\u0000-\u001f\u007f-\u009f]/.test(s), s);
  assert.ok(s.includes('\\u{1b}[2J') && s.includes('\\u{d}\\u{a}next\\u{9}x'), s);
  assert.ok(s.includes('\u202e'), 'not a control character: kept, as in every host');
  const lines = escapeTerminal('a\r\nb\tc\u001b', true);
  assert.equal(lines, 'a\\u{d}\nb\tc\\u{1b}');
});

test('default home: MCP_OAUTH_HOME, else the platform data dir', () => {
  assert.equal(defaultHome({ MCP_OAUTH_HOME: '/x/y' }), '/x/y');
  assert.equal(defaultHome({ MCP_OAUTH_HOME: '', XDG_DATA_HOME: '/data' }), '/data/mcp-oauth');
  assert.match(defaultHome({}), /\.local\/share\/mcp-oauth$/);
});

test('store: 0700/0600, atomic writes leave no temp file, corrupt reads as absent, keys cannot escape', async () => {
  const dir = path.join(await home(), 'store');
  const warnings = [];
  const s = new FileStore(dir, (m) => warnings.push(m));
  await s.set('tokens-ab', new TextEncoder().encode('{"v":1}'));
  assert.equal(new TextDecoder().decode(await s.get('tokens-ab')), '{"v":1}');
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  assert.equal((await stat(path.join(dir, 'locks'))).mode & 0o777, 0o700);
  assert.equal((await stat(path.join(dir, 'tokens-ab.json'))).mode & 0o777, 0o600);
  assert.deepEqual((await readdir(dir)).sort(), ['locks', 'tokens-ab.json']);
  await writeFile(path.join(dir, 'bad.json'), '{"v":1, trunc');
  assert.equal(await s.get('bad'), null);
  assert.match(warnings.join(), /corrupt/);
  for (const bad of ['../x', 'a/b', '', '.hidden', 'a.json', 'x\0y', '/etc/passwd']) await assert.rejects(s.set(bad, new Uint8Array(2)), /refused storage key/);
  await s.delete('tokens-ab');
  await s.delete('tokens-ab');
  assert.equal(await s.get('tokens-ab'), null);
});

test('lock protocol 2: exclusive across holders, stale locks broken, deadline names the file', async () => {
  const dir = await home();
  const a = new FileStore(dir);
  const b = new FileStore(dir);
  const held = await a.lock('tokens-x');
  const file = path.join(dir, 'locks', 'tokens-x.lock');
  const content = JSON.parse(await readFile(file, 'utf8'));
  assert.equal(content.pid, process.pid);
  assert.ok(Math.abs(content.created_ms - Date.now()) < 5000);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  await assert.rejects(b.lock('tokens-x', 300), (e) => e.message.includes(file));
  let got = false;
  const waiting = b.lock('tokens-x', 5000).then((h) => ((got = true), h));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(got, false, 'the second holder waits');
  await held.release();
  await held.release(); // idempotent: the second holder's lock stays
  const second = await waiting;
  assert.equal(JSON.parse(await readFile(file, 'utf8')).pid, process.pid);
  await second.release();
  await assert.rejects(stat(file), { code: 'ENOENT' });
  // The same store object is no shortcut: a second lock in this process waits too.
  const first = await a.lock('tokens-x');
  await assert.rejects(a.lock('tokens-x', 200), (e) => e.message.includes(file));
  await first.release();

  // A dead holder's lock is broken at once.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  await writeFile(file, JSON.stringify({ pid: Number(dead), created_ms: Date.now() }));
  const t0 = Date.now();
  await (await a.lock('tokens-x', 2000)).release();
  assert.ok(Date.now() - t0 < 1000);
  // An empty lock file (a crash, or protocol 1) older than 5 s is broken; a fresh one is not.
  await writeFile(file, '');
  await assert.rejects(a.lock('tokens-x', 200));
  const old = new Date(Date.now() - 10_000);
  await utimes(file, old, old);
  await (await a.lock('tokens-x', 2000)).release();
  // A live holder's lock older than 60 s is broken too.
  await writeFile(file, JSON.stringify({ pid: process.pid, created_ms: 0 }));
  const older = new Date(Date.now() - 61_000);
  await utimes(file, older, older);
  await (await a.lock('tokens-x', 2000)).release();
  assert.deepEqual((await readdir(path.join(dir, 'locks'))).filter((n) => n.includes('stale')), []);
});

const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const CLAIMS = '{"jti":"AAECAwQFBgcICQoLDA0ODw","htm":"POST","htu":"https://mcp.example/mcp","iat":1700000000,"ath":"x"}';

test('DPoP proof: ES256 over the claims as given, verifiable with the public key in its header, no private part', async () => {
  const dir = path.join(await home(), 'store');
  const jws = await new DpopKeys(new FileStore(dir), new Map()).proof('dpop-0a1b', CLAIMS);
  assert.match(jws, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  const [h, c, s] = jws.split('.');
  const header = b64json(h);
  assert.deepEqual(Object.keys(header), ['typ', 'alg', 'jwk']);
  assert.equal(header.typ, 'dpop+jwt');
  assert.equal(header.alg, 'ES256');
  assert.deepEqual(Object.keys(header.jwk).sort(), ['crv', 'kty', 'x', 'y']);
  assert.equal(header.jwk.kty, 'EC');
  assert.equal(header.jwk.crv, 'P-256');
  assert.ok(!('d' in header.jwk), 'no private parameter');
  assert.equal(Buffer.from(c, 'base64url').toString('utf8'), CLAIMS, 'the claims exactly as given');
  const sig = Buffer.from(s, 'base64url');
  assert.equal(sig.length, 64, 'r || s');
  const pub = createPublicKey({ key: header.jwk, format: 'jwk' });
  assert.ok(verify('sha256', Buffer.from(`${h}.${c}`), { key: pub, dsaEncoding: 'ieee-p1363' }, sig));
  const forged = Buffer.from(CLAIMS.replace('POST', 'GET')).toString('base64url');
  assert.ok(!verify('sha256', Buffer.from(`${h}.${forged}`), { key: pub, dsaEncoding: 'ieee-p1363' }, sig));
  // The stored private key is PKCS#8 and nothing of it is in the proof.
  const pem = await readFile(path.join(dir, 'dpop-0a1b.pem'), 'utf8');
  assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
  const { d, x } = createPrivateKey(pem).export({ format: 'jwk' });
  assert.equal(x, header.jwk.x, 'the header names the stored key');
  assert.ok(!jws.includes(d));
});

test('DPoP keys: one per key id, 0600 in the store, the same key on later openings, created once under a race', async () => {
  const dir = path.join(await home(), 'store');
  const jwk = async (keys, id) => b64json((await keys.proof(id, CLAIMS)).split('.')[0]).jwk;
  const first = await jwk(new DpopKeys(new FileStore(dir), new Map()), 'dpop-aa');
  assert.equal((await stat(path.join(dir, 'dpop-aa.pem'))).mode & 0o777, 0o600);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  // A new store object and an empty cache: the key comes from the file.
  const reopened = new DpopKeys(new FileStore(dir), new Map());
  assert.deepEqual(await jwk(reopened, 'dpop-aa'), first);
  assert.deepEqual(await jwk(reopened, 'dpop-aa'), first, 'cached');
  const other = await jwk(reopened, 'dpop-bb');
  assert.notDeepEqual(other, first, 'another key id, another key');
  // Two sessions making the same new key at once agree on one.
  const [a, b] = await Promise.all([jwk(new DpopKeys(new FileStore(dir), new Map()), 'dpop-cc'), jwk(new DpopKeys(new FileStore(dir), new Map()), 'dpop-cc')]);
  assert.deepEqual(a, b);
  assert.deepEqual((await readdir(dir)).sort(), ['dpop-aa.pem', 'dpop-bb.pem', 'dpop-cc.pem', 'locks']);
  // A corrupt key file is refused and left as it is: a token bound to it is
  // useless without it, and the user decides (tests/vectors/key_files.json).
  await writeFile(path.join(dir, 'dpop-dd.pem'), 'not a key', { mode: 0o600 });
  await assert.rejects(jwk(new DpopKeys(new FileStore(dir), new Map()), 'dpop-dd'), (e) => e.message.includes(path.join(dir, 'dpop-dd.pem')) && !e.message.includes('not a key'));
  assert.equal(await readFile(path.join(dir, 'dpop-dd.pem'), 'utf8'), 'not a key');
  // Moved away, a new key is made.
  await rename(path.join(dir, 'dpop-dd.pem'), path.join(dir, 'dpop-dd.pem.bad'));
  assert.equal((await jwk(new DpopKeys(new FileStore(dir), new Map()), 'dpop-dd')).crv, 'P-256');
  assert.equal((await stat(path.join(dir, 'dpop-dd.pem'))).mode & 0o777, 0o600);
});

test('the dpop-proof effect answers with the proof, or an error without key material', async () => {
  const dir = path.join(await home(), 'store');
  const host = new Host({ store: new FileStore(dir), progress: () => {} });
  const ok = await host.perform({ tag: 'dpop-proof', val: { keyId: 'dpop-ee', claims: CLAIMS } }, {});
  assert.equal(ok.tag, 'dpop-proof');
  assert.equal(ok.val.tag, 'ok');
  assert.equal(b64json(ok.val.val.split('.')[0]).typ, 'dpop+jwt');
  const bad = await host.perform({ tag: 'dpop-proof', val: { keyId: '../escape', claims: CLAIMS } }, {});
  assert.equal(bad.val.tag, 'err');
  assert.match(bad.val.val, /refused storage key/);
  assert.ok(!bad.val.val.includes('PRIVATE'));
});

test('listener: 127.0.0.1, many requests, only GET /callback, a timeout, the done page', async () => {
  const l = await Listener.bind(undefined, {});
  assert.match(l.redirectUri, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
  const base = l.redirectUri.replace('/callback', '');
  assert.equal((await fetch(`${base}/favicon.ico`)).status, 404);
  assert.equal((await fetch(`${l.redirectUri}?x=1`, { method: 'POST' })).status, 404);
  assert.deepEqual(await l.next(100), { tag: 'timed-out' });
  const stray = fetch(`${l.redirectUri}?code=forged&state=forged`);
  assert.deepEqual(await l.next(5000), { tag: 'redirect', val: 'code=forged&state=forged' });
  const real = fetch(`${l.redirectUri}?code=a&state=b`);
  assert.deepEqual(await l.next(5000), { tag: 'redirect', val: 'code=a&state=b' });
  assert.equal((await stray).status, 400, 'the one waited past was not accepted');
  await l.close();
  const done = await real;
  assert.equal(done.status, 200);
  assert.match(await done.text(), /attempt has ended\. Return to your application for its outcome/, 'an unanswered request gets the neutral page');
  await assert.rejects(fetch(l.redirectUri));
});

test('listener: a flood of junk neither ends nor blocks the wait; the real callback still gets through', async () => {
  const l = await Listener.bind(undefined, {});
  const junk = callbackJunk(l.port);
  const REAL = 'code=the-code&state=the-state';
  // As the engine does: take each arrival, pass over the junk, until the real one.
  const taken = (async () => {
    for (let n = 0; n < 1000; n++) {
      const ev = await l.next(20_000);
      if (ev.tag !== 'redirect' || ev.val === REAL) return ev;
      assert.ok(['junk', 'code=x&state=wrong'].includes(ev.val), ev.val);
    }
    return { tag: 'too many arrivals' };
  })();
  const answers = await Promise.all(junk);
  for (const a of answers) assert.match(a, /^(HTTP\/1\.1 (400|404) |closed$)/, 'every junk request answered, or its connection closed');
  assert.ok(answers.filter((a) => a.startsWith('HTTP/1.1 404')).length >= 1);
  const real = rawRequest(l.port, GET(`/callback?${REAL}`));
  assert.deepEqual(await taken, { tag: 'redirect', val: REAL });
  await l.close();
  assert.equal(await real, 'HTTP/1.1 200 OK', 'the real one gets the done page');
  // Each junk request counted once: ignored (never reached the engine) or rejected (passed over).
  assert.equal(l.ignored + l.rejected, 150, `ignored ${l.ignored}, rejected ${l.rejected}`);
  assert.ok(l.ignored >= 90, `favicon, POST and TLS are ignored: ${l.ignored}`);
});

test('listener: a full queue answers its oldest arrival first, never the newest', async () => {
  const l = await Listener.bind(undefined, {});
  for (let i = 0; i < MAX_QUEUE + 10; i++) l.arrive({ query: `junk-${i}` });
  l.arrive({ query: 'code=real' });
  assert.equal(l.queue.length, MAX_QUEUE);
  assert.equal(l.rejected, 11);
  let ev;
  for (let n = 0; n <= MAX_QUEUE && ev?.val !== 'code=real'; n++) ev = await l.next(1000);
  assert.deepEqual(ev, { tag: 'redirect', val: 'code=real' });
  await l.close();
});

test('listener: what one request may cost is bounded (URL, headers, time to send it)', async () => {
  const l = await Listener.bind(undefined, {});
  assert.equal(await rawRequest(l.port, GET(`/callback?${'a'.repeat(9000)}`)), 'HTTP/1.1 414 URI Too Long');
  assert.equal(await rawRequest(l.port, `GET /callback?code=a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 'HTTP/1.1 431 Request Header Fields Too Large');
  // A connection that sends nothing, or half a request, is closed within seconds.
  const t0 = Date.now();
  const [silent, partial] = await Promise.all([rawRequest(l.port, '', 15_000), rawRequest(l.port, 'GET /callback?code=a HTTP/1.1\r\nHost: 127.0.0.1\r\n', 15_000)]);
  assert.match(silent, /^(HTTP\/1\.1 408 |closed$)/);
  assert.match(partial, /^(HTTP\/1\.1 408 |closed$)/);
  assert.ok(Date.now() - t0 < 9000, `closed after ${Date.now() - t0} ms`);
  assert.deepEqual(await l.next(50), { tag: 'timed-out' }, 'none of it is an arrival');
  assert.equal(l.ignored, 4);
  await l.close();
});

test('pasted redirect URLs are checked', async () => {
  const l = await Listener.bind(undefined, {});
  assert.deepEqual(l.parsePaste(`${l.redirectUri}?code=x&state=y`), { query: 'code=x&state=y' });
  assert.match(l.parsePaste('hello').error, /not a URL/);
  assert.match(l.parsePaste('https://evil.example/callback?code=x').error, /not the redirect/);
  assert.match(l.parsePaste(l.redirectUri).error, /no query/);
  await l.close();
});

test('$BROWSER runs directly with the URL last, never through a shell', async () => {
  const dir = await home();
  const script = path.join(dir, 'record.mjs');
  const out = path.join(dir, 'args.json');
  // The recorder writes its arguments atomically (temp file, rename).
  await writeFile(script, `import { writeFileSync, renameSync } from 'node:fs'; writeFileSync(${JSON.stringify(`${out}.tmp`)}, JSON.stringify(process.argv.slice(2))); renameSync(${JSON.stringify(`${out}.tmp`)}, ${JSON.stringify(out)});`);
  const url = 'https://as.example/authorize?a=1&b=$(touch pwned);touch pwned2`touch pwned3`';
  await systemOpenBrowser(url, { BROWSER: `${process.execPath} ${script} --new-window:ignored-alternative` });
  let args;
  for (let i = 0; i < 100 && !args; i++) {
    await new Promise((r) => setTimeout(r, 20));
    args = await readFile(out, 'utf8').then(
      (text) => JSON.parse(text),
      () => undefined,
    );
  }
  assert.deepEqual(args, ['--new-window', url]);
  for (const d of [dir, process.cwd()]) assert.deepEqual((await readdir(d)).filter((n) => n.startsWith('pwned')), []);
  assert.deepEqual(browserCommand('open -a Safari:lynx'), { program: 'open', args: ['-a', 'Safari'] });
  await assert.rejects(systemOpenBrowser('javascript:alert(1)', {}), /refusing/);
  await assert.rejects(systemOpenBrowser('https://x.example/', { BROWSER: '/nonexistent/browser' }), /could not run/);
});

test('listener: respond() answers the held request with the page as given; a paste has no one to answer', async () => {
  const l = await Listener.bind(undefined, {});
  const held = fetch(`${l.redirectUri}?code=a&state=b`);
  assert.deepEqual(await l.next(5000), { tag: 'redirect', val: 'code=a&state=b' });
  // Held until respond(): nothing has answered it yet.
  const early = await Promise.race([held.then(() => 'answered'), new Promise((r) => setTimeout(() => r('held'), 300))]);
  assert.equal(early, 'held');
  const headers = [
    { name: 'content-type', value: 'text/html; charset=utf-8' },
    { name: 'content-security-policy', value: "default-src 'none'" },
    { name: 'content-length', value: '1' }, // framing is the listener's own
    { name: 'bad header', value: 'x' }, // not sendable: left out
    { name: 'x-split', value: 'a\r\nset-cookie: evil=1' }, // no header injection
  ];
  l.respond({ status: 201, headers, body: '<p>the outcome</p>' });
  const r = await held;
  assert.equal(r.status, 201);
  assert.equal(r.headers.get('content-security-policy'), "default-src 'none'");
  assert.equal(r.headers.get('cache-control'), 'no-store', 'added when the page has none');
  assert.equal(r.headers.get('set-cookie'), null);
  assert.equal(r.headers.get('x-split'), null);
  assert.equal(await r.text(), '<p>the outcome</p>');
  l.respond({ status: 200, headers: [], body: 'again' }); // nothing held: nothing happens
  l.arrive({ query: 'code=pasted' }); // a paste
  assert.deepEqual(await l.next(1000), { tag: 'redirect', val: 'code=pasted' });
  l.respond({ status: 200, headers: [], body: 'nobody' });
  await l.close();
});

test('listener and pause: an AbortSignal cancels the wait; pauses are capped and end on abort', async () => {
  const l = await Listener.bind(undefined, {});
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 100);
  const t0 = Date.now();
  assert.deepEqual(await l.next(60_000, ac.signal), { tag: 'cancelled' });
  assert.ok(Date.now() - t0 < 5000);
  assert.deepEqual(await l.next(60_000, ac.signal), { tag: 'cancelled' }, 'still aborted: at once');
  await l.close();
  const signal = new AbortController();
  const host = new Host({ store: new FileStore(await home()), progress: () => {}, signal: signal.signal });
  assert.deepEqual(await host.perform({ tag: 'pause', val: 20n }, {}), { tag: 'paused', val: { tag: 'ok', val: undefined } });
  const long = host.perform({ tag: 'pause', val: 2n ** 60n }, {}); // capped, and cancelled here
  setTimeout(() => signal.abort(), 50);
  const r = await long;
  assert.equal(r.tag, 'paused');
  assert.equal(r.val.tag, 'err');
  assert.match(r.val.val, /cancelled/);
});

test('device code: the default lines, prefixed and escaped; the hook gets escaped fields', async () => {
  const lines = deviceCodeLines({ verificationUri: 'https://as.example/device', verificationUriComplete: 'https://as.example/device?c=\u001b[2J', userCode: 'WDJB-MJHT', expiresIn: 600 });
  assert.deepEqual(lines, [
    'mcp-oauth: to sign in, open this address on any device and enter the code:',
    'mcp-oauth:   open  https://as.example/device',
    'mcp-oauth:   code  WDJB-MJHT',
    'mcp-oauth:   or open https://as.example/device?c=\\u{1b}[2J (the code is filled in)',
    'mcp-oauth: the code expires in 10 min',
  ]);
  const shown = [];
  const progress = [];
  const host = new Host({ store: new FileStore(await home()), progress: (p) => progress.push(p), deviceCode: (d) => shown.push(d) });
  const ev = { tag: 'device-code', val: { verificationUri: 'https://as.example/d', verificationUriComplete: undefined, userCode: 'AB\u0007CD', expiresInS: 90n } };
  assert.deepEqual(await host.perform({ tag: 'notify', val: ev }, {}), { tag: 'ack' });
  assert.deepEqual(shown, [{ verificationUri: 'https://as.example/d', verificationUriComplete: undefined, userCode: 'AB\\u{7}CD', expiresIn: 90 }]);
  assert.equal(progress[0].kind, 'device-code');
  assert.equal(progress[0].userCode, 'AB\\u{7}CD');
});
