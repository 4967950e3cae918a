//! Files and directories only this user can touch, opened without trusting
//! what is on disk: a store that was once world-writable (or a shared parent)
//! may hold planted symlinks, FIFOs or huge files.
//!
//! - directories are created 0700; one that is a symlink, not a directory, or
//!   owned by another user is refused; one with group/other bits is fixed;
//! - records are opened with `O_NOFOLLOW | O_NONBLOCK`: a symlink is refused,
//!   a FIFO does not block, and only regular files up to
//!   [`MAX_RECORD_BYTES`] are read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// The largest record the store reads (a record is a few KB).
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Why a path on disk is not used.
#[derive(Debug)]
pub enum Refusal {
    /// The filesystem said no.
    Io(io::Error),
    /// It is there but must not be trusted.
    Unsafe(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Io(e) => write!(f, "{e}"),
            Refusal::Unsafe(why) => f.write_str(why),
        }
    }
}

#[cfg(unix)]
fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (0700) if needed and checks it is a real directory of
/// ours, closing group/other access if it was open.
pub fn private_dir(dir: &Path) -> Result<(), Refusal> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(Refusal::Io)?;
    }
    match b.create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Refusal::Io(e)),
    }
    let m = fs::symlink_metadata(dir).map_err(Refusal::Io)?;
    if m.file_type().is_symlink() {
        return Err(Refusal::Unsafe("it is a symbolic link"));
    }
    if !m.is_dir() {
        return Err(Refusal::Unsafe("it is not a directory"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if m.uid() != my_uid() {
            return Err(Refusal::Unsafe("it belongs to another user"));
        }
        if m.mode() & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(Refusal::Io)?;
        }
    }
    Ok(())
}

/// Opens a file for reading without following a symlink or blocking on a
/// FIFO; only a regular file of ours is accepted.
pub fn open_regular(path: &Path) -> Result<File, Refusal> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let f = o.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Refusal::Unsafe("it is a symbolic link");
        }
        Refusal::Io(e)
    })?;
    let m = f.metadata().map_err(Refusal::Io)?;
    if !m.is_file() {
        return Err(Refusal::Unsafe("it is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if m.uid() != my_uid() {
            return Err(Refusal::Unsafe("it belongs to another user"));
        }
    }
    Ok(f)
}

/// Reads a whole small file: `Ok(None)` when absent.
pub fn read_small(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, Refusal> {
    let f = match open_regular(path) {
        Ok(f) => f,
        Err(Refusal::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if f.metadata().map_err(Refusal::Io)?.len() > cap {
        return Err(Refusal::Unsafe("it is larger than a record can be"));
    }
    let mut out = Vec::new();
    // The size may change under us: never read past the cap.
    f.take(cap + 1).read_to_end(&mut out).map_err(Refusal::Io)?;
    if out.len() as u64 > cap {
        return Err(Refusal::Unsafe("it is larger than a record can be"));
    }
    Ok(Some(out))
}

/// Checks a file we are about to trust (a compiled artifact): a regular
/// file of ours, not a symlink, writable by nobody else.
pub fn check_trusted_file(path: &Path) -> Result<(), Refusal> {
    let m = fs::symlink_metadata(path).map_err(Refusal::Io)?;
    if m.file_type().is_symlink() || !m.is_file() {
        return Err(Refusal::Unsafe("it is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if m.uid() != my_uid() {
            return Err(Refusal::Unsafe("it belongs to another user"));
        }
        if m.mode() & 0o022 != 0 {
            return Err(Refusal::Unsafe("others may write to it"));
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn temp() -> std::path::PathBuf {
        let mut n = [0u8; 8];
        getrandom::fill(&mut n).unwrap();
        std::env::temp_dir().join(format!("mcp-oauth-private-{:016x}", u64::from_le_bytes(n)))
    }

    #[test]
    fn a_fifo_neither_blocks_nor_is_read() {
        let dir = temp();
        private_dir(&dir).unwrap();
        let fifo = dir.join("tokens-x.json");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(ok.success());
        let t = Instant::now();
        assert!(matches!(read_small(&fifo, MAX_RECORD_BYTES), Err(Refusal::Unsafe(_))));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_huge_file_is_not_read() {
        let dir = temp();
        private_dir(&dir).unwrap();
        let big = dir.join("big.json");
        File::create(&big).unwrap().set_len(1 << 30).unwrap();
        assert!(matches!(read_small(&big, MAX_RECORD_BYTES), Err(Refusal::Unsafe(_))));
    }

    #[test]
    fn symlinks_are_refused() {
        let dir = temp();
        private_dir(&dir).unwrap();
        let elsewhere = temp();
        fs::create_dir_all(&elsewhere).unwrap();
        fs::write(elsewhere.join("secret"), b"{}").unwrap();
        std::os::unix::fs::symlink(elsewhere.join("secret"), dir.join("k.json")).unwrap();
        assert!(matches!(read_small(&dir.join("k.json"), 100), Err(Refusal::Unsafe(_))));
        std::os::unix::fs::symlink(&elsewhere, dir.join("cache")).unwrap();
        assert!(matches!(private_dir(&dir.join("cache")), Err(Refusal::Unsafe(_))));
        assert!(check_trusted_file(&dir.join("k.json")).is_err());
    }

    #[test]
    fn an_open_directory_is_closed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp();
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
