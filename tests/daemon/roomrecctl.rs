//! `roomrecctl` end to end: the built binary against a real mosquitto.
//!
//! The device is played by small rumqttc clients in the test (a responder that answers on the
//! MQTT 5 response topic, retained status/state publishers); the daemon's own end-to-end tests
//! live elsewhere. Every wait is bounded, so a regression fails instead of hanging.
use crate::common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::Broker;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const PREFIX: &str = "roomrec/v1/room-7";

fn topic(leaf: &str) -> String {
    format!("{PREFIX}/{leaf}")
}

/// Runs `roomrecctl --broker <broker> --device room-7 <args>` to completion.
async fn ctl(port: u16, args: &[&str]) -> Output {
    let broker = format!("mqtt://127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomrecctl"))
        .args(["--broker", &broker, "--device", "room-7"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("roomrecctl finished within 30 s")
        .expect("roomrecctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// A test-side MQTT 5 client: every incoming packet is forwarded to `packets`.
struct Peer {
    client: AsyncClient,
    packets: mpsc::UnboundedReceiver<Packet>,
}

impl Peer {
    async fn connect(port: u16) -> Peer {
        let id = format!("test-{:08x}", fastrand::u32(..));
        let (client, mut eventloop) = AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 16);
        let (tx, packets) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(p) = event {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
            }
        });
        let mut peer = Peer { client, packets };
        peer.wait(|p| matches!(p, Packet::ConnAck(_))).await;
        peer
    }

    /// Waits (5 s at most) for a packet `f` accepts, dropping the others.
    async fn wait(&mut self, mut f: impl FnMut(&Packet) -> bool) -> Packet {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let p = tokio::time::timeout_at(deadline, self.packets.recv())
                .await
                .expect("the expected packet within 5 s")
                .expect("the test client is connected");
            if f(&p) {
                return p;
            }
        }
    }

    async fn subscribe(&mut self, topic: &str) {
        self.client
            .subscribe_many([Filter::new(topic, QoS::AtLeastOnce)])
            .await
            .expect("subscribe");
        self.wait(|p| matches!(p, Packet::SubAck(_))).await;
    }

    async fn publish(&mut self, topic: &str, payload: &Value, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.to_string())
            .await
            .expect("publish");
        self.wait(|p| matches!(p, Packet::PubAck(_))).await;
    }

    /// The next message, or `None` after `limit`.
    async fn message(&mut self, limit: Duration) -> Option<Publish> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.packets.recv()).await {
                Ok(Some(Packet::Publish(p))) => return Some(p),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// What the responder should do with the one command it receives.
enum Answer {
    /// Reply on the request's response topic, with its correlation data.
    OnResponseTopic(Value),
    /// Reply on `<p>/reply` only (a device that ignores MQTT 5 request/response).
    OnReplyTopic(Value),
}

/// Plays the device for one command. Subscribed before it returns; the task yields the command
/// and its MQTT 5 properties.
async fn responder(
    port: u16,
    answer: impl Fn(&Value) -> Answer + Send + 'static,
) -> tokio::task::JoinHandle<(Value, PublishProperties)> {
    let mut peer = Peer::connect(port).await;
    peer.subscribe(&topic("cmd")).await;
    tokio::spawn(async move {
        let cmd = peer
            .message(Duration::from_secs(10))
            .await
            .expect("a command on <p>/cmd");
        let body: Value = serde_json::from_slice(&cmd.payload).expect("the command is JSON");
        let props = cmd.properties.clone().unwrap_or_default();
        match answer(&body) {
            Answer::OnResponseTopic(reply) => {
                let to = props.response_topic.clone().expect("a response topic");
                let reply_props = PublishProperties {
                    correlation_data: props.correlation_data.clone(),
                    ..PublishProperties::default()
                };
                peer.client
                    .publish_with_properties(
                        to,
                        QoS::AtLeastOnce,
                        false,
                        reply.to_string(),
                        reply_props,
                    )
                    .await
                    .expect("publish the reply");
            }
            Answer::OnReplyTopic(reply) => {
                peer.client
                    .publish(topic("reply"), QoS::AtLeastOnce, false, reply.to_string())
                    .await
                    .expect("publish the reply");
            }
        }
        peer.wait(|p| matches!(p, Packet::PubAck(_))).await;
        (body, props)
    })
}

fn state_doc() -> Value {
    json!({
        "meeting_id": "m-42", "meeting_version": 7,
        "cloud": {"state": "recording", "started_by": "u-2", "owner": "u-1",
                  "recorded_ms": 61000, "bytes": 5242880, "remaining_s": 7200},
        "local": [{"recording_id": "r-9", "owner": "u-3", "state": "paused", "recorded_ms": 12000}],
        "local_policy": "selected", "local_allowed": ["u-3"],
        "pending_cloud_requests": ["u-4"], "muted": false,
        "views": {"u-1": "cloud", "u-2": "cloud", "u-3": "local", "u-4": "none"}
    })
}

fn status_doc() -> Value {
    json!({"online": true, "version": "0.1.0", "uptime_s": 3600, "camera": "ok",
           "microphone": "missing", "storage": {"free_bytes": 1073741824, "used_bytes": 0},
           "uploads": {"pending": 3, "pending_bytes": 0, "last_error": null}})
}

fn meeting_doc() -> Value {
    json!({"version": 7, "meeting_id": "m-42", "state": "active", "creator": "u-1",
           "host": "u-1", "cohosts": ["u-2"], "participants": ["u-1", "u-2", "u-3"],
           "sharing": false,
           "account": {"tier": "business", "licence_expires_at": "2027-01-01T00:00:00Z",
                       "cloud_quota_bytes": null, "cloud_used_bytes": 1048576}})
}

// ---------------------------------------------------------------------------------------------
// meeting and licence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_set_publishes_the_snapshot_retained_and_clear_removes_it() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("meeting.json");
    let text = serde_json::to_string_pretty(&meeting_doc()).expect("json");
    std::fs::write(&file, &text).expect("write meeting.json");

    let out = ctl(
        broker.port,
        &["meeting", "set", file.to_str().expect("utf-8 path")],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("meeting m-42 (version 7"),
        "{}",
        describe(&out)
    );

    // A client that connects afterwards gets the retained snapshot, byte for byte.
    let mut peer = Peer::connect(broker.port).await;
    peer.subscribe(&topic("meeting")).await;
    let msg = peer
        .message(Duration::from_secs(5))
        .await
        .expect("the retained meeting snapshot");
    assert!(msg.retain, "delivered as a retained message");
    assert_eq!(&msg.payload[..], text.as_bytes());

    // `clear`: subscribers get the empty message, and nothing stays retained.
    let out = ctl(broker.port, &["meeting", "clear"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let msg = peer
        .message(Duration::from_secs(5))
        .await
        .expect("the empty meeting message");
    assert!(msg.payload.is_empty());
    let mut late = Peer::connect(broker.port).await;
    late.subscribe(&topic("meeting")).await;
    assert!(late.message(Duration::from_millis(500)).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_meeting_file_is_refused_with_the_reason_and_not_published() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            json!({"meeting_id": "m-1"}).to_string(),
            "'version' is missing",
        ),
        ("{not json".to_owned(), "not valid JSON"),
        (
            json!({"version": 1, "meeting_id": "m-1", "state": "active"}).to_string(),
            "missing field",
        ),
    ];
    for (i, (content, reason)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.json"));
        std::fs::write(&file, content).expect("write");
        let out = ctl(
            broker.port,
            &["meeting", "set", file.to_str().expect("utf-8")],
        )
        .await;
        assert_eq!(out.status.code(), Some(2), "{content}: {}", describe(&out));
        let err = stderr(&out);
        assert!(err.contains("not a valid meeting snapshot"), "{err}");
        assert!(
            err.contains(reason),
            "{content}: expected {reason:?} in {err}"
        );
    }
    let out = ctl(
        broker.port,
        &["meeting", "set", "/nonexistent/meeting.json"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("cannot read"), "{}", describe(&out));

    let mut peer = Peer::connect(broker.port).await;
    peer.subscribe(&topic("meeting")).await;
    assert!(
        peer.message(Duration::from_millis(500)).await.is_none(),
        "nothing was published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licence_set_publishes_retained_and_refuses_a_bad_time() {
    let broker = Broker::start();
    let out = ctl(
        broker.port,
        &[
            "licence",
            "set",
            "--valid-until",
            "2027-03-01T00:00:00Z",
            "--json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = serde_json::from_str(stdout(&out).trim()).expect("--json output is JSON");
    assert_eq!(doc["topic"], json!(topic("licence")));

    let mut peer = Peer::connect(broker.port).await;
    peer.subscribe(&topic("licence")).await;
    let msg = peer.message(Duration::from_secs(5)).await.expect("licence");
    assert!(msg.retain);
    let licence: Value = serde_json::from_slice(&msg.payload).expect("JSON");
    assert_eq!(
        licence,
        json!({"kind": "rooms", "valid_until": "2027-03-01T00:00:00Z"})
    );

    let out = ctl(
        broker.port,
        &["licence", "set", "--valid-until", "next week"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("RFC 3339"), "{}", describe(&out));
}

// ---------------------------------------------------------------------------------------------
// send

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_the_resulting_state_when_the_device_accepts() {
    let broker = Broker::start();
    let device = responder(broker.port, |cmd| {
        Answer::OnResponseTopic(json!({"id": cmd["id"], "ok": true, "state": state_doc()}))
    })
    .await;
    let out = ctl(
        broker.port,
        &[
            "send",
            "start",
            "--as",
            "u-2",
            "--id",
            "c-17",
            "kind=cloud",
            "silent=true",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("ok: start (c-17)"), "{text}");
    assert!(text.contains("meeting m-42 (version 7)"), "{text}");
    assert!(
        text.contains("cloud       recording, started by u-2"),
        "{text}"
    );

    let (cmd, props) = device.await.expect("responder");
    assert_eq!(
        cmd,
        json!({"id": "c-17", "actor": "u-2", "action": "start", "kind": "cloud", "silent": true})
    );
    let response_topic = props.response_topic.expect("a response topic");
    assert!(
        response_topic.starts_with(&format!("{PREFIX}/reply/ctl-")),
        "{response_topic}"
    );
    assert!(props.correlation_data.is_some_and(|c| !c.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_json_prints_the_reply_document() {
    let broker = Broker::start();
    let device = responder(broker.port, |cmd| {
        Answer::OnResponseTopic(json!({"id": cmd["id"], "ok": true, "state": state_doc()}))
    })
    .await;
    let out = ctl(broker.port, &["--json", "send", "status", "--as", "u-1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf-8")
        .lines()
        .collect();
    assert_eq!(lines.len(), 1, "{}", describe(&out));
    let reply: Value = serde_json::from_str(lines[0]).expect("the line is JSON");
    let (cmd, _) = device.await.expect("responder");
    assert_eq!(reply["id"], cmd["id"]);
    assert_eq!(reply["state"], state_doc());
    assert!(
        cmd["id"].as_str().is_some_and(|id| id.starts_with("ctl-")),
        "a random id: {cmd}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_exits_1_with_the_error_code_when_the_device_refuses() {
    let broker = Broker::start();
    // Answered on `<p>/reply` only: matched by the command id.
    let device = responder(broker.port, |cmd| {
        Answer::OnReplyTopic(json!({"id": cmd["id"], "ok": false, "error": {
            "code": "forbidden",
            "message": "only the host and co-hosts can start cloud recording"}}))
    })
    .await;
    let out = ctl(
        broker.port,
        &[
            "send",
            "start",
            "--as",
            "u-3",
            "kind=cloud",
            "--timeout",
            "5",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out)
            .contains("error forbidden: only the host and co-hosts can start cloud recording"),
        "{}",
        describe(&out)
    );
    device.await.expect("responder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_without_a_device_exits_3_within_the_timeout() {
    let broker = Broker::start();
    let started = Instant::now();
    let out = ctl(
        broker.port,
        &["send", "status", "--as", "u-1", "--timeout", "1"],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        stderr(&out).contains("no reply from device room-7 within 1 s"),
        "{}",
        describe(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_refuses_bad_commands_before_sending() {
    // No broker needed: nothing is sent. The port is free, so sending would fail with 4.
    let port = common::free_port();
    for (args, needle) in [
        (&["send", "fly", "--as", "u-1"][..], "invalid value 'fly'"),
        (&["send", "start", "--as", "u-1"][..], "'kind' is missing"),
        (
            &["send", "mute", "--as", "u-1", "muted=maybe"][..],
            "true or false",
        ),
        (&["send", "status", "--as", "u/1"][..], "actor"),
        (
            &["send", "status", "--as", "u-1", "oops"][..],
            "FIELD=VALUE",
        ),
    ] {
        let out = ctl(port, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", describe(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: {}",
            describe(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_exits_4_at_once() {
    let port = common::free_port();
    let started = Instant::now();
    let out = ctl(port, &["send", "status", "--as", "u-1", "--timeout", "20"]).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}: not waiting for the timeout"
    );
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "cannot reach the MQTT broker at mqtt://127.0.0.1:{port}: connection refused; \
             is mosquitto running?"
        )
    );
    for args in [&["status"][..], &["watch"], &["meeting", "clear"]] {
        let out = ctl(port, args).await;
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", describe(&out));
    }
}

// ---------------------------------------------------------------------------------------------
// status and watch

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_retained_status_and_state() {
    let broker = Broker::start();
    let mut device = Peer::connect(broker.port).await;
    device.publish(&topic("status"), &status_doc(), true).await;
    device.publish(&topic("state"), &state_doc(), true).await;

    let out = ctl(broker.port, &["status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    for needle in [
        "device room-7: online (roomrecd 0.1.0, up 1h 00m)",
        "camera      ok",
        "microphone  missing",
        "storage     1.0 GiB free",
        "uploads     3 pending",
        "cloud       recording",
        "r-9 by u-3, paused, 12s",
        "views       u-1 cloud, u-2 cloud, u-3 local, u-4 none",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }

    let out = ctl(broker.port, &["status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let doc: Value = serde_json::from_str(stdout(&out).trim()).expect("--json output is JSON");
    assert_eq!(doc, json!({"status": status_doc(), "state": state_doc()}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_a_device_exits_3_with_a_hint() {
    let broker = Broker::start();
    let out = ctl(broker.port, &["status", "--timeout", "1"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(
        stderr(&out).trim(),
        "no status from device room-7 within 1 s: is roomrecd running and connected to this broker?"
    );
}

/// Starts `watch` with `args`, then plays the device (a state change, then an event, over and
/// over) until `watch` exits; returns its output.
async fn watch_while_the_device_talks(port: u16, args: &[&str]) -> Output {
    let mut device = Peer::connect(port).await;
    // Retained before `watch` starts: the past, not a change, so not printed.
    device
        .publish(&topic("state"), &json!({"old": true}), true)
        .await;

    let broker = format!("mqtt://127.0.0.1:{port}");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomrecctl"))
        .args(["--broker", &broker, "--device", "room-7", "watch"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("roomrecctl watch starts");
    let output = tokio::spawn(child.wait_with_output());
    // `watch` subscribes at some point after starting: keep talking until it has heard enough.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut state_next = true;
    while !output.is_finished() && Instant::now() < deadline {
        if state_next {
            device.publish(&topic("state"), &state_doc(), true).await;
        } else {
            let event = json!({"type": "recording_started", "at": "2027-01-01T10:00:00Z",
                               "to": ["u-1"], "recording_id": "r-9", "recording_kind": "local"});
            device.publish(&topic("events"), &event, false).await;
        }
        state_next = !state_next;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), output)
        .await
        .expect("watch ended")
        .expect("join")
        .expect("watch output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_count_prints_that_many_messages() {
    let broker = Broker::start();
    let out = watch_while_the_device_talks(broker.port, &["--count", "2"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{}", describe(&out));
    for line in &lines {
        assert!(
            line.starts_with("state meeting m-42 v7 | cloud recording")
                || line.starts_with("event 2027-01-01T10:00:00Z recording_started"),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_lines_parse() {
    let broker = Broker::start();
    let out = watch_while_the_device_talks(broker.port, &["--count", "3", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let text = stdout(&out);
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    assert_eq!(docs.len(), 3, "{}", describe(&out));
    for doc in docs {
        match doc["kind"].as_str() {
            Some("state") => assert_eq!(doc["message"], state_doc()),
            Some("event") => assert_eq!(doc["message"]["type"], "recording_started"),
            other => panic!("unexpected kind {other:?} in {doc}"),
        }
        assert!(doc["topic"].as_str().is_some_and(|t| t.starts_with(PREFIX)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_for_ends_after_the_time_without_messages() {
    let broker = Broker::start();
    let started = Instant::now();
    let out = ctl(broker.port, &["watch", "--for", "1"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "took {took:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// TLS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_ca_and_client_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    common::tls::make_certs(dir.path());
    let path = |f: &str| dir.path().join(f).to_str().expect("utf-8").to_owned();
    let broker = Broker::start_with(&format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        path("ca.crt"),
        path("server.crt"),
        path("server.key")
    ));
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let run = |extra: Vec<String>| {
        let url = url.clone();
        async move {
            let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomrecctl"))
                .args(["--broker", &url, "--device", "room-7", "--timeout", "3"])
                .args(&extra)
                .args(["meeting", "clear"])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output();
            tokio::time::timeout(Duration::from_secs(30), child)
                .await
                .expect("finished")
                .expect("runs")
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (ca, cert, key) = (path("ca.crt"), path("client.crt"), path("client.key"));

    let out = run(s(&["--ca", &ca, "--cert", &cert, "--key", &key])).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    // Without --ca: refused before connecting.
    let out = run(s(&["--cert", &cert, "--key", &key])).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("--ca"), "{}", describe(&out));

    // The broker wants a client certificate: the handshake fails, quickly, with exit 4.
    let started = Instant::now();
    let out = run(s(&["--ca", &ca])).await;
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not waiting for the timeout"
    );

    // A CA that did not sign the broker's certificate.
    let other = tempfile::tempdir().expect("temp dir");
    common::tls::make_certs(other.path());
    let wrong_ca = other
        .path()
        .join("ca.crt")
        .to_str()
        .expect("utf-8")
        .to_owned();
    let out = run(s(&["--ca", &wrong_ca, "--cert", &cert, "--key", &key])).await;
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert!(stderr(&out).contains("TLS failed"), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let passwords = dir.path().join("passwords");
    let made = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["admin", "s3cret"])
        .output()
        .expect("mosquitto_passwd must be installed");
    assert!(made.status.success(), "{}", describe(&made));
    let broker = Broker::start_with(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.display()
    ));
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    // A trailing newline, as editors write it, is not part of the password.
    std::fs::write(&good, "s3cret\n").expect("write");
    std::fs::write(&bad, "guess\n").expect("write");

    let with = |file: &std::path::Path| {
        vec![
            "--username".to_owned(),
            "admin".to_owned(),
            "--password-file".to_owned(),
            file.to_str().expect("utf-8").to_owned(),
            "meeting".to_owned(),
            "clear".to_owned(),
        ]
    };
    let args = with(&good);
    let out = ctl(
        broker.port,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));

    let args = with(&bad);
    let out = ctl(
        broker.port,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert!(
        stderr(&out).contains("check --username and --password-file"),
        "{}",
        describe(&out)
    );

    let out = ctl(broker.port, &["meeting", "clear"]).await;
    assert_eq!(out.status.code(), Some(4), "anonymous: {}", describe(&out));
}
