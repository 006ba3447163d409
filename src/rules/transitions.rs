//! The recording lifecycle as a table: every change of a recording's state the rules may make,
//! for which kinds, and the rules that allow it. `Engine::transition` and every other change
//! of a state (restore, the L5 and E2 commands) ask [`allowed`] first and refuse the rest.
//!
//! Must not touch: when a transition happens (the rule modules decide that). A recording is
//! created in `recording` (C1, L1, C2); that is not a transition and is not in the table.
//! Nothing leads into `failed` (no code writes it today; the catalog schema allows it); L5 and
//! E2 lead out of it, for a row that holds it.

use crate::protocol::{RecordingKind, RecordingState};

use RecordingKind::{Cloud, Local};
use RecordingState::*;

/// One legal change of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Transition {
    pub from: RecordingState,
    pub to: RecordingState,
    /// The one kind it applies to; `None`: both.
    pub kind: Option<RecordingKind>,
    /// Rule ids of the recording rules, or the name of a decision where the spec is silent
    /// (`rules` module header): `restore`, `disk budget`, `media failure`.
    pub rules: &'static [&'static str],
}

const fn t(
    from: RecordingState,
    to: RecordingState,
    kind: Option<RecordingKind>,
    rules: &'static [&'static str],
) -> Transition {
    Transition {
        from,
        to,
        kind,
        rules,
    }
}

/// Why a live recording stops: by command, all hosts gone, quota, meeting end, permission
/// taken or owner gone, no room, media failed.
const STOPS: &[&str] = &[
    "X3",
    "C6",
    "C8",
    "E1",
    "L2",
    "L3",
    "disk budget",
    "media failure",
];

/// Every legal transition; anything else is refused.
pub(super) const TABLE: &[Transition] = &[
    t(Recording, Paused, None, &["L6", "restore"]),
    t(Paused, Recording, None, &["L6"]),
    t(Recording, Stopped, None, STOPS),
    t(Paused, Stopped, None, STOPS),
    // Capture interrupted (restart, power cut): completed later by `finalize`.
    t(Recording, NeedsFinalize, Some(Local), &["L5"]),
    t(Paused, NeedsFinalize, Some(Local), &["L5"]),
    t(Stopped, Discarded, Some(Local), &["L4"]),
    t(Stopped, Converting, Some(Local), &["E1", "L5"]),
    t(Stopped, Ready, Some(Cloud), &["E1"]),
    // Conversion done; failed, stopped by command or interrupted.
    t(Converting, Ready, Some(Local), &["L5"]),
    t(Converting, NeedsFinalize, Some(Local), &["L5"]),
    // `finalize`: a local one is converted again, a cloud one's completion retried.
    t(NeedsFinalize, Converting, Some(Local), &["L5"]),
    t(NeedsFinalize, Stopped, Some(Cloud), &["L5"]),
    t(Failed, Converting, Some(Local), &["L5"]),
    t(Failed, Stopped, Some(Cloud), &["L5"]),
    // `delete`: anything neither live, converting nor deleted.
    t(Stopped, Deleted, None, &["E2"]),
    t(NeedsFinalize, Deleted, None, &["E2"]),
    t(Ready, Deleted, None, &["E2"]),
    t(Discarded, Deleted, None, &["E2"]),
    t(Failed, Deleted, None, &["E2"]),
];

/// The table's row for this change, if it is legal.
pub(super) fn allowed(
    kind: RecordingKind,
    from: RecordingState,
    to: RecordingState,
) -> Option<&'static Transition> {
    TABLE
        .iter()
        .find(|t| t.from == from && t.to == to && t.kind.is_none_or(|k| k == kind))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Decisions where the spec is silent (`rules` module header) that change a state.
    const DECISIONS: [&str; 3] = [
        "restore",       // a live cloud recording waits paused for the first snapshot
        "disk budget",   // too little room stops every live recording (`disk_full`)
        "media failure", // `DiskFull` and `MediaFailed` stop every live recording
    ];

    /// The rule ids of the recording rules.
    const RULE_IDS: [&str; 24] = [
        "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "L1", "L2", "L3", "L4", "L5", "L6", "X1",
        "X2", "X3", "M1", "E1", "E2", "D1", "D2", "D3", "T1",
    ];

    fn edges(kind: RecordingKind) -> BTreeSet<(&'static str, &'static str)> {
        let mut set = BTreeSet::new();
        for from in RecordingState::ALL {
            for to in RecordingState::ALL {
                if allowed(kind, from, to).is_some() {
                    set.insert((from.as_str(), to.as_str()));
                }
            }
        }
        set
    }

    #[test]
    fn every_row_names_known_rules_and_is_the_only_one_for_its_change() {
        let mut seen = BTreeSet::new();
        for row in TABLE {
            assert!(!row.rules.is_empty(), "{row:?} names no rule");
            for rule in row.rules {
                assert!(
                    RULE_IDS.contains(rule) || DECISIONS.contains(rule),
                    "{row:?}: {rule} is neither a rule id nor a documented decision"
                );
            }
            assert_ne!(row.from, row.to, "{row:?} changes nothing");
            assert!(
                seen.insert((row.from.as_str(), row.to.as_str())),
                "{row:?} is listed twice"
            );
        }
    }

    /// The whole lifecycle per kind, written out: the table must say exactly this.
    #[test]
    fn the_lifecycle_of_each_kind() {
        let cases: [(RecordingKind, &[(&str, &str)]); 2] = [
            (
                Cloud,
                &[
                    ("recording", "paused"),
                    ("paused", "recording"),
                    ("recording", "stopped"),
                    ("paused", "stopped"),
                    ("stopped", "ready"),
                    ("needs_finalize", "stopped"),
                    ("failed", "stopped"),
                    ("stopped", "deleted"),
                    ("needs_finalize", "deleted"),
                    ("ready", "deleted"),
                    ("discarded", "deleted"),
                    ("failed", "deleted"),
                ],
            ),
            (
                Local,
                &[
                    ("recording", "paused"),
                    ("paused", "recording"),
                    ("recording", "stopped"),
                    ("paused", "stopped"),
                    ("recording", "needs_finalize"),
                    ("paused", "needs_finalize"),
                    ("stopped", "discarded"),
                    ("stopped", "converting"),
                    ("converting", "ready"),
                    ("converting", "needs_finalize"),
                    ("needs_finalize", "converting"),
                    ("failed", "converting"),
                    ("stopped", "deleted"),
                    ("needs_finalize", "deleted"),
                    ("ready", "deleted"),
                    ("discarded", "deleted"),
                    ("failed", "deleted"),
                ],
            ),
        ];
        for (kind, want) in cases {
            let want: BTreeSet<_> = want.iter().copied().collect();
            assert_eq!(edges(kind), want, "{kind:?}");
        }
    }

    #[test]
    fn deleted_is_final_and_only_live_recordings_go_back_to_recording() {
        for kind in [Cloud, Local] {
            for to in RecordingState::ALL {
                assert!(allowed(kind, Deleted, to).is_none(), "deleted -> {to:?}");
                assert!(allowed(kind, to, Failed).is_none(), "{to:?} -> failed");
                if allowed(kind, to, Recording).is_some() {
                    assert_eq!(to, Paused, "{to:?} -> recording");
                }
            }
        }
    }

    /// Every state a recording can be in is reachable from `recording`, and every one but
    /// `deleted` can still be left (nothing is stuck where no command can reach it).
    #[test]
    fn every_state_is_reachable_and_every_kept_one_can_be_deleted() {
        for kind in [Cloud, Local] {
            let mut reached = BTreeSet::from([Recording.as_str()]);
            loop {
                let more: Vec<&str> = edges(kind)
                    .into_iter()
                    .filter(|(from, _)| reached.contains(from))
                    .map(|(_, to)| to)
                    .filter(|to| !reached.contains(to))
                    .collect();
                if more.is_empty() {
                    break;
                }
                reached.extend(more);
            }
            for state in RecordingState::ALL {
                let never = match kind {
                    Cloud => [Failed, Converting, Discarded, NeedsFinalize].contains(&state),
                    Local => state == Failed,
                };
                assert_eq!(
                    reached.contains(state.as_str()),
                    !never,
                    "{kind:?}: {state:?}"
                );
                let settled = !state.is_live() && state != Converting && state != Deleted;
                if settled {
                    assert!(
                        allowed(kind, state, Deleted).is_some(),
                        "{kind:?} {state:?}"
                    );
                }
            }
        }
    }
}
