//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, the seeds) and every input that once
//! broke a target (`fuzz/regressions/<target>/`) through the same checks the fuzz targets run
//! (`roomrec::fuzzing`), so the normal test suite keeps them fixed without cargo-fuzz.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let files = inputs(target);
    for path in &files {
        let data = std::fs::read(path).expect("readable corpus file");
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} fails its checks", path.display());
    }
    files.len()
}

#[test]
fn command_corpus_and_regressions_pass() {
    let n = replay("command", roomrec::fuzzing::command);
    assert_eq!(replay("command", roomrec::fuzzing::command_with_catalog), n);
    assert!(n >= 20, "the command corpus holds {n} files");
}

#[test]
fn snapshot_corpus_and_regressions_pass() {
    let n = replay("snapshot", roomrec::fuzzing::snapshot);
    assert!(n >= 8, "the snapshot corpus holds {n} files");
}

#[test]
fn config_corpus_and_regressions_pass() {
    let n = replay("config", roomrec::fuzzing::config);
    assert!(n >= 5, "the config corpus holds {n} files");
}
