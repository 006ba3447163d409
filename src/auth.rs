//! auth: Ed25519 signatures on admin commands and, optionally, on meeting snapshots.
//!
//! Owns: the signature scheme (exactly which bytes are signed, the MQTT 5 user property that
//! carries the signature, the `signed_at` / `nonce` claims of a signed command), the key
//! encodings (base64 of the raw 32-byte keys), verification against the configured public
//! keys including the time window, and key generation / signing for `roomrecctl` and tests.
//! Must not touch: the broker, the catalog (the memory of used nonces is the daemon's, kept in
//! the catalog so it survives a restart), the rules engine, logs (a refusal is returned, the
//! caller decides what to log). The clock is passed in; the only outside resource used here is
//! the OS random source, for key and nonce generation.
//!
//! # The scheme (`docs/api.md`, "Signed commands")
//!
//! The signature is *detached*: the payload bytes go on the wire exactly as signed, so no JSON
//! canonicalisation is needed on either side (a classic source of interoperability bugs).
//!
//! - signed bytes = `"roomrec-sig-v1\n"` ‖ the full MQTT topic (UTF-8) ‖ `"\n"` ‖ the payload.
//!   The topic binds the signature to one device and one channel, so a command signed for
//!   room A cannot be replayed to room B, nor a snapshot replayed as a command.
//! - the signature travels in the MQTT 5 user property `roomrec-sig`: standard base64 (with
//!   padding) of the 64-byte Ed25519 signature. Exactly one such property.
//! - a signed command carries two more fields in its JSON: `signed_at` (RFC 3339) and `nonce`
//!   (16–64 characters of `A-Z a-z 0-9 - _`, e.g. 16 random bytes in unpadded base64url).
//! - keys: an admin command (`actor` = `admin:<name>`) is checked against
//!   `auth.admin_keys.<name>`; a snapshot against any key of `auth.meeting_keys`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::Value;

use crate::protocol::Timestamp;

/// The MQTT 5 user property carrying the signature.
pub const SIGNATURE_PROPERTY: &str = "roomrec-sig";
/// Domain separation: these bytes can never be mistaken for another protocol's signed data.
pub const SIGNING_CONTEXT: &[u8] = b"roomrec-sig-v1\n";
pub const NONCE_MIN_LEN: usize = 16;
pub const NONCE_MAX_LEN: usize = 64;
/// `auth.window_s` when absent: five minutes either side of the device clock.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// The bytes a signature covers: context, topic, newline, payload.
pub fn signed_bytes(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(SIGNING_CONTEXT.len() + topic.len() + 1 + payload.len());
    v.extend_from_slice(SIGNING_CONTEXT);
    v.extend_from_slice(topic.as_bytes());
    v.push(b'\n');
    v.extend_from_slice(payload);
    v
}

/// An Ed25519 public key as configured. `Debug` and `Display` print its base64 form.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses standard base64 (padding optional) of the raw 32-byte key, as `roomrecctl key
    /// gen` prints it. Weak (small-order) keys are refused: any signature would verify.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let bytes = decode_32(text.trim())
            .map_err(|e| format!("{e}; use the public key printed by `roomrecctl key gen`"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| "is not a valid Ed25519 public key (not a curve point)".to_owned())?;
        if key.is_weak() {
            return Err("is a weak Ed25519 key (small order) and would accept forgeries".into());
        }
        Ok(PublicKey(key))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

fn decode_32(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| "is not base64".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("decodes to {} bytes; an Ed25519 key has 32", bytes.len()))
}

/// A private signing key (`roomrecctl --key-file`). Never printed: `Debug` shows the public
/// half only.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the OS random source.
    pub fn generate() -> Result<SecretKey, AuthError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// Reads a key file: the first line that is neither empty nor a `#` comment holds the
    /// standard base64 of the 32-byte seed.
    pub fn parse_file(text: &str) -> Result<SecretKey, AuthError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| AuthError::KeyFile("the file holds no key".into()))?;
        let seed = decode_32(line).map_err(|e| AuthError::KeyFile(format!("the key {e}")))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// The key file text: a comment with the public key, then the seed.
    pub fn to_file(&self) -> String {
        format!(
            "# roomrec Ed25519 signing key; keep it secret (mode 0600).\n# public key: {}\n{}\n",
            self.public(),
            STANDARD.encode(self.0.to_bytes())
        )
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The `roomrec-sig` property value for `payload` published on `topic`.
    pub fn sign(&self, topic: &str, payload: &[u8]) -> String {
        STANDARD.encode(self.0.sign(&signed_bytes(topic, payload)).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public())
    }
}

/// A fresh nonce: 16 random bytes, unpadded base64url (22 characters).
pub fn new_nonce() -> Result<String, AuthError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Adds `signed_at` and `nonce` to a command object, replacing any already there.
pub fn add_claims(
    command: &mut serde_json::Map<String, Value>,
    now: Timestamp,
) -> Result<(), AuthError> {
    command.insert("signed_at".into(), Value::String(now.to_rfc3339()));
    command.insert("nonce".into(), Value::String(new_nonce()?));
    Ok(())
}

/// Errors of key handling (not refusals of a message: see [`Refusal`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the OS random source failed: {0}")]
    Random(String),
    #[error("{0}")]
    KeyFile(String),
}

/// `[auth]`: who may sign what, and how fresh a signed command must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// Admin name → key; `actor = "admin:<name>"` must be signed by that key.
    pub admin_keys: BTreeMap<String, PublicKey>,
    /// Key id → key of the meeting service; used when `require_signed_meeting`.
    pub meeting_keys: BTreeMap<String, PublicKey>,
    /// How far `signed_at` may be from the device clock, either way.
    pub window: Duration,
    /// Accept unsigned admin commands (labs and demos only). A signature that is present is
    /// still checked.
    pub allow_unsigned_admin: bool,
    /// Refuse meeting snapshots not signed by a key of `meeting_keys`.
    pub require_signed_meeting: bool,
}

impl Default for AuthConfig {
    /// A new install: no keys, so admin commands are refused until one is configured.
    fn default() -> Self {
        AuthConfig {
            admin_keys: BTreeMap::new(),
            meeting_keys: BTreeMap::new(),
            window: DEFAULT_WINDOW,
            allow_unsigned_admin: false,
            require_signed_meeting: false,
        }
    }
}

/// Why a signed message was refused; the reply's `forbidden` message is its `Display`, and
/// its `reason` is [`Refusal::reason`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("admin commands are refused: this device has no admin keys (auth.admin_keys); configure one, see docs/api.md")]
    NoAdminKeys,
    #[error("admin:{0} has no key on this device (auth.admin_keys); only configured admins may send admin commands")]
    UnknownKey(String),
    #[error("this message must be signed: it has no MQTT 5 user property 'roomrec-sig' (roomrecctl --key-file signs)")]
    Unsigned,
    #[error("the signature cannot be read: {0}")]
    Malformed(String),
    #[error("the signature does not verify with {0}'s key for this topic and payload")]
    BadSignature(String),
    #[error("signed_at {signed_at} is more than {window_s} s from the device clock ({now}): the message expired or a clock is wrong; check NTP on the device and the sender")]
    Expired {
        signed_at: String,
        now: String,
        window_s: u64,
    },
    #[error("nonce {0:?} was already used: a replayed message is never executed again; sign each send afresh")]
    Replayed(String),
}

impl Refusal {
    /// A stable token for programs, sent as the error's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoAdminKeys => "no_admin_keys",
            Refusal::UnknownKey(_) => "unknown_key",
            Refusal::Unsigned => "unsigned",
            Refusal::Malformed(_) => "malformed_signature",
            Refusal::BadSignature(_) => "bad_signature",
            Refusal::Expired { .. } => "expired",
            Refusal::Replayed(_) => "replayed",
        }
    }
}

/// A command whose signature verified: the claims the caller still checks for replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The admin name whose key verified it.
    pub key_id: String,
    pub nonce: String,
    pub signed_at: Timestamp,
}

/// Checks signatures against an [`AuthConfig`]. Pure: the clock is an argument.
#[derive(Clone, Debug)]
pub struct Verifier {
    config: AuthConfig,
}

impl Verifier {
    pub fn new(config: AuthConfig) -> Verifier {
        Verifier { config }
    }

    pub fn requires_signed_meeting(&self) -> bool {
        self.config.require_signed_meeting
    }

    /// Checks an admin command from `admin` received on `topic`. `Ok(None)`: accepted
    /// unsigned (only with `allow_unsigned_admin`). `Ok(Some)`: signed and fresh; the caller
    /// must still check the nonce was not used before.
    pub fn check_admin(
        &self,
        admin: &str,
        topic: &str,
        payload: &[u8],
        signatures: &[String],
        now: Timestamp,
    ) -> Result<Option<Verified>, Refusal> {
        if signatures.is_empty() && self.config.allow_unsigned_admin {
            return Ok(None);
        }
        if self.config.admin_keys.is_empty() {
            return Err(Refusal::NoAdminKeys);
        }
        let key = self
            .config
            .admin_keys
            .get(admin)
            .ok_or_else(|| Refusal::UnknownKey(admin.to_owned()))?;
        let signature = one_signature(signatures)?;
        // verify_strict: refuses non-canonical and small-order encodings (signature
        // malleability), so one signed command cannot be turned into a second valid one.
        key.0
            .verify_strict(&signed_bytes(topic, payload), &signature)
            .map_err(|_| Refusal::BadSignature(format!("admin:{admin}")))?;
        let (signed_at, nonce) = claims(payload)?;
        let window_ms = i64::try_from(self.config.window.as_millis()).unwrap_or(i64::MAX);
        if (now.0 - signed_at.0).abs() > window_ms {
            return Err(Refusal::Expired {
                signed_at: signed_at.to_rfc3339(),
                now: now.to_rfc3339(),
                window_s: self.config.window.as_secs(),
            });
        }
        Ok(Some(Verified {
            key_id: admin.to_owned(),
            nonce,
            signed_at,
        }))
    }

    /// Checks a meeting snapshot when signed snapshots are required; otherwise accepts it.
    ///
    /// No time window or nonce here: the snapshot is retained, so the device legitimately
    /// reads an old one at every (re)connect. Its `version`, which only grows and is kept in
    /// the catalog, is what makes a replayed older snapshot harmless (it is ignored as stale).
    pub fn check_meeting(
        &self,
        topic: &str,
        payload: &[u8],
        signatures: &[String],
    ) -> Result<(), Refusal> {
        if !self.config.require_signed_meeting {
            return Ok(());
        }
        if signatures.is_empty() {
            return Err(Refusal::Unsigned);
        }
        if payload.is_empty() {
            // An empty message has no version, so a captured signed one could end any later
            // meeting when replayed.
            return Err(Refusal::Malformed(
                "an empty snapshot has no version and cannot be signed safely; publish a signed {\"version\": N, \"meeting_id\": null} instead".into(),
            ));
        }
        let signature = one_signature(signatures)?;
        let message = signed_bytes(topic, payload);
        let ok = self
            .config
            .meeting_keys
            .values()
            .any(|k| k.0.verify_strict(&message, &signature).is_ok());
        match ok {
            true => Ok(()),
            false => Err(Refusal::BadSignature("the meeting service".into())),
        }
    }
}

fn one_signature(signatures: &[String]) -> Result<Signature, Refusal> {
    let text = match signatures {
        [] => return Err(Refusal::Unsigned),
        [one] => one,
        _ => {
            return Err(Refusal::Malformed(format!(
                "{} '{SIGNATURE_PROPERTY}' properties; send exactly one",
                signatures.len()
            )))
        }
    };
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| Refusal::Malformed(format!("'{SIGNATURE_PROPERTY}' is not base64")))?;
    let bytes = <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| {
        Refusal::Malformed(format!(
            "'{SIGNATURE_PROPERTY}' decodes to {} bytes; an Ed25519 signature has 64",
            bytes.len()
        ))
    })?;
    Ok(Signature::from_bytes(&bytes))
}

/// `signed_at` and `nonce` of a signed command. Read only after the signature verified, so
/// they are the signer's own.
fn claims(payload: &[u8]) -> Result<(Timestamp, String), Refusal> {
    let obj: serde_json::Map<String, Value> = serde_json::from_slice(payload)
        .map_err(|_| Refusal::Malformed("the payload is not a JSON object".into()))?;
    let signed_at = match obj.get("signed_at") {
        Some(Value::String(s)) => Timestamp::parse(s)
            .map_err(|e| Refusal::Malformed(format!("field 'signed_at': {e}")))?,
        _ => {
            return Err(Refusal::Malformed(
                "a signed command needs 'signed_at', an RFC 3339 time".into(),
            ))
        }
    };
    let nonce = match obj.get("nonce") {
        Some(Value::String(s)) if valid_nonce(s) => s.clone(),
        _ => {
            return Err(Refusal::Malformed(format!(
                "a signed command needs 'nonce', {NONCE_MIN_LEN} to {NONCE_MAX_LEN} characters of A-Z a-z 0-9 - _"
            )))
        }
    };
    Ok((signed_at, nonce))
}

fn valid_nonce(s: &str) -> bool {
    (NONCE_MIN_LEN..=NONCE_MAX_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "roomrec/v1/room-1/cmd";

    fn setup() -> (SecretKey, Verifier) {
        let key = SecretKey::parse_file(&SecretKey::generate().unwrap().to_file()).unwrap();
        let mut config = AuthConfig::default();
        config.admin_keys.insert("ops".into(), key.public());
        (key, Verifier::new(config))
    }

    fn command(now: Timestamp) -> Vec<u8> {
        let mut obj = serde_json::Map::new();
        obj.insert("id".into(), "c-1".into());
        obj.insert("actor".into(), "admin:ops".into());
        obj.insert("action".into(), "list_recordings".into());
        add_claims(&mut obj, now).unwrap();
        Value::Object(obj).to_string().into_bytes()
    }

    #[test]
    fn signed_fresh_command_verifies_and_tampering_does_not() {
        let (key, v) = setup();
        let now = Timestamp(1_800_000_000_000);
        let payload = command(now);
        let sig = vec![key.sign(TOPIC, &payload)];
        let ok = v.check_admin("ops", TOPIC, &payload, &sig, now).unwrap();
        assert_eq!(ok.unwrap().signed_at, Timestamp(now.0 / 1000 * 1000));
        let other_device = "roomrec/v1/room-2/cmd";
        assert_eq!(
            v.check_admin("ops", other_device, &payload, &sig, now)
                .unwrap_err()
                .reason(),
            "bad_signature"
        );
        let mut tampered = payload.clone();
        tampered.push(b' ');
        assert_eq!(
            v.check_admin("ops", TOPIC, &tampered, &sig, now)
                .unwrap_err()
                .reason(),
            "bad_signature"
        );
        let late = Timestamp(now.0 + 301_000);
        assert_eq!(
            v.check_admin("ops", TOPIC, &payload, &sig, late)
                .unwrap_err()
                .reason(),
            "expired"
        );
        let early = Timestamp(now.0 - 301_000);
        assert_eq!(
            v.check_admin("ops", TOPIC, &payload, &sig, early)
                .unwrap_err()
                .reason(),
            "expired"
        );
        assert_eq!(
            v.check_admin("ops", TOPIC, &payload, &[], now)
                .unwrap_err()
                .reason(),
            "unsigned"
        );
        assert_eq!(
            v.check_admin("eve", TOPIC, &payload, &sig, now)
                .unwrap_err()
                .reason(),
            "unknown_key"
        );
        let two = vec![sig[0].clone(), sig[0].clone()];
        assert_eq!(
            v.check_admin("ops", TOPIC, &payload, &two, now)
                .unwrap_err()
                .reason(),
            "malformed_signature"
        );
    }

    #[test]
    fn no_keys_refuses_admin_unless_unsigned_is_allowed() {
        let v = Verifier::new(AuthConfig::default());
        let now = Timestamp(1);
        let e = v.check_admin("ops", TOPIC, b"{}", &[], now).unwrap_err();
        assert_eq!(e, Refusal::NoAdminKeys);
        let v = Verifier::new(AuthConfig {
            allow_unsigned_admin: true,
            ..AuthConfig::default()
        });
        assert_eq!(v.check_admin("ops", TOPIC, b"{}", &[], now), Ok(None));
    }

    #[test]
    fn keys_parse_and_bad_keys_are_refused() {
        let key = SecretKey::generate().unwrap();
        let text = key.public().to_base64();
        assert_eq!(PublicKey::parse(&text).unwrap(), key.public());
        assert!(PublicKey::parse("not base64!")
            .unwrap_err()
            .contains("base64"));
        assert!(PublicKey::parse("AAAA").unwrap_err().contains("32"));
        // The identity point: small order, so weak.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey::parse(&STANDARD.encode(identity))
            .unwrap_err()
            .contains("weak"));
        assert!(!format!("{key:?}").contains(&STANDARD.encode(key.0.to_bytes())));
    }

    #[test]
    fn meeting_signatures_when_required() {
        let key = SecretKey::generate().unwrap();
        let topic = "roomrec/v1/room-1/meeting";
        let mut config = AuthConfig {
            require_signed_meeting: true,
            ..AuthConfig::default()
        };
        config.meeting_keys.insert("svc".into(), key.public());
        let v = Verifier::new(config);
        let payload = br#"{"version":1,"meeting_id":null}"#;
        assert_eq!(
            v.check_meeting(topic, payload, &[key.sign(topic, payload)]),
            Ok(())
        );
        assert_eq!(v.check_meeting(topic, payload, &[]), Err(Refusal::Unsigned));
        let wrong = SecretKey::generate().unwrap().sign(topic, payload);
        assert_eq!(
            v.check_meeting(topic, payload, &[wrong])
                .unwrap_err()
                .reason(),
            "bad_signature"
        );
    }
}
