// The loopback redirect listener (RFC 8252 §7.3), as host/src/callback.rs:
// bound to 127.0.0.1 before the flow goes on (any free port unless pinned),
// one per flow, serving many requests, answering only GET /callback, with a
// timeout. A pasted redirect URL (the `paste` option) races the browser; a
// bad paste is refused with its reason and the listener keeps listening.
//
// Junk never ends or blocks the wait: anything but GET /callback is answered
// 404 at once (and counted), a malformed request 400; what one request may
// cost is bounded (header size, URL length, time to send the request, open
// connections), never how many requests come. Every /callback arrival goes
// to the engine in order, which rejects the junk ones; the queue keeps the
// newest, so a flood cannot push out the real one that comes after it.
//
// The browser request next() hands out is held open until the engine
// answers it (respond(): the sign-in's outcome, or why it was ignored); one
// still held when the listener closes (a flow that ended without answering
// it) gets a short neutral page, so no request is left hanging.

// node:http and node:readline are loaded on first use: importing node:http
// costs about 30 ms, and most calls find a token in the store.

// Fallbacks only: the engine answers every request it is handed with its
// own page (respond). These cover a flow that ended without doing so.
const PAGE_ENDED = '<!doctype html><title>mcp-oauth</title><p>This sign-in attempt has ended. Return to your application for its outcome; you can close this tab.</p>';
const PAGE_REJECTED = '<!doctype html><title>mcp-oauth</title><p>This request was ignored. You can close this tab.</p>';
const PAGE_NOT_FOUND = '<p>Not found.</p>';

/** A request line longer than this is not a redirect (an authorization response is a few hundred bytes). */
export const MAX_URL_BYTES = 8192;
/** Request line and headers (Node's default; a browser may send cookies for 127.0.0.1). */
const MAX_HEADER_BYTES = 16_384;
/** Time for a client to send its request. */
const REQUEST_TIMEOUT_MS = 5000;
/** Open connections at once; more are closed at once (a browser uses a few). */
export const MAX_CONNECTIONS = 64;
/** /callback arrivals waiting for the engine; past it the oldest is answered first. */
export const MAX_QUEUE = 4096;

// Every answer closes its connection: an idle keep-alive connection would
// hold one of the MAX_CONNECTIONS slots.
function page(res, status, body) {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
  res.end(body);
}

/** Headers the listener sets itself (framing, connection reuse), whatever a page says. */
const OWN_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

/**
 * Answers `res` with the engine's page (WIT `page`): its status and headers
 * as given, minus framing headers (Node sets the length; the connection is
 * closed), and one it cannot send (a bad name or value) left out.
 */
export function writePage(res, { status, headers, body }) {
  if (res.headersSent || res.destroyed) return;
  const code = Number.isInteger(status) && status >= 200 && status <= 599 ? status : 500;
  const own = new Set();
  for (const { name, value } of headers ?? []) {
    const lower = String(name).toLowerCase();
    if (OWN_HEADERS.has(lower)) continue;
    try {
      res.setHeader(name, value);
      own.add(lower);
    } catch {
      // ERR_INVALID_HTTP_TOKEN / ERR_INVALID_CHAR: not sendable, left out
    }
  }
  if (!own.has('content-type')) res.setHeader('content-type', 'text/html; charset=utf-8');
  if (!own.has('cache-control')) res.setHeader('cache-control', 'no-store');
  res.setHeader('connection', 'close');
  res.writeHead(code);
  res.end(String(body ?? ''));
}

/** What next() resolves a wait with when the signal aborts it. */
const CANCELLED = Symbol('cancelled');

export class Listener {
  /** Binds 127.0.0.1 on `port` (any free port when undefined). */
  static async bind(port, { paste, warn = () => {} } = {}) {
    const { default: http } = await import('node:http');
    const l = new Listener(http, warn);
    await new Promise((resolve, reject) => {
      l.server.once('error', reject);
      l.server.listen(port ?? 0, '127.0.0.1', () => {
        l.server.off('error', reject);
        resolve();
      });
    }).catch((e) => {
      if (e.code === 'EADDRINUSE' && port) throw new Error(`port ${port} is already in use on 127.0.0.1`);
      throw new Error(`could not listen on 127.0.0.1: ${e.code || e.message}`);
    });
    l.port = l.server.address().port;
    if (paste) await l.startPaste(paste);
    return l;
  }

  constructor(http, warn) {
    this.queue = []; // arrivals not yet taken: { query, res? }
    this.waiter = null; // resolves the pending next()
    this.pending = null; // the last arrival handed out, its request held until respond()
    this.warn = warn;
    /** Requests that never reached the engine: other paths and methods, malformed, over a limit. */
    this.ignored = 0;
    /** /callback arrivals the engine waited past (or pushed out of a full queue). */
    this.rejected = 0;
    this.refusedSockets = new WeakSet();
    this.server = http.createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        requestTimeout: REQUEST_TIMEOUT_MS,
        headersTimeout: REQUEST_TIMEOUT_MS,
        // The timeouts above are checked this often (Node's default is 30 s).
        connectionsCheckingInterval: 1000,
      },
      (req, res) => this.onRequest(req, res),
    );
    this.server.keepAliveTimeout = 1000;
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.on('drop', () => this.ignored++);
    this.server.on('clientError', (e, socket) => this.onClientError(e, socket));
  }

  get redirectUri() {
    return `http://127.0.0.1:${this.port}/callback`;
  }

  onRequest(req, res) {
    const raw = req.url || '/';
    if (raw.length > MAX_URL_BYTES) {
      this.ignored++;
      return page(res, 414, '<p>URI too long.</p>');
    }
    const q = raw.indexOf('?');
    const pathPart = q < 0 ? raw : raw.slice(0, q);
    if (req.method !== 'GET' || pathPart !== '/callback') {
      this.ignored++;
      return page(res, 404, PAGE_NOT_FOUND);
    }
    this.arrive({ query: q < 0 ? '' : raw.slice(q + 1), res });
  }

  /** Not HTTP, too large, too slow: answered and closed, never an arrival. */
  onClientError(e, socket) {
    // One count per connection (a timed-out one also reports its EOF).
    if (!this.refusedSockets.has(socket)) {
      this.refusedSockets.add(socket);
      this.ignored++;
    }
    if (e.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      e.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : e.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    // A peer that does not read the answer does not keep the socket.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  reject(a) {
    this.rejected++;
    if (a.res) page(a.res, 400, PAGE_REJECTED);
  }

  arrive(a) {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(a);
      return;
    }
    // Full (a flood while the engine was not waiting): the oldest goes, so
    // the newest arrival, the likeliest to be the browser's, is kept.
    if (this.queue.length >= MAX_QUEUE) this.reject(this.queue.shift());
    this.queue.push(a);
  }

  /** Checks a pasted line: it must be this listener's redirect URL with a query. */
  parsePaste(line) {
    let url;
    try {
      url = new URL(line.trim());
    } catch {
      return { error: "that is not a URL; paste the whole address from the browser's address bar" };
    }
    if (`${url.protocol}//${url.host}${url.pathname}` !== this.redirectUri) {
      return { error: `that URL is not the redirect address (expected one starting with ${this.redirectUri}?)` };
    }
    const query = url.search.slice(1);
    if (!query) return { error: 'that URL has no query; copy the address after the browser came back (it contains code= and state=)' };
    return { query };
  }

  async startPaste(input) {
    const { default: readline } = await import('node:readline');
    const stream = input === true ? process.stdin : input;
    this.rl = readline.createInterface({ input: stream, terminal: false });
    this.rl.on('line', (line) => {
      if (!line.trim()) return;
      const p = this.parsePaste(line);
      if (p.error) this.warn(`${p.error}. Paste again, or finish in the browser.`);
      else this.arrive({ query: p.query });
    });
  }

  /**
   * The next arrival within `timeoutMs`: `{ tag: 'redirect', val: query }`,
   * `{ tag: 'timed-out' }`, or `{ tag: 'cancelled' }` when `signal` aborts
   * the wait (the WIT callback-event).
   */
  async next(timeoutMs, signal) {
    // A previous arrival not answered by respond(): it was not accepted.
    if (this.pending) {
      this.reject(this.pending);
      this.pending = null;
    }
    if (signal?.aborted) return { tag: 'cancelled' };
    let a = this.queue.shift();
    if (!a) {
      let timer;
      let onAbort;
      a = await new Promise((resolve) => {
        this.waiter = resolve;
        // setTimeout holds at most 2^31-1 ms (about 24 days).
        timer = setTimeout(() => resolve(null), Math.min(Math.max(0, timeoutMs), 2 ** 31 - 1));
        onAbort = () => resolve(CANCELLED);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      this.waiter = null;
    }
    if (a === CANCELLED) return { tag: 'cancelled' };
    if (!a) return { tag: 'timed-out' };
    this.pending = a;
    return { tag: 'redirect', val: a.query };
  }

  /**
   * Answers the request the last next() delivered with the engine's `page`
   * (a pasted redirect has no one to answer); later calls do nothing.
   */
  respond(p) {
    const a = this.pending;
    this.pending = null;
    if (a?.res) writePage(a.res, p);
  }

  /** Closes the listener; a request still held gets a short neutral page. */
  async close() {
    if (this.pending?.res) page(this.pending.res, 200, PAGE_ENDED);
    this.pending = null;
    for (const a of this.queue) this.reject(a);
    this.queue = [];
    this.rl?.close();
    await new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections?.();
      // Never wait on a browser's keep-alive connection for long.
      setTimeout(() => {
        this.server.closeAllConnections?.();
        resolve();
      }, 200).unref();
    });
  }
}
