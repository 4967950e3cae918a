// The entropy each engine call carries (the engine has no randomness of
// its own: time and entropy come in as inputs).

import { nodeCrypto } from './builtins.js';

// Entropy for each engine call (64 bytes; the engine uses it only when a
// flow needs a verifier or state). Drawn from a pool refilled 1024 calls at a
// time: one fill costs about as much as the warm engine call. randomFillSync,
// not getRandomValues: the same CSPRNG without loading Web Crypto (~1 ms).
const pool = new Uint8Array(65_536);
let poolAt = pool.length;
export function entropy() {
  if (poolAt === pool.length) {
    nodeCrypto().randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += 64;
  return pool.subarray(poolAt - 64, poolAt); // each slice is handed out once
}
