//! The daemon's settings: one TOML file (`docs/config.md`) parsed into typed,
//! validated values.
//!
//! Owns: parsing and validating the one TOML file into typed settings, and reading the files
//! it names (TLS certificates, password and credentials files) far enough to know they are
//! usable. Must not touch: the filesystem beyond reading the config and the files it names,
//! the network.
//!
//! Parsing never stops at the first problem: every problem is collected, each naming its key
//! and saying what is allowed, so one `--check-config` run shows everything to fix. Unknown
//! keys are problems too, so a typo is never silently ignored. Every key and every numeric
//! limit is declared once, in `keys`; `config/roomrec.example.toml` documents every key.
//! Each subsystem builds its own settings from a validated [`Config`] (`from_config`).

mod doc;
mod files;
pub mod keys;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use doc::Doc;
pub use keys::{AUTH_KEYS, KEYS};

/// One thing wrong with the configuration.
///
/// `key` is the dotted key (`mqtt.url`, `media.segment_seconds`); it is empty only for a TOML
/// syntax error, which belongs to no key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself could not be read.
    #[error("cannot read the configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but holds problems; never empty. Displays one problem per line.
    #[error("{}", ProblemLines(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems found, empty for a read error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(problems) => problems,
        }
    }
}

struct ProblemLines<'a>(&'a [Problem]);

impl fmt::Display for ProblemLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A secret value (a password, an S3 secret key). `Debug` and `Display` print `***`, so
/// logging a config never leaks it; read it with [`Secret::expose`] where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call it only where the value is handed to a library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The whole validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Letters, digits, `-`, `_`; 1–64 characters.
    pub device_id: String,
    pub mqtt: MqttConfig,
    pub storage: StorageConfig,
    pub media: MediaConfig,
    /// `None` without an `[upload]` table: cloud recording is then unavailable.
    pub upload: Option<UploadConfig>,
    pub log: LogConfig,
    /// `[auth]`: signed admin commands and snapshots; the default refuses admin commands.
    pub auth: AuthConfig,
    /// `[transcription]`: the speech model of T1.
    pub transcription: TranscriptionConfig,
}

/// `[transcription]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptionConfig {
    /// The pocketsphinx model folder; default Debian's US English
    /// ([`crate::transcribe::DEFAULT_MODEL_DIR`]). Not checked at load: a missing model makes
    /// transcription unavailable (said in `status`), never the daemon.
    pub model_dir: PathBuf,
}

pub use crate::auth::AuthConfig;

/// `[mqtt]`: the broker connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttConfig {
    /// The URL as written, e.g. `mqtts://broker.example:8883`.
    pub url: String,
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    /// The URL's port, or 1883 (`mqtt://`) / 8883 (`mqtts://`).
    pub port: u16,
    /// `true` for `mqtts://`.
    pub tls: bool,
    /// As configured; use [`Config::topic_prefix`] for the effective prefix.
    pub topic_prefix: Option<String>,
    /// Default `roomrecd-<device_id>`.
    pub client_id: String,
    pub username: Option<String>,
    /// From `password`, or the contents of `password_file` (one trailing newline removed).
    pub password: Option<Secret>,
    /// Where `password` was read from, if it came from a file.
    pub password_file: Option<PathBuf>,
    /// PEM CA certificates to trust instead of the system roots (`mqtts://` only).
    pub ca_file: Option<PathBuf>,
    /// Client certificate authentication (`mqtts://` only).
    pub client_auth: Option<ClientAuth>,
    /// Bounds: [`keys::KEEP_ALIVE_S`].
    pub keep_alive: Duration,
    /// Longest wait between reconnection attempts; bounds: [`keys::RECONNECT_MAX_S`].
    pub reconnect_max: Duration,
}

/// A client certificate and its private key, both PEM files checked to hold what they should.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuth {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `[storage]`: where the catalog, segments and local recordings live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    /// Absolute; holds the catalog and the segments.
    pub dir: PathBuf,
    /// Absolute; local recordings' MP4 files. Default `<dir>/local`.
    pub save_dir: PathBuf,
    /// Most bytes roomrec may keep on disk; `None` means no limit besides `min_free_bytes`.
    pub max_bytes: Option<u64>,
    /// Bytes to leave free on the file system; default 512 MiB.
    pub min_free_bytes: u64,
    /// Hours an uploaded (or converted) segment stays on disk before it may be evicted;
    /// bounds: [`keys::RETENTION_HOURS`] (up to a year).
    pub retention_hours: u32,
    /// Encrypt each segment once sealed (`encrypt_segments`, default false; needs a key).
    pub encrypt_segments: bool,
    /// The key read from `segment_key_file` (checked private and 32 bytes at load). Kept
    /// even with encryption off, so segments encrypted earlier can still be read.
    pub segment_key: Option<crate::crypt::SegmentKey>,
    /// Where the key was read from, for messages.
    pub segment_key_file: Option<PathBuf>,
}

impl StorageConfig {
    /// `retention_hours` as a duration, for the eviction cutoff.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_hours) * 3600)
    }
}

/// `[media]`: capture and encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaConfig {
    pub source: MediaSource,
    /// Bounds: [`keys::SEGMENT_SECONDS`].
    pub segment_seconds: u32,
    /// Even; bounds: [`keys::WIDTH`].
    pub width: u32,
    /// Even; bounds: [`keys::HEIGHT`].
    pub height: u32,
    /// Frames per second; bounds: [`keys::FRAMERATE`].
    pub framerate: u32,
    /// Bounds: [`keys::VIDEO_BITRATE_KBPS`].
    pub video_bitrate_kbps: u32,
    pub audio_codec: AudioCodec,
    pub encoder: VideoEncoder,
    /// V4L2 device path (absolute); `None` lets media choose. Ignored with `source = "test"`.
    pub camera: Option<PathBuf>,
    /// V4L2 only, instead of `camera`: the camera whose card name (`v4l2-ctl --info`, "Card
    /// type") is exactly this, wherever it is plugged in and whatever its node number.
    pub camera_card: Option<String>,
    /// V4L2 only, instead of `camera`: the camera on this bus (`v4l2-ctl --info`, "Bus
    /// info"), e.g. `usb-0000:00:14.0-1` (a USB port); with `camera_card`, both must match.
    pub camera_bus: Option<String>,
    /// ALSA device name such as `hw:1,0`; `None` lets media choose. Ignored with `"test"`.
    pub microphone: Option<String>,
    /// The content input (D2, D3): a V4L2 device path, e.g. an HDMI grabber. With
    /// `source = "test"` any value adds a test-pattern content source. `None`: no content.
    pub content: Option<PathBuf>,
    /// D2: while sharing, record the content full frame with the camera in a corner;
    /// default `true` (only with `content`).
    pub pip: bool,
    /// D3: record camera and content as two video streams; default `false`; wins over `pip`.
    pub multistream: bool,
}

impl MediaConfig {
    /// `segment_seconds` as a duration.
    pub fn segment_duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.segment_seconds))
    }
}

/// The media choices are media's own types: one definition, no mapping to keep in step.
pub use crate::media::{AudioCodec, Source as MediaSource, VideoEncoder};

/// `[upload]`: the S3-compatible target of cloud recordings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// `http://` or `https://` host and optional port, without a trailing `/`.
    pub endpoint: String,
    pub bucket: String,
    /// Default `us-east-1`.
    pub region: String,
    /// Path-style (`endpoint/bucket/key`) rather than virtual-hosted URLs; default `true`.
    pub path_style: bool,
    pub credentials: UploadCredentials,
    /// PEM CA certificates to trust instead of the system roots (`https://` only).
    pub ca_file: Option<PathBuf>,
    /// Bytes per second for all uploads together; `None` for no cap.
    pub rate_cap: Option<u64>,
    /// Percent of the rate uploads may use while a meeting is live; bounds:
    /// [`keys::LIVE_SHARE_PERCENT`].
    pub live_share_percent: u8,
    /// Prepended to every object key: empty, or relative path levels ending in `/`.
    pub key_prefix: String,
}

/// Where the S3 keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadCredentials {
    /// From `access_key_id` + `secret_access_key`, or read from `credentials_file`.
    Keys {
        access_key_id: String,
        secret_access_key: Secret,
        /// The file they were read from, if any.
        file: Option<PathBuf>,
    },
    /// Neither was configured: the environment (`AWS_ACCESS_KEY_ID`, ...) supplies them.
    Environment,
}

/// `[log]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` env-filter directive string; default `info`.
    pub level: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `journal` when stderr is the journal (the unit under systemd), else `text`.
    Auto,
    /// One line per event: the level, the message and its fields.
    Text,
    /// One JSON object per event.
    Json,
    /// Native journal entries: priority by level, the fields as journal fields.
    Journal,
}

impl Config {
    /// Reads and validates `path`. Relative file names inside it (`ca_file`, ...) are taken
    /// relative to the file's own folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        parse(&text, base)
    }

    /// Validates TOML text. Relative file names inside it are taken relative to the current
    /// directory.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new(""))
    }

    /// `mqtt.topic_prefix`, or `roomrec/v1/<device_id>`.
    pub fn topic_prefix(&self) -> String {
        match &self.mqtt.topic_prefix {
            Some(prefix) => prefix.clone(),
            None => format!("roomrec/v1/{}", self.device_id),
        }
    }
}

/// `storage.min_free_bytes` when absent: 512 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 512 * 1024 * 1024;

/// The tables of the file.
pub const SECTIONS: &[&str] = &[
    "mqtt",
    "storage",
    "media",
    "upload",
    "log",
    "auth",
    "transcription",
];

fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    let root: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
    let mut doc = Doc::new(&root, base);
    let known: Vec<&str> = KEYS.iter().chain(AUTH_KEYS).copied().collect();
    doc.report_unknown(&known, SECTIONS);
    let config = read_config(&mut doc);
    let problems = doc.into_problems();
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        // Every `None` above comes with a problem; this guards the invariant anyway.
        _ if problems.is_empty() => Err(ConfigError::Invalid(vec![Problem {
            key: String::new(),
            message: "the configuration is incomplete".into(),
        }])),
        _ => Err(ConfigError::Invalid(problems)),
    }
}

fn syntax_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let position = error.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
        format!(" at line {line}, column {column}")
    });
    ConfigError::Invalid(vec![Problem {
        key: String::new(),
        message: format!(
            "TOML syntax error{}: {}",
            position.unwrap_or_default(),
            error.message().trim().replace('\n', "; ")
        ),
    }])
}

fn read_config(doc: &mut Doc) -> Option<Config> {
    let device_id = doc
        .req_str(keys::DEVICE_ID, values::DEVICE_ID_HINT)
        .and_then(|s| doc.check(keys::DEVICE_ID, values::device_id(s)));
    let mqtt = read_mqtt(doc, device_id.as_deref());
    let storage = read_storage(doc);
    let media = read_media(doc);
    let upload = doc.has("upload").then(|| read_upload(doc));
    let log = read_log(doc);
    let auth = read_auth(doc);
    let transcription = TranscriptionConfig {
        model_dir: doc
            .opt_path(keys::TRANSCRIPTION_MODEL_DIR)
            .unwrap_or_else(|| PathBuf::from(crate::transcribe::DEFAULT_MODEL_DIR)),
    };
    Some(Config {
        device_id: device_id?,
        mqtt: mqtt?,
        storage: storage?,
        media: media?,
        upload: match upload {
            None => None,
            Some(section) => Some(section?),
        },
        log: log?,
        auth: auth?,
        transcription,
    })
}

fn read_auth(doc: &mut Doc) -> Option<AuthConfig> {
    let admin_keys = read_keys(
        doc,
        keys::AUTH_ADMIN_KEYS,
        "an admin name (the <name> of admin:<name>)",
    );
    let meeting_keys = read_keys(doc, keys::AUTH_MEETING_KEYS, "a key id of your choice");
    let window = doc.seconds(keys::WINDOW_S);
    let allow_unsigned_admin = doc.boolean(keys::AUTH_ALLOW_UNSIGNED_ADMIN, false);
    let require_signed_meeting = doc.boolean(keys::AUTH_REQUIRE_SIGNED_MEETING, false);
    if let (Some(keys), true) = (&meeting_keys, require_signed_meeting) {
        if keys.is_empty() {
            doc.problem(
                keys::AUTH_REQUIRE_SIGNED_MEETING,
                "needs at least one key in auth.meeting_keys, or every snapshot would be refused",
            );
        }
    }
    if let (Some(keys), true) = (&admin_keys, allow_unsigned_admin) {
        if !keys.is_empty() {
            // Mixing both would let anyone on the broker bypass the keys by not signing.
            doc.problem(
                keys::AUTH_ALLOW_UNSIGNED_ADMIN,
                "cannot be true while auth.admin_keys has keys: unsigned commands would bypass them; remove one of the two",
            );
        }
    }
    Some(AuthConfig {
        admin_keys: admin_keys?,
        meeting_keys: meeting_keys?,
        window,
        allow_unsigned_admin,
        require_signed_meeting,
    })
}

/// A `name = "base64 public key"` table; every entry is checked, each problem naming its entry.
fn read_keys(
    doc: &mut Doc,
    key: &str,
    name_hint: &str,
) -> Option<std::collections::BTreeMap<String, crate::auth::PublicKey>> {
    let hint = "a table of name = \"<base64 Ed25519 public key from roomrecctl key gen>\"";
    let mut keys = std::collections::BTreeMap::new();
    let Some(table) = doc.opt_table(key, hint) else {
        // Absent is fine (no keys); a wrong type was recorded by `opt_table`.
        return (!doc.has(key)).then_some(keys);
    };
    let mut ok = true;
    for (name, value) in table {
        let entry = format!("{key}.{name}");
        if let Err(e) = crate::protocol::Id::parse(name) {
            doc.problem(&entry, format!("the name {e}; it must be {name_hint}"));
            ok = false;
            continue;
        }
        let Some(text) = value.as_str() else {
            doc.problem(&entry, format!("expected a string; use {hint}"));
            ok = false;
            continue;
        };
        match crate::auth::PublicKey::parse(text) {
            Ok(k) => {
                keys.insert(name.clone(), k);
            }
            Err(e) => {
                doc.problem(&entry, format!("the key {e}"));
                ok = false;
            }
        }
    }
    ok.then_some(keys)
}

fn read_mqtt(doc: &mut Doc, device_id: Option<&str>) -> Option<MqttConfig> {
    let url_text = doc.req_str(keys::MQTT_URL, values::MQTT_URL_HINT);
    let url = url_text.and_then(|s| doc.check(keys::MQTT_URL, values::mqtt_url(s)));
    let topic_prefix = doc
        .opt_str(keys::MQTT_TOPIC_PREFIX, values::TOPIC_PREFIX_HINT)
        .and_then(|s| doc.check(keys::MQTT_TOPIC_PREFIX, values::topic_prefix(s)));
    let client_id = match doc.opt_str(keys::MQTT_CLIENT_ID, values::CLIENT_ID_HINT) {
        Some(s) => doc.check(keys::MQTT_CLIENT_ID, values::client_id(s)),
        None => device_id.map(|id| format!("roomrecd-{id}")),
    };
    let username = doc
        .opt_str(keys::MQTT_USERNAME, "a non-empty user name")
        .and_then(|s| doc.check(keys::MQTT_USERNAME, values::non_empty(s)));
    let (password, password_file) = read_mqtt_password(doc);
    let tls = url.as_ref().map(|u| u.tls);
    let ca_file = read_tls_file(doc, keys::MQTT_CA_FILE, tls, files::Pem::Certificates);
    let client_auth = read_client_auth(doc, tls);
    let keep_alive = doc.seconds(keys::KEEP_ALIVE_S);
    let reconnect_max = doc.seconds(keys::RECONNECT_MAX_S);
    let url = url?;
    Some(MqttConfig {
        url: url_text?.to_string(),
        host: url.host,
        port: url.port,
        tls: url.tls,
        topic_prefix,
        client_id: client_id?,
        username,
        password,
        password_file,
        ca_file,
        client_auth,
        keep_alive,
        reconnect_max,
    })
}

fn read_mqtt_password(doc: &mut Doc) -> (Option<Secret>, Option<PathBuf>) {
    let inline = doc
        .opt_str(keys::MQTT_PASSWORD, "a non-empty password")
        .and_then(|s| doc.check(keys::MQTT_PASSWORD, values::non_empty(s)));
    let file = doc.opt_path(keys::MQTT_PASSWORD_FILE);
    if inline.is_some() && file.is_some() {
        doc.problem(
            keys::MQTT_PASSWORD_FILE,
            "set either mqtt.password or mqtt.password_file, not both",
        );
        return (None, None);
    }
    let password = match &file {
        Some(path) => doc.check(keys::MQTT_PASSWORD_FILE, files::read_password(path)),
        None => inline.map(Secret::new),
    };
    if password.is_some() && !doc.has(keys::MQTT_USERNAME) {
        let key = if file.is_some() {
            keys::MQTT_PASSWORD_FILE
        } else {
            keys::MQTT_PASSWORD
        };
        doc.problem(key, "a password needs mqtt.username as well");
    }
    (password, file)
}

/// A TLS file key: it must name a readable PEM file and the URL must use TLS.
fn read_tls_file(doc: &mut Doc, key: &str, tls: Option<bool>, pem: files::Pem) -> Option<PathBuf> {
    let path = doc.opt_path(key)?;
    if tls == Some(false) {
        doc.problem(
            key,
            "TLS files are only used with an mqtts:// URL; change mqtt.url to mqtts://host:port or remove this key",
        );
        return None;
    }
    doc.check(key, files::check_pem(&path, pem))
}

fn read_client_auth(doc: &mut Doc, tls: Option<bool>) -> Option<ClientAuth> {
    let cert_key = keys::MQTT_CLIENT_CERT_FILE;
    let key_key = keys::MQTT_CLIENT_KEY_FILE;
    let cert = read_tls_file(doc, cert_key, tls, files::Pem::Certificates);
    let key = read_tls_file(doc, key_key, tls, files::Pem::PrivateKey);
    match (doc.has(cert_key), doc.has(key_key)) {
        (true, false) => doc.problem(cert_key, format!("needs {key_key} as well")),
        (false, true) => doc.problem(key_key, format!("needs {cert_key} as well")),
        _ => {}
    }
    Some(ClientAuth {
        cert_file: cert?,
        key_file: key?,
    })
}

fn read_storage(doc: &mut Doc) -> Option<StorageConfig> {
    let dir = doc
        .req_str(keys::STORAGE_DIR, values::ABSOLUTE_DIR_HINT)
        .and_then(|s| doc.check(keys::STORAGE_DIR, values::absolute_dir(s)));
    let save_dir = match doc.opt_str(keys::STORAGE_SAVE_DIR, values::ABSOLUTE_DIR_HINT) {
        Some(s) => doc.check(keys::STORAGE_SAVE_DIR, values::absolute_dir(s)),
        None => dir.as_ref().map(|d| d.join("local")),
    };
    if let (Some(dir), Some(save_dir)) = (&dir, &save_dir) {
        if dir == save_dir {
            doc.problem(
                keys::STORAGE_SAVE_DIR,
                "must differ from storage.dir, which holds the catalog and segments; default <dir>/local",
            );
        }
    }
    let max_bytes = doc.opt_bytes(keys::STORAGE_MAX_BYTES, 1);
    let min_free_bytes = doc
        .opt_bytes(keys::STORAGE_MIN_FREE_BYTES, 0)
        .unwrap_or(DEFAULT_MIN_FREE_BYTES);
    let retention_hours = doc.uint(keys::RETENTION_HOURS, "hours");
    let encrypt = doc.boolean(keys::STORAGE_ENCRYPT_SEGMENTS, false);
    let key_file = doc.opt_path(keys::STORAGE_SEGMENT_KEY_FILE);
    // A named key file is checked even with encryption off, so turning it on later cannot
    // be the moment a wrong file shows up.
    let key = key_file.as_ref().and_then(|path| {
        doc.check(
            keys::STORAGE_SEGMENT_KEY_FILE,
            crate::crypt::SegmentKey::load(path),
        )
    });
    if encrypt && !doc.has(keys::STORAGE_SEGMENT_KEY_FILE) {
        doc.problem(
            keys::STORAGE_ENCRYPT_SEGMENTS,
            "needs storage.segment_key_file (a private file with a 32-byte key: roomrecctl key segment)",
        );
        return None;
    }
    if key_file.is_some() && key.is_none() {
        return None;
    }
    Some(StorageConfig {
        dir: dir?,
        save_dir: save_dir?,
        max_bytes,
        min_free_bytes,
        retention_hours,
        encrypt_segments: encrypt,
        segment_key: key,
        segment_key_file: key_file,
    })
}

fn read_media(doc: &mut Doc) -> Option<MediaConfig> {
    let source = doc.req_choice(keys::MEDIA_SOURCE, values::SOURCES);
    let segment_seconds = doc.uint(keys::SEGMENT_SECONDS, "seconds");
    let width = doc.even(keys::WIDTH);
    let height = doc.even(keys::HEIGHT);
    let framerate = doc.uint(keys::FRAMERATE, "frames per second");
    let bitrate = doc.uint(keys::VIDEO_BITRATE_KBPS, "kbit/s");
    let audio_codec = doc.choice(
        keys::MEDIA_AUDIO_CODEC,
        values::AUDIO_CODECS,
        AudioCodec::Aac,
    );
    let encoder = doc.choice(keys::MEDIA_ENCODER, values::ENCODERS, VideoEncoder::Auto);
    let camera = doc
        .opt_str(keys::MEDIA_CAMERA, values::DEVICE_PATH_HINT)
        .and_then(|s| doc.check(keys::MEDIA_CAMERA, values::device_path(s)));
    let camera_card = doc
        .opt_str(keys::MEDIA_CAMERA_CARD, values::CAMERA_NAME_HINT)
        .and_then(|s| doc.check(keys::MEDIA_CAMERA_CARD, values::camera_name(s)));
    let camera_bus = doc
        .opt_str(keys::MEDIA_CAMERA_BUS, values::CAMERA_NAME_HINT)
        .and_then(|s| doc.check(keys::MEDIA_CAMERA_BUS, values::camera_name(s)));
    if camera.is_some() && (camera_card.is_some() || camera_bus.is_some()) {
        doc.problem(
            keys::MEDIA_CAMERA,
            "set either media.camera (a path) or media.camera_card / media.camera_bus, not both",
        );
    }
    let microphone = doc
        .opt_str(keys::MEDIA_MICROPHONE, values::ALSA_HINT)
        .and_then(|s| doc.check(keys::MEDIA_MICROPHONE, values::alsa_name(s)));
    let content = doc
        .opt_str(keys::MEDIA_CONTENT, values::DEVICE_PATH_HINT)
        .and_then(|s| doc.check(keys::MEDIA_CONTENT, values::device_path(s)));
    let pip = doc.boolean(keys::MEDIA_PIP, true);
    let multistream = doc.boolean(keys::MEDIA_MULTISTREAM, false);
    Some(MediaConfig {
        source: source?,
        segment_seconds,
        width,
        height,
        framerate,
        video_bitrate_kbps: bitrate,
        audio_codec,
        encoder,
        camera,
        camera_card,
        camera_bus,
        microphone,
        content,
        pip,
        multistream,
    })
}

fn read_upload(doc: &mut Doc) -> Option<UploadConfig> {
    let endpoint = doc
        .req_str(keys::UPLOAD_ENDPOINT, values::ENDPOINT_HINT)
        .and_then(|s| doc.check(keys::UPLOAD_ENDPOINT, values::http_endpoint(s)));
    let bucket = doc
        .req_str(keys::UPLOAD_BUCKET, values::BUCKET_HINT)
        .and_then(|s| doc.check(keys::UPLOAD_BUCKET, values::bucket(s)));
    let region = match doc.opt_str(keys::UPLOAD_REGION, values::REGION_HINT) {
        Some(s) => doc.check(keys::UPLOAD_REGION, values::region(s)),
        None => Some("us-east-1".to_string()),
    };
    let path_style = doc.boolean(keys::UPLOAD_PATH_STYLE, true);
    let credentials = read_upload_credentials(doc);
    let ca_file = doc.opt_path(keys::UPLOAD_CA_FILE).and_then(|path| {
        if endpoint.as_ref().is_some_and(|e| !e.tls) {
            doc.problem(
                keys::UPLOAD_CA_FILE,
                "only used with an https:// endpoint; change upload.endpoint or remove this key",
            );
            return None;
        }
        doc.check(
            keys::UPLOAD_CA_FILE,
            files::check_pem(&path, files::Pem::Certificates),
        )
    });
    let rate_cap = doc.opt_bytes(keys::UPLOAD_RATE_CAP, 1024);
    let live_share_percent = doc.uint(keys::LIVE_SHARE_PERCENT, "percent") as u8;
    let key_prefix = match doc.opt_str(keys::UPLOAD_KEY_PREFIX, values::KEY_PREFIX_HINT) {
        Some(p) => doc.check(keys::UPLOAD_KEY_PREFIX, values::key_prefix(p)),
        None => Some(String::new()),
    };
    Some(UploadConfig {
        endpoint: endpoint?.url,
        bucket: bucket?,
        region: region?,
        path_style,
        credentials: credentials?,
        ca_file,
        rate_cap,
        live_share_percent,
        key_prefix: key_prefix?,
    })
}

fn read_upload_credentials(doc: &mut Doc) -> Option<UploadCredentials> {
    let id = doc
        .opt_str(keys::UPLOAD_ACCESS_KEY_ID, "a non-empty access key id")
        .and_then(|s| doc.check(keys::UPLOAD_ACCESS_KEY_ID, values::non_empty(s)));
    let secret = doc
        .opt_str(
            keys::UPLOAD_SECRET_ACCESS_KEY,
            "a non-empty secret access key",
        )
        .and_then(|s| doc.check(keys::UPLOAD_SECRET_ACCESS_KEY, values::non_empty(s)));
    let file = doc.opt_path(keys::UPLOAD_CREDENTIALS_FILE);
    let has_id = doc.has(keys::UPLOAD_ACCESS_KEY_ID);
    let has_secret = doc.has(keys::UPLOAD_SECRET_ACCESS_KEY);
    if has_id != has_secret {
        let (key, other) = match has_id {
            true => (keys::UPLOAD_ACCESS_KEY_ID, keys::UPLOAD_SECRET_ACCESS_KEY),
            false => (keys::UPLOAD_SECRET_ACCESS_KEY, keys::UPLOAD_ACCESS_KEY_ID),
        };
        doc.problem(key, format!("needs {other} as well"));
        return None;
    }
    if has_id && doc.has(keys::UPLOAD_CREDENTIALS_FILE) {
        doc.problem(
            keys::UPLOAD_CREDENTIALS_FILE,
            "set either upload.access_key_id + upload.secret_access_key or upload.credentials_file, not both",
        );
        return None;
    }
    match (id, secret, file) {
        (Some(access_key_id), Some(secret), None) => Some(UploadCredentials::Keys {
            access_key_id,
            secret_access_key: Secret::new(secret),
            file: None,
        }),
        (None, None, Some(path)) => {
            let (access_key_id, secret) = doc.check(
                keys::UPLOAD_CREDENTIALS_FILE,
                files::read_s3_credentials(&path),
            )?;
            Some(UploadCredentials::Keys {
                access_key_id,
                secret_access_key: secret,
                file: Some(path),
            })
        }
        _ if has_id || doc.has(keys::UPLOAD_CREDENTIALS_FILE) => None,
        _ => Some(UploadCredentials::Environment),
    }
}

fn read_log(doc: &mut Doc) -> Option<LogConfig> {
    let format = doc.choice(keys::LOG_FORMAT, values::LOG_FORMATS, LogFormat::Auto);
    let level = match doc.opt_str(keys::LOG_LEVEL, values::LOG_LEVEL_HINT) {
        Some(s) => doc.check(keys::LOG_LEVEL, values::log_level(s)),
        None => Some("info".to_string()),
    };
    Some(LogConfig {
        format,
        level: level?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The readers ask for every declared key, and for nothing else but the sections: a key
    /// declared without a reader would be accepted and ignored.
    #[test]
    fn the_readers_read_every_declared_key_and_no_other() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/roomrec.example.toml");
        let text = std::fs::read_to_string(&path).expect("the example file");
        let root: toml::Table = toml::from_str(&text).expect("the example is TOML");
        let mut doc = Doc::new(&root, Path::new(""));
        let config = read_config(&mut doc);
        let asked = doc.asked.take();
        let problems = doc.into_problems();
        assert!(config.is_some() && problems.is_empty(), "{problems:?}");
        let declared: BTreeSet<String> = KEYS
            .iter()
            .chain(AUTH_KEYS)
            .map(|k| k.to_string())
            .collect();
        let missing: Vec<&String> = declared.difference(&asked).collect();
        assert!(missing.is_empty(), "declared but never read: {missing:?}");
        let undeclared: Vec<&String> = asked
            .difference(&declared)
            .filter(|k| !SECTIONS.contains(&k.as_str()))
            .collect();
        assert!(
            undeclared.is_empty(),
            "read but not declared: {undeclared:?}"
        );
    }
}
