//! A flood of random and mutated messages against the real daemon on a real broker: 100 000
//! (override with FLOOD_MESSAGES) to the command and meeting topics, from a printed seed
//! (FLOOD_SEED replays one). Mutations of valid commands and snapshots: truncation, byte flips,
//! wrong types, huge strings, deep nesting, unknown actions, duplicate ids, with valid commands
//! interleaved.
//!
//! Asserted: the daemon never exits and keeps answering `status` (checked every 10 000
//! messages and at the end); every message on `<p>/cmd` gets exactly one reply, matched by id
//! (the expected id and error come from decoding the same bytes with `protocol`, which the
//! daemon uses); malformed commands get `bad_request` with the decoder's message; a repeated
//! command id gets the first answer again (spec: `<p>/cmd`); the daemon's resident memory
//! (VmRSS) does not keep growing between the 20 000 mark and the end.
use crate::common;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use common::device::{meeting, Device, PREFIX};
use common::Broker;
use roomrec::protocol::{Command, MAX_PAYLOAD_BYTES};
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Commands sent but not yet answered, at most: keeps every queue (broker, daemon) bounded,
/// so a dropped message would be the daemon's doing, not the broker's queue limit.
const WINDOW: usize = 128;
/// How long the daemon may stay silent before the test calls it hung.
const SILENCE_LIMIT: Duration = Duration::from_secs(120);

/// One reply as the test saw it.
struct Seen {
    id: Option<String>,
    raw: String,
    json: Value,
}

/// What a message on `<p>/cmd` must be answered with, decided by decoding it as the daemon does.
#[derive(Debug)]
enum Expect {
    /// Decoded: the engine answers; a repeated id is answered with the first answer again.
    Command,
    /// Not decoded: `bad_request` with exactly this message.
    BadRequest(String),
}

fn expectation(payload: &[u8]) -> (Option<String>, Expect) {
    match Command::decode(payload) {
        Ok(cmd) => (Some(cmd.id.to_string()), Expect::Command),
        Err(e) => (e.id, Expect::BadRequest(e.message)),
    }
}

async fn client(broker: &Broker, name: &str) -> (AsyncClient, rumqttc::v5::EventLoop) {
    let mut opts = MqttOptions::new(
        format!("flood-{name}-{}", std::process::id()),
        "127.0.0.1",
        broker.port,
    );
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_max_packet_size(Some(8 * 1024 * 1024));
    AsyncClient::new(opts, 256)
}

/// Subscribes to `<p>/reply` and hands every reply on.
async fn reply_listener(broker: &Broker) -> mpsc::UnboundedReceiver<Seen> {
    let (c, mut eventloop) = client(broker, "replies").await;
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut ready = Some(ready_tx);
    let keep = c.clone(); // the event loop stops once every handle is gone
    tokio::spawn(async move {
        let _keep = keep;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let raw = String::from_utf8_lossy(&p.payload).into_owned();
                    let json: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
                    let id = json["id"].as_str().map(str::to_owned);
                    if tx.send(Seen { id, raw, json }).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                // The test sees the channel close and says so; after the test it is just the end.
                Err(_) => return,
            }
        }
    });
    c.subscribe(format!("{PREFIX}/reply"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    ready_rx.await.expect("subscribed");
    rx
}

// ---------------------------------------------------------------------------------------------
// The generator

const ACTORS: &[&str] = &["u-1", "u-2", "u-3", "u-4", "u-9", "admin:ops"];

struct Gen {
    rng: fastrand::Rng,
    n: u64,
    /// Ids of commands sent, for duplicates.
    ids: Vec<String>,
    version: u64,
}

impl Gen {
    fn valid_command(&mut self) -> Value {
        self.n += 1;
        let id = format!("f-{}", self.n);
        let actor = ACTORS[self.rng.usize(..ACTORS.len())];
        let kind = if self.rng.bool() { "cloud" } else { "local" };
        let who = ACTORS[self.rng.usize(..4)];
        let rid = format!("r-{}", self.rng.u32(1..40));
        let mut c = match self.rng.u8(..17) {
            0..=2 => json!({"action": "start", "kind": kind, "silent": self.rng.bool()}),
            3 => json!({"action": "pause", "target": kind}),
            4 => json!({"action": "resume"}),
            5 | 6 => json!({"action": "stop"}),
            7 => json!({"action": "request_cloud"}),
            8 => json!({"action": "approve_cloud", "requester": who}),
            9 => {
                let policy = ["all", "selected", "host_only"][self.rng.usize(..3)];
                json!({"action": "set_local_policy", "policy": policy})
            }
            10 => json!({"action": "allow_local", "participant": who}),
            11 => json!({"action": "forbid_local", "participant": who}),
            12 => json!({"action": "finalize", "recording_id": rid}),
            13 => json!({"action": "share", "recording_id": rid, "shared": self.rng.bool()}),
            14 => json!({"action": "delete", "recording_id": rid}),
            15 => json!({"action": "mute", "muted": self.rng.bool()}),
            _ => json!({"action": "status"}),
        };
        c["id"] = json!(id);
        c["actor"] = json!(actor);
        c
    }

    fn valid_snapshot(&mut self) -> Value {
        self.version += 1;
        let mut m = meeting(self.version);
        if self.rng.u8(..10) == 0 {
            m["meeting_id"] = json!(format!("m-{}", self.rng.u8(1..4)));
        }
        if self.rng.u8(..10) == 0 {
            m["state"] = json!("ended");
        }
        let people: Vec<&str> = ["u-1", "u-2", "u-3", "u-4"]
            .into_iter()
            .filter(|_| self.rng.u8(..5) != 0)
            .collect();
        m["participants"] = json!(people);
        m
    }

    /// A random value of a type the contract does not expect there.
    fn wrong_value(&mut self) -> Value {
        match self.rng.u8(..7) {
            0 => json!(self.rng.i64(..)),
            1 => json!(self.rng.f64() * 1e300),
            2 => json!([1, "two", null]),
            3 => json!({"nested": {"deeper": true}}),
            4 => Value::Null,
            5 => json!(self.rng.bool()),
            _ => json!(""),
        }
    }

    fn huge_string(&mut self) -> String {
        let len = if self.rng.bool() {
            self.rng.usize(100..2_000)
        } else {
            self.rng
                .usize(MAX_PAYLOAD_BYTES..MAX_PAYLOAD_BYTES + 40_000)
        };
        let c = ['x', 'é', '\u{1F600}', '"', '\\', '\u{0}'][self.rng.usize(..6)];
        std::iter::repeat_n(c, len).collect()
    }

    fn mutate_bytes(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        match self.rng.u8(..3) {
            0 => {
                let cut = self.rng.usize(..bytes.len().max(1));
                bytes.truncate(cut);
            }
            1 => {
                for _ in 0..self.rng.usize(1..5) {
                    if bytes.is_empty() {
                        break;
                    }
                    let i = self.rng.usize(..bytes.len());
                    bytes[i] ^= 1 << self.rng.u8(..8);
                }
            }
            _ => {
                let i = self.rng.usize(..=bytes.len());
                let junk: Vec<u8> = (0..self.rng.usize(1..8)).map(|_| self.rng.u8(..)).collect();
                bytes.splice(i..i, junk);
            }
        }
        bytes
    }

    fn mutate_fields(&mut self, mut v: Value) -> Value {
        let keys: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        match self.rng.u8(..5) {
            0 if !keys.is_empty() => {
                let k = &keys[self.rng.usize(..keys.len())];
                v[k] = self.wrong_value();
            }
            1 if !keys.is_empty() => {
                let k = keys[self.rng.usize(..keys.len())].clone();
                v.as_object_mut().unwrap().remove(&k);
            }
            2 if !keys.is_empty() => {
                let k = &keys[self.rng.usize(..keys.len())];
                v[k] = json!(self.huge_string());
            }
            3 => {
                let action = ["fly", "START", "start ", "", "list", "rm -rf"][self.rng.usize(..6)];
                v["action"] = json!(action);
            }
            _ => v["extra"] = json!({"unknown": [1, 2, 3]}),
        }
        v
    }

    fn deep_nesting(&mut self, id: &str) -> Vec<u8> {
        let depth = self.rng.usize(100..5_000);
        let (open, close) = if self.rng.bool() {
            ("[", "]")
        } else {
            ("{\"a\":", "}")
        };
        format!(
            r#"{{"id":"{id}","actor":"u-1","action":"status","x":{}1{}}}"#,
            open.repeat(depth),
            close.repeat(depth)
        )
        .into_bytes()
    }

    /// The next message: (topic suffix, payload).
    fn next(&mut self) -> (&'static str, Vec<u8>) {
        let roll = self.rng.u8(..100);
        if roll < 10 {
            let snap = self.valid_snapshot();
            let bytes = match self.rng.u8(..4) {
                0 => serde_json::to_vec(&snap).unwrap(),
                1 => serde_json::to_vec(&self.mutate_fields(snap)).unwrap(),
                2 => json!({"version": self.version, "meeting_id": self.wrong_value()})
                    .to_string()
                    .into_bytes(),
                _ => {
                    let b = serde_json::to_vec(&snap).unwrap();
                    self.mutate_bytes(b)
                }
            };
            return ("meeting", bytes);
        }
        let payload = match roll {
            10..=39 => serde_json::to_vec(&self.valid_command()).unwrap(),
            40..=54 => {
                let c = self.valid_command();
                self.mutate_bytes(serde_json::to_vec(&c).unwrap())
            }
            55..=74 => {
                let c = self.valid_command();
                serde_json::to_vec(&self.mutate_fields(c)).unwrap()
            }
            75..=79 => {
                self.n += 1;
                let id = format!("f-{}", self.n);
                self.deep_nesting(&id)
            }
            80..=89 if !self.ids.is_empty() => {
                // A duplicate id: the same command again, or another command reusing the id.
                let id = self.ids[self.rng.usize(..self.ids.len())].clone();
                let mut c = self.valid_command();
                c["id"] = json!(id);
                serde_json::to_vec(&c).unwrap()
            }
            _ => {
                let len = self.rng.usize(..200);
                (0..len).map(|_| self.rng.u8(..)).collect()
            }
        };
        if let Ok(cmd) = Command::decode(&payload) {
            if self.ids.len() < 10_000 {
                self.ids.push(cmd.id.to_string());
            } else {
                let i = self.rng.usize(..self.ids.len());
                self.ids[i] = cmd.id.to_string();
            }
        }
        ("cmd", payload)
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

// ---------------------------------------------------------------------------------------------
// The checks

#[derive(Default)]
struct Tally {
    /// Per id, what its sends must be answered with, in order.
    expected: HashMap<Option<String>, VecDeque<Expect>>,
    /// The first answer to each decoded command id.
    first: HashMap<String, String>,
    sent: u64,
    answered: u64,
    bad_requests: u64,
    ok: u64,
    refused: u64,
    repeats: u64,
}

impl Tally {
    fn sent(&mut self, payload: &[u8]) {
        let (id, expect) = expectation(payload);
        self.expected.entry(id).or_default().push_back(expect);
        self.sent += 1;
    }

    fn check(&mut self, seen: Seen) {
        if seen
            .id
            .as_deref()
            .is_some_and(|id| id.starts_with("hello-"))
        {
            return; // a late answer to a probe sent before the flood
        }
        self.answered += 1;
        let queue = self.expected.get_mut(&seen.id);
        let expect = queue.and_then(|q| q.pop_front()).unwrap_or_else(|| {
            panic!(
                "a reply nobody is waiting for (id {:?}): {}",
                seen.id, seen.raw
            )
        });
        match expect {
            Expect::BadRequest(message) => {
                self.bad_requests += 1;
                assert_eq!(seen.json["ok"], false, "{}", seen.raw);
                assert_eq!(seen.json["error"]["code"], "bad_request", "{}", seen.raw);
                assert_eq!(
                    seen.json["error"]["message"],
                    message.as_str(),
                    "{}",
                    seen.raw
                );
            }
            Expect::Command => {
                let id = seen.id.clone().expect("decoded commands have ids");
                assert_ne!(seen.json["error"]["code"], "bad_request", "{}", seen.raw);
                if seen.json["ok"] == true {
                    self.ok += 1;
                    assert!(
                        seen.json["state"].is_object(),
                        "ok without state: {}",
                        seen.raw
                    );
                } else {
                    self.refused += 1;
                    assert!(seen.json["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()));
                }
                // A signature refusal (unsigned or badly signed admin command) does not claim
                // the id, so a forged message cannot fix the answer a real one will get.
                if seen.json["error"]["reason"].is_string() {
                    return;
                }
                match self.first.get(&id) {
                    Some(first) => {
                        self.repeats += 1;
                        assert_eq!(&seen.raw, first, "a repeated id gets the first answer");
                    }
                    None => {
                        self.first.insert(id, seen.raw);
                    }
                }
            }
        }
    }

    fn outstanding(&self) -> u64 {
        self.sent - self.answered
    }
}

async fn wait_replies(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    tally: &mut Tally,
    down_to: u64,
    device: &Device,
) {
    while tally.outstanding() > down_to {
        match tokio::time::timeout(SILENCE_LIMIT, rx.recv()).await {
            Ok(Some(seen)) => tally.check(seen),
            Ok(None) => panic!("reply listener stopped"),
            Err(_) => panic!(
                "no reply for {SILENCE_LIMIT:?} with {} commands unanswered: the daemon hangs or \
                 drops commands; its log ends:\n{}",
                tally.outstanding(),
                tail(&device.log())
            ),
        }
    }
}

/// Sends `status` and waits for its ok answer.
async fn status(
    publisher: &AsyncClient,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    tally: &mut Tally,
    n: u64,
    device: &Device,
) {
    let payload =
        json!({"id": format!("alive-{n}"), "actor": "u-3", "action": "status"}).to_string();
    tally.sent(payload.as_bytes());
    publisher
        .publish(format!("{PREFIX}/cmd"), QoS::AtLeastOnce, false, payload)
        .await
        .expect("publish");
    wait_replies(rx, tally, 0, device).await;
    let answer = &tally.first[&format!("alive-{n}")];
    let v: Value = serde_json::from_str(answer).unwrap();
    assert_eq!(v["ok"], true, "status answered: {answer}");
}

/// Waits until the daemon is subscribed: it answers a `status` (probes sent before its
/// subscription are lost, the session being clean). Late answers to probes are dropped.
async fn ready(
    publisher: &AsyncClient,
    replies: &mut mpsc::UnboundedReceiver<Seen>,
    device: &mut Device,
) {
    let mut n = 0;
    loop {
        n += 1;
        let payload = json!({"id": format!("hello-{n}"), "actor": "u-1", "action": "status"});
        publisher
            .publish(
                format!("{PREFIX}/cmd"),
                QoS::AtLeastOnce,
                false,
                payload.to_string(),
            )
            .await
            .unwrap();
        if let Ok(Some(seen)) = tokio::time::timeout(Duration::from_secs(1), replies.recv()).await {
            assert!(
                seen.id.is_some_and(|id| id.starts_with("hello-")),
                "{}",
                seen.raw
            );
            break;
        }
        assert!(
            device.is_running(),
            "roomrecd exited at start:\n{}",
            device.log()
        );
        assert!(n < 60, "roomrecd never answered:\n{}", device.log());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    while replies.try_recv().is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_and_mutated_messages_is_answered_one_for_one_in_flat_memory() {
    let total: u64 = std::env::var("FLOOD_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("FLOOD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_123);
    println!("flood: {total} messages, seed {seed} (FLOOD_SEED={seed} replays it)");

    let broker = Broker::start_with("max_queued_messages 100000\n");
    let mut device = Device::start(&broker, "");
    let mut replies = reply_listener(&broker).await;
    let (publisher, mut eventloop) = client(&broker, "sender").await;
    tokio::spawn(async move {
        loop {
            // A lost broker fails the next publish in the test.
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    });
    let pid = device.pid();
    let mut tally = Tally::default();
    let mut gen = Gen {
        rng: fastrand::Rng::with_seed(seed),
        n: 0,
        ids: Vec::new(),
        version: 10,
    };
    publisher
        .publish(
            format!("{PREFIX}/licence"),
            QoS::AtLeastOnce,
            true,
            json!({"kind": "rooms", "valid_until": "2099-01-01T00:00:00Z"}).to_string(),
        )
        .await
        .unwrap();
    publisher
        .publish(
            format!("{PREFIX}/meeting"),
            QoS::AtLeastOnce,
            true,
            meeting(10).to_string(),
        )
        .await
        .unwrap();
    ready(&publisher, &mut replies, &mut device).await;

    let start = Instant::now();
    let mut rss = Vec::new();
    let mut rss_at_20k = None;
    let mut meetings = 0u64;
    let mut bytes = 0u64;
    for i in 1..=total {
        let (topic, payload) = gen.next();
        bytes += payload.len() as u64;
        if topic == "cmd" {
            wait_replies(&mut replies, &mut tally, WINDOW as u64 - 1, &device).await;
            tally.sent(&payload);
        } else {
            meetings += 1;
        }
        // Snapshots are retained as the meeting service sends them, now and then.
        let retain = topic == "meeting" && gen.rng.u8(..4) == 0;
        publisher
            .publish(
                format!("{PREFIX}/{topic}"),
                QoS::AtLeastOnce,
                retain,
                payload,
            )
            .await
            .expect("publish");
        if i % 1_000 == 0 {
            rss.push((i, vm_rss_kib(pid)));
        }
        if i % 10_000 == 0 {
            assert!(
                device.is_running(),
                "roomrecd exited after {i} messages:\n{}",
                tail(&device.log())
            );
            status(&publisher, &mut replies, &mut tally, i, &device).await;
            let at = vm_rss_kib(pid);
            if i == 20_000 {
                rss_at_20k = Some(at);
            }
            let s = start.elapsed().as_secs_f64();
            println!(
                "flood: {i} messages in {s:.1} s ({:.0} msg/s), VmRSS {at} KiB",
                i as f64 / s
            );
        }
    }
    wait_replies(&mut replies, &mut tally, 0, &device).await;
    status(&publisher, &mut replies, &mut tally, total + 1, &device).await;
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        device.is_running(),
        "roomrecd exited:\n{}",
        tail(&device.log())
    );
    let end = vm_rss_kib(pid);

    println!(
        "flood: {total} messages ({} commands, {meetings} snapshots, {:.1} MB) in {elapsed:.1} s: \
         {:.0} msg/s, {:.0} replies/s",
        tally.sent,
        bytes as f64 / 1e6,
        total as f64 / elapsed,
        tally.answered as f64 / elapsed
    );
    println!(
        "flood: replies: {} ok, {} refused by the rules, {} bad_request, {} repeated ids",
        tally.ok, tally.refused, tally.bad_requests, tally.repeats
    );
    let samples: Vec<String> = rss
        .iter()
        .step_by(10)
        .map(|(i, kib)| format!("{}k:{}", i / 1000, kib / 1024))
        .collect();
    println!("flood: VmRSS MiB by messages sent: {}", samples.join(" "));

    // Every command was answered exactly once: nothing left expected, nothing extra arrived.
    assert_eq!(tally.answered, tally.sent);
    let left: Vec<_> = tally
        .expected
        .iter()
        .filter(|(_, q)| !q.is_empty())
        .collect();
    assert!(left.is_empty(), "unanswered: {left:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Ok(extra) = replies.try_recv() {
        panic!("a reply beyond one per command: {}", extra.raw);
    }
    assert!(tally.ok > 0 && tally.refused > 0 && tally.bad_requests > 0 && tally.repeats > 0);

    // Memory stays flat once warmed up: generous, since allocators keep freed pages.
    if let Some(at_20k) = rss_at_20k {
        println!("flood: VmRSS at 20k messages {at_20k} KiB, at the end {end} KiB");
        let bound = at_20k + at_20k / 2 + 32 * 1024;
        assert!(
            end <= bound,
            "VmRSS grew from {at_20k} KiB at 20k messages to {end} KiB at {total} (bound {bound} KiB)"
        );
    }
    drop(broker);
}

/// The last lines of the daemon's log, and its last warnings other than the expected ones.
/// A burst with no window at all: thousands of commands queued at once, each changing the
/// state (so the core has a reply and a state to publish per command). Before control stopped
/// waiting on its own request queue and on the core, this left the daemon silent for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_commands_sent_without_waiting_is_answered_one_for_one() {
    const BURST: u64 = 3_000;
    let broker = Broker::start_with("max_queued_messages 100000\n");
    let mut device = Device::start(&broker, "");
    let mut replies = reply_listener(&broker).await;
    let (publisher, mut eventloop) = client(&broker, "burst").await;
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    ready(&publisher, &mut replies, &mut device).await;
    publisher
        .publish(
            format!("{PREFIX}/meeting"),
            QoS::AtLeastOnce,
            true,
            meeting(10).to_string(),
        )
        .await
        .unwrap();
    let mut tally = Tally::default();
    status(&publisher, &mut replies, &mut tally, 0, &device).await;
    for i in 0..BURST {
        let muted = i % 2 == 0;
        let payload =
            json!({"id": format!("b-{i}"), "actor": "u-1", "action": "mute", "muted": muted});
        let payload = payload.to_string();
        tally.sent(payload.as_bytes());
        publisher
            .publish(format!("{PREFIX}/cmd"), QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }
    wait_replies(&mut replies, &mut tally, 0, &device).await;
    assert_eq!(tally.answered, BURST + 1);
    assert_eq!(tally.ok, BURST + 1, "every mute and the status are ok");
    status(&publisher, &mut replies, &mut tally, 1, &device).await;
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let warnings: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .filter(|l| !l.contains("malformed command") && !l.contains("meeting snapshot"))
        .collect();
    format!(
        "{}\n-- last warnings --\n{}",
        lines[lines.len().saturating_sub(30)..].join("\n"),
        warnings[warnings.len().saturating_sub(20)..].join("\n")
    )
}
