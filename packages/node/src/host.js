// Performs the engine's effects (the `machine` interface's `effect` variant)
// and returns the matching `input`. Every effect has a deadline; every
// failure becomes the error case of its input, so the engine decides what
// to tell the user. Only the values shown in `onProgress` leave this module,
// escaped, and none is a secret.

import { sendEngineRequest } from './http.js';
import { Listener } from './callback.js';
import { refuseToOpen } from './browser.js';
import { printable } from './terminal.js';
import { DpopKeys } from './dpop.js';
import { McpOAuthError } from './errors.js';
import { nodeCrypto } from './builtins.js';

const OK = { tag: 'ok', val: undefined };
const err = (message) => ({ tag: 'err', val: String(message) });
const BROWSER_DEADLINE_MS = 30_000;
const CONSENT_DEADLINE_MS = 10 * 60_000;
/** The longest device-grant pause, whatever the engine asks (the Rust host's cap). */
const PAUSE_CAP_MS = 10 * 60_000;
const safe = printable;

/** Settles as `promise`, or as `onTimeout()` (a value or a promise) after `ms`. */
function withDeadline(promise, ms, onTimeout) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(onTimeout()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An engine `event` as a progress object (fields escaped). */
export function eventProgress(ev) {
  switch (ev.tag) {
    case 'callback-rejected':
      return { kind: ev.tag, reason: safe(ev.val) };
    case 'browser-open-failed':
      return { kind: ev.tag, url: safe(ev.val.url), reason: safe(ev.val.reason) };
    case 'storage-warning':
      return { kind: ev.tag, record: safe(ev.val.recordKind), reason: safe(ev.val.message) };
    case 'pkce-check-overridden':
      return { kind: ev.tag, issuer: safe(ev.val) };
    case 'legacy-issuer-differs':
      return { kind: ev.tag, origin: safe(ev.val.origin), issuer: safe(ev.val.issuer) };
    case 'device-code':
      return { kind: ev.tag, ...deviceCode(ev.val) };
    default:
      return { kind: String(ev.tag) };
  }
}

/** The WIT `device-code` as the onDeviceCode argument (strings escaped; expiresIn in seconds). */
export function deviceCode(d) {
  return {
    verificationUri: safe(d.verificationUri),
    verificationUriComplete: d.verificationUriComplete === undefined ? undefined : safe(d.verificationUriComplete),
    userCode: safe(d.userCode),
    expiresIn: Number(d.expiresInS),
  };
}

/**
 * Waits `ms` (at most PAUSE_CAP_MS): resolves null, or why the wait ended
 * early (`signal` aborted). The timer keeps the process alive: a sign-in is
 * in progress.
 */
export function pause(ms, signal) {
  if (signal?.aborted) return Promise.resolve('cancelled by the application (its AbortSignal)');
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve('cancelled by the application (its AbortSignal)');
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(null);
    }, Math.min(Math.max(0, Number(ms)), PAUSE_CAP_MS));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Renews every lease the flow holds before a request is sent (docs/store.md,
 * "Locks are leases", step 2): a holder that lost its lease must not spend a
 * refresh token another replica may have spent already. Resolves null, or
 * why the request is not sent (naming the lock). Locks without leases (files) pass.
 */
async function renewLeases(ctx) {
  for (const held of ctx.locks.values()) {
    if (typeof held?.renew !== 'function') continue;
    const name = held.lock ?? held.key;
    try {
      if (!(await held.renew())) return `the lease on the lock ${name} was lost (this process was paused or slow past it); the request was not sent`;
    } catch (e) {
      return `the lease on the lock ${name} could not be renewed (${e.message}); the request was not sent`;
    }
  }
  return null;
}

export class Host {
  /**
   * @param {object} io  { store (the store seam, ./store.js), http, openBrowser, consent, progress,
   *   deviceCode (shows a device code), signal (an AbortSignal cancelling waits for the user), signingKey, paste }
   */
  constructor(io) {
    this.io = io;
    this.dpop = new DpopKeys(io.store);
  }

  progress(p) {
    try {
      this.io.progress(p);
    } catch {
      // a failing hook must not break the flow
    }
  }

  /** Performs `effect` for the flow whose state is `ctx` ({ locks: Map of held lock handles, listener }). */
  async perform(effect, ctx) {
    const { store } = this.io;
    const v = effect.val;
    switch (effect.tag) {
      case 'http': {
        const lost = await renewLeases(ctx);
        if (lost) {
          this.progress({ kind: 'storage-warning', record: 'lock', reason: safe(lost) });
          return { tag: 'http', val: { tag: 'err', val: { tag: 'other', val: lost } } };
        }
        const r = await sendEngineRequest(v, this.io.http);
        this.progress({ kind: 'http', method: v.method.toUpperCase(), url: safe(v.url), status: r.tag === 'ok' ? r.val.status : 0 });
        return { tag: 'http', val: r };
      }
      case 'load':
        try {
          return { tag: 'loaded', val: (await store.get(v)) ?? undefined };
        } catch (e) {
          // A store that cannot be reached is not an empty one: reading it
          // as absent would start a new sign-in (a silent fork of the grant).
          if (e instanceof McpOAuthError) throw e;
          return { tag: 'loaded', val: undefined };
        }
      case 'save':
        try {
          await store.set(v.key, v.value);
          this.progress({ kind: 'saved', record: v.key.split('-')[0] });
          return { tag: 'stored', val: OK };
        } catch (e) {
          return { tag: 'stored', val: err(e.message) };
        }
      case 'delete':
        try {
          await store.delete(v);
          return { tag: 'stored', val: OK };
        } catch (e) {
          return { tag: 'stored', val: err(e.message) };
        }
      case 'lock':
        try {
          // The handle is kept in the flow's state: the driver releases
          // whatever is still held when the flow ends, however it ends.
          ctx.locks.set(v, await store.lock(v));
          return { tag: 'locked', val: OK };
        } catch (e) {
          // A shared store's lock not had (unreachable, or held past its
          // wait): the flow fails rather than refreshing unlocked.
          if (e instanceof McpOAuthError) throw e;
          this.progress({ kind: 'storage-warning', record: 'lock', reason: safe(e.message) });
          return { tag: 'locked', val: err(e.message) };
        }
      case 'unlock':
        await ctx.locks.get(v)?.release();
        ctx.locks.delete(v);
        return { tag: 'ack' };
      case 'sign':
        return { tag: 'signed', val: this.sign(v) };
      case 'dpop-proof':
        try {
          return { tag: 'dpop-proof', val: { tag: 'ok', val: await this.dpop.proof(v.keyId, v.claims) } };
        } catch (e) {
          // store errors name the file and an error code, never the key
          return { tag: 'dpop-proof', val: err(`DPoP proof: ${e.message}`) };
        }
      case 'listen':
        try {
          await this.closeListener(ctx);
          ctx.listener = await Listener.bind(v, {
            paste: this.io.paste,
            warn: (m) => this.progress({ kind: 'callback-rejected', reason: safe(m) }),
          });
          this.progress({ kind: 'listening', redirectUri: ctx.listener.redirectUri });
          return { tag: 'listening', val: { tag: 'ok', val: ctx.listener.redirectUri } };
        } catch (e) {
          return { tag: 'listening', val: err(e.message) };
        }
      case 'consent':
        return { tag: 'consent', val: await this.consent(v) };
      case 'open-browser':
        return { tag: 'opened', val: await this.openBrowser(v) };
      case 'await-callback': {
        if (!ctx.listener) return { tag: 'callback', val: { tag: 'timed-out' } };
        this.progress({ kind: 'waiting' });
        const ev = await ctx.listener.next(Number(v), this.io.signal);
        if (ev.tag === 'redirect') this.progress({ kind: 'callback-arrived' });
        return { tag: 'callback', val: ev };
      }
      case 'respond':
        // The browser tab of the last redirect (nothing to answer for a paste).
        ctx.listener?.respond(v);
        return { tag: 'ack' };
      case 'pause': {
        const why = await pause(v, this.io.signal);
        return { tag: 'paused', val: why === null ? OK : err(why) };
      }
      case 'notify':
        if (v.tag === 'device-code') this.showDeviceCode(deviceCode(v.val));
        this.progress(eventProgress(v));
        return { tag: 'ack' };
      default:
        throw new Error(`the engine asked for an unknown effect ${String(effect.tag)}`);
    }
  }

  /**
   * Closes the flow's listener (the accepted arrival gets the done page) and
   * reports how many requests it ignored: the junk that never reached the
   * engine (the engine reports the /callback arrivals it rejected itself).
   */
  async closeListener(ctx) {
    const l = ctx.listener;
    if (!l) return;
    ctx.listener = null;
    await l.close();
    if (l.ignored > 0) this.progress({ kind: 'callback-ignored', count: l.ignored });
  }

  /** Hands a device code to the application's hook; the flow goes on at once (a hook's failure is ignored). */
  showDeviceCode(code) {
    try {
      Promise.resolve(this.io.deviceCode?.(code)).catch(() => {});
    } catch {
      // a failing hook must not break the flow
    }
  }

  sign(input) {
    if (!this.io.signingKey) return err('no signing key is configured (pass the privateKey option for private_key_jwt)');
    try {
      // ES256: the raw 64-byte r || s, as JWS wants.
      return { tag: 'ok', val: new Uint8Array(nodeCrypto().sign('sha256', input, { key: this.io.signingKey, dsaEncoding: 'ieee-p1363' })) };
    } catch (e) {
      return err(`signing failed: ${e.code || 'error'}`);
    }
  }

  async consent(ask) {
    const request = {
      serverUrl: safe(ask.serverUrl),
      issuer: safe(ask.issuer),
      scopes: ask.scopes.map(safe),
      reason: ask.reason,
    };
    try {
      // No answer in time counts as no: the flow must end.
      const answer = await withDeadline(Promise.resolve(this.io.consent(request)), CONSENT_DEADLINE_MS, () => false);
      return answer === true;
    } catch {
      return false; // a hook that cannot ask is a no, as in the WIT contract
    }
  }

  async openBrowser(url) {
    const refused = refuseToOpen(url);
    if (refused) return err(refused);
    this.progress({ kind: 'browser-opened', url: safe(url) });
    try {
      await withDeadline(Promise.resolve(this.io.openBrowser(url)), BROWSER_DEADLINE_MS, () =>
        Promise.reject(new Error('the browser opener did not return within 30 s')),
      );
      return OK;
    } catch (e) {
      return err(e && e.message ? e.message : String(e));
    }
  }
}
