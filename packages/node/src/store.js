// The store seam. Every store the host can use offers the same interface:
//
//   id                      a stable name (caches are kept per store)
//   describe()              { mode: 'plain' | 'sealed', where, source?, keyId? }: where secrets live
//   unreadable()            how many records and key files cannot be read (a lost or changed key)
//   get(key)                a record's bytes, or null (absent or unreadable: never an error for content)
//   set(key, bytes)         writes a record atomically
//   delete(key)             removes a record (absent is fine)
//   list(prefix)            the record keys starting with prefix, sorted
//   listKeys()              the key file names, sorted
//   lock(key)               the cross-process lock: resolves { release() } (release is idempotent)
//   withLock(key, fn)       runs fn holding the lock; released however fn ends
//   getKey(key)             a DPoP key file's text, or null
//   putKeyOnce(key, text)   writes a key file unless one exists; the text stored (the first writer wins)
//   deleteKey(key)          removes a key file (absent is fine)
//   keyPath(key)            where a key file is, for messages
//
// FileStore (plain files, docs/store.md) and SealedStore (every record and
// key file sealed with the store key, over another store) implement it;
// openStore picks one as store.json and the secrets choice say. Keys are
// flat names chosen by the engine ([A-Za-z0-9_-]{1,128}).

export { FileStore, defaultHome, readSmall, Refused, alive, lockVerdict, breakStale, MAX_RECORD_BYTES, MAX_KEY_BYTES } from './store/file.js';
export { SealedStore, seal, sealWithNonce, open, isSealed, keyId, keyFromBase64 } from './store/sealed.js';
export { openStore, readManifest, readKeyFile, secretsChoice } from './store/choose.js';
export { keychainAccount, keychainName, keychainGet, keychainSet, keychainDelete, KEYCHAIN_DEADLINE_MS } from './store/keychain.js';

export { missingMethods } from './store/select.js';
