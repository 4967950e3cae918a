// The person on the second device of a device authorization grant
// (RFC 8628): opens the verification URI in a "browser" (fetch + a cookie
// jar, redirects followed by hand), types the user code into the form the
// page shows, goes through login and consent (server.mjs's /interaction
// route does both for its fixed account), checks that the code on the
// confirmation page is the one it typed, and presses Continue, or with
// --deny the Abort button.
//
//   node approve.mjs <verification_uri> <user_code> [--deny]
//   node approve.mjs <verification_uri_complete> - [--deny]
//
// With `-` the URI must carry ?user_code= already; the provider's page for it
// submits itself by script, which this does as a browser would.
//
// Exit 0: the final page says the sign-in succeeded (or, with --deny, that it
// was interrupted). Exit 1, with the reason on stderr, for anything else;
// exit 2 for bad arguments. Progress lines on stdout; never a cookie, the
// xsrf value or the user code.
//
// Needs nothing but Node >= 20 (global fetch, Headers.getSetCookie).

const argv = process.argv.slice(2);
const deny = argv.includes('--deny');
const pos = argv.filter((a) => a !== '--deny');
if (pos.length !== 2 || argv.some((a) => a.startsWith('--') && a !== '--deny')) {
  console.error('usage: node approve.mjs <verification_uri> <user_code | -> [--deny]');
  process.exit(2);
}
const [startUri, codeArg] = pos;
let start;
try {
  start = new URL(startUri);
} catch {
  console.error(`approve: not a URL: ${startUri}`);
  process.exit(2);
}
let userCode = codeArg;
if (codeArg === '-') {
  userCode = start.searchParams.get('user_code');
  if (!userCode) {
    console.error('approve: user code `-` needs a verification_uri_complete (with ?user_code=)');
    process.exit(2);
  }
}

const fail = (msg) => { console.error(`approve: FAILED: ${msg}`); process.exit(1); };
const say = (msg) => console.log(`approve: ${msg}`);
// Codes compare as the provider does: letters and digits only, any case.
const normCode = (c) => String(c).toUpperCase().replace(/[^0-9A-Z]/g, '');

// --- cookie jar (one origin; Path, Max-Age and Expires honoured) ---
const jar = new Map(); // `${host} ${path} ${name}` -> { host, path, name, value, expires }
function storeCookies(url, headers) {
  for (const line of headers.getSetCookie()) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq < 1) continue;
    const c = { host: url.host, name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim() };
    // RFC 6265 §5.1.4 default path: the request path up to its last '/'.
    c.path = url.pathname.lastIndexOf('/') > 0 ? url.pathname.slice(0, url.pathname.lastIndexOf('/')) : '/';
    for (const a of attrs) {
      const [k, ...v] = a.split('=');
      const key = k.trim().toLowerCase();
      const val = v.join('=').trim();
      if (key === 'path' && val.startsWith('/')) c.path = val;
      else if (key === 'max-age') c.expires = Date.now() + Number(val) * 1000;
      else if (key === 'expires' && c.expires === undefined) c.expires = Date.parse(val);
    }
    const key = `${c.host} ${c.path} ${c.name}`;
    if (c.expires !== undefined && !(c.expires > Date.now())) jar.delete(key);
    else jar.set(key, c);
  }
}
function cookieHeader(url) {
  const matches = (p) => url.pathname === p || url.pathname.startsWith(p.endsWith('/') ? p : `${p}/`);
  const out = [...jar.values()]
    .filter((c) => c.host === url.host && matches(c.path) && !(c.expires <= Date.now()))
    .sort((a, b) => b.path.length - a.path.length)
    .map((c) => `${c.name}=${c.value}`);
  return out.length ? out.join('; ') : undefined;
}

// --- the browser: one navigation, redirects followed ---
async function navigate(url, form) {
  let method = form ? 'POST' : 'GET';
  let body = form ? new URLSearchParams(form).toString() : undefined;
  let u = new URL(url);
  for (let hop = 0; hop < 20; hop++) {
    const headers = { accept: 'text/html', 'user-agent': 'approve.mjs (mcp-oauth device flow test)' };
    const cookie = cookieHeader(u);
    if (cookie) headers.cookie = cookie;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    let res;
    try {
      res = await fetch(u, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(15000) });
    } catch (e) {
      fail(`${method} ${u.origin}${u.pathname}: ${e.cause?.code || e.cause?.errors?.[0]?.code || e.cause?.message || e.message}`);
    }
    storeCookies(u, res.headers);
    say(`${method} ${u.pathname} -> ${res.status}`);
    const loc = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && loc) {
      u = new URL(loc, u);
      if (res.status !== 307 && res.status !== 308) { method = 'GET'; body = undefined; }
      continue;
    }
    return { url: u, status: res.status, html: await res.text() };
  }
  return fail('more than 20 redirects');
}

// --- just enough HTML ---
const decode = (s) => String(s ?? '')
  .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
  .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
  .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:][-\w:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}
const text = (html) => decode(html.replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ').trim();
const title = (html) => text(/<title>([\s\S]*?)<\/title>/i.exec(html)?.[1] || '');
// Forms with their fields: inputs inside the form, plus inputs and buttons
// elsewhere that name it with form="<id>" (as the stock confirm page does).
function forms(html) {
  const body = html.replace(/<(script|style)[\s\S]*?<\/\1>/gi, '').replace(/<!--[\s\S]*?-->/g, '');
  const controls = [...body.matchAll(/<(input|button)\b([^>]*)>/gi)].map((m) => ({
    tag: m[1].toLowerCase(), index: m.index, ...attrs(m[2]),
  }));
  return [...body.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map((m) => {
    const a = attrs(m[1]);
    const end = m.index + m[0].length;
    const fields = controls.filter((c) => (c.form ? c.form === a.id : c.index > m.index && c.index < end));
    return { id: a.id, method: (a.method || 'get').toLowerCase(), action: a.action, fields };
  });
}
// What pressing a button (or Enter, with none) sends: every named input
// except buttons, plus the pressed button's own name=value.
function submission(form, button) {
  const data = {};
  for (const f of form.fields) {
    if (f.tag === 'input' && f.name && !['submit', 'button', 'image', 'reset'].includes(f.type)) data[f.name] = f.value ?? '';
  }
  if (button?.name) data[button.name] = button.value ?? '';
  return data;
}
const submitButtons = (form) => form.fields.filter((f) => (f.tag === 'button' && (f.type || 'submit') === 'submit')
  || (f.tag === 'input' && f.type === 'submit'));

// --- the person ---
let page = await navigate(start);
let typed = false;
let decided = false;
for (let step = 0; step < 12; step++) {
  const fs = forms(page.html);
  const codeInput = fs.find((f) => f.fields.some((x) => x.tag === 'input' && x.name === 'user_code' && (x.type || 'text') === 'text'));
  const confirmForm = fs.find((f) => f.fields.some((x) => x.name === 'confirm'));

  if (/document\.forms\[0\]\.submit\(\)/.test(page.html) && fs.length) {
    // The page's script would submit its first form on load.
    say(`page "${title(page.html)}" submits itself`);
    const f = fs[0];
    page = await navigate(new URL(f.action || page.url, page.url), f.method === 'post' ? submission(f) : undefined);
  } else if (confirmForm) {
    const shown = /<code>([\s\S]*?)<\/code>/i.exec(page.html)?.[1];
    if (shown === undefined || normCode(decode(shown)) !== normCode(userCode)) {
      fail(`the confirmation page does not show the code we entered (${shown === undefined ? 'no code shown' : 'a different code'})`);
    }
    const buttons = submitButtons(confirmForm);
    const button = deny ? buttons.find((b) => b.name === 'abort') : buttons.find((b) => !b.name);
    if (!button) fail(`the confirmation page has no ${deny ? 'abort' : 'continue'} button`);
    say(`confirmation page shows our code; pressing ${deny ? 'Abort' : 'Continue'}`);
    decided = true;
    page = await navigate(new URL(confirmForm.action || page.url, page.url), submission(confirmForm, button));
  } else if (codeInput && !typed) {
    say('user code form: typing the code');
    typed = true;
    const data = submission(codeInput);
    data.user_code = userCode;
    page = await navigate(new URL(codeInput.action || page.url, page.url), data);
  } else {
    break;
  }
}

const t = text(page.html);
const h1 = text(/<h1\b[^>]*>([\s\S]*?)<\/h1>/i.exec(page.html)?.[1] || '');
const notice = /<p class="red">([\s\S]*?)<\/p>/.exec(page.html)?.[1];
const summary = `"${title(page.html)}": ${notice ? text(notice) : t.slice(0, 160)}`;
if (page.status !== 200) fail(`HTTP ${page.status} at ${page.url.pathname}, page ${summary}`);
if (/success/i.test(h1) || /success/i.test(title(page.html))) {
  if (deny) fail(`asked to deny, but the provider says ${summary}`);
  say(`done: ${h1}: ${text(/<p\b[^>]*>([\s\S]*?)<\/p>/i.exec(page.html)?.[1] || '')}`);
  process.exit(0);
}
if (/interrupted|aborted/i.test(t)) {
  if (!deny) fail(`the provider says the sign-in was interrupted: ${summary}`);
  say(`done: denied (${notice ? text(notice) : 'interrupted'})`);
  process.exit(0);
}
if (!decided && typed) fail(`the provider did not accept the user code: ${summary}`);
fail(`unexpected final page ${summary}`);
