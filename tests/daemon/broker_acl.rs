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
    let passwd = acl_broker_files(dir);
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
        (
            "admin-console",
            format!("{PREFIX}/preview"),
            "console spoofs a preview",
        ),
        (
            DEVICE,
            format!("{OTHER_PREFIX}/levels"),
            "device writes another's levels",
        ),
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

    // The confidence picture and the levels: the device writes its own, the console reads
    // them (the spoofed preview above, published first, would arrive first).
    for leaf in ["preview", "levels"] {
        let topic = format!("{PREFIX}/{leaf}");
        let codes = console.subscribe(&topic).await;
        assert!(
            matches!(codes[..], [SubscribeReasonCode::Success(_)]),
            "{leaf}: {codes:?}"
        );
        let body = format!("from the device: {leaf}");
        let r = device.publish(&topic, body.as_bytes(), false).await;
        assert!(allowed(&r), "the device writes its {leaf}: {r:?}");
        assert_eq!(console.message(&topic).await, body.as_bytes(), "{leaf}");
    }
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

/// `config/mosquitto-roomrec.conf.example` as a broker runs it, with the test's certificates,
/// passwords and free ports: the admin console's WebSockets listener answers over TLS, takes
/// MQTT in WebSocket frames and checks the password, as a browser would meet it.
#[test]
fn the_example_config_serves_the_console_over_websockets_with_tls() {
    let dir = tempfile::tempdir().unwrap();
    common::tls::make_certs(dir.path());
    acl_broker_files(dir.path());
    let (mqtts, wss) = (common::free_port(), common::free_port());
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto-roomrec.conf.example"),
    )
    .unwrap();
    assert!(
        example.contains("\nset_tcp_nodelay true\n"),
        "replies without Nagle's delay"
    );
    let d = dir.path().display();
    let conf = example
        .replace("listener 8883", &format!("listener {mqtts} 127.0.0.1"))
        .replace("listener 8884", &format!("listener {wss} 127.0.0.1"))
        .replace(
            "/etc/mosquitto/certs/broker.crt",
            &format!("{d}/server.crt"),
        )
        .replace(
            "/etc/mosquitto/certs/broker.key",
            &format!("{d}/server.key"),
        )
        .replace("/etc/mosquitto/certs/ca.crt", &format!("{d}/ca.crt"))
        .replace("/etc/mosquitto/roomrec.passwd", &format!("{d}/passwd"))
        .replace(
            "/etc/mosquitto/roomrec.acl",
            &format!(
                "{}/config/mosquitto-acl.example",
                env!("CARGO_MANIFEST_DIR")
            ),
        );
    let settings = conf.lines().filter(|l| !l.starts_with('#'));
    let kept: Vec<&str> = settings.filter(|l| l.contains("/etc/")).collect();
    assert!(kept.is_empty(), "every path replaced: {kept:?}");
    let conf_path = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf_path,
        format!("{conf}\nuser root\npersistence false\n"),
    )
    .unwrap();
    let mut broker = Process::new("mosquitto")
        .arg("-c")
        .arg(&conf_path)
        .stderr(std::fs::File::create(dir.path().join("mosquitto.log")).unwrap())
        .spawn()
        .expect("mosquitto");
    let up = common::wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", wss)).is_ok()
    });
    let log = || std::fs::read_to_string(dir.path().join("mosquitto.log")).unwrap_or_default();
    assert!(
        up,
        "the WebSockets listener is up; mosquitto says: {}",
        log()
    );

    let accepted = ws_mqtt_connect(dir.path(), wss, "admin-console", PASSWORD);
    let refused = ws_mqtt_connect(dir.path(), wss, "admin-console", "wrong");
    let _ = broker.kill();
    let _ = broker.wait();
    assert_eq!(accepted, 0, "CONNACK: accepted");
    assert_eq!(refused, 5, "CONNACK: not authorised");
}

/// Writes the password file for `USERS` into `dir` (the accounts the example ACL names).
fn acl_broker_files(dir: &Path) -> PathBuf {
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
    passwd
}

/// Over TLS (trusting only the test CA) to `port`: a WebSocket upgrade for the `mqtt`
/// subprotocol, then an MQTT 3.1.1 CONNECT as `user` in a masked binary frame; returns the
/// CONNACK's return code.
fn ws_mqtt_connect(dir: &Path, port: u16, user: &str, password: &str) -> u8 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::{Read, Write};

    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(dir.join("ca.crt")).expect("test CA");
    roots.add(ca).expect("CA into the root store");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("TLS");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);

    let upgrade = format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    );
    tls.write_all(upgrade.as_bytes()).expect("upgrade request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).expect("upgrade response");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455's example: this key's accept value.
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "Sec-WebSocket-Accept: {head}"
    );

    let field = |s: &str| [&(s.len() as u16).to_be_bytes()[..], s.as_bytes()].concat();
    let body = [
        field("MQTT"),
        vec![4, 0b1100_0010, 0, 30],
        field(&format!("ws-{user}-{}", fastrand::u32(..))),
        field(user),
        field(password),
    ]
    .concat();
    let connect = [&[0x10, body.len() as u8][..], &body].concat();
    let mask = fastrand::u32(..).to_be_bytes();
    let mut frame = vec![0x82, 0x80 | connect.len() as u8];
    frame.extend(mask);
    frame.extend(connect.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tls.write_all(&frame).expect("CONNECT frame");

    let mut reply = [0u8; 6];
    tls.read_exact(&mut reply).expect("CONNACK frame");
    assert_eq!(
        reply[..4],
        [0x82, 4, 0x20, 2],
        "a binary frame holding a CONNACK"
    );
    reply[5]
}
