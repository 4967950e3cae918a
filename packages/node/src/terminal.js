// Nothing a server sends reaches a terminal raw: every control character
// (Unicode Cc: C0, DEL, C1, the stuff of ANSI escape sequences) is shown as a
// visible \u{..} escape, as in every mcp-oauth host (tests/vectors/terminal_text.json).

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const CONTROL_BUT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
const escape = (c) => `\\u{${c.codePointAt(0).toString(16)}}`;

/** Server text for a terminal: every control character escaped, the rest kept (the shared rule). */
export function printable(s) {
  return String(s).replace(CONTROL, escape);
}

/**
 * A string safe to print on a terminal: `printable`, except that newlines
 * and tabs are kept when `keepLines` (for text of your own, never a server's).
 */
export function escapeTerminal(s, keepLines = false) {
  return keepLines ? String(s).replace(CONTROL_BUT_LINES, escape) : printable(s);
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
    case 'callback-ignored':
      return `ignored ${p.count} other request${p.count === 1 ? '' : 's'} to the loopback listener (not GET /callback, malformed, or over a limit)`;
    case 'callback-arrived':
      return 'the browser came back to the loopback listener';
    case 'device-code':
      return `device code ${p.userCode} shown (${p.verificationUri}); polling until it is approved`;
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
  // A favicon or two is any browser's habit; a flood is worth a line.
  const flood = p.kind === 'callback-ignored' && p.count >= 10;
  if (p.kind === 'browser-open-failed' || ((notice.includes(p.kind) || flood) && process.stderr.isTTY)) {
    process.stderr.write(`mcp-oauth: ${describeProgress(p)}\n`);
  }
}

/**
 * The lines that tell the user where to sign in with a device code (RFC 8628
 * §3.3), each prefixed as the package's other stderr messages: the address,
 * the code (each on a line of its own, so a script can read them), the link
 * with the code filled in when the server gave one, and the expiry. Every
 * string is made printable here too, whoever built `d`.
 */
export function deviceCodeLines(d) {
  const minutes = Math.max(1, Math.ceil(Number(d.expiresIn) / 60));
  const lines = ['to sign in, open this address on any device and enter the code:', `  open  ${printable(d.verificationUri)}`, `  code  ${printable(d.userCode)}`];
  if (d.verificationUriComplete !== undefined) lines.push(`  or open ${printable(d.verificationUriComplete)} (the code is filled in)`);
  lines.push(`the code expires in ${minutes} min`);
  return lines.map((l) => `mcp-oauth: ${l}`);
}

/** The default onDeviceCode: the instructions on stderr, terminal or not (the user must see them). */
export function defaultDeviceCode(d) {
  process.stderr.write(`${deviceCodeLines(d).join('\n')}\n`);
}
