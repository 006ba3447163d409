//! The MQTT 5 session of one `roomrecctl` run.
//!
//! Owns: broker URL parsing, TLS and credentials, connecting with a fast failure, and the
//! rumqttc event loop, driven by a background task that forwards packets to the command.
//! Must not know: topics or payloads of the roomrec API (that is `commands`).
//!
//! Unlike a daemon, a CLI must not retry: the first connection error ends the run (exit 4), and
//! a connection lost later does too, because a reconnect would lose our subscriptions.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{
    ConnectProperties, ConnectReturnCode, Filter, Packet, PubAckReason, Publish, PublishProperties,
    SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::{Error as MqttError, QoS};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions, StateError, TlsError};
use rumqttc::{TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{seconds, CtlError};

/// Replies such as `list_recordings` can exceed rumqttc's 10 KiB default incoming limit.
const MAX_INCOMING_BYTES: u32 = 1024 * 1024;

/// Where the broker is: `mqtt://host[:port]` or `mqtts://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(s: &str) -> Result<BrokerUrl, String> {
        let example = "a broker URL like mqtt://127.0.0.1:1883 or mqtts://broker.example:8883";
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} is not {example}"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "unsupported scheme {other:?} in {s:?}; use mqtt:// or mqtts://"
                ))
            }
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            // A password in the URL would be visible to every user in the process list.
            return Err(
                "credentials in the broker URL are not accepted; use --username and --password-file"
                    .into(),
            );
        }
        if authority.contains(['/', '?', '#']) {
            return Err(format!(
                "{s:?} has a path or query; expected only host[:port]"
            ));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let bad_port = |p: &str| format!("port {p:?} in {s:?} is not a number from 1 to 65535");
        let parse_port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad_port(p)),
        };
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            // IPv6 literal: [::1]:1883
            let (host, tail) = inner
                .split_once(']')
                .ok_or_else(|| format!("{s:?} has an unclosed '[' in the host"))?;
            let port = match tail {
                "" => default_port,
                t => parse_port(t.strip_prefix(':').ok_or_else(|| bad_port(t))?)?,
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, p)) => (host, parse_port(p)?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        Ok(BrokerUrl {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// PEM bytes for TLS, already read from the files named on the command line.
#[derive(Clone)]
pub struct TlsFiles {
    pub ca: Vec<u8>,
    /// Client certificate chain and private key, for brokers that require client certificates.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// Everything needed to connect, validated before any network I/O.
#[derive(Clone)]
pub struct ConnectSpec {
    pub url: BrokerUrl,
    pub tls: Option<TlsFiles>,
    pub credentials: Option<(String, String)>,
    /// Bounds the connect, each acknowledgement wait, and (in `commands`) each answer wait.
    pub timeout: Duration,
}

/// What the background event-loop task reports.
enum Note {
    Message(Publish),
    SubAck(Vec<SubscribeReasonCode>),
    PubAck(PubAckReason),
    Lost(String),
}

/// A connected client. Messages that arrive while waiting for an acknowledgement are kept,
/// in order, for the next `next_message`.
pub struct Session {
    client: AsyncClient,
    notes: mpsc::UnboundedReceiver<Note>,
    pending: VecDeque<Publish>,
    driver: JoinHandle<()>,
    url: BrokerUrl,
    timeout: Duration,
}

impl Session {
    /// Connects and waits for the broker's CONNACK; the first error fails the run (exit 4).
    pub async fn connect(spec: &ConnectSpec) -> Result<Session, CtlError> {
        let client_id = format!("roomrecctl-{:08x}", fastrand::u32(..));
        let mut opts = MqttOptions::new(client_id, spec.url.host.clone(), spec.url.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_start(true);
        // rumqttc's connect timeout is whole seconds; our own timeout below is the precise one.
        opts.set_connection_timeout(spec.timeout.as_secs().max(1));
        let mut props = ConnectProperties::new();
        props.max_packet_size = Some(MAX_INCOMING_BYTES);
        opts.set_connect_properties(props);
        if let Some((user, password)) = &spec.credentials {
            opts.set_credentials(user.clone(), password.clone());
        }
        if let Some(tls) = &spec.tls {
            // Err only means a provider is already installed, which is what we want.
            let _ = rustls::crypto::ring::default_provider().install_default();
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: tls.ca.clone(),
                alpn: None,
                client_auth: tls.client.clone(),
            }));
        }

        let (client, mut eventloop) = AsyncClient::new(opts, 16);
        let connected = tokio::time::timeout(spec.timeout, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        let unreachable = |reason: String, hint: &str| CtlError::Unreachable {
            url: spec.url.to_string(),
            reason,
            hint: hint.to_owned(),
        };
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let (reason, hint) = describe_connect_error(&e);
                return Err(unreachable(reason, hint));
            }
            Err(_) => {
                return Err(unreachable(
                    format!("no answer within {}", seconds(spec.timeout)),
                    "is this the MQTT port of the broker?",
                ))
            }
        }

        let (tx, notes) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                let note = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => Note::Message(p),
                    Ok(Event::Incoming(Packet::SubAck(s))) => Note::SubAck(s.return_codes),
                    Ok(Event::Incoming(Packet::PubAck(a))) => Note::PubAck(a.reason),
                    Ok(_) => continue,
                    Err(e) => {
                        // Report and stop: polling again would silently reconnect.
                        let _ = tx.send(Note::Lost(describe_connect_error(&e).0));
                        return;
                    }
                };
                if tx.send(note).is_err() {
                    return;
                }
            }
        });
        Ok(Session {
            client,
            notes,
            pending: VecDeque::new(),
            driver,
            url: spec.url.clone(),
            timeout: spec.timeout,
        })
    }

    /// Subscribes (QoS 1) to all `topics` in one SUBSCRIBE and waits for the broker to accept.
    pub async fn subscribe(&mut self, topics: &[String]) -> Result<(), CtlError> {
        let filters: Vec<Filter> = topics
            .iter()
            .map(|t| Filter::new(t.clone(), QoS::AtLeastOnce))
            .collect();
        self.client
            .subscribe_many(filters)
            .await
            .map_err(|e| self.lost(e.to_string()))?;
        let codes = self
            .wait_ack("subscription", |n| match n {
                Note::SubAck(codes) => Some(codes),
                _ => None,
            })
            .await?;
        for (topic, code) in topics.iter().zip(codes) {
            if !matches!(code, SubscribeReasonCode::Success(_)) {
                return Err(CtlError::Broker(format!(
                    "the MQTT broker at {} refused the subscription to {topic}: {code:?}; \
                     check the broker's access control for this user",
                    self.url
                )));
            }
        }
        Ok(())
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK, so the message is on the broker
    /// (and, when retained, stored) before the run ends.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
        properties: Option<PublishProperties>,
    ) -> Result<(), CtlError> {
        let sent = match properties {
            Some(p) => {
                self.client
                    .publish_with_properties(topic, QoS::AtLeastOnce, retain, payload, p)
                    .await
            }
            None => {
                self.client
                    .publish(topic, QoS::AtLeastOnce, retain, payload)
                    .await
            }
        };
        sent.map_err(|e| self.lost(e.to_string()))?;
        let reason = self
            .wait_ack("publish", |n| match n {
                Note::PubAck(r) => Some(r),
                _ => None,
            })
            .await?;
        match reason {
            // MQTT 5 brokers answer "no matching subscribers" when nobody listens: still stored.
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
            other => Err(CtlError::Broker(format!(
                "the MQTT broker at {} refused the message to {topic}: {other:?}; \
                 check the broker's access control for this user",
                self.url
            ))),
        }
    }

    /// The next message on a subscribed topic, or `None` when `deadline` passes first.
    /// Without a deadline, waits as long as the connection lasts.
    pub async fn next_message(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Publish>, CtlError> {
        if let Some(p) = self.pending.pop_front() {
            return Ok(Some(p));
        }
        loop {
            let note = match deadline {
                Some(d) => match tokio::time::timeout_at(d, self.notes.recv()).await {
                    Ok(n) => n,
                    Err(_) => return Ok(None),
                },
                None => self.notes.recv().await,
            };
            match note {
                Some(Note::Message(p)) => return Ok(Some(p)),
                // Acknowledgements nobody waits for (none are expected here) are dropped.
                Some(Note::SubAck(_)) | Some(Note::PubAck(_)) => {}
                Some(Note::Lost(reason)) => return Err(self.lost(reason)),
                None => return Err(self.lost("the connection task ended".into())),
            }
        }
    }

    /// Disconnects cleanly, so the broker does not log an unexpected disconnect.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        let mut driver = self.driver;
        if tokio::time::timeout(Duration::from_secs(1), &mut driver)
            .await
            .is_err()
        {
            driver.abort();
        }
    }

    async fn wait_ack<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(Note) -> Option<T>,
    ) -> Result<T, CtlError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let note = match tokio::time::timeout_at(deadline, self.notes.recv()).await {
                Ok(n) => n,
                Err(_) => {
                    return Err(CtlError::Broker(format!(
                        "the MQTT broker at {} did not acknowledge the {what} within {}",
                        self.url,
                        seconds(self.timeout)
                    )))
                }
            };
            match note {
                Some(Note::Message(p)) => self.pending.push_back(p),
                Some(Note::Lost(reason)) => return Err(self.lost(reason)),
                None => return Err(self.lost("the connection task ended".into())),
                Some(other) => {
                    if let Some(v) = pick(other) {
                        return Ok(v);
                    }
                }
            }
        }
    }

    fn lost(&self, reason: String) -> CtlError {
        CtlError::Broker(format!(
            "lost the connection to the MQTT broker at {}: {reason}",
            self.url
        ))
    }
}

/// A short reason and a hint for the person at the terminal.
fn describe_connect_error(e: &ConnectionError) -> (String, &'static str) {
    match e {
        ConnectionError::Io(io)
        | ConnectionError::Tls(TlsError::Io(io))
        | ConnectionError::MqttState(StateError::Io(io))
        // With TLS 1.3 the broker rejects a client certificate after the handshake, so it
        // surfaces while reading the CONNACK.
        | ConnectionError::MqttState(StateError::Deserialization(MqttError::Io(io))) => {
            describe_io(io)
        }
        ConnectionError::Tls(t) => (format!("TLS failed ({t})"), TLS_HINT),
        ConnectionError::ConnectionRefused(code)
        | ConnectionError::MqttState(StateError::ConnFail { reason: code }) => {
            let hint = match code {
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                    "check --username and --password-file"
                }
                _ => "check the broker's log",
            };
            (format!("the broker refused the connection ({code:?})"), hint)
        }
        ConnectionError::Timeout(_) => (
            "no answer in time".into(),
            "is this the MQTT port of the broker?",
        ),
        other => (other.to_string(), "check the broker's log"),
    }
}

const TLS_HINT: &str = "check --ca, and that the broker's certificate names this host";

fn describe_io(io: &std::io::Error) -> (String, &'static str) {
    use std::io::ErrorKind;
    if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        let hint = match tls {
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired) => {
                "the broker wants a client certificate: give --cert and --key"
            }
            rustls::Error::AlertReceived(_) => "check --ca, --cert and --key",
            _ => TLS_HINT,
        };
        return (format!("TLS failed ({tls})"), hint);
    }
    match io.kind() {
        ErrorKind::ConnectionRefused => ("connection refused".into(), "is mosquitto running?"),
        ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::ConnectionAborted => (
            "the broker closed the connection".into(),
            "does it expect TLS (mqtts://), a client certificate or other credentials?",
        ),
        _ => (io.to_string(), "check the host name and port"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls() {
        let u = BrokerUrl::parse("mqtt://127.0.0.1:1883").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 1883));
        assert_eq!(u.to_string(), "mqtt://127.0.0.1:1883");
        let u = BrokerUrl::parse("mqtts://broker.local/").unwrap();
        assert_eq!((u.tls, u.port), (true, 8883));
        let u = BrokerUrl::parse("mqtt://[::1]:1884").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1884));
        assert_eq!(u.to_string(), "mqtt://[::1]:1884");
        for (bad, needle) in [
            ("127.0.0.1:1883", "not a broker URL"),
            ("http://x", "unsupported scheme"),
            ("mqtt://u:p@x", "--password-file"),
            ("mqtt://x:0", "port"),
            ("mqtt://x:99999", "port"),
            ("mqtt://:1883", "no host"),
            ("mqtt://x/topic", "path"),
        ] {
            let e = BrokerUrl::parse(bad).expect_err(bad);
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
