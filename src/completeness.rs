//! Completeness reports (issue 14, item 4): what a finished recording holds of the meeting
//! time it covered, every gap with its cause and length, and the share of its sound that was
//! silent.
//!
//! Owns: the arithmetic from evidence to report (`protocol::CompletenessReport`). Pure: no
//! I/O, no clock. Must not touch: the catalog, which keeps the evidence (sealed segments with
//! their end time, length and silent time; marks of what happened), media, the wire shape.
//!
//! How a gap is found: the recording's segments, each ending at its seal time, are laid on
//! the wall clock from the first recorded moment to the stop. A hole between them, or
//! between the last one and the stop, is a gap; its cause is the first mark that explains
//! it (a pause, or a restart of the service), else the stop's reason (`disk_full`,
//! `quota_exhausted`, `device_lost`), else `unexplained` — but not between segments numbered
//! in a row, where the capture ran on and only a seal came late. A segment whose file is missing or
//! corrupt is a gap of that cause. Device loss does not stop a recording (it goes on with a
//! "no signal" picture or silence), so a camera or microphone lost is a gap of picture or
//! sound over recorded time: from its loss to its return, the stop, or a restart. Holes and
//! losses shorter than [`MIN_GAP_MS`] are not reported: segment ends are timed when they are
//! sealed, which is that exact.

use std::collections::BTreeMap;

use crate::protocol::{
    CompletenessReport, CompletenessSummary, CoverageCause, CoverageGap, DeviceRole, GapCause,
    GapTotal, Id, StopReason, Timestamp,
};

/// Shorter holes and device losses are not gaps: a person does not notice them, and segment
/// boundaries are timed to about this.
pub const MIN_GAP_MS: i64 = 1_000;

/// How long before a hole a pause or restart mark may lie and still explain it: the segment
/// being written when the pause came is sealed a little after the mark.
const MARK_SLACK_MS: i64 = 2_000;

/// One sealed segment of the recording, as the catalog keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    pub seq: u64,
    /// When its last moment was recorded (its seal time; for a segment adopted after a crash,
    /// its file's last write).
    pub ended_at: Timestamp,
    pub duration_ms: u64,
    /// How much of it sounded below -60 dBFS RMS.
    pub silent_ms: u64,
}

impl SegmentSpan {
    fn start(&self) -> i64 {
        self.ended_at.0.saturating_sub(ms(self.duration_ms))
    }
}

/// What happened, as the catalog marks it: to the recording (start, pause, resume, stop) or
/// to the device (a device lost or back, the service started).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    Started,
    Paused,
    Resumed,
    Stopped(StopReason),
    DeviceLost(DeviceRole),
    DeviceBack(DeviceRole),
    /// The service started (after a crash, a power cut or a planned restart).
    Restarted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub at: Timestamp,
    pub kind: MarkKind,
}

/// Everything a report is made from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    pub segments: Vec<SegmentSpan>,
    /// The recording's marks and the device's from its creation on, in time order.
    pub marks: Vec<Mark>,
    /// Segments whose files could not be used, found by the conversion (local recordings).
    pub unusable: Vec<(u64, GapCause)>,
}

/// A stretch of wall time, `[start, end)` in ms since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stretch {
    start: i64,
    end: i64,
}

impl Stretch {
    fn len(self) -> i64 {
        self.end - self.start
    }
}

/// The report of recording `recording_id`, created at `created_at` (the start when nothing
/// was recorded).
pub fn report(recording_id: &Id, created_at: Timestamp, evidence: &Evidence) -> CompletenessReport {
    let mut segments = evidence.segments.clone();
    segments.sort_by_key(|s| s.seq);
    let mut marks = evidence.marks.clone();
    marks.sort_by_key(|m| m.at);
    let (t0, t1, stop) = bounds(created_at, &segments, &marks);
    let holes = holes(&segments, t0, t1);
    let mut gaps: Vec<(Stretch, CoverageCause, Vec<u64>)> = holes
        .iter()
        .map(|h| {
            (
                h.stretch,
                hole_cause(h.stretch, t1, stop, &marks),
                h.follows,
            )
        })
        // The next segment's number follows: the capture ran on, a seal was late.
        .filter(|(_, cause, follows)| !(*follows && *cause == CoverageCause::Unexplained))
        .map(|(stretch, cause, _)| (stretch, cause, Vec::new()))
        .collect();
    gaps.extend(unusable_gaps(&segments, &evidence.unusable));
    let missing: Vec<Stretch> = gaps.iter().map(|(s, _, _)| *s).collect();
    for role in [DeviceRole::Camera, DeviceRole::Microphone] {
        let cause = match role {
            DeviceRole::Camera => CoverageCause::CameraLost,
            _ => CoverageCause::MicrophoneLost,
        };
        for lost in device_losses(&marks, role, t0, t1) {
            for piece in subtract(lost, &missing) {
                if piece.len() >= MIN_GAP_MS {
                    gaps.push((piece, cause, Vec::new()));
                }
            }
        }
    }
    gaps.sort_by_key(|(s, c, _)| (s.start, *c));
    let gaps: Vec<CoverageGap> = gaps
        .into_iter()
        .map(|(s, cause, seqs)| CoverageGap {
            start_ms: (s.start - t0).max(0) as u64,
            duration_ms: s.len().max(0) as u64,
            cause,
            seqs,
        })
        .collect();
    // A seal's time can be a little late, so the wall-clock span may fall short of what the
    // segments hold: the covered time is never less than they and the holes between them.
    let held: u64 = segments.iter().map(|s| s.duration_ms).sum();
    let holes_ms: u64 = gaps
        .iter()
        .filter(|g| is_timeline_cause(g.cause))
        .map(|g| g.duration_ms)
        .sum();
    let covered_ms = ((t1 - t0).max(0) as u64).max(held + holes_ms);
    let summary = summarise(&segments, &evidence.unusable, &gaps, covered_ms);
    CompletenessReport {
        version: 1,
        recording_id: recording_id.clone(),
        started_at: Timestamp(t0),
        ended_at: Timestamp(t1),
        summary,
        gaps,
    }
}

/// Whether gaps of `cause` are holes in the timeline (the others overlap recorded time: a
/// device lost, a segment unusable).
fn is_timeline_cause(cause: CoverageCause) -> bool {
    !matches!(
        cause,
        CoverageCause::CameraLost
            | CoverageCause::MicrophoneLost
            | CoverageCause::Missing
            | CoverageCause::Corrupt
    )
}

/// The first recorded moment, the end of the covered time, and the stop's reason. A
/// recording that never stopped (a local one a crash interrupted) ends at the restart that
/// found it interrupted, or at its last segment.
fn bounds(
    created_at: Timestamp,
    segments: &[SegmentSpan],
    marks: &[Mark],
) -> (i64, i64, Option<StopReason>) {
    let first = segments.iter().map(SegmentSpan::start).min();
    let started = marks.iter().find(|m| m.kind == MarkKind::Started);
    let t0 = first.or(started.map(|m| m.at.0)).unwrap_or(created_at.0);
    let last_end = segments.iter().map(|s| s.ended_at.0).max().unwrap_or(t0);
    let stop = marks.iter().rev().find_map(|m| match m.kind {
        MarkKind::Stopped(reason) if m.at.0 >= t0 - MARK_SLACK_MS => Some((m.at.0, reason)),
        _ => None,
    });
    let t1 = match stop {
        Some((at, _)) => at.max(last_end),
        None => marks
            .iter()
            .find(|m| m.kind == MarkKind::Restarted && m.at.0 >= last_end)
            .map_or(last_end, |m| m.at.0),
    };
    (t0, t1.max(t0), stop.map(|(_, r)| r))
}

/// A stretch no segment covers; `follows` when the segment after it is numbered right after
/// the one before it.
struct Hole {
    stretch: Stretch,
    follows: bool,
}

/// Stretches of `[t0, t1)` no segment covers, at least [`MIN_GAP_MS`] long.
fn holes(segments: &[SegmentSpan], t0: i64, t1: i64) -> Vec<Hole> {
    let mut out = Vec::new();
    let mut cursor = t0;
    let mut previous: Option<u64> = None;
    let mut by_start: Vec<&SegmentSpan> = segments.iter().collect();
    by_start.sort_by_key(|s| s.start());
    for s in by_start {
        let stretch = Stretch {
            start: cursor,
            end: s.start().min(t1),
        };
        if stretch.len() >= MIN_GAP_MS {
            let follows = previous.is_some_and(|p| p + 1 == s.seq);
            out.push(Hole { stretch, follows });
        }
        cursor = cursor.max(s.ended_at.0);
        previous = Some(s.seq);
    }
    let tail = Stretch {
        start: cursor,
        end: t1,
    };
    if tail.len() >= MIN_GAP_MS {
        out.push(Hole {
            stretch: tail,
            follows: false,
        });
    }
    out
}

/// The first pause or restart at or just before the hole explains it; else, for the hole
/// that runs to the stop, the stop's reason.
fn hole_cause(hole: Stretch, t1: i64, stop: Option<StopReason>, marks: &[Mark]) -> CoverageCause {
    let explaining = marks.iter().find(|m| {
        (hole.start - MARK_SLACK_MS..=hole.end).contains(&m.at.0)
            && matches!(m.kind, MarkKind::Paused | MarkKind::Restarted)
    });
    match explaining.map(|m| m.kind) {
        Some(MarkKind::Paused) => return CoverageCause::Paused,
        Some(_) => return CoverageCause::Crash,
        None => {}
    }
    let at_stop = hole.end >= t1;
    match stop {
        Some(StopReason::DiskFull) if at_stop => CoverageCause::DiskFull,
        Some(StopReason::QuotaExhausted) if at_stop => CoverageCause::Quota,
        Some(StopReason::DeviceLost) if at_stop => CoverageCause::CaptureFailed,
        _ => CoverageCause::Unexplained,
    }
}

/// A gap per run of unusable segments of one cause that follow each other.
fn unusable_gaps(
    segments: &[SegmentSpan],
    unusable: &[(u64, GapCause)],
) -> Vec<(Stretch, CoverageCause, Vec<u64>)> {
    let mut out: Vec<(Stretch, CoverageCause, Vec<u64>)> = Vec::new();
    for s in segments {
        let Some((_, fault)) = unusable.iter().find(|(seq, _)| *seq == s.seq) else {
            continue;
        };
        let cause = match fault {
            GapCause::Missing => CoverageCause::Missing,
            GapCause::Corrupt => CoverageCause::Corrupt,
        };
        let span = Stretch {
            start: s.start(),
            end: s.ended_at.0,
        };
        match out.last_mut() {
            Some((prev, c, seqs)) if *c == cause && span.start - prev.end < MIN_GAP_MS => {
                prev.end = prev.end.max(span.end);
                seqs.push(s.seq);
            }
            _ => out.push((span, cause, vec![s.seq])),
        }
    }
    out
}

/// The stretches of `[t0, t1)` during which the device in `role` was lost: from its loss to
/// its return, a restart (which reports the devices again) or the end.
fn device_losses(marks: &[Mark], role: DeviceRole, t0: i64, t1: i64) -> Vec<Stretch> {
    let mut out = Vec::new();
    let mut lost_since: Option<i64> = None;
    let close = |since: Option<i64>, at: i64, out: &mut Vec<Stretch>| {
        if let Some(since) = since {
            let s = Stretch {
                start: since.max(t0),
                end: at.min(t1),
            };
            if s.len() > 0 {
                out.push(s);
            }
        }
    };
    for m in marks {
        match m.kind {
            MarkKind::DeviceLost(r) if r == role => {
                lost_since.get_or_insert(m.at.0);
            }
            MarkKind::DeviceBack(r) if r == role => close(lost_since.take(), m.at.0, &mut out),
            MarkKind::Restarted => close(lost_since.take(), m.at.0, &mut out),
            _ => {}
        }
    }
    close(lost_since, t1, &mut out);
    out
}

/// `from` without the parts that `cut` covers.
fn subtract(from: Stretch, cut: &[Stretch]) -> Vec<Stretch> {
    let mut pieces = vec![from];
    for c in cut {
        pieces = pieces
            .into_iter()
            .flat_map(|p| {
                [
                    Stretch {
                        start: p.start,
                        end: p.end.min(c.start),
                    },
                    Stretch {
                        start: p.start.max(c.end),
                        end: p.end,
                    },
                ]
            })
            .filter(|p| p.len() > 0)
            .collect();
    }
    pieces
}

fn summarise(
    segments: &[SegmentSpan],
    unusable: &[(u64, GapCause)],
    gaps: &[CoverageGap],
    covered_ms: u64,
) -> CompletenessSummary {
    let usable = segments
        .iter()
        .filter(|s| !unusable.iter().any(|(seq, _)| *seq == s.seq));
    let (recorded_ms, silent_ms) = usable.fold((0u64, 0u64), |(r, q), s| {
        (r + s.duration_ms, q + s.silent_ms.min(s.duration_ms))
    });
    let mut gap_totals: BTreeMap<CoverageCause, GapTotal> = BTreeMap::new();
    for g in gaps {
        let total = gap_totals.entry(g.cause).or_default();
        total.count += 1;
        total.total_ms += g.duration_ms;
    }
    let silent_share = if recorded_ms == 0 {
        0.0
    } else {
        (silent_ms as f64 / recorded_ms as f64 * 1000.0).round() / 1000.0
    };
    CompletenessSummary {
        recorded_ms,
        covered_ms,
        gap_totals,
        silent_ms,
        silent_share,
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    /// `n` back-to-back 1 s segments from `from_s` (seconds after T0), numbered from `seq`.
    fn run(seq: u64, from_s: i64, n: u64, silent_ms: u64) -> Vec<SegmentSpan> {
        (0..n)
            .map(|i| SegmentSpan {
                seq: seq + i,
                ended_at: Timestamp(T0 + from_s * 1000 + (i as i64 + 1) * 1000),
                duration_ms: 1000,
                silent_ms,
            })
            .collect()
    }

    fn mark(at_s: f64, kind: MarkKind) -> Mark {
        Mark {
            at: Timestamp(T0 + (at_s * 1000.0) as i64),
            kind,
        }
    }

    fn gap(start_s: i64, len_ms: u64, cause: CoverageCause) -> CoverageGap {
        CoverageGap {
            start_ms: start_s as u64 * 1000,
            duration_ms: len_ms,
            cause,
            seqs: vec![],
        }
    }

    fn late(mut segments: Vec<SegmentSpan>, ms: i64) -> Vec<SegmentSpan> {
        for s in &mut segments {
            s.ended_at.0 += ms;
        }
        segments
    }

    fn cat<T: Clone>(parts: &[Vec<T>]) -> Vec<T> {
        parts.concat()
    }

    use CoverageCause::*;
    use MarkKind::*;

    struct Case {
        name: &'static str,
        evidence: Evidence,
        recorded_ms: u64,
        covered_ms: u64,
        gaps: Vec<CoverageGap>,
        silent_share: f64,
    }

    fn cases() -> Vec<Case> {
        let stop = |s: f64, r| mark(s, Stopped(r));
        vec![
            Case {
                name: "whole: 10 s recorded, stopped by command",
                evidence: Evidence {
                    segments: run(1, 0, 10, 0),
                    marks: vec![mark(-0.4, Started), stop(10.0, StopReason::Command)],
                    unusable: vec![],
                },
                recorded_ms: 10_000,
                covered_ms: 10_000,
                gaps: vec![],
                silent_share: 0.0,
            },
            Case {
                name: "L6: paused 5 s between two runs (the resume restarts capture)",
                evidence: Evidence {
                    segments: cat(&[run(1, 0, 4, 0), run(9, 9, 3, 0)]),
                    marks: vec![
                        mark(0.0, Started),
                        mark(3.9, MarkKind::Paused),
                        mark(8.5, Resumed),
                        stop(12.0, StopReason::MeetingEnded),
                    ],
                    unusable: vec![],
                },
                recorded_ms: 7_000,
                covered_ms: 12_000,
                gaps: vec![gap(4, 5_000, CoverageCause::Paused)],
                silent_share: 0.0,
            },
            Case {
                name: "paused, then stopped while paused: the tail is paused time",
                evidence: Evidence {
                    segments: run(1, 0, 5, 0),
                    marks: vec![mark(4.8, MarkKind::Paused), stop(9.0, StopReason::Command)],
                    unusable: vec![],
                },
                recorded_ms: 5_000,
                covered_ms: 9_000,
                gaps: vec![gap(5, 4_000, CoverageCause::Paused)],
                silent_share: 0.0,
            },
            Case {
                name: "cloud: a restart in the middle, resumed after it",
                evidence: Evidence {
                    segments: cat(&[run(1, 0, 6, 0), run(7, 14, 4, 0)]),
                    marks: vec![
                        mark(0.0, Started),
                        mark(9.0, Restarted),
                        mark(13.5, Resumed),
                        stop(18.0, StopReason::Command),
                    ],
                    unusable: vec![],
                },
                recorded_ms: 10_000,
                covered_ms: 18_000,
                gaps: vec![gap(6, 8_000, Crash)],
                silent_share: 0.0,
            },
            Case {
                name: "local: a crash ends it; covered until the restart found it",
                evidence: Evidence {
                    segments: run(1, 0, 8, 0),
                    marks: vec![mark(0.0, Started), mark(11.0, Restarted)],
                    unusable: vec![],
                },
                recorded_ms: 8_000,
                covered_ms: 11_000,
                gaps: vec![gap(8, 3_000, Crash)],
                silent_share: 0.0,
            },
            Case {
                name: "a pause before a crash stays a pause",
                evidence: Evidence {
                    segments: cat(&[run(1, 0, 3, 0), run(4, 10, 2, 0)]),
                    marks: vec![
                        mark(2.9, MarkKind::Paused),
                        mark(6.0, Restarted),
                        mark(9.8, Resumed),
                        stop(12.0, StopReason::Command),
                    ],
                    unusable: vec![],
                },
                recorded_ms: 5_000,
                covered_ms: 12_000,
                gaps: vec![gap(3, 7_000, CoverageCause::Paused)],
                silent_share: 0.0,
            },
            Case {
                name: "disk full: the unsealed tail is lost",
                evidence: Evidence {
                    segments: run(1, 0, 6, 0),
                    marks: vec![stop(7.5, StopReason::DiskFull)],
                    unusable: vec![],
                },
                recorded_ms: 6_000,
                covered_ms: 7_500,
                gaps: vec![gap(6, 1_500, DiskFull)],
                silent_share: 0.0,
            },
            Case {
                name: "C8: the quota names the tail",
                evidence: Evidence {
                    segments: run(1, 0, 3, 0),
                    marks: vec![stop(5.0, StopReason::QuotaExhausted)],
                    unusable: vec![],
                },
                recorded_ms: 3_000,
                covered_ms: 5_000,
                gaps: vec![gap(3, 2_000, Quota)],
                silent_share: 0.0,
            },
            Case {
                name: "a hole nothing explains is unexplained; one under a second is none",
                evidence: Evidence {
                    // The third segment sealed 400 ms late: a hole of 400 ms before it. The
                    // 4th was never catalogued: the hole after the 3rd is real.
                    segments: cat(&[run(1, 0, 2, 0), late(run(3, 2, 1, 0), 400), run(5, 6, 1, 0)]),
                    marks: vec![stop(7.0, StopReason::Command)],
                    unusable: vec![],
                },
                recorded_ms: 4_000,
                covered_ms: 7_000,
                gaps: vec![CoverageGap {
                    start_ms: 3_400,
                    ..gap(3, 2_600, Unexplained)
                }],
                silent_share: 0.0,
            },
            Case {
                name: "a seal late by 1.5 s between segments numbered in a row is no gap",
                evidence: Evidence {
                    segments: cat(&[
                        run(1, 0, 3, 0),
                        late(run(4, 3, 1, 0), 1_500),
                        run(5, 5, 2, 0),
                    ]),
                    marks: vec![stop(7.0, StopReason::Command)],
                    unusable: vec![],
                },
                recorded_ms: 6_000,
                covered_ms: 7_000,
                gaps: vec![],
                silent_share: 0.0,
            },
            Case {
                name: "the first segment sealed late: covered is what the segments hold",
                evidence: Evidence {
                    segments: cat(&[late(run(1, 0, 1, 0), 500), run(2, 1, 2, 0)]),
                    marks: vec![stop(3.0, StopReason::Command)],
                    unusable: vec![],
                },
                recorded_ms: 3_000,
                covered_ms: 3_000,
                gaps: vec![],
                silent_share: 0.0,
            },
            Case {
                name: "missing and corrupt segments: one gap per run of one cause",
                evidence: Evidence {
                    segments: run(1, 0, 6, 0),
                    marks: vec![stop(6.0, StopReason::Command)],
                    unusable: vec![
                        (2, GapCause::Missing),
                        (3, GapCause::Missing),
                        (4, GapCause::Corrupt),
                    ],
                },
                recorded_ms: 3_000,
                covered_ms: 6_000,
                gaps: vec![
                    CoverageGap {
                        seqs: vec![2, 3],
                        ..gap(1, 2_000, Missing)
                    },
                    CoverageGap {
                        seqs: vec![4],
                        ..gap(3, 1_000, Corrupt)
                    },
                ],
                silent_share: 0.0,
            },
            Case {
                name: "camera lost and back, microphone lost to the end, a pause cut out",
                evidence: Evidence {
                    segments: cat(&[run(1, 0, 5, 0), run(6, 8, 4, 0)]),
                    marks: vec![
                        mark(1.0, DeviceLost(DeviceRole::Camera)),
                        mark(3.0, DeviceBack(DeviceRole::Camera)),
                        mark(2.0, DeviceLost(DeviceRole::Microphone)),
                        mark(5.0, MarkKind::Paused),
                        mark(7.8, Resumed),
                        mark(1.5, DeviceLost(DeviceRole::Content)),
                        stop(12.0, StopReason::Command),
                    ],
                    unusable: vec![],
                },
                recorded_ms: 9_000,
                covered_ms: 12_000,
                gaps: vec![
                    gap(1, 2_000, CameraLost),
                    gap(2, 3_000, MicrophoneLost),
                    gap(5, 3_000, CoverageCause::Paused),
                    gap(8, 4_000, MicrophoneLost),
                ],
                silent_share: 0.0,
            },
            Case {
                name: "silent share over usable segments, three decimals",
                evidence: Evidence {
                    segments: run(1, 0, 3, 500),
                    marks: vec![stop(3.0, StopReason::Command)],
                    unusable: vec![(3, GapCause::Corrupt)],
                },
                recorded_ms: 2_000,
                covered_ms: 3_000,
                gaps: vec![CoverageGap {
                    seqs: vec![3],
                    ..gap(2, 1_000, Corrupt)
                }],
                silent_share: 0.5,
            },
            Case {
                name: "nothing recorded: an empty report at its creation",
                evidence: Evidence::default(),
                recorded_ms: 0,
                covered_ms: 0,
                gaps: vec![],
                silent_share: 0.0,
            },
        ]
    }

    #[test]
    fn reports_name_every_gap_with_its_cause_and_length() {
        let id = Id::parse("r-1").expect("id");
        for case in cases() {
            let r = report(&id, Timestamp(T0), &case.evidence);
            assert_eq!(r.gaps, case.gaps, "{}", case.name);
            assert_eq!(r.summary.recorded_ms, case.recorded_ms, "{}", case.name);
            assert_eq!(r.summary.covered_ms, case.covered_ms, "{}", case.name);
            assert_eq!(r.summary.silent_share, case.silent_share, "{}", case.name);
            let total: u64 = r.summary.gap_totals.values().map(|t| t.count).sum();
            assert_eq!(total, case.gaps.len() as u64, "{}", case.name);
            for g in &case.gaps {
                let t = r.summary.gap_totals[&g.cause];
                let sum: u64 = case
                    .gaps
                    .iter()
                    .filter(|x| x.cause == g.cause)
                    .map(|x| x.duration_ms)
                    .sum();
                assert_eq!(t.total_ms, sum, "{}", case.name);
            }
        }
    }

    #[test]
    fn the_report_reads_as_the_docs_show_it() {
        let id = Id::parse("r-7").expect("id");
        let evidence = Evidence {
            segments: cat(&[run(1, 0, 4, 250), run(9, 9, 3, 0)]),
            marks: vec![
                mark(3.9, MarkKind::Paused),
                mark(8.5, Resumed),
                mark(12.0, Stopped(StopReason::Command)),
            ],
            unusable: vec![],
        };
        let json = serde_json::to_value(report(&id, Timestamp(T0), &evidence)).expect("json");
        assert_eq!(json["recording_id"], "r-7");
        assert_eq!(json["recorded_ms"], 7_000);
        assert_eq!(json["covered_ms"], 12_000);
        assert_eq!(json["silent_ms"], 1_000);
        assert_eq!(json["silent_share"], 0.143);
        assert_eq!(json["gap_totals"]["paused"]["count"], 1);
        assert_eq!(json["gap_totals"]["paused"]["total_ms"], 5_000);
        assert_eq!(json["gaps"][0]["cause"], "paused");
        assert_eq!(json["gaps"][0]["start_ms"], 4_000);
        assert!(json["gaps"][0].get("seqs").is_none());
        assert!(json["started_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')));
    }
}
