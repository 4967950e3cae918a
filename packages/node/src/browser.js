// Opening the authorization URL, as host/src/browser.rs: `$BROWSER` when set
// (run directly, never through a shell, the URL as its last argument), else
// the platform opener. Only http(s) URLs are ever opened (CVE-2025-6514).


/** Refuses anything but http(s); returns a reason or null. */
export function refuseToOpen(url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return 'refusing to open something that is not a URL';
  }
  if (u.protocol === 'https:' || u.protocol === 'http:') return null;
  return `refusing to open a ${u.protocol} URL`;
}

/**
 * Splits a `$BROWSER` value into program and leading arguments: the first of
 * ':'-separated alternatives, words split on whitespace only (no shell).
 */
export function browserCommand(value) {
  const first = (value || '').split(':')[0].trim();
  const words = first.split(/\s+/).filter(Boolean);
  return words.length ? { program: words[0], args: words.slice(1) } : null;
}

function platformOpener() {
  if (process.platform === 'darwin') return { program: 'open', args: [] };
  if (process.platform === 'win32') return { program: 'rundll32', args: ['url.dll,FileProtocolHandler'] };
  return { program: 'xdg-open', args: [] };
}

/**
 * Opens `url` with `$BROWSER` or the platform opener. Rejects when the
 * program cannot be run, or (platform opener) exits non-zero within 3 s.
 */
export async function systemOpenBrowser(url, env = process.env) {
  const refused = refuseToOpen(url);
  if (refused) throw new Error(refused);
  const { spawn } = await import('node:child_process'); // on first use: keeps startup light
  const fromEnv = browserCommand(env.BROWSER);
  const { program, args } = fromEnv ?? platformOpener();
  const waitForExit = !fromEnv;
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(program, [...args, url], { shell: false, stdio: 'ignore', windowsHide: true });
    } catch (e) {
      reject(new Error(`could not run ${program}: ${e.code || e.message}`));
      return;
    }
    let settled = false;
    const settle = (f, v) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        f(v);
      }
    };
    // Openers return at once; a quick failure means no browser.
    const timer = setTimeout(() => settle(resolve), 3000);
    timer.unref();
    child.once('error', (e) => settle(reject, new Error(`could not run ${program}: ${e.code || e.message}`)));
    child.once('spawn', () => {
      child.unref();
      if (!waitForExit) settle(resolve);
    });
    child.once('exit', (code, signal) => {
      if (code === 0) settle(resolve);
      else settle(reject, new Error(`${program} failed (${signal || `exit status ${code}`})`));
    });
  });
}
