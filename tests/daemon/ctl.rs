//! roomrecctl against the real daemon: the demo's commands, their output and exit codes.
use crate::common;

use std::process::Output;

use common::device::{ctl, Client, Device};
use common::Broker;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roomrecctl_drives_the_daemon() {
    let broker = Broker::start();
    let _device = Device::start(&broker, "");
    let mut watcher = Client::connect(&broker).await;
    watcher
        .wait("device online", |m| {
            m.topic.ends_with("/status") && m.json["online"] == true
        })
        .await;
    let meeting = concat!(env!("CARGO_MANIFEST_DIR"), "/demo/meeting.json");

    let out = ctl(
        &broker,
        &["licence", "set", "--valid-until", "2099-01-01T00:00:00Z"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl(&broker, &["meeting", "set", meeting]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    watcher
        .wait_state("demo meeting applied", |s| s["meeting_id"] == "m-demo")
        .await;

    let out = ctl(&broker, &["send", "start", "--as", "alice", "kind=local"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl(&broker, &["send", "start", "--as", "carol", "kind=local"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("forbidden"), "{}", text(&out));

    let out = ctl(&broker, &["--json", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(doc["status"]["online"], true, "{doc}");
    assert_eq!(doc["state"]["views"]["alice"], "local", "{doc}");
}
