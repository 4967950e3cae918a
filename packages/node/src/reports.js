// What status() and logout() hand the application: the engine's WIT
// records in the package's public shapes.

import { printable } from './terminal.js';

/** The WIT logout-report as returned by logout() (reasons escaped: they may quote a server). */
export function publicLogoutReport(r) {
  return {
    revoked: [...(r?.revoked ?? [])],
    failed: r?.failed === undefined ? undefined : printable(r.failed),
    skipped: r?.skipped === undefined ? undefined : printable(r.skipped),
  };
}

/** The WIT status as returned by status() (before the store's part is added). */
export function publicStatus(s) {
  return {
    serverUrl: s.serverUrl,
    resource: s.resource,
    issuer: s.issuer,
    clientId: s.clientId,
    scopes: s.scopes,
    expiresAt: s.expiresAt === undefined ? undefined : Number(s.expiresAt),
    hasToken: s.hasToken,
    canRefresh: s.canRefresh,
    declined: s.declined,
    legacy: s.legacy,
  };
}
