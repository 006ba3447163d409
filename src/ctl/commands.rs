//! One function a subcommand: what to subscribe, publish and wait for, and what to print.
//!
//! Owns: topic use per the MQTT contract (`docs/api.md`), local validation of what
//! we send (with the same decoders the daemon uses, so a bad file is refused here with the
//! daemon's reason instead of being ignored on the device), and the output of each command.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::broker::Session;
use super::{
    render, seconds, Context, CtlCommand, CtlError, KeyCommand, LicenceCommand, MeetingCommand,
    WatermarkCommand,
};
use crate::auth::{add_claims, SecretKey, SIGNATURE_PROPERTY};
use crate::protocol::{Command, Licence, MeetingSnapshot, Timestamp, MAX_PAYLOAD_BYTES};

/// Retained messages for one SUBSCRIBE arrive back to back; once `status` is in, `state` (if
/// the device ever published one) follows within this.
const STATE_GRACE: Duration = Duration::from_millis(500);

pub(crate) async fn dispatch(
    ctx: &Context,
    command: CtlCommand,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    match command {
        CtlCommand::Status => status(ctx, out).await,
        CtlCommand::Watch { count, duration } => watch(ctx, count, duration, out).await,
        CtlCommand::Send {
            action,
            actor,
            id,
            fields,
        } => send(ctx, &action, &actor, id.as_deref(), &fields, out).await,
        CtlCommand::Meeting {
            action: MeetingCommand::Set { file },
        } => meeting_set(ctx, &file, out).await,
        CtlCommand::Meeting {
            action: MeetingCommand::Clear,
        } => meeting_clear(ctx, out).await,
        CtlCommand::Licence {
            action: LicenceCommand::Set { valid_until, kind },
        } => licence_set(ctx, &valid_until, &kind, out).await,
        CtlCommand::Key {
            action: KeyCommand::Gen { out: file, force },
        } => key_gen(ctx, &file, force, out),
        CtlCommand::Key {
            action: KeyCommand::Segment { out: file, force },
        } => segment_key_gen(ctx, &file, force, out),
        CtlCommand::Watermark {
            action: WatermarkCommand::Read { source },
        } => watermark_read(ctx, &source, out),
    }
}

/// How much of a recording `watermark read` decodes, and how many 15 s windows of it the
/// detector looks at (about a second of CPU each): the mark is in every excerpt, so the
/// first minutes tell, and an unmarked hour-long file is not decoded whole.
const WATERMARK_READ_SECONDS: u32 = 600;
const WATERMARK_READ_WINDOWS: usize = 12;

/// `watermark read`: the payload, or "no watermark" with exit code 5.
fn watermark_read(ctx: &Context, source: &str, out: &mut dyn Write) -> Result<(), CtlError> {
    use crate::audiomark::{read_source, scan, Reading, SYNC_THRESHOLD};
    let pcm =
        read_source(source, WATERMARK_READ_SECONDS).map_err(|e| CtlError::Usage(e.to_string()))?;
    match scan(&pcm, WATERMARK_READ_WINDOWS) {
        Reading::Mark {
            payload,
            sync_z,
            corrected,
        } => {
            // W3's payload of a device id `r-<n>` is n itself (rules::features::audio_payload).
            let recording = (payload < 1 << 47).then(|| format!("r-{payload}"));
            let text = if ctx.json {
                json!({
                    "watermark": format!("{payload:012x}"),
                    "recording_id": recording,
                    "sync_score": sync_z,
                    "bits_corrected": corrected,
                })
                .to_string()
            } else {
                let names = recording
                    .map(|r| format!(": recording {r}"))
                    .unwrap_or_default();
                format!(
                    "watermark {payload:012x}{names} (synchronisation {sync_z:.1} sd, threshold \
                     {SYNC_THRESHOLD}; {corrected} bits corrected)"
                )
            };
            writeln!(out, "{text}").map_err(CtlError::Output)
        }
        Reading::NoMark { sync_z } => {
            let text = if ctx.json {
                json!({ "watermark": null, "sync_score": sync_z }).to_string()
            } else {
                format!(
                    "no watermark (best synchronisation {sync_z:.1} sd, below the threshold \
                     {SYNC_THRESHOLD} or without a valid CRC)"
                )
            };
            writeln!(out, "{text}").map_err(CtlError::Output)?;
            Err(CtlError::NoWatermark(format!("{source}: no watermark")))
        }
    }
}

/// A segment key for `storage.segment_key_file`; never printed.
fn segment_key_gen(
    ctx: &Context,
    file: &Path,
    force: bool,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let key = crate::crypt::SegmentKey::generate().map_err(|e| CtlError::Usage(e.to_string()))?;
    let mut text = key.to_hex();
    text.push('\n');
    write_private(file, text.as_bytes(), force)?;
    if ctx.json {
        let doc = json!({"ok": true, "key_file": file.display().to_string()});
        return emit(out, &doc.to_string());
    }
    emit(
        out,
        &format!(
            "wrote a segment key to {}; install it on the device readable by roomrecd only \
             (mode 0400) and set storage.segment_key_file and storage.encrypt_segments = true",
            file.display()
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// key

fn key_gen(ctx: &Context, file: &Path, force: bool, out: &mut dyn Write) -> Result<(), CtlError> {
    let key = SecretKey::generate().map_err(|e| CtlError::Usage(e.to_string()))?;
    write_private(file, key.to_file().as_bytes(), force)?;
    let public = key.public().to_base64();
    if ctx.json {
        let doc = json!({"ok": true, "key_file": file.display().to_string(), "public_key": public});
        return emit(out, &doc.to_string());
    }
    emit(
        out,
        &format!(
            "wrote the private key to {}; keep it secret\npublic key: {public}\n\
             on the device, in [auth.admin_keys] (or [auth.meeting_keys]):\n  <name> = \"{public}\"",
            file.display()
        ),
    )
}

/// Creates `file` readable by its owner only, before any secret is written to it.
fn write_private(file: &Path, bytes: &[u8], force: bool) -> Result<(), CtlError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let fail = |e: std::io::Error| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "; use --force to replace it"
        } else {
            ""
        };
        CtlError::Usage(format!("cannot write {}: {e}{hint}", file.display()))
    };
    let mut f = options.open(file).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}

/// The MQTT 5 properties carrying the signature of `payload` on `topic`, if we sign.
fn signature_properties(ctx: &Context, topic: &str, payload: &[u8]) -> Option<PublishProperties> {
    let key = ctx.signer.as_ref()?;
    Some(PublishProperties {
        user_properties: vec![(SIGNATURE_PROPERTY.to_owned(), key.sign(topic, payload))],
        ..PublishProperties::default()
    })
}

// ---------------------------------------------------------------------------------------------
// status and watch

async fn status(ctx: &Context, out: &mut dyn Write) -> Result<(), CtlError> {
    let status_topic = ctx.topic("status");
    let state_topic = ctx.topic("state");
    let mut session = Session::connect(&ctx.connect).await?;
    session
        .subscribe(&[status_topic.clone(), state_topic.clone()])
        .await?;
    let deadline = Instant::now() + ctx.timeout;
    let mut status: Option<Value> = None;
    let mut state: Option<Value> = None;
    let mut state_deadline = deadline;
    while status.is_none() || state.is_none() {
        let until = if status.is_some() {
            state_deadline
        } else {
            deadline
        };
        let Some(msg) = session.next_message(Some(until)).await? else {
            break;
        };
        let topic = topic_of(&msg);
        if topic == status_topic {
            status = Some(payload_json(&msg.payload));
            state_deadline = deadline.min(Instant::now() + STATE_GRACE);
        } else if topic == state_topic {
            state = Some(payload_json(&msg.payload));
        }
    }
    session.close().await;
    let Some(status) = status else {
        return Err(CtlError::NoAnswer(format!(
            "no status from {} within {}: is roomrecd running and connected to this broker?",
            ctx.target,
            seconds(ctx.timeout)
        )));
    };
    if ctx.json {
        let doc = json!({"status": status, "state": state.unwrap_or(Value::Null)});
        emit(out, &doc.to_string())
    } else {
        emit(
            out,
            render::status_report(&ctx.target, &status, state.as_ref()).trim_end(),
        )
    }
}

async fn watch(
    ctx: &Context,
    count: Option<u64>,
    duration: Option<Duration>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let state_topic = ctx.topic("state");
    let events_topic = ctx.topic("events");
    let status_topic = ctx.topic("status");
    let mut session = Session::connect(&ctx.connect).await?;
    session
        .subscribe(&[
            state_topic.clone(),
            events_topic.clone(),
            status_topic.clone(),
        ])
        .await?;
    let deadline = duration.map(|d| Instant::now() + d);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut ctrl_c_broken = false;
    // Last known `online`, so a periodic status republish is not printed as a change.
    let mut online: Option<bool> = None;
    let mut printed = 0u64;
    loop {
        let msg = tokio::select! {
            r = &mut ctrl_c, if !ctrl_c_broken => match r {
                Ok(()) => break,
                // No signal handling available: keep going; --count/--for still end the run.
                Err(_) => { ctrl_c_broken = true; continue; }
            },
            m = session.next_message(deadline) => match m? {
                Some(m) => m,
                None => break,
            },
        };
        let topic = topic_of(&msg);
        let message = payload_json(&msg.payload);
        let kind = if topic == state_topic {
            "state"
        } else if topic == events_topic {
            "event"
        } else if topic == status_topic {
            let now_online = message.get("online").and_then(Value::as_bool);
            let changed = now_online.is_none() || now_online != online;
            online = now_online;
            if msg.retain || !changed {
                continue;
            }
            "status"
        } else {
            continue;
        };
        // Retained messages describe the past: `watch` shows changes (`status` shows the rest).
        if msg.retain {
            continue;
        }
        let line = if ctx.json {
            json!({"kind": kind, "topic": topic, "message": message}).to_string()
        } else {
            match kind {
                "state" => render::state_line(&message),
                "event" => render::event_line(&message),
                _ => render::status_line(&message),
            }
        };
        emit(out, &line)?;
        printed += 1;
        if count.is_some_and(|n| printed >= n) {
            break;
        }
    }
    session.close().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// send

async fn send(
    ctx: &Context,
    action: &str,
    actor: &str,
    id: Option<&str>,
    fields: &[String],
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut command = build_command(action, actor, id, fields)?;
    if ctx.signer.is_some() {
        add_claims(&mut command, Timestamp::now()).map_err(|e| CtlError::Usage(e.to_string()))?;
    }
    let id = command
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let payload = Value::Object(command).to_string().into_bytes();
    // The daemon's own decoder: a command it would refuse is refused here, before sending.
    Command::decode(&payload).map_err(|e| {
        CtlError::Usage(format!(
            "the device would refuse this command: {}",
            e.message
        ))
    })?;

    let reply_topic = ctx.topic("reply");
    let response_topic = ctx.topic(&format!("reply/ctl-{:016x}", fastrand::u64(..)));
    let correlation: Vec<u8> = std::iter::repeat_with(|| fastrand::u8(..))
        .take(16)
        .collect();
    let mut session = Session::connect(&ctx.connect).await?;
    // Both topics: a device that ignores the response topic still answers on `<p>/reply`.
    session
        .subscribe(&[response_topic.clone(), reply_topic.clone()])
        .await?;
    let cmd_topic = ctx.topic("cmd");
    let signed = signature_properties(ctx, &cmd_topic, &payload).unwrap_or_default();
    let properties = PublishProperties {
        response_topic: Some(response_topic.clone()),
        correlation_data: Some(correlation.clone().into()),
        ..signed
    };
    session
        .publish(&cmd_topic, payload, false, Some(properties))
        .await?;

    let deadline = Instant::now() + ctx.timeout;
    let reply = loop {
        let Some(msg) = session.next_message(Some(deadline)).await? else {
            session.close().await;
            return Err(CtlError::NoAnswer(format!(
                "no reply from {} within {} to command {id} ({action}): \
                 is roomrecd running and connected to this broker?",
                ctx.target,
                seconds(ctx.timeout)
            )));
        };
        let topic = topic_of(&msg);
        if topic != response_topic && topic != reply_topic {
            continue;
        }
        let doc = payload_json(&msg.payload);
        let same_correlation = msg
            .properties
            .as_ref()
            .and_then(|p| p.correlation_data.as_deref())
            == Some(&correlation[..]);
        let same_id = doc.get("id").and_then(Value::as_str) == Some(id.as_str());
        if (topic == response_topic && same_correlation) || same_id {
            break doc;
        }
    };
    session.close().await;
    print_reply(ctx, action, &id, &reply, out)
}

/// The command object: `id`, `actor`, `action`, then the FIELD=VALUE pairs.
fn build_command(
    action: &str,
    actor: &str,
    id: Option<&str>,
    fields: &[String],
) -> Result<Map<String, Value>, CtlError> {
    let mut obj = Map::new();
    let id = match id {
        Some(id) => id.to_owned(),
        None => format!("ctl-{:012x}", fastrand::u64(..) >> 16),
    };
    obj.insert("id".into(), Value::String(id));
    obj.insert("actor".into(), Value::String(actor.to_owned()));
    obj.insert("action".into(), Value::String(action.to_owned()));
    for field in fields {
        let (name, raw) = field.split_once('=').ok_or_else(|| {
            CtlError::Usage(format!(
                "{field:?} is not FIELD=VALUE (for example kind=cloud)"
            ))
        })?;
        match name {
            "" => return Err(CtlError::Usage(format!("{field:?} has no field name"))),
            "id" | "actor" | "action" => {
                return Err(CtlError::Usage(format!(
                    "set '{name}' with {}, not as a field",
                    match name {
                        "id" => "--id",
                        "actor" => "--as",
                        _ => "the ACTION argument",
                    }
                )))
            }
            _ => {}
        }
        // JSON when it parses (true, 3, null, "quoted"), otherwise the text itself.
        let value = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| raw.into());
        if obj.insert(name.to_owned(), value).is_some() {
            return Err(CtlError::Usage(format!("field '{name}' is given twice")));
        }
    }
    Ok(obj)
}

fn print_reply(
    ctx: &Context,
    action: &str,
    id: &str,
    reply: &Value,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    if ctx.json {
        emit(out, &reply.to_string())?;
    }
    match reply.get("ok").and_then(Value::as_bool) {
        Some(true) => {
            if !ctx.json {
                let mut text = format!("ok: {action} ({id})\n");
                if let Some(list) = reply.get("recordings") {
                    text.push_str(&render::recordings_table(list));
                } else if let Some(state) = reply.get("state") {
                    text.push_str(&render::state_report(state));
                }
                emit(out, text.trim_end())?;
            }
            Ok(())
        }
        Some(false) => {
            let error = reply.get("error");
            let text = |k: &str| {
                error
                    .and_then(|e| e.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let mut message = text("message").unwrap_or_else(|| "(no message)".into());
            if let Some(reason) = text("reason") {
                message.push_str(&format!(" (reason: {reason})"));
            }
            Err(CtlError::Device {
                code: text("code").unwrap_or_else(|| "unknown".into()),
                message,
            })
        }
        None => Err(CtlError::Device {
            code: "malformed_reply".into(),
            message: format!("the device's reply has no 'ok' field: {reply}"),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// meeting and licence

async fn meeting_set(ctx: &Context, file: &Path, out: &mut dyn Write) -> Result<(), CtlError> {
    let payload = read_input(file)?;
    let name = file.display();
    if payload.is_empty() {
        return Err(CtlError::Usage(format!(
            "{name} is empty; use `roomrecctl meeting clear` to end the meeting"
        )));
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(CtlError::Usage(format!(
            "{name} is {} bytes; the device reads at most {MAX_PAYLOAD_BYTES}",
            payload.len()
        )));
    }
    let snapshot = MeetingSnapshot::decode(&payload).map_err(|reason| {
        CtlError::Usage(format!("{name} is not a valid meeting snapshot: {reason}"))
    })?;
    let topic = ctx.topic("meeting");
    let properties = signature_properties(ctx, &topic, &payload);
    publish_retained(ctx, &topic, payload, properties).await?;
    let version = snapshot.version;
    let meeting_id = snapshot.meeting.as_ref().map(|m| m.meeting_id.to_string());
    if ctx.json {
        let doc = json!({"ok": true, "topic": topic, "retained": true,
                         "version": version, "meeting_id": meeting_id});
        return emit(out, &doc.to_string());
    }
    let what = match (&snapshot.meeting, version) {
        (Some(m), Some(v)) => {
            let state = if m.state == crate::protocol::MeetingState::Active {
                "active"
            } else {
                "ended"
            };
            format!(
                "meeting {} (version {v}, {state}, host {})",
                m.meeting_id, m.host
            )
        }
        (None, Some(v)) => format!("\"no meeting\" (version {v})"),
        (_, None) => "meeting".to_owned(),
    };
    emit(
        out,
        &format!(
            "published {what} retained on {topic}\n\
             (the device ignores it if it already applied this version or a later one)"
        ),
    )
}

async fn meeting_clear(ctx: &Context, out: &mut dyn Write) -> Result<(), CtlError> {
    let topic = ctx.topic("meeting");
    if ctx.signer.is_some() {
        return Err(CtlError::Usage(
            "an empty snapshot cannot be signed (it has no version); publish a signed \
             {\"version\": N, \"meeting_id\": null} with `meeting set` instead"
                .into(),
        ));
    }
    // An empty retained message deletes the retained snapshot and means "no meeting".
    publish_retained(ctx, &topic, Vec::new(), None).await?;
    if ctx.json {
        return emit(
            out,
            &json!({"ok": true, "topic": topic, "retained": true, "cleared": true}).to_string(),
        );
    }
    emit(out, &format!("cleared the retained meeting on {topic}"))
}

async fn licence_set(
    ctx: &Context,
    valid_until: &str,
    kind: &str,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let until = Timestamp::parse(valid_until)
        .map_err(|e| CtlError::Usage(format!("--valid-until: {e}")))?;
    if kind.is_empty() {
        return Err(CtlError::Usage("--kind must not be empty".into()));
    }
    let payload = json!({"kind": kind, "valid_until": until.to_rfc3339()})
        .to_string()
        .into_bytes();
    // The daemon's decoder, so what we publish is what it will read.
    Licence::decode(&payload).map_err(CtlError::Usage)?;
    let topic = ctx.topic("licence");
    publish_retained(ctx, &topic, payload, None).await?;
    if ctx.json {
        let doc = json!({"ok": true, "topic": topic, "retained": true,
                         "kind": kind, "valid_until": until.to_rfc3339()});
        return emit(out, &doc.to_string());
    }
    let note = if kind == "rooms" {
        ""
    } else {
        "\n(only kind \"rooms\" enables recording on the device)"
    };
    emit(
        out,
        &format!(
            "published licence {kind} valid until {} retained on {topic}{note}",
            until.to_rfc3339()
        ),
    )
}

async fn publish_retained(
    ctx: &Context,
    topic: &str,
    payload: Vec<u8>,
    properties: Option<PublishProperties>,
) -> Result<(), CtlError> {
    let mut session = Session::connect(&ctx.connect).await?;
    let result = session.publish(topic, payload, true, properties).await;
    session.close().await;
    result
}

// ---------------------------------------------------------------------------------------------
// helpers

fn read_input(path: &Path) -> Result<Vec<u8>, CtlError> {
    let fail = |e: std::io::Error| CtlError::Usage(format!("cannot read {}: {e}", path.display()));
    if path == Path::new("-") {
        let mut buf = Vec::new();
        // One byte over the limit is enough to know it is too big.
        std::io::stdin()
            .take(MAX_PAYLOAD_BYTES as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(fail)?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(fail)
    }
}

fn topic_of(msg: &Publish) -> String {
    String::from_utf8_lossy(&msg.topic).into_owned()
}

/// JSON when it parses; an empty payload is `null` (a cleared retained message); anything else
/// is shown as text rather than dropped.
fn payload_json(payload: &[u8]) -> Value {
    if payload.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}

/// One line (or block) of output, flushed at once so `watch` is live through a pipe.
fn emit(out: &mut dyn Write, text: &str) -> Result<(), CtlError> {
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(CtlError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_are_json_when_they_parse() {
        let c = build_command(
            "share",
            "u-1",
            Some("c-1"),
            &fields(&["recording_id=r-9", "shared=true", "n=3", "s=\"123\"", "e="]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(c),
            json!({"id": "c-1", "actor": "u-1", "action": "share", "recording_id": "r-9",
                   "shared": true, "n": 3, "s": "123", "e": ""})
        );
        let c = build_command("status", "u-1", None, &[]).unwrap();
        let id = c["id"].as_str().unwrap();
        assert!(id.starts_with("ctl-") && id.len() == 16, "{id}");
    }

    #[test]
    fn bad_fields_are_usage_errors() {
        for (f, needle) in [
            ("kind", "FIELD=VALUE"),
            ("=x", "no field name"),
            ("id=c-2", "--id"),
            ("actor=u", "--as"),
        ] {
            let e = build_command("start", "u-1", None, &fields(&[f])).unwrap_err();
            assert!(e.to_string().contains(needle), "{f}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
        let e = build_command("start", "u", None, &fields(&["a=1", "a=2"])).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[test]
    fn payloads() {
        assert_eq!(payload_json(b""), Value::Null);
        assert_eq!(payload_json(b"{\"a\":1}"), json!({"a": 1}));
        assert_eq!(payload_json(b"hi"), json!("hi"));
    }
}
