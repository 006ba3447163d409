//! Start-up reconciliation of the catalog with what a crash or power cut left behind.
//!
//! Changes only recording and upload states (L5: interrupted local capture or conversion
//! becomes `needs_finalize`; interrupted uploads go back to pending). Files are only looked
//! at: a missing, resized or unknown file is reported and logged, never deleted or adopted,
//! because only a person (or a later, explicit step) can tell a stray file from lost media.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{params, Transaction};
use tracing::{info, warn};

use super::{parse_id, to_u64, Catalog, CatalogError};
use crate::protocol::Id;
use crate::segments::{self, SEGMENTS_DIR};

/// Deeper folders than this under `segments/` are not searched (media writes a flat folder;
/// the limit only guards against symlink-free but absurd trees).
const MAX_DEPTH: usize = 8;

/// What [`Catalog::reconcile`] changed and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Recordings moved to `needs_finalize` (local ones left live, any left converting).
    pub needs_finalize: Vec<Id>,
    /// Cloud recordings left `recording` or `paused`: unchanged, for the engine to resume.
    pub resumable_cloud: Vec<Id>,
    /// Upload jobs that were `uploading` and are `pending` again.
    pub uploads_requeued: u64,
    /// The storage folder does not exist (not mounted?); the file checks were skipped.
    pub storage_missing: bool,
    /// Segment rows whose file is not as recorded.
    pub segment_problems: Vec<SegmentProblem>,
    /// Files under `<storage>/segments/` that no segment row names.
    pub orphan_files: Vec<OrphanFile>,
}

impl ReconcileReport {
    /// True when no file needs a person's attention.
    pub fn files_consistent(&self) -> bool {
        !self.storage_missing && self.segment_problems.is_empty() && self.orphan_files.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentProblem {
    pub seq: u64,
    /// Relative to the storage folder, as in the row.
    pub path: String,
    pub problem: FileProblem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileProblem {
    Missing,
    SizeMismatch {
        expected: u64,
        actual: u64,
    },
    /// It exists but could not be inspected (permissions, I/O error, not a regular file).
    Unreadable(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrphanFile {
    /// Relative to the storage folder.
    pub path: PathBuf,
    pub bytes: u64,
}

impl Catalog {
    /// Run once at start, before the engine gets `Input::Restore`: settles states left by an
    /// interrupted run and reports files that do not match the rows. Deletes nothing.
    pub fn reconcile(&mut self, storage_dir: &Path) -> Result<ReconcileReport, CatalogError> {
        let mut report = ReconcileReport::default();
        let tx = self.write()?;
        report.needs_finalize = finalize_interrupted(&tx)?;
        report.resumable_cloud = ids(
            &tx,
            "SELECT id FROM recordings WHERE kind = 'cloud' AND state IN ('recording', 'paused')
             ORDER BY created_at, rowid",
        )?;
        report.uploads_requeued = tx.execute(
            "UPDATE uploads SET state = 'pending' WHERE state = 'uploading'",
            params![],
        )? as u64;
        tx.commit()?;
        if storage_dir.is_dir() {
            report.segment_problems = self.check_segment_files(storage_dir)?;
            report.orphan_files = self.find_orphans(storage_dir)?;
        } else {
            report.storage_missing = true;
        }
        log_report(storage_dir, &report);
        Ok(report)
    }

    fn check_segment_files(&self, storage_dir: &Path) -> Result<Vec<SegmentProblem>, CatalogError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, path, bytes FROM segments WHERE released_at IS NULL ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?))
            })?
            .collect::<Result<Vec<(i64, String, i64)>, _>>()?;
        let mut problems = Vec::new();
        for (seq, path, bytes) in rows {
            // The row keeps the media's size; an encrypted file is longer by a known amount.
            let expected = segments::on_disk_len(&path, to_u64("segment bytes", bytes)?);
            if let Some(problem) = file_problem(&storage_dir.join(&path), expected) {
                let seq = to_u64("segment seq", seq)?;
                problems.push(SegmentProblem { seq, path, problem });
            }
        }
        Ok(problems)
    }

    fn find_orphans(&self, storage_dir: &Path) -> Result<Vec<OrphanFile>, CatalogError> {
        let mut stmt = self.conn.prepare("SELECT path FROM segments")?;
        let known = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<String>, _>>()?;
        let mut files = Vec::new();
        walk(storage_dir, &storage_dir.join(SEGMENTS_DIR), 0, &mut files)?;
        let mut orphans: Vec<OrphanFile> = files
            .into_iter()
            .filter(|f| f.path.to_str().is_none_or(|p| !known.contains(p)))
            .collect();
        orphans.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(orphans)
    }
}

/// L5: a local recording that was capturing, or any recording being converted, when the
/// process stopped can only be completed by `finalize` now.
fn finalize_interrupted(tx: &Transaction<'_>) -> Result<Vec<Id>, CatalogError> {
    const INTERRUPTED: &str = "(kind = 'local' AND state IN ('recording', 'paused'))
                               OR state = 'converting'";
    let found = ids(
        tx,
        &format!("SELECT id FROM recordings WHERE {INTERRUPTED} ORDER BY created_at, rowid"),
    )?;
    tx.execute(
        &format!("UPDATE recordings SET state = 'needs_finalize' WHERE {INTERRUPTED}"),
        params![],
    )?;
    Ok(found)
}

fn ids(tx: &Transaction<'_>, sql: &str) -> Result<Vec<Id>, CatalogError> {
    let mut stmt = tx.prepare(sql)?;
    let raw = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|s| parse_id("recording id", s))
        .collect()
}

fn file_problem(path: &Path, expected: u64) -> Option<FileProblem> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(FileProblem::Missing),
        Err(e) => Some(FileProblem::Unreadable(e.to_string())),
        Ok(m) if !m.is_file() => Some(FileProblem::Unreadable("not a regular file".into())),
        Ok(m) if m.len() != expected => Some(FileProblem::SizeMismatch {
            expected,
            actual: m.len(),
        }),
        Ok(_) => None,
    }
}

/// Collects every non-directory entry under `dir` (symlinks included, not followed).
fn walk(
    storage_dir: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<OrphanFile>,
) -> Result<(), CatalogError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| CatalogError::Io { path, source }
    };
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && depth == 0 => return Ok(()),
        other => other.map_err(io_err(dir))?,
    };
    for entry in entries {
        let path = entry.map_err(io_err(dir))?.path();
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        if meta.is_dir() {
            if depth < MAX_DEPTH {
                walk(storage_dir, &path, depth + 1, out)?;
            }
            continue;
        }
        let relative = path.strip_prefix(storage_dir).unwrap_or(&path).to_owned();
        out.push(OrphanFile {
            path: relative,
            bytes: meta.len(),
        });
    }
    Ok(())
}

fn log_report(storage_dir: &Path, report: &ReconcileReport) {
    for id in &report.needs_finalize {
        warn!(recording_id = %id, "recording was interrupted; it now needs finalize (L5)");
    }
    for id in &report.resumable_cloud {
        info!(recording_id = %id, "cloud recording was live at shutdown; left resumable");
    }
    if report.storage_missing {
        warn!(storage = %storage_dir.display(), "storage folder missing; segment files not checked");
    }
    for p in &report.segment_problems {
        warn!(seq = p.seq, path = %p.path, problem = ?p.problem, "segment file does not match the catalog; left as is");
    }
    for o in &report.orphan_files {
        warn!(path = %o.path.display(), bytes = o.bytes, "file has no segment row; left in place for inspection");
    }
    info!(
        needs_finalize = report.needs_finalize.len(),
        resumable_cloud = report.resumable_cloud.len(),
        uploads_requeued = report.uploads_requeued,
        segment_problems = report.segment_problems.len(),
        orphan_files = report.orphan_files.len(),
        "catalog reconciled"
    );
}
