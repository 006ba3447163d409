//! control: the device's MQTT 5 session (`docs/api.md`).
//!
//! Owns: the broker connection (TLS, credentials, last will, reconnect with backoff), the
//! subscriptions, decoding of inbound payloads into typed `Inbound` messages, and publishing
//! `Outbound` messages, including MQTT 5 response topics with their correlation data. Commands
//! and snapshots are handed on with their `Envelope` (exact topic, payload bytes and
//! `roomrec-sig` properties) so the core can check signatures (`crate::auth`) on what was
//! really received.
//! Must not touch: the rules, the catalog, media. It never decides anything: bad payloads are
//! decoded into errors and handed on, so that the one reply per command comes from the core.
//!
//! Delivery: rumqttc does not say which publish a PUBACK belongs to across reconnects, so the
//! session is clean (`clean_start`) and acknowledgements are matched to publishes only within
//! one connection (publishes leave in the order they were requested). Whatever was not
//! acknowledged when a connection drops is the core's to publish again (it keeps an outbox in
//! the catalog), and retained state and status are republished on every connect.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::auth::SIGNATURE_PROPERTY;
use crate::protocol::{Command, DecodeError, Licence, MeetingSnapshot, MAX_PAYLOAD_BYTES};
use crate::retry::Backoff;

/// Where the CA bundle lives when TLS is on and no `mqtt.ca_file` is configured.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const RESPONSE_TOPIC_MAX: usize = 256;
/// Messages from the core held here while rumqttc's request queue is full; past this many,
/// control stops taking more from the core until the broker has acknowledged some.
const PENDING_MAX: usize = 256;

/// The MQTT session's settings; build them with [`ControlSettings::from_config`].
#[derive(Clone, Debug)]
pub struct ControlSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub client_id: String,
    pub prefix: String,
    pub keep_alive: Duration,
    pub reconnect_max: Duration,
    pub username: Option<String>,
    /// Never logged; the `Debug` of this struct is only used in tests.
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl ControlSettings {
    /// The session `[mqtt]` describes. The password is the config's, which already read
    /// `password_file` when it was loaded (and refused it if unreadable).
    pub fn from_config(config: &crate::config::Config) -> ControlSettings {
        let m = &config.mqtt;
        ControlSettings {
            host: m.host.clone(),
            port: m.port,
            tls: m.tls,
            client_id: m.client_id.clone(),
            prefix: config.topic_prefix(),
            keep_alive: m.keep_alive,
            reconnect_max: m.reconnect_max,
            username: m.username.clone(),
            password: m.password.as_ref().map(|p| p.expose().to_owned()),
            ca_file: m.ca_file.clone(),
            client_cert: m
                .client_auth
                .as_ref()
                .map(|a| (a.cert_file.clone(), a.key_file.clone())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot read TLS file {path}: {source}; check mqtt.ca_file / client_cert_file / client_key_file")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a reply must also go: the request's MQTT 5 response topic and correlation data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseAddr {
    pub topic: String,
    pub correlation: Option<Bytes>,
}

/// A message as it arrived, for signature checks (`crate::auth`): the signature covers the
/// exact topic and payload bytes, so they are handed on untouched.
#[derive(Clone, Debug, Default)]
pub struct Envelope {
    pub topic: String,
    pub payload: Bytes,
    /// Every `roomrec-sig` user property, in order (more than one is refused by auth).
    pub signatures: Vec<String>,
}

/// What the broker delivered, decoded.
#[derive(Debug)]
pub enum Inbound {
    Meeting {
        snapshot: Result<MeetingSnapshot, String>,
        envelope: Envelope,
    },
    Licence(Result<Option<Licence>, String>),
    Command {
        command: Result<Command, DecodeError>,
        respond_to: Option<ResponseAddr>,
        envelope: Envelope,
    },
    /// A session is up (subscriptions sent): republish retained state and the outbox.
    Connected,
    Disconnected {
        reason: String,
    },
    /// The broker acknowledged the outbox message with this id.
    Delivered(i64),
}

/// The topics the device publishes on, below its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    Reply,
    State,
    Events,
    Status,
    Levels,
    Preview,
}

impl Topic {
    pub fn suffix(self) -> &'static str {
        match self {
            Topic::Reply => "reply",
            Topic::State => "state",
            Topic::Events => "events",
            Topic::Status => "status",
            Topic::Levels => "levels",
            Topic::Preview => "preview",
        }
    }

    /// QoS 1 everywhere but `levels` and `preview`: a meter reading is stale within a
    /// second and a picture within a few, so a lost one is not sent again (nor kept in the
    /// outbox).
    fn qos(self) -> QoS {
        match self {
            Topic::Levels | Topic::Preview => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Destination {
    Device(Topic),
    /// An MQTT 5 response topic named by a request.
    Response(ResponseAddr),
}

#[derive(Clone, Debug)]
pub struct Outbound {
    pub to: Destination,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// Set for messages kept in the catalog's outbox until the broker acknowledges them.
    pub outbox_id: Option<i64>,
}

impl Outbound {
    pub fn device(topic: Topic, payload: Vec<u8>, retain: bool) -> Outbound {
        Outbound {
            to: Destination::Device(topic),
            payload,
            retain,
            outbox_id: None,
        }
    }
}

/// Runs the MQTT session until `cancel` fires; then publishes `farewell` (the retained
/// offline status, since a clean disconnect does not fire the last will) and disconnects.
pub async fn run(
    settings: ControlSettings,
    inbound: mpsc::Sender<Inbound>,
    outbound: mpsc::Receiver<Outbound>,
    farewell: Vec<u8>,
    cancel: CancellationToken,
) -> Result<(), ControlError> {
    let options = mqtt_options(&settings, &farewell)?;
    let (client, mut eventloop) = AsyncClient::new(options.clone(), 64);
    let mut session = Session::new(settings, client, inbound, outbound);
    // Never wait on rumqttc's request queue without polling its event loop (only polling
    // drains it), nor on the core while the core may be waiting on control: under a burst of
    // commands either wait used to stop the session for good (found by the flood test).
    loop {
        session.flush();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(msg) = session.outbound.recv(), if session.pending.len() < PENDING_MAX => {
                session.pending.push_back(msg);
            }
            event = eventloop.poll() => match event {
                Ok(event) => session.on_event(event).await,
                Err(e) => {
                    session.on_error(e).await;
                    // A fresh client for every connection: rumqttc 0.25 can keep a stale
                    // packet-id collision across a clean-session reconnect and then never
                    // publish again (rumqtt#1056). Nothing is lost: the outbox and the
                    // republish on connect cover whatever the old client held.
                    let (client, fresh) = AsyncClient::new(options.clone(), 64);
                    session.client = client;
                    eventloop = fresh;
                }
            },
        }
    }
    session.farewell(&mut eventloop, farewell).await;
    Ok(())
}

fn mqtt_options(s: &ControlSettings, farewell: &[u8]) -> Result<MqttOptions, ControlError> {
    let mut o = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
    o.set_keep_alive(s.keep_alive);
    o.set_clean_start(true);
    o.set_connection_timeout(5);
    o.set_max_packet_size(Some((MAX_PAYLOAD_BYTES * 64) as u32));
    // Replies are small and latency matters more than packet count: no Nagle delay.
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    let will_topic = format!("{}/{}", s.prefix, Topic::Status.suffix());
    o.set_last_will(LastWill::new(
        will_topic,
        farewell.to_vec(),
        QoS::AtLeastOnce,
        true,
        None,
    ));
    if let Some(user) = &s.username {
        o.set_credentials(user.clone(), s.password.clone().unwrap_or_default());
    }
    if s.tls {
        o.set_transport(Transport::Tls(tls_config(s)?));
    }
    Ok(o)
}

fn tls_config(s: &ControlSettings) -> Result<TlsConfiguration, ControlError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| ControlError::TlsFile {
            path: p.clone(),
            source,
        })
    };
    let ca_path = s
        .ca_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_CA_BUNDLE));
    let client_auth = match &s.client_cert {
        Some((cert, key)) => Some((read(cert)?, read(key)?)),
        None => None,
    };
    Ok(TlsConfiguration::Simple {
        ca: read(&ca_path)?,
        alpn: None,
        client_auth,
    })
}

struct Session {
    settings: ControlSettings,
    client: AsyncClient,
    inbound: mpsc::Sender<Inbound>,
    outbound: mpsc::Receiver<Outbound>,
    /// Taken from the core, not yet handed to rumqttc (its request queue was full).
    pending: VecDeque<Outbound>,
    connected: bool,
    /// Why the last connection attempt failed, to log each distinct reason once.
    last_failure: Option<String>,
    backoff: Backoff,
    /// Outbox ids of QoS 1 publishes requested in this connection, in order, until rumqttc
    /// reports them written (`None` for publishes outside the outbox).
    requested: VecDeque<Option<i64>>,
    /// Packet id → outbox id of publishes written and awaiting their PUBACK.
    in_flight: HashMap<u16, i64>,
}

impl Session {
    fn new(
        settings: ControlSettings,
        client: AsyncClient,
        inbound: mpsc::Sender<Inbound>,
        outbound: mpsc::Receiver<Outbound>,
    ) -> Self {
        let backoff = Backoff::new(Duration::from_millis(200), settings.reconnect_max);
        Session {
            settings,
            client,
            inbound,
            outbound,
            pending: VecDeque::new(),
            connected: false,
            last_failure: None,
            backoff,
            requested: VecDeque::new(),
            in_flight: HashMap::new(),
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => self.on_connected().await,
            Event::Incoming(Packet::Publish(p)) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                self.on_publish(topic, p.payload, p.properties).await;
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(id) = self.in_flight.remove(&ack.pkid) {
                    self.forward(Inbound::Delivered(id)).await;
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => self.on_written(pkid),
            _ => {}
        }
    }

    async fn on_connected(&mut self) {
        info!(
            broker = %self.settings.host,
            port = self.settings.port,
            prefix = %self.settings.prefix,
            "connected to the MQTT broker"
        );
        self.connected = true;
        self.last_failure = None;
        self.backoff.reset();
        self.requested.clear();
        self.in_flight.clear();
        for suffix in ["meeting", "licence", "cmd"] {
            let topic = format!("{}/{suffix}", self.settings.prefix);
            // A fresh client's request queue is empty: `try_` never finds it full here.
            if let Err(e) = self.client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                warn!(%topic, error = %e, "could not request a subscription");
            }
        }
        self.forward(Inbound::Connected).await;
    }

    async fn on_error(&mut self, e: ConnectionError) {
        let reason = describe(&e);
        if self.connected {
            warn!(broker = %self.settings.host, port = self.settings.port, %reason,
                "lost the MQTT broker; recording goes on, reconnecting");
            self.forward(Inbound::Disconnected {
                reason: reason.clone(),
            })
            .await;
        } else if self.last_failure.as_deref() != Some(reason.as_str()) {
            // Said once per distinct reason: an operator must see why the device stays
            // offline (a TLS or password problem) without a line per retry.
            warn!(broker = %self.settings.host, port = self.settings.port, %reason,
                "cannot connect to the MQTT broker; retrying");
        } else {
            debug!(broker = %self.settings.host, %reason, "MQTT broker still unreachable");
        }
        self.last_failure = Some(reason);
        self.connected = false;
        self.requested.clear();
        self.in_flight.clear();
        tokio::time::sleep(self.backoff.next_delay()).await;
    }

    fn on_written(&mut self, pkid: u16) {
        match self.requested.pop_front() {
            Some(Some(outbox_id)) => {
                self.in_flight.insert(pkid, outbox_id);
            }
            Some(None) => {}
            None => debug!(
                pkid,
                "a publish was written that this connection did not request"
            ),
        }
    }

    async fn on_publish(
        &mut self,
        topic: String,
        payload: Bytes,
        props: Option<PublishProperties>,
    ) {
        let Some(suffix) = topic
            .strip_prefix(&self.settings.prefix)
            .and_then(|t| t.strip_prefix('/'))
        else {
            return;
        };
        let signatures: Vec<String> = props
            .as_ref()
            .map(|p| {
                p.user_properties
                    .iter()
                    .filter(|(name, _)| name == SIGNATURE_PROPERTY)
                    .map(|(_, value)| value.clone())
                    .collect()
            })
            .unwrap_or_default();
        let msg = match suffix {
            "meeting" => Inbound::Meeting {
                snapshot: MeetingSnapshot::decode(&payload),
                envelope: Envelope {
                    topic,
                    payload,
                    signatures,
                },
            },
            "licence" => Inbound::Licence(Licence::decode(&payload)),
            "cmd" => Inbound::Command {
                command: Command::decode(&payload),
                respond_to: props.and_then(response_addr),
                envelope: Envelope {
                    topic,
                    payload,
                    signatures,
                },
            },
            _ => return,
        };
        self.forward(msg).await;
    }

    /// Hands `msg` to the core. While the core's queue is full, keeps taking the core's own
    /// messages: the core may be waiting for room in ours, and neither would ever go on.
    async fn forward(&mut self, msg: Inbound) {
        let inbound = self.inbound.clone();
        let send = inbound.send(msg);
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                // The core only stops after control; a closed channel means shutdown.
                _ = &mut send => return,
                Some(out) = self.outbound.recv() => self.pending.push_back(out),
            }
        }
    }

    /// Hands pending messages to rumqttc until its request queue is full; the rest wait for
    /// the event loop to make room (PUBACKs), never blocking this task.
    fn flush(&mut self) {
        while let Some(msg) = self.pending.pop_front() {
            if let Err(msg) = self.publish(msg) {
                self.pending.push_front(msg);
                return;
            }
        }
    }

    /// Queues one publish with rumqttc; gives the message back when its queue is full.
    fn publish(&mut self, msg: Outbound) -> Result<(), Outbound> {
        if !self.connected {
            // Dropped, not queued: the core republishes retained state and the outbox on the
            // next connect, and must never block on a broker outage.
            return Ok(());
        }
        let outbox_id = msg.outbox_id;
        let kept = msg.clone();
        let (topic, props, qos) = match msg.to {
            Destination::Device(t) => (
                format!("{}/{}", self.settings.prefix, t.suffix()),
                None,
                t.qos(),
            ),
            Destination::Response(addr) => (
                addr.topic,
                Some(PublishProperties {
                    correlation_data: addr.correlation,
                    ..Default::default()
                }),
                QoS::AtLeastOnce,
            ),
        };
        if topic.contains(['+', '#']) {
            warn!(%topic, "not a topic name; dropped");
            return Ok(());
        }
        let result = match props {
            Some(p) => {
                self.client
                    .try_publish_with_properties(topic, qos, msg.retain, msg.payload, p)
            }
            None => self.client.try_publish(topic, qos, msg.retain, msg.payload),
        };
        match result {
            Ok(()) => {
                self.requested.push_back(outbox_id);
                Ok(())
            }
            // The topic is valid, so the queue is full: try again once the loop made room.
            Err(_) => Err(kept),
        }
    }

    async fn farewell(&mut self, eventloop: &mut EventLoop, farewell: Vec<u8>) {
        if !self.connected {
            return;
        }
        let topic = format!("{}/{}", self.settings.prefix, Topic::Status.suffix());
        // `try_`: a full request queue must not hold up shutdown; the last will covers it.
        let _ = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, farewell);
        let _ = self.client.try_disconnect();
        // Drive the event loop until the disconnect is written, bounded so shutdown never hangs.
        let drain = async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        info!("disconnected from the MQTT broker");
    }
}

/// Accepts a response topic only if it is a plain topic name of sane length, so a request
/// cannot make the device publish to a wildcard or an absurd topic.
fn response_addr(p: PublishProperties) -> Option<ResponseAddr> {
    let topic = p.response_topic?;
    let valid =
        !topic.is_empty() && topic.len() <= RESPONSE_TOPIC_MAX && !topic.contains(['+', '#', '\0']);
    valid.then_some(ResponseAddr {
        topic,
        correlation: p.correlation_data,
    })
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) => format!("network error: {io}"),
        ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection ({code:?}); check mqtt.username/password and the broker ACL")
        }
        ConnectionError::Tls(t) => {
            format!("TLS failed: {t}; check mqtt.ca_file and the broker certificate")
        }
        ConnectionError::Timeout(_) => "the broker did not answer in time".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_topics_with_wildcards_are_ignored() {
        let props = |t: &str| PublishProperties {
            response_topic: Some(t.into()),
            correlation_data: Some(Bytes::from_static(b"k")),
            ..Default::default()
        };
        assert_eq!(
            response_addr(props("ctl/r1")),
            Some(ResponseAddr {
                topic: "ctl/r1".into(),
                correlation: Some(Bytes::from_static(b"k"))
            })
        );
        assert_eq!(response_addr(props("ctl/#")), None);
        assert_eq!(response_addr(props(&"x".repeat(300))), None);
    }
}
