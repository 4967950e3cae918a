// Reading a small file of a store without trusting what is there (a planted
// symlink, FIFO, socket, another user's file or a huge one is refused), as
// every host does (tests/vectors: record file kinds).

import { nodeFs } from '../builtins.js';

// The functions a silent token() calls are parenthesized, `(function ...)`:
// V8 then compiles them with the module and Node's compile cache keeps them
// (fast.js says why).

const fsc = nodeFs();
const C = fsc.constants;
// Windows has neither flag: there a symlink is refused by an lstat first.
const NOFOLLOW = C.O_NOFOLLOW ?? 0;
const NONBLOCK = C.O_NONBLOCK ?? 0;

/** Why a file on disk is not used (a message that names no content). */
export class Refused extends Error {}

/**
 * Reads a small file without trusting what is there: opened with O_NOFOLLOW
 * (a symlink is refused) and O_NONBLOCK (a FIFO cannot block), then only a
 * regular file owned by this user, at most `cap` bytes, is read. Resolves the
 * bytes, or null when absent; rejects with `Refused` (the reason) otherwise.
 *
 * Synchronous calls inside: the files are local and small (a record is a
 * few hundred bytes), so each call takes microseconds, while the first
 * asynchronous fs call of a process starts libuv's thread pool: reading
 * the two records of a silent token() that way took 1.9 ms of a 2.8 ms
 * fresh start's token(), synchronously 0.2 ms (the bench's fresh processes).
 */
export const readSmall = (async function readSmall(file, cap) {
  if (!NOFOLLOW) {
    let st;
    try {
      st = fsc.lstatSync(file);
    } catch (e) {
      if (e.code === 'ENOENT') return null;
      throw new Refused(e.code || 'error');
    }
    if (st.isSymbolicLink()) throw new Refused('it is a symbolic link');
  }
  let fd;
  try {
    fd = fsc.openSync(file, C.O_RDONLY | NOFOLLOW | NONBLOCK);
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    if (e.code === 'ELOOP' || e.code === 'EMLINK') throw new Refused('it is a symbolic link');
    if (e.code === 'ENXIO') throw new Refused('it is not a regular file'); // a socket
    throw new Refused(e.code || 'error');
  }
  try {
    const st = fsc.fstatSync(fd);
    if (!st.isFile()) throw new Refused('it is not a regular file');
    if (process.geteuid && st.uid !== process.geteuid()) throw new Refused('it belongs to another user');
    if (st.size > cap) throw new Refused(`it is larger than ${cap} bytes`);
    // The size may change under us: never read past cap + 1. Each round
    // reads more bytes or ends, so the loop is bounded by the cap. A short
    // read of a regular file is its end: no second call to read nothing.
    let buf = Buffer.allocUnsafe(st.size + 1);
    let at = 0;
    for (;;) {
      const want = buf.length - at;
      const bytesRead = fsc.readSync(fd, buf, at, want, at);
      at += bytesRead;
      if (bytesRead < want) break;
      if (at > cap) throw new Refused(`it is larger than ${cap} bytes`);
      if (at === buf.length) {
        const grown = Buffer.allocUnsafe(Math.min(buf.length * 2, cap + 1));
        buf.copy(grown, 0, 0, at);
        buf = grown;
      }
    }
    return buf.subarray(0, at);
  } catch (e) {
    if (e instanceof Refused) throw e;
    throw new Refused(e.code || 'error');
  } finally {
    try {
      fsc.closeSync(fd);
    } catch {
      // the bytes are read, or refused
    }
  }
});
