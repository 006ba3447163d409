//! Security of the running daemon against a real mosquitto: signed admin commands (and
//! snapshots), hostile ids, and paths that stay under the storage root.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use common::device::{
    admin_key, config_without_auth, ctl, meeting, sign_command, Client, Device, PREFIX,
};
use common::Broker;
use proptest::prelude::*;
use roomrec::auth::{SecretKey, SIGNATURE_PROPERTY};
use roomrec::protocol::{Id, RecordingInfo, RecordingKind, RecordingState, Timestamp, MAX_ID_LEN};
use serde_json::{json, Value};

fn list(id: &str, actor: &str) -> Value {
    json!({"id": id, "actor": actor, "action": "list_recordings"})
}

/// Publishes `payload` on cmd with the given user properties and waits for the reply to `id`.
async fn send_raw(
    c: &mut Client,
    id: &str,
    payload: Vec<u8>,
    props: Vec<(String, String)>,
) -> Value {
    c.publish_props("cmd", payload, false, props).await;
    c.wait_reply(&json!(id)).await
}

/// Waits until the device has subscribed: its status is published after its subscriptions.
async fn online(c: &mut Client) {
    c.wait("device online", |m| {
        m.topic.ends_with("/status") && m.json["online"] == true
    })
    .await;
}

fn assert_forbidden(reply: &Value, reason: &str) {
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    assert_eq!(reply["error"]["reason"], reason, "{reply}");
    assert!(
        !reply["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{reply}"
    );
}

/// A command signed with `key`, with `signed_at` set to `at` instead of now.
fn signed_at(key: &SecretKey, command: Value, at: Timestamp) -> (Vec<u8>, Vec<(String, String)>) {
    let mut command = command;
    command["signed_at"] = json!(at.to_rfc3339());
    command["nonce"] = json!(format!("n{:020}", fastrand::u64(..)));
    let payload = command.to_string().into_bytes();
    let sig = key.sign(&format!("{PREFIX}/cmd"), &payload);
    (payload, vec![(SIGNATURE_PROPERTY.to_owned(), sig)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_must_be_signed_fresh_and_new() {
    let broker = Broker::start();
    let mut device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    online(&mut c).await;
    let key = admin_key();

    // Signed by the configured key: accepted.
    let (ok_payload, ok_sig) = sign_command(&key, list("s-ok", "admin:ops"));
    let r = send_raw(&mut c, "s-ok", ok_payload.clone(), ok_sig.clone()).await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["recordings"].is_array(), "{r}");

    // Unsigned: refused, and the refusal does not take the id (it is not logged as handled).
    let r = send_raw(
        &mut c,
        "s-1",
        list("s-1", "admin:ops").to_string().into_bytes(),
        vec![],
    )
    .await;
    assert_forbidden(&r, "unsigned");
    let r = c.cmd(list("s-1", "admin:ops")).await;
    assert_eq!(
        r["ok"], true,
        "a refused unsigned command must not fix the id's answer: {r}"
    );

    // A signature over other bytes (the payload was changed after signing).
    let (payload, sig) = sign_command(&key, list("s-2", "admin:ops"));
    let mut tampered: Value = serde_json::from_slice(&payload).unwrap();
    tampered["state"] = json!("ready");
    let r = send_raw(&mut c, "s-2", tampered.to_string().into_bytes(), sig).await;
    assert_forbidden(&r, "bad_signature");

    // Not base64 at all.
    let (payload, _) = sign_command(&key, list("s-3", "admin:ops"));
    let r = send_raw(
        &mut c,
        "s-3",
        payload,
        vec![(SIGNATURE_PROPERTY.into(), "!!".into())],
    )
    .await;
    assert_forbidden(&r, "malformed_signature");

    // Signed by a key the device does not have for this admin.
    let stranger = SecretKey::generate().unwrap();
    let (payload, sig) = sign_command(&stranger, list("s-4", "admin:ops"));
    let r = send_raw(&mut c, "s-4", payload, sig).await;
    assert_forbidden(&r, "bad_signature");

    // An admin name without a key.
    let (payload, sig) = sign_command(&key, list("s-5", "admin:eve"));
    let r = send_raw(&mut c, "s-5", payload, sig).await;
    assert_forbidden(&r, "unknown_key");

    // Outside the window, in the past and in the future (default window 300 s).
    let hour = 3_600_000;
    let (payload, sig) = signed_at(
        &key,
        list("s-6", "admin:ops"),
        Timestamp(Timestamp::now().0 - hour),
    );
    let r = send_raw(&mut c, "s-6", payload, sig).await;
    assert_forbidden(&r, "expired");
    let (payload, sig) = signed_at(
        &key,
        list("s-7", "admin:ops"),
        Timestamp(Timestamp::now().0 + hour),
    );
    let r = send_raw(&mut c, "s-7", payload, sig).await;
    assert_forbidden(&r, "expired");

    // Replayed: the exact accepted message again.
    let r = send_raw(&mut c, "s-ok", ok_payload.clone(), ok_sig.clone()).await;
    assert_forbidden(&r, "replayed");

    // A retry signed afresh (new nonce, same id) gets the first answer, per the id contract.
    let r = c.cmd(list("s-ok", "admin:ops")).await;
    assert_eq!(r["ok"], true, "{r}");

    // The nonce memory survives a restart: the same bytes are still a replay (without it the
    // command would pass the signature check and be answered from the command log).
    assert_eq!(device.stop(), Some(0));
    c.restart(&mut device).await;
    let r = send_raw(&mut c, "s-ok", ok_payload, ok_sig).await;
    assert_forbidden(&r, "replayed");

    // Participants' commands are not signed and still work.
    let r = c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    assert_eq!(r["ok"], true, "{r}");
    let log = device.log();
    assert!(log.contains("refused an admin command"), "{log}");
    let seed = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    assert!(!log.contains(seed), "the log must never hold a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_keys_admin_commands_are_refused() {
    let broker = Broker::start();
    let port = broker.port;
    let _device = Device::start_custom(|dir| config_without_auth(port, dir, ""));
    let mut c = Client::connect(&broker).await;
    online(&mut c).await;
    let r = c.cmd(list("n-1", "admin:ops")).await;
    assert_forbidden(&r, "no_admin_keys");
    let r = c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    assert_eq!(r["ok"], true, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_snapshots_when_required() {
    let broker = Broker::start();
    let service = SecretKey::generate().unwrap();
    let extra = format!(
        "[auth]\nrequire_signed_meeting = true\n[auth.meeting_keys]\nsvc = \"{}\"\n",
        service.public()
    );
    let port = broker.port;
    let device = Device::start_custom(|dir| config_without_auth(port, dir, &extra));
    let mut c = Client::connect(&broker).await;
    c.wait("device online", |m| {
        m.topic.ends_with("/status") && m.json["online"] == true
    })
    .await;
    let topic = format!("{PREFIX}/meeting");

    // Unsigned, and signed by a stranger: ignored.
    let mut forged = meeting(1);
    forged["meeting_id"] = json!("m-forged");
    c.publish("meeting", forged.to_string(), false).await;
    let payload = forged.to_string().into_bytes();
    let sig = SecretKey::generate().unwrap().sign(&topic, &payload);
    c.publish_props(
        "meeting",
        payload,
        false,
        vec![(SIGNATURE_PROPERTY.into(), sig)],
    )
    .await;
    // Empty: refused when signatures are required, even signed.
    let sig = service.sign(&topic, b"");
    c.publish_props(
        "meeting",
        Vec::new(),
        false,
        vec![(SIGNATURE_PROPERTY.into(), sig)],
    )
    .await;

    // Signed by the meeting service: applied. Messages are handled in order, so once its
    // state is out, the ones before were handled too.
    let payload = meeting(2).to_string().into_bytes();
    let sig = service.sign(&topic, &payload);
    c.publish_props(
        "meeting",
        payload,
        true,
        vec![(SIGNATURE_PROPERTY.into(), sig)],
    )
    .await;
    c.wait_state("signed meeting applied", |s| s["meeting_id"] == "m-1")
        .await;
    assert!(
        !c.seen
            .iter()
            .any(|m| m.topic.ends_with("/state") && m.json["meeting_id"] == "m-forged"),
        "a forged snapshot was applied"
    );
    let log = device.log();
    assert!(log.matches("require_signed_meeting").count() >= 3, "{log}");
}

// ---------------------------------------------------------------------------------------------
// roomrecctl end to end

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roomrecctl_signs_admin_commands() {
    let broker = Broker::start();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("ci.key");
    let key_arg = key_file.to_str().unwrap();
    let out = ctl(&broker, &["--json", "key", "gen", "--out", key_arg]);
    assert!(out.status.success(), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("key gen --json");
    let public = doc["public_key"].as_str().expect("public key").to_owned();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by others: {mode:o}"
        );
    }
    // An existing key is never overwritten by accident.
    let again = ctl(&broker, &["key", "gen", "--out", key_arg]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");

    let port = broker.port;
    let extra = format!("[auth.admin_keys]\nci = \"{public}\"\n");
    let _device = Device::start_custom(|dir| config_without_auth(port, dir, &extra));
    let mut c = Client::connect(&broker).await;
    c.wait("device online", |m| {
        m.topic.ends_with("/status") && m.json["online"] == true
    })
    .await;

    let signed = ctl(
        &broker,
        &[
            "--json",
            "--key-file",
            key_arg,
            "send",
            "list_recordings",
            "--as",
            "admin:ci",
        ],
    );
    assert!(signed.status.success(), "{signed:?}");
    let reply: Value = serde_json::from_slice(&signed.stdout).expect("json reply");
    assert_eq!(reply["ok"], true, "{reply}");

    let unsigned = ctl(
        &broker,
        &["--json", "send", "list_recordings", "--as", "admin:ci"],
    );
    assert_eq!(unsigned.status.code(), Some(1), "{unsigned:?}");
    let text = String::from_utf8_lossy(&unsigned.stdout);
    assert!(
        text.contains("forbidden") && text.contains("unsigned"),
        "{text}"
    );

    let other = keys.path().join("other.key");
    let out = ctl(&broker, &["key", "gen", "--out", other.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let wrong = ctl(
        &broker,
        &[
            "--key-file",
            other.to_str().unwrap(),
            "send",
            "list_recordings",
            "--as",
            "admin:ci",
        ],
    );
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
}

// ---------------------------------------------------------------------------------------------
// Hostile ids

/// Every path under `root`, relative, except those under `skip` (relative to `root`).
fn walk(root: &Path, skip: &[&str]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            out.insert(rel);
        }
    }
    out
}

fn hostile_ids(tag: &str) -> Vec<String> {
    vec![
        "../escape".into(),
        "../../../../../../tmp/roomrec-hostile".into(),
        format!("/tmp/roomrec-hostile-{tag}"),
        "a/b".into(),
        "a\\b".into(),
        "x\0y".into(),
        "x".repeat(MAX_ID_LEN + 1),
        "y".repeat(10_000),
        "\u{ff0e}\u{ff0e}\u{ff0f}etc".into(), // fullwidth "../"
        "\u{2025}".into(),                    // two-dot leader, looks like ".."
        "r\u{0435}c".into(),                  // Cyrillic e
        "%2e%2e%2fetc".into(),
        "..".into(),
        ".".into(),
        "".into(),
        " ".into(),
        "a\nb".into(),
        "\u{202e}exe.txt".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ids_are_refused_and_nothing_escapes_storage() {
    let broker = Broker::start();
    let mut device = Device::start(&broker, "");
    let mut c = Client::connect(&broker).await;
    c.meeting(meeting(1)).await;
    c.wait_state("meeting applied", |s| s["meeting_id"] == "m-1")
        .await;
    // The daemon's folder: config, log, storage. Outside storage only the log may change.
    let root = device.dir.path().to_path_buf();
    let before = walk(&root, &["storage", "roomrecd.log"]);
    let parent = root.parent().unwrap().to_path_buf();
    let tag = format!("{}", std::process::id());

    let mut n = 0;
    for hostile in hostile_ids(&tag) {
        // Each field an id goes into; commands answered on a response topic with correlation
        // data, since a hostile `id` cannot be echoed back.
        let cases: Vec<(&str, Value)> = vec![
            (
                "id",
                json!({"id": hostile, "actor": "u-1", "action": "status"}),
            ),
            (
                "actor",
                json!({"id": "h", "actor": hostile, "action": "status"}),
            ),
            (
                "actor",
                json!({"id": "h", "actor": format!("admin:{hostile}"), "action": "list_recordings"}),
            ),
            (
                "recording_id",
                json!({"id": "h", "actor": "u-1", "action": "finalize", "recording_id": hostile}),
            ),
            (
                "recording_id",
                json!({"id": "h", "actor": "u-1", "action": "delete", "recording_id": hostile}),
            ),
            (
                "recording_id",
                json!({"id": "h", "actor": "u-1", "action": "share", "recording_id": hostile, "shared": true}),
            ),
            (
                "recording_id",
                json!({"id": "h", "actor": "u-1", "action": "stop_conversion", "recording_id": hostile}),
            ),
            (
                "requester",
                json!({"id": "h", "actor": "u-1", "action": "approve_cloud", "requester": hostile}),
            ),
            (
                "participant",
                json!({"id": "h", "actor": "u-1", "action": "allow_local", "participant": hostile}),
            ),
        ];
        for (field, mut command) in cases {
            n += 1;
            if command["id"] == "h" {
                command["id"] = json!(format!("h-{n}"));
            }
            let corr = format!("corr-{n}").into_bytes();
            let response = format!("{PREFIX}/reply/test-{n}");
            c.request(command.clone(), &response, &corr).await;
            let reply = c
                .wait(&format!("reply to hostile {field}"), |m| {
                    m.topic == response && m.correlation.as_deref() == Some(&corr[..])
                })
                .await
                .json;
            assert_eq!(reply["ok"], false, "{field} = {hostile:?}: {reply}");
            assert_eq!(
                reply["error"]["code"], "bad_request",
                "{field} = {hostile:?}: {reply}"
            );
            let message = reply["error"]["message"].as_str().unwrap_or("");
            assert!(
                message.contains(&format!("'{field}'")),
                "{field} = {hostile:?}: the message must name the field: {message}"
            );
        }
        // Snapshots: no reply; refused with the field named in the log, never applied.
        for field in ["meeting_id", "host", "creator"] {
            let mut snap = meeting(100 + n);
            n += 1;
            snap[field] = json!(hostile);
            c.meeting(snap).await;
        }
        let mut snap = meeting(100 + n);
        n += 1;
        snap["participants"] = json!(["u-1", hostile]);
        c.meeting(snap).await;
    }
    // A valid snapshot after them all: once it is applied, every hostile one was handled.
    c.meeting(meeting(10_000)).await;
    c.wait_state("last valid snapshot", |s| s["meeting_version"] == 10_000)
        .await;
    assert!(device.is_running(), "the daemon must survive hostile ids");
    let r = c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    assert_eq!(r["ok"], true, "{r}");
    for m in &c.seen {
        if m.topic.ends_with("/state") {
            assert!(
                m.json["meeting_version"]
                    .as_u64()
                    .is_none_or(|v| v <= 1 || v == 10_000),
                "a hostile snapshot was applied: {}",
                m.json
            );
        }
    }
    let log = device.log();
    for field in ["'meeting_id'", "'host'", "'creator'", "'participants'"] {
        assert!(log.contains(field), "no refusal naming {field} in the log");
    }

    // Nothing new outside storage, nothing at the absolute or parent targets.
    assert_eq!(walk(&root, &["storage", "roomrecd.log"]), before);
    assert!(!Path::new(&format!("/tmp/roomrec-hostile-{tag}")).exists());
    assert!(!Path::new("/tmp/roomrec-hostile").exists());
    assert!(!parent.join("escape").exists());
    // Inside storage: only the daemon's own layout (catalog files and its folders).
    for rel in walk(&device.storage(), &[]) {
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        assert!(
            first.starts_with("catalog") || ["segments", "local"].contains(&first.as_str()),
            "unexpected entry in storage: {}",
            rel.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Derived paths stay under their root for any valid id

fn id_strategy() -> impl Strategy<Value = Id> {
    // Mostly ordinary ids, plus dot-only and slash-bearing candidates: whatever `Id::parse`
    // lets through from these must still be safe (".." and "a/b" must never pass).
    prop_oneof!["[A-Za-z0-9._:@+-]{1,128}", "[.]{1,4}", "[./a]{1,4}",]
        .prop_filter_map("valid id", |s| Id::parse(&s).ok())
}

/// `rel` joined to a root stays under it: only normal components, no root, no `..`.
fn stays_under(rel: &Path) -> bool {
    !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)))
}

proptest! {
    #[test]
    fn derived_paths_and_keys_stay_under_their_root(
        meeting_id in id_strategy(),
        owner in id_strategy(),
        recording_id in id_strategy(),
        seq in any::<u64>(),
        prefix in prop::sample::select(vec!["", "recordings/", "a/b/"]),
    ) {
        let info = RecordingInfo {
            recording_id: recording_id.clone(),
            meeting_id: meeting_id.clone(),
            kind: RecordingKind::Local,
            owner: owner.clone(),
            started_by: owner.clone(),
            host: owner.clone(),
            state: RecordingState::Ready,
            created_at: Timestamp(1_800_000_000_000),
            recorded_ms: 0,
            bytes: 0,
            shared: false,
            location: None,
            transcription: false,
        };
        // The local MP4: one plain file name in save_dir.
        let name = roomrec::daemon::mp4_name(&info);
        prop_assert!(stays_under(Path::new(&name)), "{}", name);
        prop_assert_eq!(Path::new(&name).components().count(), 1);
        prop_assert!(!name.starts_with('.'));

        // Object keys: segments, playlist and manifest under the recording's folder.
        use roomrec::upload::manifest::{recording_dir, segment_name, MANIFEST_NAME, PLAYLIST_NAME};
        let dir = recording_dir(prefix, &owner, &meeting_id, &recording_id);
        for key in [
            format!("{dir}{}", segment_name(seq, "segments/00000001.ts")),
            format!("{dir}{PLAYLIST_NAME}"),
            format!("{dir}{MANIFEST_NAME}"),
        ] {
            prop_assert!(key.starts_with(prefix));
            let parts: Vec<&str> = key.split('/').collect();
            prop_assert_eq!(parts.len(), prefix.matches('/').count() + 4, "{}", key);
            prop_assert!(parts.iter().all(|p| !p.is_empty() && *p != "." && *p != ".."), "{}", key);
            prop_assert!(stays_under(Path::new(&key)), "{}", key);
        }
    }
}

#[test]
fn segment_names_ignore_hostile_source_paths() {
    use roomrec::upload::manifest::segment_name;
    for path in ["../../x.ts", "/etc/passwd", "a/../../b.ts/..", "x.t/s", ""] {
        let name = segment_name(7, path);
        assert!(stays_under(Path::new(&name)), "{path} -> {name}");
        assert_eq!(Path::new(&name).components().count(), 1, "{path} -> {name}");
    }
}

#[test]
fn config_problems_name_the_auth_key() {
    use roomrec::config::Config;
    let base = |auth: &str| {
        format!(
            "device_id = \"r\"\n[mqtt]\nurl = \"mqtt://h\"\n[storage]\ndir = \"/s\"\n[media]\nsource = \"test\"\n{auth}"
        )
    };
    let public = admin_key().public().to_string();
    let cases = [
        (
            "[auth.admin_keys]\nops = \"nope!\"",
            "auth.admin_keys.ops",
            "base64",
        ),
        (
            "[auth.admin_keys]\nops = \"AAAA\"",
            "auth.admin_keys.ops",
            "32",
        ),
        (
            "[auth.admin_keys]\nops = 3",
            "auth.admin_keys.ops",
            "string",
        ),
        (
            &format!("[auth.admin_keys]\n\"a/b\" = \"{public}\""),
            "auth.admin_keys.a/b",
            "name",
        ),
        ("[auth]\nadmin_keys = \"x\"", "auth.admin_keys", "table"),
        ("[auth]\nwindow_s = 5", "auth.window_s", "30"),
        (
            "[auth]\nrequire_signed_meeting = true",
            "auth.require_signed_meeting",
            "meeting_keys",
        ),
        (
            &format!("[auth]\nallow_unsigned_admin = true\n[auth.admin_keys]\nops = \"{public}\""),
            "auth.allow_unsigned_admin",
            "bypass",
        ),
        ("[auth]\nwindow = 300", "auth.window", "window_s"),
    ];
    for (auth, key, needle) in cases {
        let e = Config::from_toml_str(&base(auth)).expect_err(auth);
        let problems = e.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.key == key && p.message.contains(needle)),
            "{auth}: {problems:#?}"
        );
    }
    let ok = Config::from_toml_str(&base(&format!("[auth.admin_keys]\nops = \"{public}\"")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.auth.admin_keys.contains_key("ops"));
    assert_eq!(ok.auth.window.as_secs(), 300);
}
