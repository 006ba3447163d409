//! The pure rules engine's throughput: commands handled per second (goal ≥ 100 000/s).
//! Prints its figures; run with `cargo bench --bench engine`.

use std::hint::black_box;
use std::time::Instant;

use roomrec::protocol::{Command, Licence, MeetingSnapshot, Timestamp};
use roomrec::rules::{CommandContext, Engine, Input, Now, RulesConfig};

const MEETING: &str = r#"{"version":1,"meeting_id":"m-1","state":"active","creator":"u-1",
  "host":"u-1","cohosts":["u-2"],"participants":["u-1","u-2","u-3","u-4"],"sharing":false,
  "account":{"tier":"business","cloud_quota_bytes":null,"cloud_used_bytes":0}}"#;

/// A realistic mix: starts, pauses, resumes and stops of cloud and local, mutes, status.
const MIX: [&str; 8] = [
    r#"{"actor":"u-1","action":"start","kind":"cloud"}"#,
    r#"{"actor":"u-3","action":"start","kind":"local"}"#,
    r#"{"actor":"u-2","action":"pause"}"#,
    r#"{"actor":"u-2","action":"resume"}"#,
    r#"{"actor":"u-4","action":"status"}"#,
    r#"{"actor":"u-1","action":"mute","muted":false}"#,
    r#"{"actor":"u-3","action":"stop"}"#,
    r#"{"actor":"u-1","action":"stop"}"#,
];

fn main() {
    let n: u64 = std::env::var("ROOMREC_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let commands: Vec<Command> = (0..n)
        .map(|i| {
            let body = MIX[(i % MIX.len() as u64) as usize];
            let json = body.replacen('{', &format!(r#"{{"id":"c-{i}","#), 1);
            Command::decode(json.as_bytes()).expect("bench command decodes")
        })
        .collect();
    let mut engine = Engine::new(RulesConfig::default(), 1);
    let mut now = Now {
        wall: Timestamp(1_800_000_000_000),
        mono_ms: 0,
    };
    let licence = Licence {
        kind: "rooms".into(),
        valid_until: Timestamp(4_000_000_000_000),
    };
    engine.handle(Input::Licence(Some(licence)), now);
    let snapshot = MeetingSnapshot::decode(MEETING.as_bytes()).expect("meeting decodes");
    engine.handle(Input::Meeting(snapshot), now);
    engine.handle(
        Input::Command(
            Command::decode(
                br#"{"id":"p","actor":"u-1","action":"set_local_policy","policy":"all"}"#,
            )
            .expect("policy command"),
            CommandContext::default(),
        ),
        now,
    );

    let start = Instant::now();
    let mut outputs = 0usize;
    for cmd in commands {
        now.mono_ms += 1;
        now.wall.0 += 1;
        outputs +=
            black_box(engine.handle(Input::Command(cmd, CommandContext::default()), now)).len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("engine: {n} commands in {secs:.3} s = {:.0} commands/s ({outputs} outputs; goal >= 100000/s)", n as f64 / secs);
    let decode_start = Instant::now();
    for i in 0..n {
        let body = MIX[(i % MIX.len() as u64) as usize];
        black_box(Command::decode(body.replacen('{', r#"{"id":"d","#, 1).as_bytes()).ok());
    }
    let dsecs = decode_start.elapsed().as_secs_f64();
    println!(
        "decode: {n} commands in {dsecs:.3} s = {:.0} commands/s",
        n as f64 / dsecs
    );
}
