//! Command → reply and command → state latency through a real mosquitto on loopback (goal
//! p99 ≤ 5 ms), and the time from start to READY=1. Starts its own broker and the release
//! `roomrecd`, twice: once with the broker's `set_tcp_nodelay true` (as
//! `config/mosquitto-roomrec.conf.example` has it) and once with mosquitto's default (Nagle on
//! the broker's sockets), and prints the figures of both.
//!
//!   cargo bench --bench latency      (ROOMREC_BENCH_COMMANDS: commands with nodelay, 10 000;
//!                                     the default broker gets a tenth: each takes ~50 ms)
//!
//! The bench's client is as reliable as the daemon's session: QoS 1 both ways, a fresh rumqttc
//! client for every connection (rumqttc 0.25 can wedge a client across a reconnect,
//! rumqtt#1056), subscriptions renewed on every connect, and a command with no answer within
//! 10 s sent again (same id: the device answers a repeated id from its catalog) after a new
//! connection. Such commands are counted and kept out of the latency figures; the bench never
//! stops half-way.

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

const PREFIX: &str = "roomrec/v1/bench";
/// How long a command may go unanswered before it is sent again on a new connection.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

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
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (nodelay, commands) in [(true, n), (false, (n / 10).max(10))] {
        let what = if nodelay {
            "broker with set_tcp_nodelay true"
        } else {
            "broker with mosquitto's default (Nagle on)"
        };
        println!("{what}, {commands} commands:");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let _broker = start_broker(dir.path(), port, nodelay);
        let _daemon = start_daemon(dir.path(), port);
        rt.block_on(measure(port, commands));
    }
}

fn start_broker(dir: &Path, port: u16, nodelay: bool) -> Kill {
    let conf = dir.join("mosquitto.conf");
    let nodelay = if nodelay {
        "set_tcp_nodelay true\n"
    } else {
        ""
    };
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n{nodelay}"),
    )
    .expect("conf");
    let broker = Kill(
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
    broker
}

/// The release roomrecd on the test source; returns once it said READY=1.
fn start_daemon(dir: &Path, port: u16) -> Kill {
    let config = dir.join("roomrec.toml");
    std::fs::write(&config, format!(
        "device_id = \"bench\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n[storage]\ndir = \"{}\"\n[media]\nsource = \"test\"\n[log]\nlevel = \"warn\"\n",
        dir.join("storage").display())).expect("config");
    let notify = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let started = Instant::now();
    let daemon = Kill(
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
        "  start to READY=1: {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    daemon
}

/// A message the bench received: when, on which topic, its JSON.
type Received = (Instant, String, Value);

/// The bench's MQTT session (see the header): publishes through whichever client is current.
struct Session {
    current: Arc<Mutex<AsyncClient>>,
    renew: Arc<Notify>,
    rx: mpsc::UnboundedReceiver<Received>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    /// The session ends with its broker: no reconnecting to a broker that is gone.
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Session {
    fn start(port: u16) -> Session {
        let mut opts = MqttOptions::new("bench-client", "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_start(true);
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        opts.set_network_options(net);
        let (client, eventloop) = AsyncClient::new(opts.clone(), 64);
        let current = Arc::new(Mutex::new(client));
        let renew = Arc::new(Notify::new());
        let connections = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(poll(
            opts,
            eventloop,
            Arc::clone(&current),
            Arc::clone(&renew),
            tx,
            Arc::clone(&connections),
        ));
        Session {
            current,
            renew,
            rx,
            connections,
            task,
        }
    }

    async fn publish(&self, suffix: &str, body: String, retain: bool) {
        let client = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let topic = format!("{PREFIX}/{suffix}");
        if let Err(e) = client.publish(topic, QoS::AtLeastOnce, retain, body).await {
            eprintln!("bench client: publish: {e}");
        }
    }
}

/// Drives one connection after another: every error or forced renewal gets a fresh client.
async fn poll(
    opts: MqttOptions,
    mut eventloop: EventLoop,
    current: Arc<Mutex<AsyncClient>>,
    renew: Arc<Notify>,
    tx: mpsc::UnboundedSender<Received>,
    connections: Arc<AtomicUsize>,
) {
    loop {
        let event = tokio::select! {
            _ = renew.notified() => Err("renewed after an unanswered command".to_owned()),
            event = eventloop.poll() => event.map_err(|e| e.to_string()),
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connections.fetch_add(1, Ordering::Relaxed);
                let client = current.lock().unwrap_or_else(PoisonError::into_inner);
                for topic in ["reply", "state"] {
                    let _ = client.try_subscribe(format!("{PREFIX}/{topic}"), QoS::AtLeastOnce);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                if tx.send((Instant::now(), topic, v)).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("bench client: {e}; connecting again");
                tokio::time::sleep(Duration::from_millis(100)).await;
                let (client, fresh) = AsyncClient::new(opts.clone(), 64);
                *current.lock().unwrap_or_else(PoisonError::into_inner) = client;
                eventloop = fresh;
            }
        }
    }
}

async fn measure(port: u16, n: usize) {
    let mut session = Session::start(port);
    session
        .publish(
            "licence",
            json!({"kind": "rooms", "valid_until": "2099-01-01T00:00:00Z"}).to_string(),
            true,
        )
        .await;
    session
        .publish(
            "meeting",
            json!({"version": 1, "meeting_id": "m-b", "state": "active", "creator": "h",
            "host": "h", "participants": ["h"], "account": {"tier": "business"}})
            .to_string(),
            true,
        )
        .await;
    // Wait for the device to have applied the meeting.
    loop {
        let (_, topic, v) = session.rx.recv().await.expect("messages");
        if topic.ends_with("/state") && v["meeting_version"] == 1 {
            break;
        }
    }
    let mut to_reply = Vec::with_capacity(n);
    let mut to_state = Vec::with_capacity(n);
    let mut resent = 0;
    for i in 0..n {
        let muted = i % 2 == 0;
        let id = format!("b-{i}");
        let answer = command(&mut session, &id, muted).await;
        match answer {
            Answer::First { reply, state } => {
                to_reply.push(reply);
                to_state.push(state);
            }
            Answer::Resent => resent += 1,
        }
    }
    report("command -> reply", &mut to_reply);
    report("command -> state", &mut to_state);
    println!(
        "  commands sent again after {} s without an answer: {resent}; connections: {}",
        ANSWER_WITHIN.as_secs(),
        session.connections.load(Ordering::Relaxed)
    );
}

enum Answer {
    First {
        reply: Duration,
        state: Duration,
    },
    /// Answered only after it was sent again on a new connection.
    Resent,
}

/// Sends `mute` = `muted` as command `id` until both its reply and the state showing it came.
async fn command(session: &mut Session, id: &str, muted: bool) -> Answer {
    let body = json!({"id": id, "actor": "h", "action": "mute", "muted": muted}).to_string();
    let sent = Instant::now();
    session.publish("cmd", body.clone(), false).await;
    let (mut got_reply, mut got_state) = (None, None);
    let mut resent = false;
    while got_reply.is_none() || got_state.is_none() {
        let Ok(Some((at, topic, v))) = tokio::time::timeout(ANSWER_WITHIN, session.rx.recv()).await
        else {
            eprintln!(
                "bench client: no answer to {id} within {} s (reply seen: {}, state seen: {}); sending it again",
                ANSWER_WITHIN.as_secs(),
                got_reply.is_some(),
                got_state.is_some()
            );
            resent = true;
            session.renew.notify_one();
            tokio::time::sleep(Duration::from_millis(500)).await;
            session.publish("cmd", body.clone(), false).await;
            continue;
        };
        // The retained state a new subscription gets counts as the state seen.
        if topic.ends_with("/reply") && v["id"] == id {
            got_reply = Some(at - sent);
        } else if topic.ends_with("/state") && v["muted"] == muted {
            got_state = Some(at - sent);
        }
    }
    match (resent, got_reply, got_state) {
        (false, Some(reply), Some(state)) => Answer::First { reply, state },
        _ => Answer::Resent,
    }
}

fn report(what: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        println!("  {what}: no command answered on its first sending");
        return;
    }
    samples.sort();
    let pct = |p: f64| {
        samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1000.0
    };
    println!(
        "  {what}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms (goal p99 <= 5 ms)",
        samples.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
}
