//! Validators for single values. Each returns the typed value or a message saying what is
//! wrong and what is allowed; the caller files it under the key. Messages never repeat a
//! secret.

use std::net::Ipv6Addr;
use std::path::{Component, Path, PathBuf};

use super::{AudioCodec, LogFormat, MediaSource, VideoEncoder};

pub const DEVICE_ID_HINT: &str = "1 to 64 letters, digits, '-' or '_', e.g. \"room-101\"";
pub const MQTT_URL_HINT: &str = "a URL like \"mqtt://host:1883\" or \"mqtts://host:8883\"";
pub const TOPIC_PREFIX_HINT: &str =
    "MQTT topic levels separated by '/', e.g. \"roomrec/v1/room-101\", without '+', '#', empty levels or a leading or trailing '/'";
pub const CLIENT_ID_HINT: &str = "1 to 128 printable characters without spaces";
pub const ABSOLUTE_DIR_HINT: &str = "an absolute folder path, e.g. \"/var/lib/roomrec\"";
pub const FILE_HINT: &str = "a file path (relative paths start at the config file's folder)";
pub const BYTES_HINT: &str =
    "a number of bytes, as an integer or a string like \"512 MiB\" (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)";
pub const DEVICE_PATH_HINT: &str = "an absolute device path, e.g. \"/dev/video0\"";
pub const ALSA_HINT: &str = "an ALSA device name, e.g. \"hw:1,0\" or \"default\"";
pub const ENDPOINT_HINT: &str =
    "an http:// or https:// URL with a host and optional port, e.g. \"https://s3.example.com\"";
pub const BUCKET_HINT: &str = "an S3 bucket name: 3 to 63 lowercase letters, digits, '.' or '-', starting and ending with a letter or digit";
pub const REGION_HINT: &str = "a region name such as \"us-east-1\": letters, digits, '-' or '_'";
pub const LOG_LEVEL_HINT: &str =
    "a tracing filter such as \"info\" or \"warn,roomrec=debug\" (levels: error, warn, info, debug, trace, off)";

pub const SOURCES: &[(&str, MediaSource)] =
    &[("test", MediaSource::Test), ("v4l2", MediaSource::V4l2)];
pub const AUDIO_CODECS: &[(&str, AudioCodec)] =
    &[("opus", AudioCodec::Opus), ("aac", AudioCodec::Aac)];
pub const ENCODERS: &[(&str, VideoEncoder)] = &[
    ("auto", VideoEncoder::Auto),
    ("v4l2", VideoEncoder::V4l2),
    ("vaapi", VideoEncoder::Vaapi),
    ("x264", VideoEncoder::X264),
    ("openh264", VideoEncoder::OpenH264),
];
pub const LOG_FORMATS: &[(&str, LogFormat)] = &[
    ("auto", LogFormat::Auto),
    ("text", LogFormat::Text),
    ("json", LogFormat::Json),
    ("journal", LogFormat::Journal),
];

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

pub fn device_id(s: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if s.is_empty() || s.len() > 64 || !s.chars().all(allowed) {
        return Err(format!("{s:?} is not allowed; use {DEVICE_ID_HINT}"));
    }
    Ok(s.to_string())
}

/// The parts of an MQTT broker URL.
pub struct MqttUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

pub fn mqtt_url(s: &str) -> Result<MqttUrl, String> {
    let bad = |why: &str| format!("{:?} {why}; use {MQTT_URL_HINT}", redact(s));
    let (tls, rest) = if let Some(rest) = s.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(bad("must start with mqtt:// or mqtts://"));
    };
    let (host, port) = host_port(rest).map_err(|why| bad(&why))?;
    let port = port.unwrap_or(if tls { 8883 } else { 1883 });
    Ok(MqttUrl { host, port, tls })
}

/// An S3 endpoint: scheme, host and optional port, normalised without a trailing `/`.
pub struct Endpoint {
    pub url: String,
    pub tls: bool,
}

pub fn http_endpoint(s: &str) -> Result<Endpoint, String> {
    let bad = |why: &str| format!("{:?} {why}; use {ENDPOINT_HINT}", redact(s));
    let (tls, rest) = if let Some(rest) = s.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad("must start with http:// or https://"));
    };
    host_port(rest).map_err(|why| bad(&why))?;
    let url = s.strip_suffix('/').unwrap_or(s).to_string();
    Ok(Endpoint { url, tls })
}

/// The URL with any `user:password@` replaced by `***@`, so a message never repeats it.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Splits `host[:port][/]`; the host is returned without IPv6 brackets.
fn host_port(rest: &str) -> Result<(String, Option<u16>), String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err("holds user information; put credentials in their own keys".into());
    }
    if rest.contains(['/', '?', '#']) {
        return Err("has a path, query or fragment; only host and port are allowed".into());
    }
    let (host, port) = split_port(rest)?;
    let port = port
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "has port {p:?}; a port is a number from 1 to 65535"
            )),
        })
        .transpose()?;
    Ok((host, port))
}

fn split_port(rest: &str) -> Result<(String, Option<&str>), String> {
    if let Some(bracketed) = rest.strip_prefix('[') {
        let (ip, after) = bracketed
            .split_once(']')
            .ok_or("has an unclosed '[' around an IPv6 address")?;
        ip.parse::<Ipv6Addr>()
            .map_err(|_| format!("has {ip:?}, which is not an IPv6 address"))?;
        return match after {
            "" => Ok((ip.to_string(), None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((ip.to_string(), Some(port))),
                None => Err("has text after the IPv6 address".into()),
            },
        };
    }
    let (host, port) = match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if host.is_empty() || host.len() > 253 || !host.chars().all(allowed) {
        return Err("has no valid host name or address".into());
    }
    Ok((host.to_string(), port))
}

pub fn topic_prefix(s: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("{s:?} {why}; use {TOPIC_PREFIX_HINT}"));
    if s.is_empty() {
        return bad("is empty");
    }
    if s.contains(['+', '#']) {
        return bad("holds a wildcard");
    }
    if s.starts_with('/') || s.ends_with('/') {
        return bad("starts or ends with '/'");
    }
    if s.split('/').any(str::is_empty) {
        return bad("has an empty level");
    }
    if s.starts_with('$') {
        return bad("starts with '$', which brokers reserve ($SYS)");
    }
    if s.chars().any(char::is_control) || s.len() > 1024 {
        return bad("has control characters or is over 1024 bytes");
    }
    Ok(s.to_string())
}

pub fn client_id(s: &str) -> Result<String, String> {
    let ok = (1..=128).contains(&s.chars().count())
        && s.chars().all(|c| !c.is_whitespace() && !c.is_control());
    match ok {
        true => Ok(s.to_string()),
        false => Err(format!("{s:?} is not allowed; use {CLIENT_ID_HINT}")),
    }
}

pub fn non_empty(s: &str) -> Result<String, String> {
    match s.is_empty() {
        true => Err("is empty; remove the key instead".into()),
        false => Ok(s.to_string()),
    }
}

pub fn absolute_dir(s: &str) -> Result<PathBuf, String> {
    let path = Path::new(s);
    if !path.is_absolute() {
        return Err(format!("{s:?} is not absolute; use {ABSOLUTE_DIR_HINT}"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{s:?} holds '..'; use {ABSOLUTE_DIR_HINT}"));
    }
    Ok(path.components().collect())
}

/// `"512 MiB"`, `"20GB"`, `"4096"`.
pub fn byte_size(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a size; use {BYTES_HINT}");
    let text = s.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub const CAMERA_NAME_HINT: &str =
    "the card name or bus info `v4l2-ctl --info` shows, e.g. \"usb-0000:00:14.0-1\"";

/// A V4L2 card name or bus info: non-empty, at most 31 bytes (the kernel's fields are 32
/// bytes with the NUL), no control characters.
pub fn camera_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err(format!("is empty; use {CAMERA_NAME_HINT}"))
    } else if s.len() > 31 {
        Err(format!(
            "{s:?} is longer than V4L2's 31 bytes, so no camera can match it; use {CAMERA_NAME_HINT}"
        ))
    } else if s.chars().any(char::is_control) {
        Err(format!(
            "{s:?} holds control characters; use {CAMERA_NAME_HINT}"
        ))
    } else {
        Ok(s.to_string())
    }
}

pub fn device_path(s: &str) -> Result<PathBuf, String> {
    match Path::new(s).is_absolute() {
        true => Ok(PathBuf::from(s)),
        false => Err(format!("{s:?} is not absolute; use {DEVICE_PATH_HINT}")),
    }
}

pub fn alsa_name(s: &str) -> Result<String, String> {
    match !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        true => Ok(s.to_string()),
        false => Err(format!("{s:?} is not allowed; use {ALSA_HINT}")),
    }
}

/// S3 bucket naming rules (general purpose buckets).
pub fn bucket(s: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("{s:?} {why}; use {BUCKET_HINT}"));
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&s.len()) {
        return bad("is not 3 to 63 characters long");
    }
    if !s.chars().all(allowed) {
        return bad("has characters other than lowercase letters, digits, '.' and '-'");
    }
    if !edge_ok(s.chars().next()) || !edge_ok(s.chars().last()) {
        return bad("does not start and end with a letter or digit");
    }
    if s.contains("..") || s.contains(".-") || s.contains("-.") {
        return bad("has '..', '.-' or '-.'");
    }
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        return bad("looks like an IP address");
    }
    if s.starts_with("xn--")
        || s.starts_with("sthree-")
        || s.ends_with("-s3alias")
        || s.ends_with("--ol-s3")
    {
        return bad("uses a prefix or suffix S3 reserves");
    }
    Ok(s.to_string())
}

pub fn region(s: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    match (1..=64).contains(&s.len()) && s.chars().all(allowed) {
        true => Ok(s.to_string()),
        false => Err(format!("{s:?} is not allowed; use {REGION_HINT}")),
    }
}

/// A `tracing` env-filter directive string. A lone word that is not a level but close to one
/// (`"inf"`, `"warning"`) is refused: env-filter would take it as a target name and quietly
/// log nothing.
pub fn log_level(s: &str) -> Result<String, String> {
    let word = s.trim().to_ascii_lowercase();
    let lone_word = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic());
    if lone_word && !LEVELS.contains(&word.as_str()) {
        let close = |l: &&&str| edit_distance(&word, l) <= 2 || word.starts_with(**l);
        if let Some(level) = LEVELS.iter().find(close) {
            return Err(format!(
                "{s:?} is not a level; did you mean {level:?}? Use {LOG_LEVEL_HINT}"
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("{s:?} is not a valid filter ({e}); use {LOG_LEVEL_HINT}"))
}

/// `"a", "b" or "c"`.
pub fn one_of<T>(options: &[(&str, T)]) -> String {
    let quoted: Vec<String> = options
        .iter()
        .map(|(name, _)| format!("{name:?}"))
        .collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

pub fn choice<T: Copy>(s: &str, options: &[(&str, T)]) -> Result<T, String> {
    if let Some((_, value)) = options.iter().find(|(name, _)| *name == s) {
        return Ok(*value);
    }
    let close = options
        .iter()
        .find(|(name, _)| edit_distance(&s.to_ascii_lowercase(), name) <= 2);
    let suggestion = match close {
        Some((name, _)) => format!(" (did you mean {name:?}?)"),
        None => String::new(),
    };
    Err(format!(
        "{s:?} is not allowed{suggestion}; use {}",
        one_of(options)
    ))
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

pub const KEY_PREFIX_HINT: &str =
    "empty, or path levels of letters, digits, '-', '_' and '.' each ending in '/', like \"rooms/\"";

/// An object-key prefix: relative levels ending in `/`, so keys stay inside the bucket layout.
pub fn key_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    let levels_ok = s.ends_with('/')
        && s[..s.len() - 1].split('/').all(|level| {
            !level.is_empty()
                && level != "."
                && level != ".."
                && level
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if levels_ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a valid prefix; use {KEY_PREFIX_HINT}"
        ))
    }
}
