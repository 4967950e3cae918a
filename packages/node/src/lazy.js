// What the package loads on first need, behind one module: the engine (and
// through it the jco glue and the wasm), the host that performs its effects,
// DPoP keys, the browser, the Redis store, the keychain. The build bundles
// this beside index.js; what both use goes in one shared chunk, so an import
// loads two modules (Node's loader spends a good part of a millisecond on each).
export { compileEngine, loadMachine } from './engine.js';
export { Host } from './host.js';
export { DpopKeys, dpopKeyId } from './dpop.js';
export { systemOpenBrowser, browserCommand } from './browser.js';
export { openRedisStore } from './store/redis.js';
export * as keychain from './store/keychain.js';

// The internals the package's own tests use (packages/node/tests): here, not
// in a third entry, so that the code loaded at import stays in one chunk.
// Not part of the public API (the exports map lists only index.js).
export * from './store.js';
export { storeSpec } from './store/select.js';
export { parseStoreUrl, keysFor, userNamespace } from './store/redis-url.js';
export { printable, escapeTerminal, deviceCodeLines } from './terminal.js';
export { McpOAuthError } from './errors.js';
export { checkPolicy, dpopNonceSignal } from './http.js';
export { Listener, MAX_QUEUE } from './callback.js';
export { sha256Hex, recordKey, envelope, fromBinding, fromTokens, fastToken, NOTHING_STORED } from './fast.js';
