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

#[cfg(test)]
mod tests {
    use super::*;

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
