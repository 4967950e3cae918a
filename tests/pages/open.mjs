// The "browser" for tests/pages/run: the CLI runs it as $BROWSER with the
// authorization URL as its last argument.
//
//   node open.mjs OUTDIR NAME [--stray=STRAY_NAME] AUTHORIZATION_URL
//
// Drives Debian's Chromium (/usr/bin/chromium, or $PAGES_CHROMIUM) headless through
// playwright-core: opens the authorization URL, follows the authorization
// server's redirect back to the loopback listener and, once the listener's
// page has loaded, saves in OUTDIR:
//
//   NAME-light.png, NAME-dark.png  screenshots in each colour scheme
//   NAME.txt                       the page's visible text (body.innerText)
//   NAME.headers.json              status and response headers of that page
//   NAME.requests.json             the requests the tab made from the page's
//                                  own document request on (that one alone,
//                                  if all is well), CSP violations, console
//
// With --stray=STRAY_NAME it first opens the redirect URI with a state the
// login never issued, captures that page as STRAY_NAME the same way, then
// goes on with the real sign-in (the listener should still be waiting).
//
// It returns at once, as a browser launcher should: the work is done by a
// copy of itself started detached (the CLI does not wait for $BROWSER today,
// see host/src/browser.rs, but a CLI that did would otherwise never get the
// redirect it is waiting for). The worker's stdio is /dev/null; it logs to
// NAME.log, writes its PID to NAME.pid first (the harness stops it by that
// PID if it outlives the run) and NAME.done last, whatever happened:
// {"ok":true} or {"ok":false,"error":...}.
// Neither NAME nor OUTDIR may hold ':' or whitespace: the CLI splits $BROWSER
// on both.

import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const url = argv.pop();
const strayOpt = argv.find((a) => a.startsWith('--stray='));
const [outdir, name] = argv.filter((a) => !a.startsWith('--'));
if (!outdir || !name || !url) {
  console.error('usage: open.mjs OUTDIR NAME [--stray=STRAY_NAME] AUTHORIZATION_URL');
  process.exit(2);
}
const strayName = strayOpt ? strayOpt.slice('--stray='.length) : null;

if (process.env.PAGES_OPEN_WORKER !== '1') {
  const worker = spawn(process.execPath, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, PAGES_OPEN_WORKER: '1' },
  });
  worker.unref();
  process.exit(0);
}
const { chromium } = await import('playwright-core');

const CHROMIUM = process.env.PAGES_CHROMIUM || '/usr/bin/chromium';
// The listener answers only once the token exchange is over.
const LOAD_TIMEOUT_MS = 15_000;
// After the page's load event: time for any stray subresource to show up.
const SETTLE_MS = 500;
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  // Chromium's own background connections (component updates, sync...)
  // are refused on a closed network: do not make them.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

mkdirSync(outdir, { recursive: true });
const out = (file) => join(outdir, file);
const log = (msg) => appendFileSync(out(`${name}.log`), `${new Date().toISOString()} ${msg}\n`);
writeFileSync(out(`${name}.pid`), `${process.pid}\n`);

// Every request the tab makes, in order, with where the tab was at the time.
const requests = [];
// Console messages, each with the address the tab was at.
const consoleMessages = [];

// Saves one loaded loopback page as `label`: screenshots, text, headers and
// the requests made since its own document request.
async function capture(page, response, label, firstIndex) {
  if (!response) throw new Error(`${label}: no response for the navigation`);
  // Late subresources (none expected) have time to be requested.
  await page.waitForTimeout(SETTLE_MS);
  const since = requests.slice(firstIndex);
  const violations = await page.evaluate(() => globalThis.__cspViolations || []);
  const headers = {
    url: response.url(),
    status: response.status(),
    statusText: response.statusText(),
    headers: await response.headersArray(),
  };
  writeFileSync(out(`${label}.headers.json`), JSON.stringify(headers, null, 2) + '\n');
  writeFileSync(out(`${label}.txt`), await page.evaluate(() => document.body ? document.body.innerText : ''));
  writeFileSync(
    out(`${label}.requests.json`),
    JSON.stringify({
      page: response.url(),
      requests: since,
      csp_violations: violations,
      console: consoleMessages.filter((m) => m.page === response.url()).map((m) => m.text),
    }, null, 2) + '\n',
  );
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({ path: out(`${label}-${scheme}.png`), fullPage: true });
  }
  await page.emulateMedia({ colorScheme: 'light' });
  log(`${label}: HTTP ${headers.status} ${headers.url}, ${since.length} request(s) from its document on`);
}

// The index in `requests` of the last document request to `target`'s path
// (the loopback page: after the authorization server's redirect it is the
// last request for the main frame's document).
function documentIndex(target) {
  const want = new URL(target);
  for (let i = requests.length - 1; i >= 0; i--) {
    const r = requests[i];
    if (r.type !== 'document') continue;
    try {
      const u = new URL(r.url);
      if (u.origin === want.origin && u.pathname === want.pathname) return i;
    } catch {}
  }
  return -1;
}

let context;
const profile = mkdtempSync(join(tmpdir(), 'mcp-oauth-pages-profile-'));
let result = { ok: true };
try {
  log(`start: ${name}${strayName ? ` (stray first, as ${strayName})` : ''}, ${url}`);
  const redirectUri = new URL(url).searchParams.get('redirect_uri');
  if (!redirectUri) throw new Error('the authorization URL has no redirect_uri');

  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 800, height: 600 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
    timeout: 30_000,
  });
  // Chromium reports blocked loads as securitypolicyviolation events; an
  // init script (injected by the browser, not subject to the page's CSP)
  // records them.
  await context.addInitScript(() => {
    globalThis.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      globalThis.__cspViolations.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
    });
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('request', (r) => {
    requests.push({ url: r.url(), method: r.method(), type: r.resourceType(), frame_url: r.frame().url() });
  });
  page.on('console', (m) => consoleMessages.push({ page: page.url(), text: `${m.type()}: ${m.text()}` }));
  page.on('pageerror', (e) => consoleMessages.push({ page: page.url(), text: `pageerror: ${e.message}` }));

  if (strayName) {
    const stray = new URL(redirectUri);
    stray.search = '?state=not-this-one&code=x';
    const response = await page.goto(stray.href, { waitUntil: 'load', timeout: LOAD_TIMEOUT_MS });
    await capture(page, response, strayName, documentIndex(redirectUri));
  }

  const response = await page.goto(url, { waitUntil: 'load', timeout: LOAD_TIMEOUT_MS });
  const at = documentIndex(redirectUri);
  if (at < 0) throw new Error(`the browser never reached ${redirectUri}; it is at ${page.url()}`);
  await capture(page, response, name, at);
} catch (e) {
  result = { ok: false, error: String(e && e.stack ? e.stack : e) };
  log(`error: ${result.error}`);
} finally {
  try { if (context) await context.close(); } catch (e) { log(`closing Chromium: ${e}`); }
  rmSync(profile, { recursive: true, force: true });
  writeFileSync(out(`${name}.done`), JSON.stringify(result) + '\n');
  log('done');
}
process.exit(result.ok ? 0 : 1);
