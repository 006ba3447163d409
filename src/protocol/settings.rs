//! The meeting snapshot's optional `settings` (rules W1–W4, T1): what the meeting asks for,
//! read leniently so that a bad field never costs the meeting.
//!
//! Owns: the shape of `settings`, the checks of the watermark text (length, control and
//! formatting characters, markup-looking content) and the message of a refusal.
//! Must not touch: what is in force for a tier (`rules::features` decides that).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest watermark text, in characters (the spec's limit).
pub const MAX_WATERMARK_TEXT_CHARS: usize = 64;

/// `settings.watermark.video`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoWatermark {
    #[default]
    Off,
    /// W1: one semi-transparent row across the picture.
    Single,
    /// W2: the text tiled in staggered rows over the whole picture.
    Multi,
}

impl VideoWatermark {
    pub fn as_str(self) -> &'static str {
        match self {
            VideoWatermark::Off => "off",
            VideoWatermark::Single => "single",
            VideoWatermark::Multi => "multi",
        }
    }
}

/// `settings.watermark`; in the state (`in_force`), `text` is the text actually burned in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkSettings {
    #[serde(default)]
    pub video: VideoWatermark,
    /// Absent: the device's `device_id`. Checked by [`check_watermark_text`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default)]
    pub audio: bool,
}

/// What a meeting asks for. Absent means all off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default)]
    pub watermark: WatermarkSettings,
    #[serde(default)]
    pub transcription: bool,
    /// Why the snapshot's `settings` were refused (a `bad_request` sentence naming the field);
    /// they are then all off and the rest of the meeting applies. Not saved with the meeting:
    /// the refusal is told once, when the snapshot arrives.
    #[serde(skip)]
    pub refused: Option<String>,
}

impl Settings {
    /// Nothing asked for: saved meetings leave the field out.
    pub fn is_off(&self) -> bool {
        *self == Settings::default()
    }

    /// Reads `settings` from a snapshot. Any problem turns every setting off and says why in
    /// `refused`, so the meeting itself still applies.
    pub fn read(value: Option<Value>) -> Settings {
        match value {
            None | Some(Value::Null) => Settings::default(),
            Some(v) => Settings::parse(v).unwrap_or_else(|message| Settings {
                refused: Some(message),
                ..Settings::default()
            }),
        }
    }

    fn parse(value: Value) -> Result<Settings, String> {
        if !value.is_object() {
            return Err(
                "field 'settings' must be an object; recording goes on without \
                        watermarks or transcription"
                    .into(),
            );
        }
        let settings: Settings = serde_json::from_value(value).map_err(|e| {
            format!("field 'settings': {e}; recording goes on without watermarks or transcription")
        })?;
        if let Some(text) = &settings.watermark.text {
            check_watermark_text(text).map_err(|why| {
                format!(
                    "field 'settings.watermark.text' {why}; recording goes on without \
                     watermarks or transcription until a snapshot brings a valid text"
                )
            })?;
        }
        Ok(settings)
    }
}

/// Bidirectional controls: formatting characters that would let a text display as another.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The watermark text must be at most 64 characters of printable text with nothing that
/// looks like markup: it is burned into the picture verbatim (media escapes it as well, so
/// it is never read as markup whatever this check lets through).
pub fn check_watermark_text(text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars > MAX_WATERMARK_TEXT_CHARS {
        return Err(format!(
            "is {chars} characters long; the limit is {MAX_WATERMARK_TEXT_CHARS}"
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
        return Err(format!(
            "holds the control or formatting character U+{:04X}; use printable text only",
            u32::from(c)
        ));
    }
    if let Some(c) = text.chars().find(|c| matches!(c, '<' | '>' | '&')) {
        return Err(format!(
            "holds '{c}', which looks like markup; the text is shown as written, so leave \
             out '<', '>' and '&'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Settings {
        Settings::read(Some(serde_json::from_str(json).expect("test JSON")))
    }

    #[test]
    fn absent_and_null_are_all_off() {
        assert!(Settings::read(None).is_off());
        assert!(Settings::read(Some(Value::Null)).is_off());
        assert!(read("{}").is_off());
    }

    #[test]
    fn a_full_settings_object_reads_back() {
        let s = read(
            r#"{"watermark":{"video":"multi","text":"Acme · Room 101","audio":true},
                "transcription":true}"#,
        );
        assert_eq!(s.watermark.video, VideoWatermark::Multi);
        assert_eq!(s.watermark.text.as_deref(), Some("Acme · Room 101"));
        assert!(s.watermark.audio && s.transcription && s.refused.is_none());
    }

    #[test]
    fn bad_texts_turn_everything_off_and_say_why() {
        let long = "x".repeat(65);
        let cases = [
            (long.as_str(), "65 characters"),
            ("Room\n101", "U+000A"),
            ("Room\u{202E}101", "U+202E"),
            ("<b>Room</b>", "'<'"),
            ("Tom &amp; Jerry", "'&'"),
            ("a > b", "'>'"),
        ];
        for (text, needle) in cases {
            let json = serde_json::json!({"watermark": {"video": "single", "text": text},
                                          "transcription": true});
            let s = Settings::read(Some(json));
            let why = s.refused.clone().unwrap_or_default();
            assert!(why.contains("settings.watermark.text"), "{text:?}: {why}");
            assert!(why.contains(needle), "{text:?}: {why}");
            assert_eq!(s.watermark.video, VideoWatermark::Off, "{text:?}");
            assert!(!s.transcription, "{text:?}");
        }
        let exactly = "é".repeat(64);
        assert!(
            check_watermark_text(&exactly).is_ok(),
            "64 characters, 128 bytes"
        );
    }

    #[test]
    fn bad_shapes_are_refused_naming_the_field() {
        for (json, needle) in [
            (r#"{"watermark":{"video":"triple"}}"#, "triple"),
            (r#"{"transcription":"yes"}"#, "settings"),
            (r#""on""#, "must be an object"),
        ] {
            let s = read(json);
            let why = s.refused.clone().unwrap_or_default();
            assert!(why.contains(needle), "{json}: {why}");
            assert!(why.contains("'settings"), "{json}: {why}");
        }
    }
}
