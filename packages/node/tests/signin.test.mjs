// The device authorization grant (RFC 8628), the page the browser's tab gets
// at the loopback listener (signed in, declined, failed, a stray request
// ignored), and logout with revocation (RFC 7009), against the demo server
// (`mcp-oauth demo --serve`: the device grant at a 1 s interval, approved by
// its simulated user after two polls; `--fault deny`, `--fault token-error`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { McpOAuth, McpOAuthError } from 'mcp-oauth';
import { startDemo, noBrowser, tempHome, removeHome, pingStatus } from './helpers.mjs';

let demo, denying, failing;
const homes = [];
before(async () => {
  [demo, denying, failing] = await Promise.all([startDemo(), startDemo({ faults: ['deny'] }), startDemo({ faults: ['token-error'] })]);
});
after(async () => {
  demo?.stop();
  denying?.stop();
  failing?.stop();
  await Promise.all(homes.map(removeHome));
});
async function home() {
  const h = await tempHome();
  homes.push(h);
  return h;
}

/**
 * A browser for `openBrowser` that returns at once, as a real one does, and
 * records what the loopback listener answered: first `stray` (a query sent
 * to the callback before the real redirect, when given), then the AS's
 * redirect. `done` resolves { stray, page } (each { status, headers, body }).
 */
function pageBrowser({ stray } = {}) {
  const b = { opened: 0 };
  const read = async (r) => ({ status: r.status, headers: r.headers, body: await r.text() });
  b.open = (url) => {
    b.opened++;
    b.done = (async () => {
      const out = {};
      if (stray) {
        const callback = new URL(url).searchParams.get('redirect_uri');
        // Answered at once: the sign-in is still waiting for its redirect.
        out.stray = await read(await fetch(`${callback}?${stray}`, { signal: AbortSignal.timeout(10_000) }));
      }
      const r = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(30_000) });
      await r.arrayBuffer();
      const back = new URL(r.headers.get('location'), url);
      assert.equal(back.hostname, '127.0.0.1', `the AS redirects to the loopback listener (${r.status})`);
      // Held by the listener until the sign-in's outcome is known.
      out.page = await read(await fetch(back, { signal: AbortSignal.timeout(30_000) }));
      return out;
    })();
    b.done.catch(() => {}); // awaited by the test
  };
  return b;
}

/** The engine's page: the strict CSP, no-store, HTML. */
function assertEnginePage(p, status) {
  assert.equal(p.status, status);
  assert.match(p.headers.get('content-security-policy') ?? '', /^default-src 'none'/);
  assert.equal(p.headers.get('cache-control'), 'no-store');
  assert.match(p.headers.get('content-type') ?? '', /^text\/html/);
  assert.match(p.body, /^<!doctype html>/i);
}

test('device: true signs in with a code and no browser: onDeviceCode once, device_authorization then token polls, no /authorize', async () => {
  const shown = [];
  const progress = [];
  const auth = await McpOAuth.open(demo.url, {
    home: await home(),
    device: true,
    openBrowser: noBrowser(),
    onDeviceCode: (code) => shown.push(code),
    onProgress: (p) => progress.push(p),
  });
  const from = (await demo.log()).requests.length;
  const token = await auth.token();
  assert.equal(await pingStatus(demo.url, token), 200);
  assert.equal(shown.length, 1, JSON.stringify(shown));
  const [code] = shown;
  assert.equal(code.userCode, 'WDJB-MJHT');
  assert.ok(code.verificationUri.startsWith(`${demo.base}/`), code.verificationUri);
  assert.ok(code.verificationUriComplete === undefined || code.verificationUriComplete.startsWith(`${demo.base}/`));
  assert.ok(Number.isInteger(code.expiresIn) && code.expiresIn > 0, String(code.expiresIn));
  const seen = await demo.requestsSince(from);
  assert.ok(seen.includes('POST /device_authorization'), String(seen));
  assert.ok(seen.filter((l) => l === 'POST /token').length >= 2, `polled the token endpoint: ${seen}`);
  assert.ok(!seen.includes('GET /authorize'), String(seen));
  assert.ok(!progress.some((p) => p.kind === 'listening' || p.kind === 'browser-opened'), 'no listener, no browser');
  assert.ok(progress.some((p) => p.kind === 'device-code' && p.userCode === 'WDJB-MJHT'));
  // The next session reads the token from the store.
  const again = await McpOAuth.open(demo.url, { home: auth.home, device: true, openBrowser: noBrowser(), onDeviceCode: () => assert.fail('no new code') });
  assert.equal(await again.token(), token);
});

test('device: the default onDeviceCode prints the address, the code and the expiry on stderr', async () => {
  const writes = [];
  const write = process.stderr.write;
  process.stderr.write = (chunk, ...rest) => (writes.push(String(chunk)), typeof rest.at(-1) === 'function' && rest.at(-1)(), true);
  try {
    const auth = await McpOAuth.open(demo.url, { home: await home(), device: true, openBrowser: noBrowser(), onProgress: () => {} });
    await auth.token();
  } finally {
    process.stderr.write = write;
  }
  const lines = writes.join('').split('\n').filter(Boolean);
  assert.ok(lines.every((l) => l.startsWith('mcp-oauth: ')), JSON.stringify(lines));
  assert.ok(lines.some((l) => l === `mcp-oauth:   code  WDJB-MJHT`), JSON.stringify(lines));
  assert.ok(lines.some((l) => l.startsWith(`mcp-oauth:   open  ${demo.base}/`)), JSON.stringify(lines));
  assert.ok(lines.some((l) => /expires in \d+ min/.test(l)), JSON.stringify(lines));
});

test('device: denied on the other device (--fault deny) ends as declined; an aborted signal cancels the polling', async () => {
  const auth = await McpOAuth.open(denying.url, { home: await home(), device: true, openBrowser: noBrowser(), onDeviceCode: () => {} });
  await assert.rejects(auth.token(), (e) => e instanceof McpOAuthError && e.kind === 'declined');
  // The user cancels while the engine waits between polls.
  const cancel = new AbortController();
  const from = (await demo.log()).requests.length;
  const cancelled = await McpOAuth.open(demo.url, {
    home: await home(),
    device: true,
    openBrowser: noBrowser(),
    signal: cancel.signal,
    onDeviceCode: () => setTimeout(() => cancel.abort(), 100),
  });
  const t0 = Date.now();
  await assert.rejects(cancelled.token(), { kind: 'declined' });
  assert.ok(Date.now() - t0 < 5000, `cancelled after ${Date.now() - t0} ms`);
  const seen = await demo.requestsSince(from);
  assert.ok(seen.includes('POST /device_authorization'), String(seen));
});

test('browser: the tab gets "Signed in" once the token is saved; a stray callback is answered at once with "ignored"', async () => {
  const browser = pageBrowser({ stray: 'code=forged&state=wrong' });
  const progress = [];
  const auth = await McpOAuth.open(demo.url, { home: await home(), openBrowser: browser.open, onProgress: (p) => progress.push(p) });
  const token = await auth.token();
  assert.equal(await pingStatus(demo.url, token), 200);
  const { stray, page } = await browser.done;
  assertEnginePage(stray, 400);
  assert.match(stray.body, /ignored/);
  assertEnginePage(page, 200);
  assert.match(page.body, /Signed in/);
  assert.ok(page.body.includes(demo.url), 'names the server');
  assert.ok(!page.body.includes(token), 'never the token');
  assert.ok(progress.some((p) => p.kind === 'callback-rejected'), 'the stray request was seen and passed over');
});

test('browser: declined at the AS (--fault deny): the declined error, and the tab says "declined"', async () => {
  const browser = pageBrowser();
  const auth = await McpOAuth.open(denying.url, { home: await home(), openBrowser: browser.open });
  await assert.rejects(auth.token(), { kind: 'declined' });
  const { page } = await browser.done;
  assertEnginePage(page, 200);
  assert.match(page.body, /declined/);
});

test('browser: the token endpoint refuses (--fault token-error): the tab says "failed" and why', async () => {
  const browser = pageBrowser();
  const auth = await McpOAuth.open(failing.url, { home: await home(), openBrowser: browser.open });
  const e = await auth.token().then(() => assert.fail('must fail'), (e) => e);
  assert.equal(e.kind, 'token-request-failed', e.message);
  const { page } = await browser.done;
  assertEnginePage(page, 200);
  assert.match(page.body, /failed/);
  assert.match(page.body, /invalid_grant/);
});

test('browser: an aborted signal cancels the wait for the redirect (declined)', async () => {
  const cancel = new AbortController();
  const auth = await McpOAuth.open(demo.url, { home: await home(), signal: cancel.signal, openBrowser: () => setTimeout(() => cancel.abort(), 100) });
  await assert.rejects(auth.token(), { kind: 'declined' });
});

test('logout() revokes the refresh token, then the access token; logout({ revoke: false }) only forgets them', async () => {
  const h = await home();
  const browser = pageBrowser();
  const auth = await McpOAuth.open(demo.url, { home: h, openBrowser: browser.open });
  const token = await auth.token();
  await browser.done;
  let from = (await demo.log()).requests.length;
  const report = await auth.logout();
  assert.deepEqual(report.revoked, ['refresh_token', 'access_token']);
  assert.equal(report.failed, undefined);
  assert.deepEqual((await demo.requestsSince(from)).filter((l) => l === 'POST /revoke'), ['POST /revoke', 'POST /revoke']);
  assert.equal(await pingStatus(demo.url, token), 401, 'revoked at the server');
  assert.equal((await auth.status()).hasToken, false);

  const local = await McpOAuth.open(demo.url, { home: await home(), device: true, openBrowser: noBrowser(), onDeviceCode: () => {} });
  const kept = await local.token();
  from = (await demo.log()).requests.length;
  const skipped = await local.logout({ revoke: false });
  assert.deepEqual(skipped.revoked, []);
  assert.equal(typeof skipped.skipped, 'string');
  assert.ok(skipped.skipped.length > 0);
  assert.ok(!(await demo.requestsSince(from)).includes('POST /revoke'));
  assert.equal(await pingStatus(demo.url, kept), 200, 'still valid at the server');
  assert.equal((await local.status()).hasToken, false, 'forgotten here');
});
