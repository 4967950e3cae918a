// The package's entry for `import` (package.json "exports"): Node's compile
// cache is turned on first, then the bundle (dist/index.js) is loaded through
// it, so a start reads its compiled code instead of parsing it. `require`
// (Node's require of ES modules) gets dist/index.js itself: this module's
// top-level await would refuse it. Both see the same module instance.

import { enableCompileCache } from './compile-cache.js';

enableCompileCache();
const bundle = await import('./index.js');

export const { FileStore, McpOAuth, McpOAuthError, SealedStore, defaultHome, escapeTerminal, openStore, systemOpenBrowser } = bundle;
