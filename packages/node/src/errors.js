// Typed errors. Every message says what went wrong and what to do next, and
// never carries a token, secret, code or verifier: engine messages are built
// without them, and host messages here only name URLs and files.

import { printable } from './terminal.js';

/** The one error class of the package; branch on `kind`. */
export class McpOAuthError extends Error {
  /**
   * @param {string} kind  'authorization-required' | 'declined' | 'timed-out' | a failure kind
   * @param {string} message  what happened and what to do (escaped for terminals)
   * @param {object} [oauth]  { status, error, description } when a server sent an OAuth error
   */
  constructor(kind, message, oauth) {
    super(printable(message));
    this.name = 'McpOAuthError';
    this.kind = kind;
    if (oauth) {
      this.oauth = {
        status: oauth.status,
        error: oauth.error === undefined ? undefined : printable(oauth.error),
        description: oauth.description === undefined ? undefined : printable(oauth.description),
      };
    }
  }
}

/** The engine's `auth-error` variant as an McpOAuthError. */
export function fromAuthError(e, serverUrl) {
  switch (e.tag) {
    case 'authorization-required':
      return new McpOAuthError(
        'authorization-required',
        `authorization required for ${serverUrl}: no usable token is stored; ` +
          'call auth.token() with the interactive mode on, or run `mcp-oauth login <url>`',
      );
    case 'declined':
      return new McpOAuthError(
        'declined',
        `authorization for ${serverUrl} was declined (or the wait for it cancelled); calls fail fast until auth.retry()`,
      );
    case 'timed-out':
      return new McpOAuthError(
        'timed-out',
        'timed out waiting for the sign-in to finish (the browser to come back to the loopback listener, ' +
          'or the device code to be approved); try again (or set callbackTimeoutMs higher, or paste the redirect URL with the paste option)',
      );
    case 'failed':
      return new McpOAuthError(e.val.kind, e.val.message, e.val.oauth);
    default:
      return new McpOAuthError('other', `the engine returned an unknown error (${String(e.tag)})`);
  }
}
