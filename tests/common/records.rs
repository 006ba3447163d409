//! The protocol's records as the library-level tests build them: a fixed clock, ids, and a
//! meeting to hang recordings on. Each test changes what it needs with struct update syntax.

use roomrec::protocol::{Account, Id, Meeting, MeetingState};

/// The tests' clock (ms since the epoch, January 2027): fixed, so no test depends on today.
pub const T0: i64 = 1_800_000_000_000;

/// A valid id; a test's own typo fails here.
pub fn id(s: &str) -> Id {
    Id::parse(s).expect("test id is valid")
}

/// Meeting `m`, active: creator and host u-1, co-host u-2, participants u-1 and u-2, a business
/// account with no licence expiry, an unlimited cloud quota and 5 bytes used (not zero, so a
/// round trip that drops it shows).
pub fn meeting(m: &str) -> Meeting {
    Meeting {
        meeting_id: id(m),
        state: MeetingState::Active,
        creator: id("u-1"),
        host: id("u-1"),
        cohosts: vec![id("u-2")],
        participants: vec![id("u-1"), id("u-2")],
        sharing: false,
        account: Account {
            tier: Some("business".into()),
            licence_expires_at: None,
            cloud_quota_bytes: Some(None),
            cloud_used_bytes: 5,
        },
        settings: Default::default(),
    }
}
