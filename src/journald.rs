//! Native journald output for `tracing`: each event becomes one journal entry with its level
//! as `PRIORITY`, its fields as journal fields of their own (`ROOMREC_SEQ=12`,
//! `ROOMREC_RECORDING_ID=r-…`) and a `MESSAGE` a person reads as the text format's line
//! (`segment sealed seq=12 recording_id="r-…"`). Through stdout every line was priority 6
//! and its fields only text: `journalctl -p warning` showed none of the daemon's warnings.
//!
//! Owns: the journal socket, the entry encoding (journald's native protocol) and the choice of
//! whether stderr is the journal. Must not touch: what is logged, or the level filter
//! (roomrecd's `init_logging` composes the layers).

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Where journald listens for native entries.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// The prefix of the events' own fields: journald's names are upper case, and the prefix keeps
/// them apart from its own (`MESSAGE`, `PRIORITY`, `CODE_FILE`, ...).
const FIELD_PREFIX: &str = "ROOMREC_";

/// A `tracing` layer that writes every event to journald.
pub struct JournaldLayer {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    identifier: String,
}

impl JournaldLayer {
    /// Connects to the system journal, entries tagged `SYSLOG_IDENTIFIER=identifier`.
    pub fn connect(identifier: &str) -> std::io::Result<JournaldLayer> {
        JournaldLayer::connect_to(Path::new(JOURNAL_SOCKET), identifier)
    }

    /// Connects to the journal socket at `path` (a test's own socket).
    pub fn connect_to(path: &Path, identifier: &str) -> std::io::Result<JournaldLayer> {
        let socket = UnixDatagram::unbound()?;
        // Fails now, at start, if nothing listens there.
        socket.connect(path)?;
        Ok(JournaldLayer {
            socket,
            path: path.to_path_buf(),
            identifier: identifier.to_owned(),
        })
    }
}

/// True when stderr is connected to the journal: systemd sets `JOURNAL_STREAM` to the
/// `device:inode` of the stream it gave the service (systemd.exec(5)); a shell redirect or a
/// pipe has another, so the variable inherited by a child does not count.
pub fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer we own; fd 2 may be closed, then it fails.
    if unsafe { libc::fstat(2, stat.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat returned 0, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    stream == format!("{}:{}", stat.st_dev, stat.st_ino)
}

impl<S: Subscriber> Layer<S> for JournaldLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let entry = encode_entry(event, &self.identifier);
        if self.socket.send(&entry).is_err() {
            // journald restarting or the entry too large for one datagram: the line still
            // reaches stderr, which systemd also takes into the journal.
            let _ = self.socket.connect(&self.path);
            let mut line = Fields::default();
            event.record(&mut line);
            eprintln!("{} {}", event.metadata().level(), line.message());
        }
    }
}

/// journald's priority for a level (syslog's numbers): warnings are 4, so
/// `journalctl -p warning` lists them; info is 6 (informational), debug and trace 7.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// One event in journald's native datagram format.
fn encode_entry(event: &Event<'_>, identifier: &str) -> Vec<u8> {
    let meta = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let mut entry = Vec::with_capacity(256);
    put(&mut entry, "PRIORITY", &priority(meta.level()).to_string());
    put(&mut entry, "SYSLOG_IDENTIFIER", identifier);
    put(&mut entry, "MESSAGE", &fields.message());
    if let Some(file) = meta.file() {
        put(&mut entry, "CODE_FILE", file);
    }
    if let Some(line) = meta.line() {
        put(&mut entry, "CODE_LINE", &line.to_string());
    }
    put(&mut entry, "ROOMREC_TARGET", meta.target());
    for (name, value) in &fields.pairs {
        put(&mut entry, &journal_name(name), &value.raw);
    }
    entry
}

/// `KEY=value\n`, or for a value with a newline `KEY\n`, its length (u64 little endian), the
/// value and `\n` (the protocol's binary form).
fn put(entry: &mut Vec<u8>, key: &str, value: &str) {
    entry.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        entry.push(b'\n');
        entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        entry.push(b'=');
    }
    entry.extend_from_slice(value.as_bytes());
    entry.push(b'\n');
}

/// A field's journal name: `ROOMREC_` and the name upper-cased, anything but ASCII letters,
/// digits and `_` made `_` (journald drops fields with other names).
fn journal_name(name: &str) -> String {
    let mut out = String::with_capacity(FIELD_PREFIX.len() + name.len());
    out.push_str(FIELD_PREFIX);
    out.extend(name.chars().map(|c| match c {
        'a'..='z' => c.to_ascii_uppercase(),
        'A'..='Z' | '0'..='9' | '_' => c,
        _ => '_',
    }));
    out
}

struct FieldValue {
    /// As the journal field holds it: strings as they are.
    raw: String,
    /// As the message shows it: strings quoted, like the text format.
    shown: String,
}

/// The event's message and its other fields, in order.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, FieldValue)>,
}

impl Fields {
    /// The text format's line without its level: `message key=value ...`.
    fn message(&self) -> String {
        let mut line = self.message.clone();
        for (name, value) in &self.pairs {
            if !line.is_empty() {
                line.push(' ');
            }
            let _ = write!(line, "{name}={}", value.shown);
        }
        line
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            let shown = format!("{value:?}");
            self.pairs.push((
                field.name(),
                FieldValue {
                    raw: value.to_owned(),
                    shown,
                },
            ));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.pairs.push((
                field.name(),
                FieldValue {
                    raw: text.clone(),
                    shown: text,
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tracing_subscriber::layer::SubscriberExt;

    /// Decodes one datagram of the native protocol (both value forms).
    fn decode(mut d: &[u8]) -> HashMap<String, String> {
        let mut out = HashMap::new();
        while !d.is_empty() {
            let end = d.iter().position(|&b| b == b'\n' || b == b'=').unwrap();
            let key = String::from_utf8(d[..end].to_vec()).unwrap();
            if d[end] == b'=' {
                let nl = d[end..].iter().position(|&b| b == b'\n').unwrap() + end;
                out.insert(key, String::from_utf8(d[end + 1..nl].to_vec()).unwrap());
                d = &d[nl + 1..];
            } else {
                let len = u64::from_le_bytes(d[end + 1..end + 9].try_into().unwrap()) as usize;
                let value = &d[end + 9..end + 9 + len];
                assert_eq!(d[end + 9 + len], b'\n');
                out.insert(key, String::from_utf8(value.to_vec()).unwrap());
                d = &d[end + 10 + len..];
            }
        }
        out
    }

    /// A real datagram socket standing in for journald, and what the layer sent it.
    fn logged(emit: impl FnOnce()) -> Vec<HashMap<String, String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let journal = UnixDatagram::bind(&path).unwrap();
        let layer = JournaldLayer::connect_to(&path, "roomrecd-test").unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        journal.set_nonblocking(true).unwrap();
        let mut entries = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = journal.recv(&mut buf) {
            entries.push(decode(&buf[..n]));
        }
        entries
    }

    #[test]
    fn an_event_is_one_entry_with_its_priority_fields_and_a_readable_message() {
        let entries = logged(|| {
            tracing::warn!(seq = 12u64, recording_id = "r-1", "segment sealed late");
            tracing::info!(error = "two\nlines", "multi-line value");
        });
        assert_eq!(entries.len(), 2);
        let warn = &entries[0];
        assert_eq!(warn["PRIORITY"], "4");
        assert_eq!(warn["SYSLOG_IDENTIFIER"], "roomrecd-test");
        assert_eq!(
            warn["MESSAGE"],
            r#"segment sealed late seq=12 recording_id="r-1""#
        );
        assert_eq!(warn["ROOMREC_SEQ"], "12");
        assert_eq!(warn["ROOMREC_RECORDING_ID"], "r-1");
        assert!(warn["CODE_FILE"].ends_with("journald.rs"));
        let info = &entries[1];
        assert_eq!(info["PRIORITY"], "6");
        assert_eq!(info["ROOMREC_ERROR"], "two\nlines");
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        let p: Vec<u8> = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .iter()
        .map(priority)
        .collect();
        assert_eq!(p, [3, 4, 6, 7, 7]);
    }

    #[test]
    fn field_names_become_journal_names() {
        assert_eq!(journal_name("recording_id"), "ROOMREC_RECORDING_ID");
        assert_eq!(journal_name("r#type.kind"), "ROOMREC_R_TYPE_KIND");
    }

    #[test]
    fn no_journal_socket_is_an_error_at_connect() {
        let dir = tempfile::tempdir().unwrap();
        assert!(JournaldLayer::connect_to(&dir.path().join("none"), "x").is_err());
    }

    #[test]
    fn an_inherited_journal_stream_that_is_not_stderr_does_not_count() {
        // No other test reads JOURNAL_STREAM.
        std::env::set_var("JOURNAL_STREAM", "0:0");
        assert!(!stderr_is_journal());
        std::env::remove_var("JOURNAL_STREAM");
        assert!(!stderr_is_journal());
    }
}
