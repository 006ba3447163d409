//! The systemd watchdog watches (issue 13, item 4). The real roomrecd, told by `NOTIFY_SOCKET`
//! and `WATCHDOG_USEC` (as systemd tells it) where to ping, sends `WATCHDOG=1` while its core
//! loop turns and capture makes progress, through segment cuts. When the capture pipeline
//! freezes (the test-only fault trigger of the `fault-injection` feature), the pings stop
//! while the process and its core keep running; what systemd then does (SIGABRT once
//! `WatchdogSec` passed without a ping, then a new start) recovers the recording: the cloud
//! recording resumes, the local one is `needs_finalize` (L5), nothing sealed is lost.
use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::device::{assert_segments_play, config_text, Client, Device, UPLOAD};
use common::{wait_until, Broker};
use serde_json::json;
use tokio::net::UnixDatagram;

/// `WATCHDOG_USEC` for the daemon: 6 s, so its stall threshold is the minimum, 5 s
/// (`daemon::watchdog::MIN_STALL`), and a window of 8 s without a ping is one in which
/// systemd would have killed it.
const WATCHDOG_USEC: &str = "6000000";
const SYSTEMD_WOULD_KILL_AFTER: Duration = Duration::from_secs(8);
/// The trigger file of `roomrec::media::fault`.
const STALL_FILE: &str = roomrec::media::fault::STALL_FILE;

/// The socket systemd would own: every datagram the daemon sends, in order.
struct NotifySocket {
    sock: UnixDatagram,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        NotifySocket {
            sock: UnixDatagram::bind(path).expect("bind the notify socket"),
        }
    }

    /// The lines of the datagrams that arrive within `d`, or until `done` holds for them.
    async fn receive(&self, d: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + d;
        let mut lines = Vec::new();
        let mut buf = [0u8; 4096];
        while !done(&lines) {
            match tokio::time::timeout_at(deadline, self.sock.recv(&mut buf)).await {
                Ok(Ok(n)) => lines.extend(lines_of(&buf[..n])),
                _ => break,
            }
        }
        lines
    }

    /// The lines of every datagram that arrives within `d`.
    async fn collect_for(&self, d: Duration) -> Vec<String> {
        self.receive(d, |_| false).await
    }

    /// Waits (up to 30 s) for the line `want`.
    async fn wait_for(&self, want: &str) {
        let within = Duration::from_secs(30);
        let lines = self
            .receive(within, |lines| lines.iter().any(|l| l == want))
            .await;
        assert!(
            lines.iter().any(|l| l == want),
            "no {want} within {within:?}; got {lines:?}"
        );
    }

    /// Discards what is already queued, without waiting.
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        while self.sock.try_recv(&mut buf).is_ok() {}
    }
}

fn lines_of(datagram: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(datagram)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn pings(lines: &[String]) -> usize {
    lines.iter().filter(|l| *l == "WATCHDOG=1").count()
}

/// A roomrecd (config `extra`, run through `wrapper` if not empty) that notifies the
/// returned socket with `WATCHDOG_USEC` set, as under systemd; returned once it is ready.
async fn watched_device(broker: &Broker, extra: &str, wrapper: &[&str]) -> (Device, NotifySocket) {
    let port = broker.port;
    let mut device = Device::prepare(|dir| config_text(port, dir, extra));
    let socket_path = device.dir.path().join("notify.sock");
    let notify = NotifySocket::bind(&socket_path);
    device
        .env
        .push(("NOTIFY_SOCKET".into(), socket_path.display().to_string()));
    device
        .env
        .push(("WATCHDOG_USEC".into(), WATCHDOG_USEC.into()));
    device.wrapper = wrapper.iter().map(|a| a.to_string()).collect();
    device.spawn();
    notify.wait_for("READY=1").await;
    (device, notify)
}

/// Over a window in which systemd would have killed a silent daemon, the pings go on and no
/// stall is logged; returns how many pings came.
async fn assert_pings_go_on(device: &Device, notify: &NotifySocket, while_: &str) -> usize {
    notify.drain();
    let log_from = device.log().len();
    let lines = notify.collect_for(SYSTEMD_WOULD_KILL_AFTER).await;
    assert!(pings(&lines) >= 3, "pings while {while_}: {lines:?}");
    let log = device.log();
    assert!(
        !log[log_from..].contains("capture stalled"),
        "a stall seen while {while_}:\n{log}"
    );
    pings(&lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pipeline_stops_the_pings_and_a_restart_recovers_the_recording() {
    let broker = Broker::start();
    // No core file from the SIGABRT below.
    let no_core = ["sh", "-c", "ulimit -c 0; exec \"$@\"", "sh"];
    let (mut device, notify) = watched_device(&broker, UPLOAD, &no_core).await;

    // The co-host records to the cloud, the host locally (one person cannot do both).
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    let cloud = c.start_recording("u-2", "cloud").await;
    let local = c.start_recording("u-1", "local").await;
    c.wait_state("2 s of cloud media", |s| {
        s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= 2000
    })
    .await;

    // Recording, through a cut a second (1 s segments): the pings go on.
    let healthy = assert_pings_go_on(&device, &notify, "recording through segment cuts").await;

    // Freeze the pipeline.
    let trigger = device.storage().join(STALL_FILE);
    std::fs::write(&trigger, b"").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || device
            .log()
            .contains("the capture pipeline is frozen")),
        "the fault trigger was not taken:\n{}",
        device.log()
    );
    assert!(!trigger.exists(), "the trigger is consumed, once");
    assert!(
        wait_until(Duration::from_secs(30), || device
            .log()
            .contains("capture stalled")),
        "no stall seen after the freeze:\n{}",
        device.log()
    );
    // Every ping sent before the stall was seen is queued by now: from here on, none.
    notify.drain();
    let stalled = notify.collect_for(SYSTEMD_WOULD_KILL_AFTER).await;
    assert_eq!(
        pings(&stalled),
        0,
        "pings during the stall (systemd would never restart it): {stalled:?}"
    );
    assert!(device.is_running(), "the stalled daemon keeps running");
    eprintln!(
        "WATCHDOG=1 in {SYSTEMD_WOULD_KILL_AFTER:?}: {healthy} recording, {} stalled",
        pings(&stalled)
    );
    // Its core still turns and answers: only the media check holds the pings back.
    let status = c
        .cmd(json!({"actor": "admin:ops", "action": "status"}))
        .await;
    assert_eq!(status["ok"], true, "{status}");

    // What systemd does once WatchdogSec passed without a ping: SIGABRT, then a new start.
    let pid = device.pid().to_string();
    assert!(Command::new("kill")
        .args(["-ABRT", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        wait_until(Duration::from_secs(15), || !device.is_running()),
        "SIGABRT did not end the daemon"
    );
    device.kill9(); // reaps it
    let sealed = assert_segments_play(&device);
    assert!(sealed >= 2, "segments sealed before the stall: {sealed}");
    let log_before_restart = device.log().len();
    c.restart(&mut device).await;
    notify.wait_for("READY=1").await;

    // L5: the local recording was interrupted; the cloud one waits, paused, to be resumed.
    let r = c
        .cmd(json!({"actor": "admin:ops", "action": "list_recordings"}))
        .await;
    let state_of = |id: &str| {
        r["recordings"]
            .as_array()
            .and_then(|rs| rs.iter().find(|x| x["recording_id"] == id))
            .map(|x| x["state"].clone())
    };
    assert_eq!(state_of(&local), Some(json!("needs_finalize")), "{r}");
    let paused = c
        .wait_state("the cloud recording restored, paused", |s| {
            s["cloud"]["state"] == "paused"
        })
        .await;
    assert_eq!(paused["cloud"]["recording_id"], cloud.as_str(), "{paused}");
    let before = paused["cloud"]["recorded_ms"].as_u64().unwrap_or(0);
    let resumed = c
        .cmd(json!({"actor": "u-2", "action": "resume", "target": "cloud"}))
        .await;
    assert_eq!(resumed["ok"], true, "{resumed}");
    c.wait_state("the cloud recording goes on", |s| {
        s["cloud"]["state"] == "recording"
            && s["cloud"]["recorded_ms"].as_u64().unwrap_or(0) >= before + 3000
    })
    .await;

    // The restarted daemon's pipeline is not frozen, and it pings while it records.
    let after_restart = device.log()[log_before_restart..].to_owned();
    assert!(
        !after_restart.contains("the capture pipeline is frozen"),
        "{after_restart}"
    );
    let recovered = assert_pings_go_on(&device, &notify, "recording after the restart").await;
    eprintln!("WATCHDOG=1 in {SYSTEMD_WOULD_KILL_AFTER:?} after the restart: {recovered}");
    assert_eq!(device.stop(), Some(0), "log:\n{}", device.log());
    let after = assert_segments_play(&device);
    assert!(
        after > sealed,
        "new segments after the restart: {after} <= {sealed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_paused_devices_ping_and_the_trigger_waits_for_capture() {
    let broker = Broker::start();
    let (mut device, notify) = watched_device(&broker, "", &[]).await;

    // Idle: nothing captures, so there is no media requirement; the trigger is not taken.
    let trigger = device.storage().join(STALL_FILE);
    std::fs::write(&trigger, b"").unwrap();
    assert_pings_go_on(&device, &notify, "idle").await;
    assert!(trigger.exists(), "no capture, nothing to freeze");
    std::fs::remove_file(&trigger).unwrap();

    // Paused: capture stops, the pings go on past the stall threshold.
    let mut c = Client::connect(&broker).await;
    c.join_meeting().await;
    c.start_recording("u-1", "local").await;
    c.wait_state("1 s recorded", |s| {
        s["local"][0]["recorded_ms"].as_u64().unwrap_or(0) >= 1000
    })
    .await;
    let r = c.cmd(json!({"actor": "u-1", "action": "pause"})).await;
    assert_eq!(r["ok"], true, "{r}");
    c.wait_state("paused", |s| s["local"][0]["state"] == "paused")
        .await;
    assert_pings_go_on(&device, &notify, "paused").await;
    assert_eq!(device.stop(), Some(0), "log:\n{}", device.log());
}
