//! The byte ledger: bytes of segment files not yet released, the disk budget's "used" figure.
//!
//! A running total (a catalog sum per tick would scan a table that grows by tens of
//! thousands of rows a day): read from the catalog once at start, then moved by the facts of
//! segments sealed and released. Every release must reach it, whoever deleted the files
//! (eviction, a cloud recording deleted by its host), or the budget over-counts until the
//! next start and refuses recordings on a disk that has room.

/// Media bytes of the segments that are sealed and not released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByteLedger {
    used: u64,
}

impl ByteLedger {
    /// The ledger at start: `used` as the catalog sums it (`Catalog::used_bytes`).
    pub fn new(used: u64) -> ByteLedger {
        ByteLedger { used }
    }

    /// A segment of `bytes` was sealed (catalogued or not: its file is on the disk).
    pub fn sealed(&mut self, bytes: u64) {
        self.used = self.used.saturating_add(bytes);
    }

    /// Segments of `bytes` in all were deleted and released ([`super::Released::bytes`]).
    pub fn released(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }

    pub fn used(&self) -> u64 {
        self.used
    }
}

/// Bytes the file system holding `dir` still gives an unprivileged writer (statvfs
/// `f_bavail`): the other half of the disk budget, and what a conversion must fit in.
#[allow(clippy::unnecessary_cast)] // the fields are u32 on 32-bit targets
pub fn free_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` a buffer of the right type, which
    // statvfs fills completely when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_of_a_folder_and_an_error_for_a_missing_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(free_bytes(dir.path()).expect("statvfs") > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn seals_add_releases_subtract_and_never_underflow() {
        let mut ledger = ByteLedger::new(100);
        ledger.sealed(50);
        assert_eq!(ledger.used(), 150);
        ledger.released(120);
        assert_eq!(ledger.used(), 30);
        ledger.released(1_000);
        assert_eq!(ledger.used(), 0);
    }
}
