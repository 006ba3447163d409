//! Readable text for what the device publishes: status, state, events, replies.
//!
//! Owns: wording and layout for people. Must not do I/O. Every function takes already-decoded
//! JSON and degrades to the raw JSON when a document does not match the contract types, so a
//! newer daemon never makes the admin tool useless.

use std::fmt::Write as _;

use serde_json::Value;

use crate::protocol::{
    CloudDoc, DeviceHealth, LocalPolicy, RecordingInfo, StateDoc, StatusDoc, View,
};

/// The `status` subcommand's report: device health, then the recording state.
pub fn status_report(target: &str, status: &Value, state: Option<&Value>) -> String {
    let mut s = String::new();
    match serde_json::from_value::<StatusDoc>(status.clone()) {
        Ok(st) => {
            let online = if st.online { "online" } else { "offline" };
            let _ = writeln!(
                s,
                "{target}: {online} (roomrecd {}, up {})",
                st.version,
                duration_s(st.uptime_s)
            );
            let _ = writeln!(s, "  camera      {}", health(st.camera));
            let _ = writeln!(s, "  microphone  {}", health(st.microphone));
            let _ = writeln!(
                s,
                "  storage     {} free, {} used",
                bytes(st.storage.free_bytes),
                bytes(st.storage.used_bytes)
            );
            let _ = writeln!(
                s,
                "  uploads     {} pending ({}), last error: {}",
                st.uploads.pending,
                bytes(st.uploads.pending_bytes),
                st.uploads.last_error.as_deref().unwrap_or("none")
            );
        }
        // The last will is only `{"online": false}`: the daemon's connection dropped.
        Err(_) if status.get("online") == Some(&Value::Bool(false)) => {
            let _ = writeln!(
                s,
                "{target}: offline (its last will is the latest status: roomrecd is not connected)"
            );
        }
        Err(_) => {
            let _ = writeln!(s, "{target}: status {status}");
        }
    }
    match state {
        None => s.push_str("no recording state retained yet\n"),
        Some(v) => s.push_str(&state_report(v)),
    }
    s
}

/// The recording state, one aspect a line.
pub fn state_report(state: &Value) -> String {
    let st = match serde_json::from_value::<StateDoc>(state.clone()) {
        Ok(st) => st,
        Err(_) => return format!("state {state}\n"),
    };
    let mut s = String::new();
    match (&st.meeting_id, st.meeting_version) {
        (Some(m), Some(v)) => {
            let _ = writeln!(s, "meeting {m} (version {v})");
        }
        (Some(m), None) => {
            let _ = writeln!(s, "meeting {m}");
        }
        (None, _) => s.push_str("no meeting\n"),
    }
    let _ = writeln!(s, "  cloud       {}", cloud(&st.cloud));
    if st.local.is_empty() {
        s.push_str("  local       none\n");
    }
    for (i, l) in st.local.iter().enumerate() {
        let label = if i == 0 { "local" } else { "" };
        let _ = writeln!(
            s,
            "  {label:<11} {} by {}, {}, {}",
            l.recording_id,
            l.owner,
            l.state.as_str(),
            duration_ms(l.recorded_ms)
        );
    }
    let _ = writeln!(
        s,
        "  policy      {}{}",
        policy(st.local_policy),
        if st.local_allowed.is_empty() {
            String::new()
        } else {
            format!("; allowed: {}", join(&st.local_allowed))
        }
    );
    if !st.pending_cloud_requests.is_empty() {
        let _ = writeln!(
            s,
            "  requests    cloud recording asked by {}",
            join(&st.pending_cloud_requests)
        );
    }
    let _ = writeln!(s, "  muted       {}", if st.muted { "yes" } else { "no" });
    if !st.views.is_empty() {
        let views: Vec<String> = st
            .views
            .iter()
            .map(|(who, v)| format!("{who} {}", view(*v)))
            .collect();
        let _ = writeln!(s, "  views       {}", views.join(", "));
    }
    s
}

/// One line for `watch`: a state change.
pub fn state_line(state: &Value) -> String {
    if state.is_null() {
        return "state cleared".into();
    }
    let st = match serde_json::from_value::<StateDoc>(state.clone()) {
        Ok(st) => st,
        Err(_) => return format!("state {state}"),
    };
    let meeting = match (&st.meeting_id, st.meeting_version) {
        (Some(m), Some(v)) => format!("meeting {m} v{v}"),
        (Some(m), None) => format!("meeting {m}"),
        (None, _) => "no meeting".into(),
    };
    let local = if st.local.is_empty() {
        "none".to_owned()
    } else {
        st.local
            .iter()
            .map(|l| format!("{} {} {}", l.recording_id, l.owner, l.state.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "state {meeting} | cloud {} | local {local} | muted {}",
        cloud(&st.cloud),
        if st.muted { "yes" } else { "no" }
    )
}

/// One line for `watch`: an event, with its fields in a stable order.
pub fn event_line(event: &Value) -> String {
    let Some(obj) = event.as_object() else {
        return format!("event {event}");
    };
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("unknown");
    let mut s = String::from("event ");
    if let Some(at) = obj.get("at").and_then(Value::as_str) {
        let _ = write!(s, "{at} ");
    }
    s.push_str(kind);
    for (k, v) in obj {
        if matches!(k.as_str(), "type" | "at" | "to") {
            continue;
        }
        let _ = write!(s, " {k}={}", scalar(v));
    }
    if let Some(Value::Array(to)) = obj.get("to") {
        let to: Vec<String> = to.iter().map(scalar).collect();
        let _ = write!(s, " to={}", to.join(","));
    }
    s
}

/// One line for `watch`: the device came online or went offline.
pub fn status_line(status: &Value) -> String {
    match status.get("online").and_then(Value::as_bool) {
        Some(true) => {
            let version = status.get("version").and_then(Value::as_str).unwrap_or("?");
            format!("status device online (roomrecd {version})")
        }
        Some(false) => "status device offline".into(),
        None => format!("status {status}"),
    }
}

/// `list_recordings`' answer as a table.
pub fn recordings_table(list: &Value) -> String {
    let recs = match serde_json::from_value::<Vec<RecordingInfo>>(list.clone()) {
        Ok(r) => r,
        Err(_) => return format!("recordings {list}\n"),
    };
    if recs.is_empty() {
        return "no recordings\n".into();
    }
    let mut s = String::new();
    for r in recs {
        let _ = writeln!(
            s,
            "{:<20} {:<5} {:<14} meeting {} owner {} {} {}{}",
            r.recording_id.as_str(),
            r.kind.as_str(),
            r.state.as_str(),
            r.meeting_id,
            r.owner,
            duration_ms(r.recorded_ms),
            bytes(r.bytes),
            if r.shared { " shared" } else { "" }
        );
    }
    s
}

fn cloud(c: &CloudDoc) -> String {
    let state = match serde_json::to_value(c.state) {
        Ok(Value::String(s)) => s,
        _ => "?".into(),
    };
    let mut s = state;
    if let Some(by) = &c.started_by {
        let _ = write!(s, ", started by {by}");
    }
    if let Some(owner) = &c.owner {
        let _ = write!(s, ", owner {owner}");
    }
    if c.recorded_ms > 0 || c.bytes > 0 {
        let _ = write!(s, ", {}, {}", duration_ms(c.recorded_ms), bytes(c.bytes));
    }
    if let Some(left) = c.remaining_s {
        let _ = write!(s, ", {} left", duration_s(left));
    }
    s
}

fn health(h: DeviceHealth) -> &'static str {
    match h {
        DeviceHealth::Ok => "ok",
        DeviceHealth::Missing => "missing",
        DeviceHealth::Error => "error",
    }
}

fn policy(p: LocalPolicy) -> &'static str {
    match p {
        LocalPolicy::HostOnly => "host_only",
        LocalPolicy::All => "all",
        LocalPolicy::Selected => "selected",
    }
}

fn view(v: View) -> &'static str {
    match v {
        View::Cloud => "cloud",
        View::Local => "local",
        View::None => "none",
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Strings without quotes; everything else as compact JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `61000` → `1m 01s`; hours shown as `2h 05m`.
pub fn duration_ms(ms: u64) -> String {
    duration_s(ms / 1000)
}

pub fn duration_s(s: u64) -> String {
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// Binary units, one decimal: `5242880` → `5.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> Value {
        json!({
            "meeting_id": "m-42", "meeting_version": 7,
            "cloud": {"state": "recording", "started_by": "u-2", "owner": "u-1",
                      "recorded_ms": 61000, "bytes": 5242880, "remaining_s": 7200},
            "local": [{"recording_id": "r-9", "owner": "u-3", "state": "paused", "recorded_ms": 12000}],
            "local_policy": "selected", "local_allowed": ["u-3"],
            "pending_cloud_requests": ["u-4"], "muted": false,
            "views": {"u-1": "cloud", "u-3": "local"}
        })
    }

    #[test]
    fn units() {
        assert_eq!(duration_ms(61_000), "1m 01s");
        assert_eq!(duration_s(7200), "2h 00m");
        assert_eq!(duration_s(5), "5s");
        assert_eq!(bytes(5_242_880), "5.0 MiB");
        assert_eq!(bytes(12), "12 B");
    }

    #[test]
    fn state_is_readable() {
        let r = state_report(&state());
        assert!(r.contains("meeting m-42 (version 7)"), "{r}");
        assert!(
            r.contains(
                "cloud       recording, started by u-2, owner u-1, 1m 01s, 5.0 MiB, 2h 00m left"
            ),
            "{r}"
        );
        assert!(r.contains("r-9 by u-3, paused, 12s"), "{r}");
        assert!(r.contains("selected; allowed: u-3"), "{r}");
        assert!(r.contains("views       u-1 cloud, u-3 local"), "{r}");
        let line = state_line(&state());
        assert!(
            line.starts_with("state meeting m-42 v7 | cloud recording"),
            "{line}"
        );
    }

    #[test]
    fn unknown_shapes_fall_back_to_json() {
        assert_eq!(state_report(&json!({"x": 1})), "state {\"x\":1}\n");
        let e = event_line(
            &json!({"type": "recording_started", "at": "2027-01-01T00:00:00Z",
            "to": ["u-1", "u-2"], "recording_id": "r-9", "new_field": 3}),
        );
        assert!(
            e.starts_with("event 2027-01-01T00:00:00Z recording_started "),
            "{e}"
        );
        assert!(
            e.contains(" recording_id=r-9") && e.contains(" new_field=3"),
            "{e}"
        );
        assert!(e.ends_with(" to=u-1,u-2"), "{e}");
        let off = status_report("device d", &json!({"online": false}), None);
        assert!(off.starts_with("device d: offline"), "{off}");
    }
}
