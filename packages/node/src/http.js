// The engine's `http` effect: Node's fetch with no redirect followed (the
// engine sees the 3xx and decides), a total timeout and a body cap. Plain
// http is allowed only to loopback hosts, everything else must be https:
// the same rules as the Rust host (host/src/http.rs).

// The functions a silent token() calls are parenthesized, `(function ...)`:
// V8 then compiles them with the module and Node's compile cache keeps them
// (fast.js says why).

export const DEFAULT_HTTP = { timeoutMs: 30_000, maxBody: 1024 * 1024 };

/** True for localhost, 127.0.0.0/8 and ::1 (hostname as WHATWG URL gives it). */
export const isLoopbackHost = (function isLoopbackHost(hostname) {
  const h = hostname.toLowerCase();
  if (h === 'localhost' || h === '[::1]') return true;
  // The URL parser has already normalized IPv4 forms such as 127.1.
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
});

/** https anywhere, http only on loopback; returns the parsed URL or a refusal reason. */
export const checkPolicy = (function checkPolicy(raw) {
  let url;
  try {
    url = new URL(raw);
  } catch {
    return { refused: `${JSON.stringify(String(raw).slice(0, 200))} is not a URL` };
  }
  if (url.protocol === 'https:') return { url };
  if (url.protocol === 'http:') {
    if (isLoopbackHost(url.hostname)) return { url };
    return { refused: `plain http to ${url.hostname} (only loopback may use http)` };
  }
  return { refused: `scheme ${JSON.stringify(url.protocol.replace(/:$/, ''))} is not allowed` };
});

/** Reads at most `max` bytes of a body; null when it is larger. */
async function readCapped(body, max) {
  if (!body) return new Uint8Array(0);
  const chunks = [];
  let size = 0;
  const reader = body.getReader();
  // Bounded: each chunk adds to `size`, and reading stops past the cap.
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function describeNetworkError(e) {
  const cause = e && e.cause;
  const code = cause && (cause.code || cause.name);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code) return `${code}${cause.message ? `: ${cause.message}` : ''}`;
  return (e && e.message) || String(e);
}

/**
 * Performs one engine request. Returns the WIT `result<response, http-error>`
 * as `{ tag: 'ok' | 'err', val }`.
 */
export async function sendEngineRequest(req, options = DEFAULT_HTTP, fetchImpl = globalThis.fetch) {
  const checked = checkPolicy(req.url);
  if (checked.refused) return { tag: 'err', val: { tag: 'refused', val: checked.refused } };
  const headers = new Headers();
  for (const h of req.headers) headers.append(h.name, h.value);
  if (!headers.has('user-agent')) headers.set('user-agent', 'mcp-oauth-node/0.1.0');
  const method = req.method === 'post' ? 'POST' : 'GET';
  const signal = AbortSignal.timeout(options.timeoutMs);
  let resp;
  try {
    resp = await fetchImpl(checked.url.href, {
      method,
      headers,
      body: method === 'POST' ? req.body : undefined,
      redirect: 'manual',
      signal,
    });
  } catch (e) {
    if (signal.aborted) return { tag: 'err', val: { tag: 'timeout' } };
    return { tag: 'err', val: { tag: 'connection', val: describeNetworkError(e) } };
  }
  let body;
  try {
    body = await readCapped(resp.body, options.maxBody);
  } catch (e) {
    if (signal.aborted) return { tag: 'err', val: { tag: 'timeout' } };
    return { tag: 'err', val: { tag: 'connection', val: describeNetworkError(e) } };
  }
  if (body === null) return { tag: 'err', val: { tag: 'too-large' } };
  const outHeaders = [];
  resp.headers.forEach((value, name) => outHeaders.push({ name, value }));
  // fetch joins repeated fields with ", "; the engine's WWW-Authenticate
  // parser reads several challenges from one value (RFC 9110 §11.6.1).
  return { tag: 'ok', val: { status: resp.status, headers: outHeaders, body } };
}

/**
 * What a response from the MCP server means for DPoP (RFC 9449 §8, §9), pure:
 * `headers` is an iterable of [name, value] (a Headers object or pairs).
 * 401 and 403 are a 'challenge' (the nonce goes with it to the engine); a
 * 2xx with a nonce, or any 2xx when `retried` (the request was sent again
 * after a challenge: the new token works, which re-arms the engine's
 * once-per-rejection refresh), is a 'note'; anything else is 'none'. The
 * first DPoP-Nonce counts; an empty one is none
 * (tests/vectors/dpop_nonce_signals.json).
 */
export function dpopNonceSignal(status, headers, retried = false) {
  let nonce = null;
  for (const [name, value] of headers) {
    if (String(name).toLowerCase() !== 'dpop-nonce') continue;
    // fetch joins repeated fields with ", "; a nonce has no space (NQCHAR),
    // so the part before the first ", " is the first header's value.
    nonce = String(value).split(', ')[0] || null;
    break;
  }
  if (status === 401 || status === 403) return { signal: 'challenge', nonce };
  if (status >= 200 && status < 300 && (nonce !== null || retried)) return { signal: 'note', nonce };
  return { signal: 'none', nonce: null };
}

/**
 * Reads a small rejected body to its end so the connection is reused;
 * cancelling instead closes it mid-response, which some servers answer by
 * stalling the next requests. Bounded: past 64 KiB it is cancelled.
 */
export async function drain(resp) {
  if (!resp.body) return;
  const reader = resp.body.getReader();
  try {
    for (let size = 0; size <= 65_536; ) {
      const { done, value } = await reader.read();
      if (done) return;
      size += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // the retry goes on regardless
  }
}
