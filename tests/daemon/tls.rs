//! The daemon's broker connection with TLS, a client certificate and a password, against a
//! mosquitto that requires all three; and what it does when the broker cannot be trusted.
use crate::common;

use std::time::Duration;

use common::device::{config_text, Client, Device};
use common::Broker;
use serde_json::json;

struct Secured {
    broker: Broker,
    tls_port: u16,
    certs: tempfile::TempDir,
}

/// mosquitto with an anonymous plain listener (for the test's own client) and a TLS listener
/// requiring a client certificate and the password of user `room-t`.
fn secured_broker() -> Secured {
    let certs = tempfile::tempdir().unwrap();
    common::tls::make_certs(certs.path());
    let passwords = certs.path().join("passwords");
    let made = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["room-t", "pa55-word-not-in-logs"])
        .output()
        .expect("mosquitto_passwd");
    assert!(made.status.success());
    let tls_port = common::free_port();
    let p = |f: &str| certs.path().join(f).display().to_string();
    let broker = Broker::start_per_listener(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
         allow_anonymous false\npassword_file {}\n",
        p("ca.crt"),
        p("server.crt"),
        p("server.key"),
        passwords.display()
    ));
    Secured {
        broker,
        tls_port,
        certs,
    }
}

fn tls_config(s: &Secured, ca: &str, dir: &std::path::Path) -> String {
    let p = |f: &str| s.certs.path().join(f).display().to_string();
    std::fs::write(dir.join("mqtt-password"), "pa55-word-not-in-logs\n").unwrap();
    config_text(s.tls_port, dir, "").replace(
        &format!("url = \"mqtt://127.0.0.1:{}\"", s.tls_port),
        &format!(
            "url = \"mqtts://127.0.0.1:{}\"\nusername = \"room-t\"\npassword_file = \"{}\"\n\
             ca_file = \"{ca}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
            s.tls_port,
            dir.join("mqtt-password").display(),
            p("client.crt"),
            p("client.key")
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_with_tls_client_certificate_and_password() {
    let s = secured_broker();
    let ca = s.certs.path().join("ca.crt").display().to_string();
    let device = Device::start_custom(|dir| tls_config(&s, &ca, dir));
    let mut c = Client::connect(&s.broker).await;
    c.wait("device online over TLS", |m| {
        m.topic.ends_with("/status") && m.json["online"] == true
    })
    .await;
    let r = c.cmd(json!({"actor": "u-1", "action": "status"})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        !device.log().contains("pa55-word-not-in-logs"),
        "no password in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_broker_is_refused_and_the_daemon_keeps_running() {
    let s = secured_broker();
    let other = tempfile::tempdir().unwrap();
    common::tls::make_certs(other.path());
    let wrong_ca = other.path().join("ca.crt").display().to_string();
    let mut device = Device::start_custom(|dir| tls_config(&s, &wrong_ca, dir));
    let mut c = Client::connect(&s.broker).await;
    c.drain_for(Duration::from_secs(3)).await;
    assert!(
        !c.seen.iter().any(|m| m.topic.ends_with("/status")),
        "nothing published through a broker whose certificate we do not trust"
    );
    assert!(device.is_running(), "the daemon keeps running and retrying");
    assert!(
        device.log().contains("TLS"),
        "the log says why: {}",
        device.log()
    );
}
