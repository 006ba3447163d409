//! Marks: what happened to a recording or to the device, kept for completeness reports.
//!
//! Owns: the `marks` rows and reading a recording's evidence (its segments and the marks
//! that bear on it). Must not touch: the report itself (`crate::completeness`).

use rusqlite::{params, Connection, Transaction};
use tracing::info;

use super::{Catalog, CatalogError};
use crate::completeness::{Evidence, Mark, MarkKind, SegmentSpan};
use crate::protocol::{DeviceRole, Id, StopReason, Timestamp};

/// Device marks this long before a recording's creation still bear on it (a device lost
/// just before the start).
const DEVICE_MARKS_BEFORE_MS: i64 = 60_000;
/// A guard against a device that flaps for months: no report reads more marks than this.
const MAX_MARKS: i64 = 10_000;

impl Catalog {
    /// Saves a mark of the device (`recording_id` `None`) or of one recording.
    pub fn add_mark(&mut self, recording_id: Option<&Id>, mark: &Mark) -> Result<(), CatalogError> {
        let tx = self.write()?;
        insert(&tx, recording_id, mark)?;
        tx.commit()?;
        info!(recording = ?recording_id.map(Id::as_str), kind = ?mark.kind, "mark saved");
        Ok(())
    }

    /// What recording `id`'s completeness report is made from: its segments and the marks
    /// that bear on it (its own, and the device's from just before its creation on).
    /// Segments found unusable are the caller's to add (`Evidence::unusable`).
    pub fn completeness_evidence(
        &self,
        id: &Id,
        created_at: Timestamp,
    ) -> Result<Evidence, CatalogError> {
        let segments = self
            .segments_of(id)?
            .into_iter()
            .map(|s| SegmentSpan {
                seq: s.seq,
                ended_at: s.sealed_at,
                duration_ms: s.duration_ms,
                silent_ms: s.silent_ms,
            })
            .collect();
        let marks = read_marks(&self.conn, id, created_at.0 - DEVICE_MARKS_BEFORE_MS)?;
        Ok(Evidence {
            segments,
            marks,
            unusable: Vec::new(),
        })
    }
}

pub(super) fn insert(
    tx: &Transaction<'_>,
    recording_id: Option<&Id>,
    mark: &Mark,
) -> Result<(), CatalogError> {
    let (kind, detail) = stored(mark.kind);
    tx.execute(
        "INSERT INTO marks (at, recording_id, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![mark.at.0, recording_id.map(Id::as_str), kind, detail],
    )?;
    Ok(())
}

fn read_marks(conn: &Connection, id: &Id, device_from: i64) -> Result<Vec<Mark>, CatalogError> {
    let mut stmt = conn.prepare(
        "SELECT at, kind, detail FROM marks
         WHERE recording_id = ?1 OR (recording_id IS NULL AND at >= ?2)
         ORDER BY at, id LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![id.as_str(), device_from, MAX_MARKS], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // A row this code cannot read (written by a newer version) is left out of the report
    // rather than failing it.
    Ok(rows
        .into_iter()
        .filter_map(|(at, kind, detail)| {
            Some(Mark {
                at: Timestamp(at),
                kind: parsed(&kind, detail.as_deref())?,
            })
        })
        .collect())
}

/// The row's `kind` and `detail` for a mark.
fn stored(kind: MarkKind) -> (&'static str, Option<&'static str>) {
    match kind {
        MarkKind::Started => ("started", None),
        MarkKind::Paused => ("paused", None),
        MarkKind::Resumed => ("resumed", None),
        MarkKind::Stopped(reason) => ("stopped", Some(reason.as_str())),
        MarkKind::DeviceLost(role) => ("device_lost", Some(role_name(role))),
        MarkKind::DeviceBack(role) => ("device_back", Some(role_name(role))),
        MarkKind::Restarted => ("restarted", None),
    }
}

fn parsed(kind: &str, detail: Option<&str>) -> Option<MarkKind> {
    let word = |d: Option<&str>| serde_json::Value::String(d.unwrap_or_default().to_owned());
    Some(match kind {
        "started" => MarkKind::Started,
        "paused" => MarkKind::Paused,
        "resumed" => MarkKind::Resumed,
        "stopped" => MarkKind::Stopped(serde_json::from_value::<StopReason>(word(detail)).ok()?),
        "device_lost" => MarkKind::DeviceLost(serde_json::from_value(word(detail)).ok()?),
        "device_back" => MarkKind::DeviceBack(serde_json::from_value(word(detail)).ok()?),
        "restarted" => MarkKind::Restarted,
        _ => return None,
    })
}

fn role_name(role: DeviceRole) -> &'static str {
    match role {
        DeviceRole::Camera => "camera",
        DeviceRole::Microphone => "microphone",
        DeviceRole::Content => "content",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mark_kind_reads_back_as_written() {
        let roles = [
            DeviceRole::Camera,
            DeviceRole::Microphone,
            DeviceRole::Content,
        ];
        let mut kinds = vec![
            MarkKind::Started,
            MarkKind::Paused,
            MarkKind::Resumed,
            MarkKind::Restarted,
            MarkKind::Stopped(StopReason::DiskFull),
            MarkKind::Stopped(StopReason::QuotaExhausted),
        ];
        for r in roles {
            kinds.push(MarkKind::DeviceLost(r));
            kinds.push(MarkKind::DeviceBack(r));
        }
        let mut catalog = Catalog::open_in_memory().expect("catalog");
        let id = Id::parse("r-1").expect("id");
        for (i, kind) in kinds.iter().enumerate() {
            let mark = Mark {
                at: Timestamp(1_000 + i as i64),
                kind: *kind,
            };
            let owner = matches!(kind, MarkKind::DeviceLost(_) | MarkKind::DeviceBack(_))
                .then_some(())
                .map_or(Some(&id), |_| None);
            catalog.add_mark(owner, &mark).expect("mark");
        }
        let other = Id::parse("r-2").expect("id");
        let foreign = Mark {
            at: Timestamp(1_500),
            kind: MarkKind::Paused,
        };
        catalog.add_mark(Some(&other), &foreign).expect("mark");
        let evidence = catalog
            .completeness_evidence(&id, Timestamp(1_000))
            .expect("evidence");
        let read: Vec<MarkKind> = evidence.marks.iter().map(|m| m.kind).collect();
        assert_eq!(
            read, kinds,
            "its own and the device's, not another recording's"
        );
    }
}
