//! Share and delete work on cloud recordings (E2) that the store has not done yet: the
//! `recording_ops` rows.
//!
//! Owns: queueing such work durably, listing what is left after a restart, and forgetting it
//! once done. A delete is queued in the same transaction that forgets the recording's upload
//! jobs, so no restart can leave objects in the bucket that nothing will ever remove.
//! Must not touch: the store, HTTP, the files themselves.

use rusqlite::params;
use tracing::info;

use super::{bad_row, parse_id, Catalog, CatalogError};
use crate::protocol::{Id, Timestamp};

/// What is left to do for a recording in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingWork {
    /// Rewrite the manifest with this shared flag.
    Share { shared: bool },
    /// Remove these objects.
    Delete { keys: Vec<String> },
}

/// One queued piece of work; `row` identifies it for [`Catalog::op_done`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOp {
    pub row: i64,
    pub recording_id: Id,
    pub work: PendingWork,
}

impl Catalog {
    /// Queues a manifest rewrite; an earlier share of the same recording not yet done is
    /// superseded, since only the last flag matters.
    pub fn queue_share(&mut self, recording_id: &Id, shared: bool) -> Result<i64, CatalogError> {
        let tx = self.write()?;
        let row = replace_pending_share(&tx, recording_id, "share", Some(shared), None)?;
        tx.commit()?;
        Ok(row)
    }

    /// Forgets the recording's upload jobs and queues the removal of `keys`, at once. A share
    /// still queued for it is dropped: there will be nothing left to share.
    pub fn queue_delete(
        &mut self,
        recording_id: &Id,
        keys: &[String],
    ) -> Result<i64, CatalogError> {
        let keys_json = serde_json::to_string(keys)?;
        let tx = self.write()?;
        let jobs = tx.execute(
            "DELETE FROM uploads WHERE recording_id = ?1",
            [recording_id.as_str()],
        )?;
        let row = replace_pending_share(&tx, recording_id, "delete", None, Some(&keys_json))?;
        tx.commit()?;
        info!(recording = %recording_id, jobs, objects = keys.len(), "delete queued");
        Ok(row)
    }

    /// Everything still to do, oldest first.
    pub fn pending_ops(&self) -> Result<Vec<PendingOp>, CatalogError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, recording_id, kind, shared, keys FROM recording_ops ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<bool>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut ops = Vec::new();
        for row in rows {
            let (row, recording, kind, shared, keys) = row?;
            let work = match (kind.as_str(), shared, keys) {
                ("share", Some(shared), _) => PendingWork::Share { shared },
                ("delete", _, Some(keys)) => PendingWork::Delete {
                    keys: serde_json::from_str(&keys)
                        .map_err(|e| bad_row("recording_ops keys", keys, e.to_string()))?,
                },
                _ => return Err(bad_row("recording_ops kind", kind, "missing its data")),
            };
            ops.push(PendingOp {
                row,
                recording_id: parse_id("recording_ops recording_id", recording)?,
                work,
            });
        }
        Ok(ops)
    }

    /// The work of `row` is done (or superseded).
    pub fn op_done(&mut self, row: i64) -> Result<(), CatalogError> {
        self.conn
            .execute("DELETE FROM recording_ops WHERE id = ?1", [row])?;
        Ok(())
    }
}

/// Inserts the `kind` row for the recording in place of any share of it still pending: a
/// later share supersedes it, and a delete leaves nothing to share.
fn replace_pending_share(
    tx: &rusqlite::Transaction<'_>,
    recording_id: &Id,
    kind: &str,
    shared: Option<bool>,
    keys: Option<&str>,
) -> Result<i64, CatalogError> {
    tx.execute(
        "DELETE FROM recording_ops WHERE recording_id = ?1 AND kind = 'share'",
        [recording_id.as_str()],
    )?;
    tx.execute(
        "INSERT INTO recording_ops (recording_id, kind, shared, keys, queued_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            recording_id.as_str(),
            kind,
            shared,
            keys,
            Timestamp::now().0
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse(s).expect("id")
    }

    #[test]
    fn queued_work_survives_reopening_and_is_forgotten_when_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("catalog.db");
        let (share, delete) = {
            let mut c = Catalog::open(&path).expect("open");
            c.queue_share(&id("r-1"), false).expect("share");
            let share = c.queue_share(&id("r-1"), true).expect("share again");
            let keys = vec![
                "a/b/r-2/000001.ts".to_owned(),
                "a/b/r-2/index.m3u8".to_owned(),
            ];
            (share, c.queue_delete(&id("r-2"), &keys).expect("delete"))
        };
        let mut c = Catalog::open(&path).expect("reopen");
        let ops = c.pending_ops().expect("pending");
        assert_eq!(
            ops,
            vec![
                PendingOp {
                    row: share,
                    recording_id: id("r-1"),
                    work: PendingWork::Share { shared: true },
                },
                PendingOp {
                    row: delete,
                    recording_id: id("r-2"),
                    work: PendingWork::Delete {
                        keys: vec!["a/b/r-2/000001.ts".into(), "a/b/r-2/index.m3u8".into()],
                    },
                },
            ],
            "the superseded share is gone, the rest kept in order"
        );
        c.op_done(share).expect("done");
        assert_eq!(c.pending_ops().expect("pending").len(), 1);
    }

    #[test]
    fn a_delete_drops_a_pending_share_of_the_same_recording() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Catalog::open(&dir.path().join("catalog.db")).expect("open");
        c.queue_share(&id("r-1"), true).expect("share");
        c.queue_delete(&id("r-1"), &[]).expect("delete");
        let ops = c.pending_ops().expect("pending");
        assert_eq!(ops.len(), 1);
        assert!(matches!(ops[0].work, PendingWork::Delete { .. }));
    }
}
