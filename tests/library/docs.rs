//! Keeps `docs/recording-rules.md` in step with the code that names its rule ids:
//!
//! - the page has one heading per rule id, exactly the ids of the rules (C1–C8, L1–L6,
//!   X1–X3, M1, E1–E2, D1–D3, W1–W4, T1), each with its anchor;
//! - every word of the repository's code and documents that looks like a rule id (a family
//!   letter and a number) is one the page defines, so a reference never dangles;
//! - every rule names, under "Tested by", test files that exist, test functions defined in
//!   them, and at least one of those files mentions the rule's id; a rule the rules engine
//!   enforces has its table test in `src/rules/tests.rs` (`table("C1", ...)`);
//! - a rule marked "not yet enforced" names no tests, and `src/rules/tests.rs` does not
//!   mention it (once it does, the page must say how it is enforced).
//!
//! Plain text checks over the files, no library code: cheap to build and run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const RULES_PAGE: &str = "docs/recording-rules.md";
const TABLE_TESTS: &str = "src/rules/tests.rs";
const NOT_YET: &str = "**Status: not yet enforced";
const TESTED_BY: &str = "**Tested by:**";
const ENFORCED_BY: &str = "**Enforced by:**";

/// The rule families and how many rules each has: C1–C8, L1–L6, and so on.
const FAMILIES: [(char, u32); 8] = [
    ('C', 8),
    ('L', 6),
    ('X', 3),
    ('M', 1),
    ('E', 2),
    ('D', 3),
    ('W', 4),
    ('T', 1),
];

/// Where rule ids are named: code, tests, benches, fuzz targets, documents, configuration.
/// Fuzz corpora and regressions are inputs, not text about the rules.
const SCANNED: [&str; 7] = [
    "src",
    "tests",
    "benches",
    "fuzz/fuzz_targets",
    "docs",
    "config",
    "README.md",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn all_ids() -> BTreeSet<String> {
    FAMILIES
        .iter()
        .flat_map(|&(letter, n)| (1..=n).map(move |i| format!("{letter}{i}")))
        .collect()
}

/// A word shaped like a rule id: a family letter and 1–2 digits, not starting with 0 (`T0`,
/// a test clock, is not a rule).
fn looks_like_id(word: &str) -> bool {
    let mut chars = word.chars();
    let letter = chars.next();
    let digits: String = chars.collect();
    letter.is_some_and(|c| FAMILIES.iter().any(|&(f, _)| f == c))
        && (1..=2).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Words as Rust sees identifiers: `C1` in `(C1, L2)` or `C1–C8`, not in `c1_only` or `XC1`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// Whether `text` has a table test labelled `id`: `table("C1", ...)`, however formatted.
fn has_table(text: &str, id: &str) -> bool {
    let label = format!("\"{id}\"");
    text.match_indices("table(")
        .any(|(i, call)| text[i + call.len()..].trim_start().starts_with(&label))
}

fn mentions(text: &str, id: &str) -> bool {
    words(text).any(|w| w == id)
}

/// One `### ` heading of the rules page and the text up to the next heading.
struct Rule {
    id: String,
    anchor: Option<String>,
    body: String,
}

impl Rule {
    /// The paragraph that starts with `marker`, up to the next blank line.
    fn paragraph(&self, marker: &str) -> Option<String> {
        let start = self.body.find(marker)?;
        let rest = &self.body[start..];
        let end = rest.find("\n\n").unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    }

    fn not_yet_enforced(&self) -> bool {
        self.body.lines().any(|l| l.starts_with(NOT_YET))
    }
}

/// The page's rule headings: `### <a id="c1"></a>C1 — title`.
fn rules() -> Vec<Rule> {
    let page = read(RULES_PAGE);
    let mut rules: Vec<Rule> = Vec::new();
    for line in page.lines() {
        if line.starts_with('#') {
            if let Some(heading) = line.strip_prefix("### ") {
                let (anchor, title) = match heading
                    .strip_prefix("<a id=\"")
                    .and_then(|s| s.split_once("\"></a>"))
                {
                    Some((anchor, title)) => (Some(anchor.to_owned()), title),
                    None => (None, heading),
                };
                let id = title.split_whitespace().next().unwrap_or("").to_owned();
                assert!(
                    looks_like_id(&id),
                    "{RULES_PAGE}: the heading {line:?} does not start with a rule id"
                );
                rules.push(Rule {
                    id,
                    anchor,
                    body: String::new(),
                });
                continue;
            }
            // A higher-level heading ends the rule before it.
            rules.push(Rule {
                id: String::new(),
                anchor: None,
                body: String::new(),
            });
            continue;
        }
        if let Some(rule) = rules.last_mut() {
            rule.body.push_str(line);
            rule.body.push('\n');
        }
    }
    rules.retain(|r| !r.id.is_empty());
    rules
}

/// Text files below `rel` (or `rel` itself), as paths relative to the repository.
fn text_files(rel: &str, out: &mut Vec<String>) {
    let path = root().join(rel);
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("cannot list {rel}: {e}"))
            .map(|e| e.expect("directory entry").file_name())
            .collect();
        entries.sort();
        for name in entries {
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            text_files(&format!("{rel}/{name}"), out);
        }
    } else if path.is_file() {
        out.push(rel.to_owned());
    }
}

#[test]
fn the_rules_page_defines_each_rule_id_once() {
    let rules = rules();
    let mut seen = BTreeSet::new();
    for r in &rules {
        assert!(
            seen.insert(r.id.clone()),
            "{RULES_PAGE}: {} has two headings",
            r.id
        );
        assert_eq!(
            r.anchor.as_deref(),
            Some(r.id.to_lowercase().as_str()),
            "{RULES_PAGE}: the heading of {} needs the anchor <a id=\"{}\"></a>, so that \
             links like recording-rules.md#{} work",
            r.id,
            r.id.to_lowercase(),
            r.id.to_lowercase()
        );
    }
    let want = all_ids();
    let missing: Vec<_> = want.difference(&seen).collect();
    let extra: Vec<_> = seen.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{RULES_PAGE} must have one heading per rule id: missing {missing:?}, unknown {extra:?}"
    );
}

#[test]
fn every_rule_id_the_repository_names_is_defined() {
    let defined: BTreeSet<String> = rules().into_iter().map(|r| r.id).collect();
    let mut files = Vec::new();
    for rel in SCANNED {
        text_files(rel, &mut files);
    }
    let mut dangling: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut named = 0;
    for rel in files.iter().filter(|f| *f != RULES_PAGE) {
        let Ok(text) = std::fs::read_to_string(root().join(rel)) else {
            continue; // not text
        };
        for (n, line) in text.lines().enumerate() {
            for w in words(line).filter(|w| looks_like_id(w)) {
                named += 1;
                if !defined.contains(w) {
                    dangling
                        .entry(w.to_owned())
                        .or_default()
                        .push(format!("{rel}:{}", n + 1));
                }
            }
        }
    }
    assert!(
        dangling.is_empty(),
        "rule ids named but not defined in {RULES_PAGE} (add a heading, or fix the \
         reference): {dangling:#?}"
    );
    // The scan itself must have found the code's references, or it proves nothing.
    assert!(
        named > 100,
        "only {named} rule id references found: is the scan reading the code?"
    );
}

#[test]
fn every_enforced_rule_names_tests_that_check_it() {
    let table_tests = read(TABLE_TESTS);
    let mut problems = Vec::new();
    for rule in rules() {
        let id = &rule.id;
        let tested = rule.paragraph(TESTED_BY);
        if rule.not_yet_enforced() {
            if tested.is_some() || rule.paragraph(ENFORCED_BY).is_some() {
                problems.push(format!(
                    "{id} is marked not yet enforced but names the code or tests for it"
                ));
            }
            if mentions(&table_tests, id) {
                problems.push(format!(
                    "{id} is marked not yet enforced, but {TABLE_TESTS} mentions it: say in \
                     {RULES_PAGE} how it is enforced and tested now"
                ));
            }
            continue;
        }
        let Some(tested) = tested else {
            problems.push(format!(
                "{id} has neither a \"{TESTED_BY}\" paragraph nor \"{NOT_YET}\""
            ));
            continue;
        };
        let quoted: Vec<&str> = tested.split('`').skip(1).step_by(2).collect();
        let paths: Vec<&str> = quoted.iter().copied().filter(|q| q.contains('/')).collect();
        let names: Vec<&str> = quoted
            .iter()
            .copied()
            .filter(|q| {
                q.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && q.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        let mut sources = Vec::new();
        for p in &paths {
            if !root().join(p).exists() {
                problems.push(format!("{id}: {p} does not exist"));
            } else if p.ends_with(".rs") {
                sources.push(read(p));
            }
        }
        if names.is_empty() {
            problems.push(format!("{id}: \"{TESTED_BY}\" names no test function"));
        }
        for name in &names {
            let defined = sources.iter().any(|s| s.contains(&format!("fn {name}(")));
            if !defined {
                problems.push(format!(
                    "{id}: no test function {name} in {}",
                    paths.join(", ")
                ));
            }
        }
        if !sources.iter().any(|s| mentions(s, id)) {
            problems.push(format!(
                "{id}: none of the test files named ({}) mentions {id}",
                paths.join(", ")
            ));
        }
        let by_engine = rule
            .paragraph(ENFORCED_BY)
            .is_some_and(|p| p.contains("src/rules/"));
        if by_engine && !has_table(&table_tests, id) {
            problems.push(format!(
                "{id} is enforced by the rules engine but {TABLE_TESTS} has no table \
                 test for it (table(\"{id}\", ...))"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{RULES_PAGE} and the tests disagree:\n{}",
        problems.join("\n")
    );
}
