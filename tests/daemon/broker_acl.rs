//! `config/mosquitto-acl.example` against a real mosquitto: each account may publish and read
//! only what the ACL says, and roomrecd works under it (state, replies on response topics,
//! events, status and its last will).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use common::device::{config_text, meeting, sign_command, Device, DEVICE, PREFIX};
use common::Broker;
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, Packet, PubAckReason, PublishProperties, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const OTHER_PREFIX: &str = "roomrec/v1/room-other";
const PASSWORD: &str = "pw-for-tests";
const USERS: [&str; 6] = [
    DEVICE,
    "room-other",
    "svc-meeting",
    "svc-licence",
    "admin-console",
    "intruder",
];

/// A broker with the example ACL and a password file holding `USERS`.
fn acl_broker(dir: &Path) -> Broker {
    let acl = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto-acl.example");
    let passwd = dir.join("passwd");
    for (i, user) in USERS.iter().enumerate() {
        let mut cmd = Process::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let status = cmd
            .args(["-b", passwd.to_str().unwrap(), user, PASSWORD])
            .status()
            .expect("mosquitto_passwd (package mosquitto) must be installed");
        assert!(status.success(), "mosquitto_passwd for {user}");
    }
    // The fixture writes `allow_anonymous true` first; the later line wins.
    Broker::start_with(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        passwd.display(),
        acl.display()
    ))
}

#[derive(Debug)]
enum Seen {
    Msg { topic: String, payload: Vec<u8> },
    PubAck(PubAckReason),
    SubAck(Vec<SubscribeReasonCode>),
    ConnAck(ConnectReturnCode),
    Gone(String),
}

/// One MQTT 5 client logged in as `user` (or anonymous), reporting what the broker says.
struct Peer {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Seen>,
    msgs: Vec<(String, Vec<u8>)>,
}

impl Peer {
    async fn connect(port: u16, user: Option<&str>) -> (Peer, ConnectReturnCode) {
        let id = format!("acl-{}-{}", user.unwrap_or("anon"), fastrand::u32(..));
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        if let Some(user) = user {
            opts.set_credentials(user, PASSWORD);
        }
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let seen = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Msg {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.to_vec(),
                    },
                    Ok(Event::Incoming(Packet::PubAck(a))) => Seen::PubAck(a.reason),
                    Ok(Event::Incoming(Packet::SubAck(a))) => Seen::SubAck(a.return_codes),
                    Ok(Event::Incoming(Packet::ConnAck(a))) => Seen::ConnAck(a.code),
                    Ok(_) => continue,
                    Err(ConnectionError::ConnectionRefused(code)) => Seen::ConnAck(code),
                    Err(e) => Seen::Gone(e.to_string()),
                };
                let stop = matches!(seen, Seen::Gone(_))
                    || matches!(&seen, Seen::ConnAck(c) if *c != ConnectReturnCode::Success);
                if tx.send(seen).is_err() || stop {
                    return;
                }
            }
        });
        let mut peer = Peer {
            client,
            rx,
            msgs: Vec::new(),
        };
        let code = peer
            .next(|s| match s {
                Seen::ConnAck(c) => Some(*c),
                _ => None,
            })
            .await;
        (peer, code)
    }

    async fn login(port: u16, user: &str) -> Peer {
        let (peer, code) = Peer::connect(port, Some(user)).await;
        assert_eq!(code, ConnectReturnCode::Success, "{user} logs in");
        peer
    }

    /// The next report `pick` accepts (messages meanwhile are kept); 30 s at most.
    async fn next<T>(&mut self, pick: impl Fn(&Seen) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(seen)) => {
                    if let Some(v) = pick(&seen) {
                        return v;
                    }
                    match seen {
                        Seen::Msg { topic, payload } => self.msgs.push((topic, payload)),
                        Seen::Gone(e) => panic!("connection lost: {e}"),
                        _ => {}
                    }
                }
                Ok(None) => panic!("connection closed"),
                Err(_) => panic!("timed out; messages: {:?}", self.topics()),
            }
        }
    }

    /// Publishes at QoS 1 and returns the broker's PUBACK reason.
    async fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> PubAckReason {
        self.publish_props(topic, payload, retain, PublishProperties::default())
            .await
    }

    async fn publish_props(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        props: PublishProperties,
    ) -> PubAckReason {
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, retain, payload.to_vec(), props)
            .await
            .expect("queue publish");
        self.next(|s| match s {
            Seen::PubAck(r) => Some(*r),
            _ => None,
        })
        .await
    }

    async fn subscribe(&mut self, filter: &str) -> Vec<SubscribeReasonCode> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue subscribe");
        self.next(|s| match s {
            Seen::SubAck(codes) => Some(codes.clone()),
            _ => None,
        })
        .await
    }

    /// Waits for a message on `topic` (looking at those already kept first).
    async fn message(&mut self, topic: &str) -> Vec<u8> {
        if let Some(i) = self.msgs.iter().position(|(t, _)| t == topic) {
            return self.msgs.remove(i).1;
        }
        self.next(|s| match s {
            Seen::Msg { topic: t, payload } if t == topic => Some(payload.clone()),
            _ => None,
        })
        .await
    }

    async fn json_on(&mut self, topic: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let payload = self.message(topic).await;
            let v: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
            if pred(&v) {
                return v;
            }
        }
    }

    fn topics(&self) -> Vec<&str> {
        self.msgs.iter().map(|(t, _)| t.as_str()).collect()
    }
}

fn allowed(r: &PubAckReason) -> bool {
    // "No matching subscribers" is a success: the broker took the message.
    matches!(
        r,
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_publishes_and_reads_only_what_the_acl_allows() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path());
    let port = broker.port;

    let (_, anonymous) = Peer::connect(port, None).await;
    assert_ne!(
        anonymous,
        ConnectReturnCode::Success,
        "anonymous is refused"
    );

    // The device's account reads its own inputs only.
    let mut device = Peer::login(port, DEVICE).await;
    for leaf in ["meeting", "licence", "cmd"] {
        let codes = device.subscribe(&format!("{PREFIX}/{leaf}")).await;
        assert!(
            matches!(codes[..], [SubscribeReasonCode::Success(_)]),
            "{leaf}: {codes:?}"
        );
    }
    // mosquitto 2.0's acl_file grants the subscription and then withholds every message
    // (checked below); a later version may refuse it outright. Either keeps the topic closed.
    let codes = device.subscribe(&format!("{OTHER_PREFIX}/cmd")).await;
    assert!(
        matches!(
            codes[..],
            [SubscribeReasonCode::NotAuthorized] | [SubscribeReasonCode::Success(_)]
        ),
        "{codes:?}"
    );

    let mut peers = std::collections::BTreeMap::new();
    for user in [
        "svc-meeting",
        "svc-licence",
        "admin-console",
        "intruder",
        "room-other",
    ] {
        peers.insert(user, Peer::login(port, user).await);
    }

    let meeting_t = format!("{PREFIX}/meeting");
    let licence_t = format!("{PREFIX}/licence");
    let cmd_t = format!("{PREFIX}/cmd");
    let denied: Vec<(&str, String, &str)> = vec![
        (
            "svc-licence",
            meeting_t.clone(),
            "licence service writes meeting",
        ),
        ("admin-console", meeting_t.clone(), "console writes meeting"),
        ("intruder", meeting_t.clone(), "intruder writes meeting"),
        (
            "room-other",
            meeting_t.clone(),
            "another device writes meeting",
        ),
        (
            DEVICE,
            meeting_t.clone(),
            "the device writes its own meeting",
        ),
        (
            "svc-meeting",
            licence_t.clone(),
            "meeting service writes licence",
        ),
        ("admin-console", licence_t.clone(), "console writes licence"),
        (
            "svc-licence",
            cmd_t.clone(),
            "licence service sends a command",
        ),
        ("intruder", cmd_t.clone(), "intruder sends a command"),
        (
            "room-other",
            cmd_t.clone(),
            "another device sends a command",
        ),
        (
            "admin-console",
            format!("{PREFIX}/state"),
            "console spoofs state",
        ),
        (
            "svc-meeting",
            format!("{PREFIX}/status"),
            "service spoofs status",
        ),
        (
            DEVICE,
            format!("{OTHER_PREFIX}/state"),
            "device writes another's state",
        ),
        (DEVICE, format!("{PREFIX}/cmd"), "device writes its own cmd"),
    ];
    for (user, topic, what) in &denied {
        let peer = match *user {
            DEVICE => &mut device,
            u => peers.get_mut(u).expect("peer"),
        };
        let r = peer.publish(topic, b"{\"version\":99}", false).await;
        assert_eq!(r, PubAckReason::NotAuthorized, "{what}");
    }
    let mut meeting_svc = peers.remove("svc-meeting").unwrap();
    let mut licence_svc = peers.remove("svc-licence").unwrap();
    let mut console = peers.remove("admin-console").unwrap();

    // Allowed: each arrives at the device's account. The denied ones were published before
    // by the same clients, and one client's messages arrive in order, so anything denied
    // that had got through would show up before these.
    let r = meeting_svc
        .publish(&meeting_t, meeting(1).to_string().as_bytes(), false)
        .await;
    assert!(allowed(&r), "meeting service writes meeting: {r:?}");
    let got = device.message(&meeting_t).await;
    assert_eq!(serde_json::from_slice::<Value>(&got).unwrap()["version"], 1);
    let licence = json!({"kind": "rooms", "valid_until": "2099-01-01T00:00:00Z"});
    let r = licence_svc
        .publish(&licence_t, licence.to_string().as_bytes(), false)
        .await;
    assert!(allowed(&r), "licence service writes licence: {r:?}");
    device.message(&licence_t).await;
    // Another device's commands: the console may send them, the device must not see them.
    let r = console
        .publish(
            &format!("{OTHER_PREFIX}/cmd"),
            b"{\"id\":\"not-yours\"}",
            false,
        )
        .await;
    assert!(allowed(&r), "console writes another device's cmd: {r:?}");
    for (peer, what) in [
        (&mut console, "console"),
        (&mut meeting_svc, "meeting service"),
    ] {
        let body = json!({"id": format!("acl-{what}"), "actor": "u-1", "action": "status"});
        let r = peer
            .publish(&cmd_t, body.to_string().as_bytes(), false)
            .await;
        assert!(allowed(&r), "{what} sends a command: {r:?}");
        let got: Value = serde_json::from_slice(&device.message(&cmd_t).await).unwrap();
        assert_eq!(got["id"], format!("acl-{what}"), "commands arrive in order");
    }
    assert!(
        device.msgs.is_empty(),
        "denied messages reached the device: {:?}",
        device.topics()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roomrecd_works_under_the_acl() {
    let dir = tempfile::tempdir().unwrap();
    let broker = acl_broker(dir.path());
    let port = broker.port;
    let password_file = dir.path().join("device-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();

    let mut console = Peer::login(port, "admin-console").await;
    for leaf in ["state", "events", "status", "levels", "reply/#"] {
        let codes = console.subscribe(&format!("{PREFIX}/{leaf}")).await;
        assert!(
            matches!(codes[..], [SubscribeReasonCode::Success(_)]),
            "{leaf}: {codes:?}"
        );
    }
    let mut meeting_svc = Peer::login(port, "svc-meeting").await;

    let url_line = format!("url = \"mqtt://127.0.0.1:{port}\"");
    let credentials = format!(
        "{url_line}\nusername = \"{DEVICE}\"\npassword_file = \"{}\"",
        password_file.display()
    );
    let mut device =
        Device::start_custom(|d| config_text(port, d, "").replace(&url_line, &credentials));

    // status (retained, online) and state: the device's own publishes pass.
    console
        .json_on(&format!("{PREFIX}/status"), |v| v["online"] == true)
        .await;
    let r = meeting_svc
        .publish(
            &format!("{PREFIX}/meeting"),
            meeting(1).to_string().as_bytes(),
            true,
        )
        .await;
    assert!(allowed(&r), "{r:?}");
    console
        .json_on(&format!("{PREFIX}/state"), |v| v["meeting_id"] == "m-1")
        .await;

    // A signed admin command from the console, answered on `reply` and on a response topic
    // under `reply/`.
    let (payload, sig) = sign_command(
        &common::device::admin_key(),
        json!({"id": "acl-admin", "actor": "admin:ops", "action": "list_recordings"}),
    );
    let response = format!("{PREFIX}/reply/console-1");
    let props = PublishProperties {
        response_topic: Some(response.clone()),
        correlation_data: Some(b"k1".to_vec().into()),
        user_properties: sig,
        ..Default::default()
    };
    let r = console
        .publish_props(&format!("{PREFIX}/cmd"), &payload, false, props)
        .await;
    assert!(allowed(&r), "{r:?}");
    let reply = console
        .json_on(&format!("{PREFIX}/reply"), |v| v["id"] == "acl-admin")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let on_response = console.json_on(&response, |v| v["id"] == "acl-admin").await;
    assert_eq!(on_response["ok"], true, "{on_response}");

    // Events: with a licence from the licence service, the host starts a local recording.
    let mut licence_svc = Peer::login(port, "svc-licence").await;
    let licence = json!({"kind": "rooms", "valid_until": "2099-01-01T00:00:00Z"});
    let r = licence_svc
        .publish(
            &format!("{PREFIX}/licence"),
            licence.to_string().as_bytes(),
            true,
        )
        .await;
    assert!(allowed(&r), "{r:?}");
    let body = json!({"id": "acl-start", "actor": "u-1", "action": "start", "kind": "local"});
    let r = meeting_svc
        .publish(&format!("{PREFIX}/cmd"), body.to_string().as_bytes(), false)
        .await;
    assert!(allowed(&r), "{r:?}");
    let reply = console
        .json_on(&format!("{PREFIX}/reply"), |v| v["id"] == "acl-start")
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    console
        .json_on(&format!("{PREFIX}/events"), |v| {
            v["type"] == "recording_started"
        })
        .await;
    // Audio levels (QoS 0) while it records: a refused QoS 0 publish would be dropped silently.
    console
        .json_on(&format!("{PREFIX}/levels"), |v| v["rms_dbfs"].is_number())
        .await;

    // The last will: a crash makes the broker publish {"online": false} for the device.
    device.kill9();
    console
        .json_on(&format!("{PREFIX}/status"), |v| v["online"] == false)
        .await;
    let log = std::fs::read_to_string(device.log_path()).unwrap_or_default();
    assert!(!log.contains(PASSWORD), "the password must not be logged");
    let _: PathBuf = password_file;
}
