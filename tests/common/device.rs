//! A real `roomrecd` process for end-to-end tests, and an MQTT client that speaks the
//! contract from the outside, as the meeting service and admin console do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use roomrec::catalog::Catalog;

use super::Broker;

pub const DEVICE: &str = "room-t";
pub const PREFIX: &str = "roomrec/v1/room-t";

/// A roomrecd process with its own storage folder; stopped with SIGTERM on drop.
pub struct Device {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Extra environment for the daemon (e.g. NOTIFY_SOCKET).
    pub env: Vec<(String, String)>,
    /// A command that execs the daemon, given as its last arguments (e.g. `unshare ... sh -c
    /// '...; exec "$@"' sh`); empty to run it directly.
    pub wrapper: Vec<String>,
}

impl Device {
    /// Starts roomrecd on the test source (small frames, 1 s segments) with `extra` TOML
    /// appended to its config. An `[upload]` section makes cloud recording available.
    pub fn start(broker: &Broker, extra: &str) -> Device {
        let port = broker.port;
        Device::start_custom(|dir| config_text(port, dir, extra))
    }

    /// Starts roomrecd with the config `make` writes for the device's temp folder.
    pub fn start_custom(make: impl FnOnce(&Path) -> String) -> Device {
        let mut device = Device::prepare(make);
        device.spawn();
        device
    }

    /// Writes the config but does not start the daemon (set `env` first, then `spawn`).
    pub fn prepare(make: impl FnOnce(&Path) -> String) -> Device {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("roomrec.toml");
        std::fs::write(&config, make(dir.path())).expect("write config");
        Device {
            child: None,
            dir,
            config,
            env: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let bin = env!("CARGO_BIN_EXE_roomrecd");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .arg("--config")
            .arg(&self.config)
            .env("GST_DEBUG", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start roomrecd");
        self.child = Some(child);
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("roomrecd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM and wait (bounded); returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe_kill(child.id(), "TERM");
        for _ in 0..300 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "roomrecd did not stop within 15 s of SIGTERM; log:\n{}",
            self.log()
        );
    }

    /// SIGKILL, as a crash or power cut would end it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.stop()));
        }
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// The fixture admin key: `Client::cmd` signs `admin:*` commands with it, and `config_text`
/// configures its public half as `auth.admin_keys.ops`, so tests run with signed admin
/// commands, as a new install requires. A test-only key: its seed is public.
pub fn admin_key() -> roomrec::auth::SecretKey {
    roomrec::auth::SecretKey::parse_file("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=")
        .expect("fixture key")
}

/// The `[auth]` section `config_text` adds: admin `ops` signs with `admin_key()`.
pub fn admin_auth() -> String {
    format!("[auth.admin_keys]\nops = \"{}\"\n", admin_key().public())
}

/// The daemon's config with the fixture admin key, then `extra`.
pub fn config_text(port: u16, dir: &Path, extra: &str) -> String {
    config_without_auth(port, dir, &format!("{}\n{extra}", admin_auth()))
}

/// The daemon's config without any `[auth]` section (no admin keys), then `extra`.
pub fn config_without_auth(port: u16, dir: &Path, extra: &str) -> String {
    format!(
        r#"device_id = "{DEVICE}"

[mqtt]
url = "mqtt://127.0.0.1:{port}"

[storage]
dir = "{storage}"

[media]
source = "test"
segment_seconds = 1
width = 320
height = 240
framerate = 15
video_bitrate_kbps = 300

[log]
level = "info,roomrec=debug"

{extra}
"#,
        storage = dir.join("storage").display()
    )
}

/// An `[upload]` section; the S3 target is not contacted by the spine.
pub const UPLOAD: &str = r#"
[upload]
endpoint = "http://127.0.0.1:9"
bucket = "recordings"
region = "us-east-1"
path_style = true
access_key_id = "test"
secret_access_key = "test-secret"
"#;

/// One message the test client received.
#[derive(Clone, Debug)]
pub struct Msg {
    pub topic: String,
    /// The payload as JSON (`Null` if it is not JSON, e.g. a JPEG).
    pub json: Value,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub correlation: Option<Vec<u8>>,
}

/// The other side of the contract: publishes meetings and commands, collects what the
/// device publishes.
pub struct Client {
    pub client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Msg>,
    pub seen: Vec<Msg>,
    next_id: u64,
}

impl Client {
    pub async fn connect(broker: &Broker) -> Client {
        let id = format!(
            "test-{}",
            std::process::id() as u64 * 1000 + fastrand::u64(0..1000)
        );
        let mut opts = MqttOptions::new(id, "127.0.0.1", broker.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(Some(8 * 1024 * 1024));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let msg = Msg {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            json: serde_json::from_slice(&p.payload).unwrap_or(Value::Null),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            correlation: p
                                .properties
                                .and_then(|pp| pp.correlation_data)
                                .map(|b| b.to_vec()),
                        };
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client
            .subscribe(format!("{PREFIX}/#"), QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        Client {
            client,
            rx,
            seen: Vec::new(),
            next_id: 0,
        }
    }

    /// Publishes with MQTT 5 user properties (e.g. `roomrec-sig`).
    pub async fn publish_props(
        &self,
        suffix: &str,
        payload: impl Into<Vec<u8>>,
        retain: bool,
        user_properties: Vec<(String, String)>,
    ) {
        let props = PublishProperties {
            user_properties,
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                format!("{PREFIX}/{suffix}"),
                QoS::AtLeastOnce,
                retain,
                payload.into(),
                props,
            )
            .await
            .expect("publish");
    }

    pub async fn publish(&self, suffix: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(
                format!("{PREFIX}/{suffix}"),
                QoS::AtLeastOnce,
                retain,
                payload.into(),
            )
            .await
            .expect("publish");
    }

    pub async fn licence(&self, valid_until: &str) {
        let body = json!({"kind": "rooms", "valid_until": valid_until}).to_string();
        self.publish("licence", body, true).await;
    }

    /// The licence and meeting 1 (see [`meeting`]), once the device has applied them.
    pub async fn join_meeting(&mut self) {
        self.licence("2099-01-01T00:00:00Z").await;
        self.meeting(meeting(1)).await;
        self.wait_state("meeting applied", |s| s["meeting_version"] == 1)
            .await;
    }

    /// Meeting 1 ended (snapshot version 2).
    pub async fn end_meeting(&mut self) {
        let mut ended = meeting(2);
        ended["state"] = json!("ended");
        self.meeting(ended).await;
    }

    /// Starts a `kind` recording as `actor`; returns its id (the refusal is the panic).
    pub async fn start_recording(&mut self, actor: &str, kind: &str) -> String {
        let r = self
            .cmd(json!({"actor": actor, "action": "start", "kind": kind}))
            .await;
        assert_eq!(r["ok"], true, "start {kind}: {r}");
        let id = match kind {
            "cloud" => r["state"]["cloud"]["recording_id"].as_str(),
            _ => r["state"]["local"][0]["recording_id"].as_str(),
        };
        id.expect("the new recording's id").to_owned()
    }

    /// u-1 records locally for at least `ms` of recorded time in the meeting applied, which
    /// then ends; returns the recording's id and its MP4 once converted.
    pub async fn local_mp4(&mut self, ms: u64) -> (String, std::path::PathBuf) {
        let local = self.start_recording("u-1", "local").await;
        self.wait_state(&format!("{ms} ms recorded"), |s| {
            s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= ms
        })
        .await;
        self.end_meeting().await;
        let done = self.wait_event("conversion_done").await;
        assert_eq!(done["recording_id"], local.as_str(), "{done}");
        let mp4 = done["location"]
            .as_str()
            .expect("the MP4's location")
            .into();
        (local, mp4)
    }

    pub async fn meeting(&self, snapshot: Value) {
        self.publish("meeting", snapshot.to_string(), true).await;
    }

    /// Sends a command (adding an `id` if it has none) and waits for its reply. Commands of
    /// an `admin:` actor are signed with the fixture key (`admin_key`).
    pub async fn cmd(&mut self, mut command: Value) -> Value {
        self.add_id(&mut command);
        let id = command["id"].clone();
        let admin = command["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("admin:"));
        if admin {
            let (payload, sig) = sign_command(&admin_key(), command);
            self.publish_props("cmd", payload, false, sig).await;
        } else {
            self.publish("cmd", command.to_string(), false).await;
        }
        self.wait_reply(&id).await
    }

    /// Adds an `id` to a command that has none.
    pub fn add_id(&mut self, command: &mut Value) {
        if command.get("id").is_none() {
            self.next_id += 1;
            command["id"] = json!(format!("t-{}-{}", fastrand::u32(..), self.next_id));
        }
    }

    pub async fn wait_reply(&mut self, id: &Value) -> Value {
        let topic = format!("{PREFIX}/reply");
        self.wait(&format!("reply to {id}"), |m| {
            m.topic == topic && &m.json["id"] == id
        })
        .await
        .json
    }

    /// Waits (up to 30 s) for a message matching `pred`, looking first at what was seen.
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&Msg) -> bool) -> Msg {
        if let Some(pos) = self.seen.iter().position(&pred) {
            return self.seen.remove(pos);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) if pred(&m) => return m,
                Ok(Some(m)) => self.seen.push(m),
                _ => panic!(
                    "timed out waiting for {what}; seen: {:#?}",
                    self.seen_summary()
                ),
            }
        }
    }

    pub async fn wait_event(&mut self, kind: &str) -> Value {
        let topic = format!("{PREFIX}/events");
        self.wait(&format!("event {kind}"), |m| {
            m.topic == topic && m.json["type"] == kind
        })
        .await
        .json
    }

    pub async fn wait_state(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let topic = format!("{PREFIX}/state");
        self.wait(what, |m| m.topic == topic && pred(&m.json))
            .await
            .json
    }

    /// Restarts `device` and waits until it is connected and has published `online: true`.
    /// (Commands sent before it subscribes are not queued for it: the session is clean.)
    pub async fn restart(&mut self, device: &mut Device) {
        self.drain_for(Duration::from_millis(200)).await;
        self.seen.clear();
        device.spawn();
        let status = format!("{PREFIX}/status");
        self.wait("device back online", |m| {
            m.topic == status && m.json["online"] == true
        })
        .await;
    }

    /// Collects what arrives during `d` without waiting for anything in particular.
    pub async fn drain_for(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.seen.push(m);
        }
    }

    fn seen_summary(&self) -> Vec<String> {
        self.seen
            .iter()
            .rev()
            .take(20)
            .map(|m| format!("{} {}", m.topic, m.json))
            .collect()
    }

    /// Publishes with an MQTT 5 response topic and correlation data.
    pub async fn request(&self, command: Value, response_topic: &str, correlation: &[u8]) {
        let props = PublishProperties {
            response_topic: Some(response_topic.into()),
            correlation_data: Some(correlation.to_vec().into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                format!("{PREFIX}/cmd"),
                QoS::AtLeastOnce,
                false,
                command.to_string(),
                props,
            )
            .await
            .expect("publish");
    }
}

/// `command` with fresh `signed_at` and `nonce`, as bytes, and its `roomrec-sig` property for
/// the fixture device's `cmd` topic.
pub fn sign_command(
    key: &roomrec::auth::SecretKey,
    mut command: Value,
) -> (Vec<u8>, Vec<(String, String)>) {
    if let Some(obj) = command.as_object_mut() {
        roomrec::auth::add_claims(obj, roomrec::protocol::Timestamp::now()).expect("claims");
    }
    let payload = command.to_string().into_bytes();
    let sig = key.sign(&format!("{PREFIX}/cmd"), &payload);
    (
        payload,
        vec![(roomrec::auth::SIGNATURE_PROPERTY.to_owned(), sig)],
    )
}

/// Runs `roomrecctl` against this test's device on `broker` to completion; `--timeout` bounds
/// its wait for each reply.
pub fn ctl(broker: &Broker, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roomrecctl"))
        .args([
            "--broker",
            &broker.url(),
            "--device",
            DEVICE,
            "--timeout",
            "20",
        ])
        .args(args)
        .output()
        .expect("roomrecctl runs")
}

/// A meeting snapshot: host u-1, co-host u-2, members u-3, u-4; creator u-1.
pub fn meeting(version: u64) -> Value {
    json!({
        "version": version,
        "meeting_id": "m-1",
        "state": "active",
        "creator": "u-1",
        "host": "u-1",
        "cohosts": ["u-2"],
        "participants": ["u-1", "u-2", "u-3", "u-4"],
        "sharing": false,
        "account": {
            "tier": "business",
            "licence_expires_at": "2099-01-01T00:00:00Z",
            "cloud_quota_bytes": null,
            "cloud_used_bytes": 0
        }
    })
}

/// A device recording locally (host u-1) for at least 3 s, and the client that started it.
pub async fn recording_local(broker: &Broker, device_extra: &str) -> (Device, Client) {
    let device = Device::start(broker, device_extra);
    let mut c = Client::connect(broker).await;
    c.join_meeting().await;
    let r = c
        .cmd(json!({"actor": "u-1", "action": "start", "kind": "local"}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    c.wait_state("3 s recorded", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 3000
    })
    .await;
    (device, c)
}

/// Every catalogued segment exists, plays, and has the recorded SHA-256.
pub fn assert_segments_play(device: &Device) -> usize {
    let catalog = Catalog::open(&device.storage().join("catalog.sqlite3")).expect("catalog");
    catalog.integrity_check().expect("integrity_check ok");
    let recordings = catalog.recordings(None).unwrap();
    let mut count = 0;
    for r in &recordings {
        for seg in catalog.segments_of(&r.recording_id).unwrap() {
            let path = device.storage().join(&seg.path);
            let info =
                roomrec::media::probe(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(info.video.is_some(), "{}: {info:?}", path.display());
            let bytes = std::fs::read(&path).unwrap();
            use sha2::Digest;
            assert_eq!(
                hex::encode(sha2::Sha256::digest(&bytes)),
                seg.sha256,
                "{}",
                path.display()
            );
            count += 1;
        }
    }
    count
}
