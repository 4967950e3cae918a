// Nothing a server sends reaches a terminal unescaped: control characters
// (C0, DEL, C1: the ANSI escape sequences) and bidirectional overrides are
// shown as \u{..} escapes. Newlines and tabs are kept only when `keepLines`.

const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
const UNSAFE_ALL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** A string safe to print on a terminal. */
export function escapeTerminal(s, keepLines = true) {
  const text = String(s);
  return text.replace(keepLines ? UNSAFE : UNSAFE_ALL, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
}

/** Words for an engine event or a host progress step (already escaped). */
export function describeProgress(p) {
  switch (p.kind) {
    case 'callback-rejected':
      return `ignored a request to the callback: ${p.reason}; still waiting`;
    case 'browser-open-failed':
      return `could not open a browser (${p.reason}). Open this URL yourself:\n\n  ${p.url}\n`;
    case 'storage-warning':
      return `could not save the ${p.record} record: ${p.reason}`;
    case 'pkce-check-overridden':
      return `warning: ${p.issuer} does not advertise PKCE S256; going on because the configuration allows it`;
    case 'legacy-issuer-differs':
      return `note: legacy server ${p.origin} names its issuer ${p.issuer}`;
    case 'http':
      return `${p.method} ${p.url} -> ${p.status || 'no response'}`;
    case 'saved':
      return `saved the ${p.record} record`;
    case 'listening':
      return `loopback listener ready at ${p.redirectUri}`;
    case 'browser-opened':
      return `browser opened at ${p.url.slice(0, 90)}...`;
    case 'waiting':
      return 'waiting for the browser to finish signing in';
    case 'callback-arrived':
      return 'the browser came back to the loopback listener';
    default:
      return p.kind;
  }
}

/**
 * The default progress hook: engine notices on stderr when it is a terminal;
 * a browser failure always (the user must see the URL).
 */
export function defaultProgress(p) {
  const notice = ['callback-rejected', 'storage-warning', 'pkce-check-overridden', 'legacy-issuer-differs'];
  if (p.kind === 'browser-open-failed' || (notice.includes(p.kind) && process.stderr.isTTY)) {
    process.stderr.write(`mcp-oauth: ${describeProgress(p)}\n`);
  }
}
