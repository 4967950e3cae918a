// The loopback redirect listener (RFC 8252 §7.3), as host/src/callback.rs:
// bound to 127.0.0.1 before the flow goes on (any free port unless pinned),
// one per flow, serving many requests (a favicon or a stray hit does not end
// it), answering only GET /callback, with a timeout. A pasted redirect URL
// (the `paste` option) races the browser; a bad paste is refused with its
// reason and the listener keeps listening.

// node:http and node:readline are loaded on first use: importing node:http
// costs about 30 ms, and most calls find a token in the store.

const PAGE_DONE = '<!doctype html><title>mcp-oauth</title><p>mcp-oauth received the authorization response. You can close this tab and return to your application.</p>';
const PAGE_REJECTED = '<!doctype html><title>mcp-oauth</title><p>This response does not belong to the login in progress and was ignored. You can close this tab.</p>';

function page(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
}

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
    this.pending = null; // the response held for the last arrival handed out
    this.warn = warn;
    this.server = http.createServer((req, res) => this.onRequest(req, res));
    this.server.requestTimeout = 10_000;
  }

  get redirectUri() {
    return `http://127.0.0.1:${this.port}/callback`;
  }

  onRequest(req, res) {
    const raw = req.url || '/';
    const q = raw.indexOf('?');
    const pathPart = q < 0 ? raw : raw.slice(0, q);
    if (req.method !== 'GET' || pathPart !== '/callback') return page(res, 404, '<p>Not found.</p>');
    this.arrive({ query: q < 0 ? '' : raw.slice(q + 1), res });
  }

  arrive(a) {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(a);
    } else if (this.queue.length < 32) {
      this.queue.push(a);
    } else if (a.res) {
      page(a.res, 503, '<p>Busy.</p>');
    }
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
   * The next arrival within `timeoutMs`: `{ tag: 'redirect', val: query }`
   * or `{ tag: 'timed-out' }` (the WIT callback-event).
   */
  async next(timeoutMs) {
    // A previous arrival is being waited past: it was not accepted.
    if (this.pending) {
      page(this.pending, 400, PAGE_REJECTED);
      this.pending = null;
    }
    let a = this.queue.shift();
    if (!a) {
      let timer;
      a = await new Promise((resolve) => {
        this.waiter = resolve;
        // setTimeout holds at most 2^31-1 ms (about 24 days).
        timer = setTimeout(() => resolve(null), Math.min(Math.max(0, timeoutMs), 2 ** 31 - 1));
      });
      clearTimeout(timer);
      this.waiter = null;
    }
    if (!a) return { tag: 'timed-out' };
    this.pending = a.res ?? null;
    return { tag: 'redirect', val: a.query };
  }

  /** Closes the listener; the held arrival (the accepted one) gets the done page. */
  async close() {
    if (this.pending) page(this.pending, 200, PAGE_DONE);
    this.pending = null;
    for (const a of this.queue) if (a.res) page(a.res, 400, PAGE_REJECTED);
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
