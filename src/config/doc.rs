//! Reading typed values out of the parsed TOML tree while collecting problems.
//!
//! Every getter records what is wrong with its key and carries on, so one pass finds every
//! problem. Getters with a default return it when the key is absent *or* bad: a bad value has
//! already been recorded, and any problem rejects the whole file, so the fallback is never
//! used for real.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use super::keys::Bounds;
use super::{values, Problem};

pub(super) struct Doc<'a> {
    root: &'a Table,
    /// Folder that relative file names are resolved against.
    base: &'a Path,
    problems: Vec<Problem>,
    /// Every key a reader asked for, so a test can check that each declared key is read.
    #[cfg(test)]
    pub asked: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

/// What is at a dotted key.
enum Lookup<'a> {
    Absent,
    /// A parent of the key is not a table; that is reported by the unknown-key walk.
    Unreachable,
    Found(&'a Value),
}

impl<'a> Doc<'a> {
    pub fn new(root: &'a Table, base: &'a Path) -> Doc<'a> {
        Doc {
            root,
            base,
            problems: Vec::new(),
            #[cfg(test)]
            asked: Default::default(),
        }
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    pub fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Records the error of a validation, if any, under `key`.
    pub fn check<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.problem(key, message)).ok()
    }

    /// Whether the key is in the file at all, whatever its type.
    pub fn has(&self, key: &str) -> bool {
        !matches!(self.lookup(key), Lookup::Absent)
    }

    fn lookup(&self, key: &str) -> Lookup<'a> {
        #[cfg(test)]
        self.asked.borrow_mut().insert(key.to_owned());
        let mut table = self.root;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let Some(value) = table.get(part) else {
                return Lookup::Absent;
            };
            if parts.peek().is_none() {
                return Lookup::Found(value);
            }
            match value.as_table() {
                Some(inner) => table = inner,
                None => return Lookup::Unreachable,
            }
        }
        Lookup::Absent
    }

    /// The value at `key` if it has the wanted type; a wrong type is recorded.
    fn typed<T>(
        &mut self,
        key: &str,
        expected: &str,
        hint: &str,
        cast: impl Fn(&'a Value) -> Option<T>,
    ) -> Option<T> {
        let Lookup::Found(value) = self.lookup(key) else {
            return None;
        };
        let cast_value = cast(value);
        if cast_value.is_none() {
            let found = type_name(value);
            self.problem(
                key,
                format!("expected {expected}, found {found}; use {hint}"),
            );
        }
        cast_value
    }

    fn missing(&mut self, key: &str, hint: &str) {
        if matches!(self.lookup(key), Lookup::Absent) {
            self.problem(key, format!("missing; set it to {hint}"));
        }
    }

    pub fn opt_str(&mut self, key: &str, hint: &str) -> Option<&'a str> {
        self.typed(key, "a string", hint, Value::as_str)
    }

    pub fn req_str(&mut self, key: &str, hint: &str) -> Option<&'a str> {
        self.missing(key, hint);
        self.opt_str(key, hint)
    }

    /// A file name, resolved against the config file's folder when relative.
    pub fn opt_path(&mut self, key: &str) -> Option<PathBuf> {
        let text = self.opt_str(key, values::FILE_HINT)?;
        if text.trim().is_empty() {
            self.problem(key, format!("is empty; use {}", values::FILE_HINT));
            return None;
        }
        Some(self.base.join(text))
    }

    /// A table of dynamic keys (e.g. `auth.admin_keys`, whose keys are names, not settings).
    pub fn opt_table(&mut self, key: &str, hint: &str) -> Option<&'a Table> {
        self.typed(key, "a table", hint, Value::as_table)
    }

    pub fn boolean(&mut self, key: &str, default: bool) -> bool {
        self.typed(key, "a boolean", "true or false", Value::as_bool)
            .unwrap_or(default)
    }

    /// An integer within `range`, described to the user by `hint`.
    fn int(&mut self, key: &str, range: RangeInclusive<i64>, hint: &str) -> Option<i64> {
        let value = self.typed(key, "an integer", hint, Value::as_integer)?;
        if !range.contains(&value) {
            self.problem(key, format!("{value} is out of range; use {hint}"));
            return None;
        }
        Some(value)
    }

    /// A count of `unit`s within the key's bounds, or its default when absent.
    pub fn uint(&mut self, bounds: Bounds, unit: &str) -> u32 {
        let hint = format!(
            "a whole number of {unit} from {} to {}",
            bounds.min, bounds.max
        );
        self.int(bounds.key, wide(bounds), &hint)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(bounds.default)
    }

    pub fn seconds(&mut self, bounds: Bounds) -> Duration {
        Duration::from_secs(u64::from(self.uint(bounds, "seconds")))
    }

    /// An even pixel count: H.264 with 4:2:0 chroma needs even frame sizes.
    pub fn even(&mut self, bounds: Bounds) -> u32 {
        let (key, default) = (bounds.key, bounds.default);
        let hint = format!(
            "an even number of pixels from {} to {}",
            bounds.min, bounds.max
        );
        let Some(value) = self.int(key, wide(bounds), &hint) else {
            return default;
        };
        if value % 2 != 0 {
            self.problem(key, format!("{value} is odd; use {hint}"));
            return default;
        }
        u32::try_from(value).unwrap_or(default)
    }

    /// A byte count of at least `min`: an integer, or a string such as `"512 MiB"`.
    pub fn opt_bytes(&mut self, key: &str, min: u64) -> Option<u64> {
        let hint = values::BYTES_HINT;
        let Lookup::Found(value) = self.lookup(key) else {
            return None;
        };
        let parsed = match value {
            Value::Integer(n) => {
                u64::try_from(*n).map_err(|_| format!("{n} is negative; use {hint}"))
            }
            Value::String(s) => values::byte_size(s),
            other => Err(format!(
                "expected an integer or a string, found {}; use {hint}",
                type_name(other)
            )),
        };
        let bytes = self.check(key, parsed)?;
        if bytes < min {
            self.problem(
                key,
                format!("{bytes} is too small; the least allowed is {min}"),
            );
            return None;
        }
        Some(bytes)
    }

    /// One of the named `options`, or `default` when absent.
    pub fn choice<T: Copy>(&mut self, key: &str, options: &[(&str, T)], default: T) -> T {
        self.opt_choice(key, options).unwrap_or(default)
    }

    pub fn req_choice<T: Copy>(&mut self, key: &str, options: &[(&str, T)]) -> Option<T> {
        self.missing(key, &values::one_of(options));
        self.opt_choice(key, options)
    }

    fn opt_choice<T: Copy>(&mut self, key: &str, options: &[(&str, T)]) -> Option<T> {
        let text = self.opt_str(key, &values::one_of(options))?;
        self.check(key, values::choice(text, options))
    }

    /// Records every key that is not in `keys`, and every section that is not a table.
    pub fn report_unknown(&mut self, keys: &[&str], sections: &[&str]) {
        let root = self.root;
        for (name, value) in root {
            if sections.contains(&name.as_str()) {
                self.report_unknown_in(name, value, keys, sections);
            } else if !keys.contains(&name.as_str()) {
                self.unknown(name, keys, sections);
            }
        }
    }

    fn report_unknown_in(
        &mut self,
        section: &str,
        value: &Value,
        keys: &[&str],
        sections: &[&str],
    ) {
        let Some(table) = value.as_table() else {
            let found = type_name(value);
            self.problem(
                section,
                format!("expected a table ([{section}]), found {found}"),
            );
            return;
        };
        for name in table.keys() {
            let full = format!("{section}.{name}");
            if !keys.contains(&full.as_str()) {
                self.unknown(&full, keys, sections);
            }
        }
    }

    fn unknown(&mut self, key: &str, keys: &[&str], sections: &[&str]) {
        let message = match suggest(key, keys.iter().chain(sections)) {
            Some(known) => format!("unknown key '{key}'; did you mean '{known}'?"),
            None => format!("unknown key '{key}'; config/roomrec.example.toml lists every key"),
        };
        self.problem(key, message);
    }
}

/// The known key closest to a mistyped one, if one is close enough to be a likely typo.
fn suggest<'k>(key: &str, known: impl Iterator<Item = &'k &'k str>) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    let leaf = key.rsplit('.').next().unwrap_or(&key);
    let mut best: Option<(usize, &str)> = None;
    for &candidate in known {
        let candidate_leaf = candidate.rsplit('.').next().unwrap_or(candidate);
        // The right name in the wrong table (`segment_seconds` at the top) is a likely slip.
        let distance = match leaf == candidate_leaf {
            true => 0,
            false => values::edit_distance(&key, candidate),
        };
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    let (distance, candidate) = best?;
    let allowed = (key.len() / 3).clamp(1, 3);
    (distance <= allowed).then_some(candidate)
}

/// The bounds as TOML integers, which are 64-bit.
fn wide(bounds: Bounds) -> RangeInclusive<i64> {
    i64::from(bounds.min)..=i64::from(bounds.max)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}
