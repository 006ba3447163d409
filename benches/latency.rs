//! Command → state latency through a real mosquitto on loopback (goal p99 ≤ 5 ms), and the
//! time from start to READY=1. Starts its own broker and the release `roomrecd`; prints
//! figures. Run with `cargo bench --bench latency` (ROOMREC_BENCH_COMMANDS to change 10 000).

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};

const PREFIX: &str = "roomrec/v1/bench";

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn main() {
    let n: usize = std::env::var("ROOMREC_BENCH_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nuser root\nset_tcp_nodelay true\n"
        ),
    )
    .expect("conf");
    let _broker = Kill(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto"),
    );
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let config = dir.path().join("roomrec.toml");
    std::fs::write(&config, format!(
        "device_id = \"bench\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n[storage]\ndir = \"{}\"\n[media]\nsource = \"test\"\n[log]\nlevel = \"warn\"\n",
        dir.path().join("storage").display())).expect("config");

    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let started = Instant::now();
    let _daemon = Kill(
        Command::new(env!("CARGO_BIN_EXE_roomrecd"))
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify)
            .stdout(std::fs::File::create("/tmp/latency-daemon.log").expect("log"))
            .spawn()
            .expect("roomrecd"),
    );
    let mut buf = [0u8; 512];
    loop {
        let len = sock.recv(&mut buf).expect("READY=1 within 20 s");
        if String::from_utf8_lossy(&buf[..len])
            .lines()
            .any(|l| l == "READY=1")
        {
            break;
        }
    }
    println!(
        "start to READY=1: {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(measure(port, n));
}

async fn measure(port: u16, n: usize) {
    let mut opts = MqttOptions::new("bench-client", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, String, Value)>();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let topic = String::from_utf8_lossy(&p.topic).into_owned();
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    let _ = tx.send((Instant::now(), topic, v));
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench client: MQTT error: {e}");
                    return;
                }
            }
        }
    });
    for topic in ["reply", "state"] {
        client
            .subscribe(format!("{PREFIX}/{topic}"), QoS::AtMostOnce)
            .await
            .expect("subscribe");
    }
    let publish = |suffix: &str, body: String, retain: bool| {
        let c = client.clone();
        let topic = format!("{PREFIX}/{suffix}");
        async move {
            // QoS 0 from the bench client: rumqttc 0.25 wedges a busy QoS 1 sender (rumqtt#1057).
            c.publish(topic, QoS::AtMostOnce, retain, body)
                .await
                .expect("publish")
        }
    };
    publish(
        "licence",
        json!({"kind": "rooms", "valid_until": "2099-01-01T00:00:00Z"}).to_string(),
        true,
    )
    .await;
    publish(
        "meeting",
        json!({"version": 1, "meeting_id": "m-b", "state": "active", "creator": "h",
        "host": "h", "participants": ["h"], "account": {"tier": "business"}})
        .to_string(),
        true,
    )
    .await;
    // Wait for the device to have applied the meeting.
    loop {
        let (_, topic, v) = rx.recv().await.expect("messages");
        if topic.ends_with("/state") && v["meeting_version"] == 1 {
            break;
        }
    }
    let mut to_reply = Vec::with_capacity(n);
    let mut to_state = Vec::with_capacity(n);
    for i in 0..n {
        let muted = i % 2 == 0;
        let id = format!("b-{i}");
        let sent = Instant::now();
        publish(
            "cmd",
            json!({"id": id, "actor": "h", "action": "mute", "muted": muted}).to_string(),
            false,
        )
        .await;
        let (mut got_reply, mut got_state) = (None, None);
        while got_reply.is_none() || got_state.is_none() {
            let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            let Ok(Some((at, topic, v))) = next else {
                panic!(
                    "no answer to {id} within 10 s (reply seen: {}, state seen: {})",
                    got_reply.is_some(),
                    got_state.is_some()
                );
            };
            if topic.ends_with("/reply") && v["id"] == id.as_str() {
                got_reply = Some(at - sent);
            } else if topic.ends_with("/state") && v["muted"] == muted {
                got_state = Some(at - sent);
            }
        }
        to_reply.extend(got_reply);
        to_state.extend(got_state);
    }
    report("command -> reply", &mut to_reply);
    report("command -> state", &mut to_state);
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let pct = |p: f64| {
        samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1000.0
    };
    println!(
        "{what}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms (goal p99 <= 5 ms)",
        samples.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
}
