//! Bad input against the running daemon: each malformed message gets the right error code and
//! a sentence a person can act on, and the daemon keeps serving.
use crate::common;

use common::device::{meeting, Client, Device, PREFIX};
use common::Broker;
use serde_json::{json, Value};

fn error_of(reply: &Value) -> (&str, &str) {
    assert_eq!(reply["ok"], false, "expected an error reply: {reply}");
    (
        reply["error"]["code"].as_str().unwrap_or(""),
        reply["error"]["message"].as_str().unwrap_or(""),
    )
}

async fn started() -> (Broker, Device, Client) {
    let broker = Broker::start();
    let device = Device::start(&broker, "");
    let mut client = Client::connect(&broker).await;
    client.licence("2099-01-01T00:00:00Z").await;
    client.meeting(meeting(5)).await;
    client
        .wait_state("meeting applied", |s| s["meeting_version"] == 5)
        .await;
    (broker, device, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_commands_get_bad_request_and_the_daemon_keeps_serving() {
    let (_broker, mut device, mut c) = started().await;

    c.publish("cmd", "this is not json", false).await;
    let reply = c
        .wait("reply to garbage", |m| {
            m.topic == format!("{PREFIX}/reply") && m.json["id"].is_null()
        })
        .await
        .json;
    let (code, message) = error_of(&reply);
    assert_eq!(code, "bad_request");
    assert!(message.contains("not valid JSON"), "{message}");

    let cases = [
        (
            json!({"id": "b1", "actor": "u-1", "action": "mute", "muted": "yes"}),
            "true or false",
        ),
        (
            json!({"id": "b2", "action": "status"}),
            "'actor' is missing",
        ),
        (
            json!({"id": "b3", "actor": "u-1", "action": "teleport"}),
            "unknown action",
        ),
        (
            json!({"id": "b4", "actor": "u-1", "action": "start", "kind": 7}),
            "'kind' must be a string",
        ),
        (
            json!({"id": "b5", "actor": "u-1", "action": "finalize", "recording_id": "../../etc"}),
            "'recording_id' contains '/'",
        ),
        (
            json!({"id": "b6", "actor": 42, "action": "status"}),
            "'actor' must be a string",
        ),
    ];
    for (command, needle) in cases {
        let reply = c.cmd(command.clone()).await;
        let (code, message) = error_of(&reply);
        assert_eq!(code, "bad_request", "{command}");
        assert!(message.contains(needle), "{command}: {message}");
    }

    // An id that tries to climb out of the storage folder is refused before anything is done.
    c.publish(
        "cmd",
        json!({"id": "../../../tmp/x", "actor": "u-1", "action": "status"}).to_string(),
        false,
    )
    .await;
    let reply = c
        .wait("reply to the hostile id", |m| {
            m.topic == format!("{PREFIX}/reply")
                && m.json["error"]["message"]
                    .as_str()
                    .is_some_and(|s| s.contains("'id'"))
        })
        .await
        .json;
    assert_eq!(error_of(&reply).0, "bad_request");

    // A 2 MB payload is refused with the limit in the message.
    let big = json!({"id": "big", "actor": "u-1", "action": "status", "pad": "x".repeat(2 * 1024 * 1024)});
    c.publish("cmd", big.to_string(), false).await;
    let reply = c
        .wait("reply to the 2 MB payload", |m| {
            m.topic == format!("{PREFIX}/reply")
                && m.json["error"]["message"]
                    .as_str()
                    .is_some_and(|s| s.contains("limit"))
        })
        .await
        .json;
    assert_eq!(error_of(&reply).0, "bad_request");

    let reply = c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    assert_eq!(reply["ok"], true, "daemon still answers: {reply}");
    assert!(device.is_running());
    let storage_entries: Vec<_> = std::fs::read_dir(device.storage())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        !device.dir.path().join("tmp").exists(),
        "nothing written outside storage: {storage_entries:?}"
    );
}

/// A key sent twice was read with its last value: a member (`u-3`, as a gateway that keeps
/// the first value sees the command) started a recording as the host `u-1`. Now the command
/// is refused naming the key, and a snapshot with a repeated key is not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_key_is_refused_rather_than_read_one_way() {
    let (_broker, mut device, mut c) = started().await;

    c.publish(
        "cmd",
        r#"{"id":"dk-1","actor":"u-3","actor":"u-1","action":"start","kind":"local"}"#,
        false,
    )
    .await;
    let reply = c.wait_reply(&json!("dk-1")).await;
    let (code, message) = error_of(&reply);
    assert_eq!(code, "bad_request", "{reply}");
    assert!(
        message.contains("field 'actor' appears more than once"),
        "{message}"
    );

    // Meeting 5 has co-host u-2; this snapshot names u-2 then u-3 as co-hosts.
    let repeated = r#"{"version":6,"meeting_id":"m-1","state":"active","creator":"u-1",
        "host":"u-1","cohosts":["u-2"],"cohosts":["u-3"],"participants":["u-1","u-2","u-3","u-4"],
        "sharing":false,"account":{"tier":"business","licence_expires_at":"2099-01-01T00:00:00Z",
        "cloud_quota_bytes":null,"cloud_used_bytes":0}}"#;
    c.publish("meeting", repeated, true).await;
    // Snapshots arrive in order on their topic: once 7 is applied, 6 was read and refused.
    c.meeting(meeting(7)).await;
    c.wait_state("snapshot 7 applied", |s| s["meeting_version"] == 7)
        .await;
    let applied: Vec<&Value> = c
        .seen
        .iter()
        .filter(|m| m.topic == format!("{PREFIX}/state"))
        .map(|m| &m.json["meeting_version"])
        .filter(|v| **v == 6)
        .collect();
    assert!(applied.is_empty(), "the repeated-key snapshot was applied");

    let status = c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    assert_eq!(status["ok"], true, "daemon still answers: {status}");
    assert_eq!(
        status["state"]["local"].as_array().map(Vec::len),
        Some(0),
        "no recording was started: {status}"
    );
    assert!(device.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_snapshot_changes_nothing() {
    let (_broker, _device, mut c) = started().await;
    let mut stale = meeting(4);
    stale["host"] = json!("u-3");
    stale["cohosts"] = json!([]);
    c.meeting(stale).await;
    // A later command shows the state the stale snapshot would have changed.
    let reply = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(reply["ok"], true, "u-1 is still the host: {reply}");
    assert_eq!(reply["state"]["meeting_version"], 5);
    assert_eq!(reply["state"]["views"]["u-1"], "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_command_id_is_answered_again_and_not_executed_twice() {
    let (_broker, _device, mut c) = started().await;
    let cmd = json!({"id": "dup-1", "actor": "u-1", "action": "start", "kind": "local"});
    let first = c.cmd(cmd.clone()).await;
    assert_eq!(first["ok"], true, "{first}");
    c.wait_event("recording_started").await;
    let second = c.cmd(cmd).await;
    assert_eq!(first, second, "the first answer is repeated");
    c.drain_for(std::time::Duration::from_millis(500)).await;
    let started = c
        .seen
        .iter()
        .filter(|m| m.json["type"] == "recording_started")
        .count();
    assert_eq!(started, 0, "no second recording_started");
    let status = c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    assert_eq!(status["state"]["local"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_also_go_to_the_mqtt5_response_topic_with_correlation_data() {
    let (_broker, _device, mut c) = started().await;
    c.client
        .subscribe("answers/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    c.request(
        json!({"id": "rr-1", "actor": "u-3", "action": "status"}),
        "answers/rr",
        b"corr-42",
    )
    .await;
    let m = c
        .wait("response topic reply", |m| m.topic == "answers/rr")
        .await;
    assert_eq!(m.json["id"], "rr-1");
    assert_eq!(m.json["ok"], true);
    assert_eq!(m.correlation.as_deref(), Some(&b"corr-42"[..]));
}
