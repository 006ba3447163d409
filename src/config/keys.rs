//! Every key of the configuration file, declared once, with the limits of the numeric ones.
//!
//! Owns: the key names and the numbers a key allows. The readers in `config` name keys only
//! through these constants, and [`KEYS`] and [`AUTH_KEYS`] (what the unknown-key check
//! accepts) and [`BOUNDED`] are made from the same lines, so a key cannot be accepted without
//! being declared here. A test reads a full file and checks that every declared key is read.
//! Subsystems that check their own settings (media, upload) use these bounds too, so a limit
//! is written in one place. Must not touch: reading values (see `doc`).

use std::ops::RangeInclusive;

/// The whole numbers a key allows, and its value when absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub key: &'static str,
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

impl Bounds {
    pub const fn range(self) -> RangeInclusive<u32> {
        RangeInclusive::new(self.min, self.max)
    }
}

/// `list { CONST = "dotted.key" [=> BOUNDS(min..=max, default)]; ... }` declares each key
/// as a `&str` constant (and its bounds as a [`Bounds`] constant), then `list` holding them.
macro_rules! declare_keys {
    ($(
        $(#[$list_doc:meta])*
        $list:ident {
            $($name:ident = $key:literal $(=> $bounds:ident($min:literal ..= $max:literal, $default:expr))?;)*
        }
    )*) => {
        $($(
            pub const $name: &str = $key;
            $(pub const $bounds: Bounds = Bounds {
                key: $key,
                min: $min,
                max: $max,
                default: $default,
            };)?
        )*)*
        $(
            $(#[$list_doc])*
            pub const $list: &[&str] = &[$($name),*];
        )*
        /// Every numeric key's bounds, for the checks that the example file states them.
        pub const BOUNDED: &[Bounds] = &[$($($($bounds,)?)*)*];
    };
}

declare_keys! {
    /// Every key the file may hold outside `[auth]`; the example file documents each of them.
    KEYS {
        DEVICE_ID = "device_id";
        MQTT_URL = "mqtt.url";
        MQTT_TOPIC_PREFIX = "mqtt.topic_prefix";
        MQTT_CLIENT_ID = "mqtt.client_id";
        MQTT_USERNAME = "mqtt.username";
        MQTT_PASSWORD = "mqtt.password";
        MQTT_PASSWORD_FILE = "mqtt.password_file";
        MQTT_CA_FILE = "mqtt.ca_file";
        MQTT_CLIENT_CERT_FILE = "mqtt.client_cert_file";
        MQTT_CLIENT_KEY_FILE = "mqtt.client_key_file";
        MQTT_KEEP_ALIVE_S = "mqtt.keep_alive_s" => KEEP_ALIVE_S(5..=600, 30);
        MQTT_RECONNECT_MAX_S = "mqtt.reconnect_max_s" => RECONNECT_MAX_S(1..=600, 30);
        STORAGE_DIR = "storage.dir";
        STORAGE_SAVE_DIR = "storage.save_dir";
        STORAGE_MAX_BYTES = "storage.max_bytes";
        STORAGE_MIN_FREE_BYTES = "storage.min_free_bytes";
        STORAGE_RETENTION_HOURS = "storage.retention_hours" => RETENTION_HOURS(0..=8760, 24);
        STORAGE_ENCRYPT_SEGMENTS = "storage.encrypt_segments";
        STORAGE_SEGMENT_KEY_FILE = "storage.segment_key_file";
        MEDIA_SOURCE = "media.source";
        MEDIA_SEGMENT_SECONDS = "media.segment_seconds" => SEGMENT_SECONDS(1..=60, 2);
        MEDIA_WIDTH = "media.width" => WIDTH(160..=4096, 1280);
        MEDIA_HEIGHT = "media.height" => HEIGHT(120..=2160, 720);
        MEDIA_FRAMERATE = "media.framerate" => FRAMERATE(1..=60, 30);
        MEDIA_VIDEO_BITRATE_KBPS = "media.video_bitrate_kbps" => VIDEO_BITRATE_KBPS(100..=20_000, 2500);
        MEDIA_AUDIO_CODEC = "media.audio_codec";
        MEDIA_ENCODER = "media.encoder";
        MEDIA_CAMERA = "media.camera";
        MEDIA_CAMERA_CARD = "media.camera_card";
        MEDIA_CAMERA_BUS = "media.camera_bus";
        MEDIA_MICROPHONE = "media.microphone";
        MEDIA_CONTENT = "media.content";
        MEDIA_PIP = "media.pip";
        MEDIA_MULTISTREAM = "media.multistream";
        UPLOAD_ENDPOINT = "upload.endpoint";
        UPLOAD_BUCKET = "upload.bucket";
        UPLOAD_REGION = "upload.region";
        UPLOAD_PATH_STYLE = "upload.path_style";
        UPLOAD_ACCESS_KEY_ID = "upload.access_key_id";
        UPLOAD_SECRET_ACCESS_KEY = "upload.secret_access_key";
        UPLOAD_CREDENTIALS_FILE = "upload.credentials_file";
        UPLOAD_CA_FILE = "upload.ca_file";
        UPLOAD_RATE_CAP = "upload.rate_cap";
        UPLOAD_LIVE_SHARE_PERCENT = "upload.live_share_percent" => LIVE_SHARE_PERCENT(1..=100, 25);
        UPLOAD_KEY_PREFIX = "upload.key_prefix";
        TRANSCRIPTION_MODEL_DIR = "transcription.model_dir";
        LOG_FORMAT = "log.format";
        LOG_LEVEL = "log.level";
    }
    /// The keys of `[auth]`. Kept apart from [`KEYS`] so the generic key-table tests stay as
    /// they are; `parse` accepts both and the example file documents both.
    AUTH_KEYS {
        AUTH_ADMIN_KEYS = "auth.admin_keys";
        AUTH_MEETING_KEYS = "auth.meeting_keys";
        AUTH_WINDOW_S = "auth.window_s"
            => WINDOW_S(30..=3600, crate::auth::DEFAULT_WINDOW.as_secs() as u32);
        AUTH_ALLOW_UNSIGNED_ADMIN = "auth.allow_unsigned_admin";
        AUTH_REQUIRE_SIGNED_MEETING = "auth.require_signed_meeting";
    }
}
