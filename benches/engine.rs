//! The pure rules engine's throughput: commands handled per second (goal ≥ 100 000/s).
//! Prints its figures; run with `cargo bench --bench engine`.

use std::hint::black_box;
use std::time::Instant;

use roomrec::protocol::{Command, Licence, MeetingSnapshot, Timestamp};
use roomrec::rules::{CommandContext, Engine, Input, Now, RulesConfig};

const MEETING: &str = r#"{"version":1,"meeting_id":"m-1","state":"active","creator":"u-1",
  "host":"u-1","cohosts":["u-2"],"participants":["u-1","u-2","u-3","u-4"],"sharing":false,
  "account":{"tier":"business","cloud_quota_bytes":null,"cloud_used_bytes":0}}"#;

/// A meeting's steady traffic around a live cloud and a live local recording: pauses,
/// resumes, mutes and status requests.
const MIX: [&str; 8] = [
    r#"{"actor":"u-2","action":"pause","target":"cloud"}"#,
    r#"{"actor":"u-2","action":"resume","target":"cloud"}"#,
    r#"{"actor":"u-3","action":"pause"}"#,
    r#"{"actor":"u-3","action":"resume"}"#,
    r#"{"actor":"u-4","action":"status"}"#,
    r#"{"actor":"u-1","action":"mute","muted":true}"#,
    r#"{"actor":"u-1","action":"mute","muted":false}"#,
    r#"{"actor":"u-1","action":"start","kind":"cloud"}"#,
];

fn cmd(i: u64, body: &str) -> Command {
    let json = body.replacen('{', &format!(r#"{{"id":"c-{i}","#), 1);
    Command::decode(json.as_bytes()).expect("bench command decodes")
}

struct Bench {
    engine: Engine,
    now: Now,
    seq: u64,
}

impl Bench {
    fn new() -> Bench {
        let now = Now {
            wall: Timestamp(1_800_000_000_000),
            mono_ms: 0,
        };
        let mut b = Bench {
            engine: Engine::new(RulesConfig::default(), 1),
            now,
            seq: 0,
        };
        let licence = Licence {
            kind: "rooms".into(),
            valid_until: Timestamp(4_000_000_000_000),
        };
        b.engine.handle(Input::Licence(Some(licence)), now);
        let snapshot = MeetingSnapshot::decode(MEETING.as_bytes()).expect("meeting decodes");
        b.engine.handle(Input::Meeting(snapshot), now);
        b.send(r#"{"actor":"u-1","action":"set_local_policy","policy":"all"}"#);
        b
    }

    fn send(&mut self, body: &str) -> usize {
        self.seq += 1;
        self.now.mono_ms += 1;
        self.now.wall.0 += 1;
        let c = cmd(self.seq, body);
        self.engine
            .handle(Input::Command(c, CommandContext::default()), self.now)
            .len()
    }

    /// Earlier recordings of the same meeting: started, run 11 s, stopped.
    fn add_history(&mut self, recordings: u64) {
        for _ in 0..recordings {
            self.send(r#"{"actor":"u-4","action":"start","kind":"local"}"#);
            self.now.mono_ms += 11_000;
            self.send(r#"{"actor":"u-4","action":"stop"}"#);
        }
    }

    /// Commands per second over `n` commands of the steady mix.
    fn run(&mut self, n: u64) -> f64 {
        self.send(r#"{"actor":"u-1","action":"start","kind":"cloud"}"#);
        self.send(r#"{"actor":"u-3","action":"start","kind":"local"}"#);
        let commands: Vec<Command> = (0..n)
            .map(|i| cmd(1_000_000 + i, MIX[(i % MIX.len() as u64) as usize]))
            .collect();
        let start = Instant::now();
        for c in commands {
            self.now.mono_ms += 1;
            self.now.wall.0 += 1;
            let out = self
                .engine
                .handle(Input::Command(c, CommandContext::default()), self.now);
            black_box(out);
        }
        n as f64 / start.elapsed().as_secs_f64()
    }
}

fn main() {
    let n: u64 = std::env::var("ROOMREC_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    for history in [0, 100, 1000] {
        let mut bench = Bench::new();
        bench.add_history(history);
        let rate = bench.run(n);
        println!(
            "engine: {rate:.0} commands/s with {history} earlier recordings in the meeting ({n} commands; goal >= 100000/s)"
        );
    }
    let start = Instant::now();
    for i in 0..n {
        black_box(cmd(i, MIX[(i % MIX.len() as u64) as usize]));
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("decode: {rate:.0} commands/s (JSON to a typed command)");
}
