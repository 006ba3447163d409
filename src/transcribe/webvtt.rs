//! WebVTT text of a transcript: pure, no I/O.
//!
//! Owns: the WebVTT file of a whole recording, and the per-segment WebVTT files of an HLS
//! subtitle rendition (each with its `X-TIMESTAMP-MAP`). Must not touch: the playlists (the
//! upload's `manifest` writes them), the recogniser.
//!
//! Cue text is the recogniser's words, which never hold markup on purpose; `&`, `<` and `>`
//! are escaped anyway (a model's dictionary may hold them), so no word is ever read as a tag
//! and no text can end a cue early with `-->`.

use super::cues::Cue;

/// The whole transcript as one WebVTT file; cue times are on the recording's timeline.
pub fn document(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    push_cues(&mut out, cues.iter());
    out
}

/// One HLS subtitle segment: the cues overlapping `[start_ms, start_ms + duration_ms)` of the
/// recording's timeline, with their times kept on that timeline, and `X-TIMESTAMP-MAP` tying
/// `start_ms` to `first_pts`, the MPEG-TS timestamp (90 kHz) at which the media segment it
/// goes with starts. A cue spanning two segments is in both, as the HLS spec asks.
pub fn hls_segment(cues: &[Cue], start_ms: u64, duration_ms: u64, first_pts: u64) -> String {
    let end_ms = start_ms + duration_ms;
    let mut out = format!(
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{first_pts},LOCAL:{}\n\n",
        timestamp(start_ms)
    );
    push_cues(
        &mut out,
        cues.iter()
            .filter(|c| c.start_ms < end_ms && c.end_ms > start_ms),
    );
    out
}

fn push_cues<'a>(out: &mut String, cues: impl Iterator<Item = &'a Cue>) {
    for cue in cues {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            timestamp(cue.start_ms),
            timestamp(cue.end_ms),
            escape(&cue.text)
        ));
    }
}

/// `hh:mm:ss.ttt`, hours unbounded.
pub fn timestamp(ms: u64) -> String {
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    format!("{h:02}:{m:02}:{:02}.{:03}", rest / 1000, rest % 1000)
}

/// Cue text with `&`, `<`, `>` as character references and no line break or blank line
/// (which would end the cue).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(start_ms: u64, end_ms: u64, text: &str) -> Cue {
        Cue {
            start_ms,
            end_ms,
            text: text.into(),
        }
    }

    #[test]
    fn a_document_lists_every_cue_with_its_times() {
        let vtt = document(&[
            cue(1_500, 3_250, "hello there"),
            cue(3_661_001, 3_662_000, "x"),
        ]);
        assert_eq!(
            vtt,
            "WEBVTT\n\n00:00:01.500 --> 00:00:03.250\nhello there\n\n\
             01:01:01.001 --> 01:01:02.000\nx\n\n"
        );
    }

    #[test]
    fn markup_and_line_breaks_never_reach_the_cue() {
        assert_eq!(
            escape("<b>a & b</b> --> c\n\nd"),
            "&lt;b&gt;a &amp; b&lt;/b&gt; --&gt; c  d"
        );
    }

    #[test]
    fn a_segment_holds_the_cues_overlapping_it_and_maps_its_start_to_its_pts() {
        let cues = [
            cue(0, 1_000, "a"),
            cue(1_500, 2_500, "b"),
            cue(3_900, 4_200, "c"),
        ];
        let vtt = hls_segment(&cues, 2_000, 2_000, 900_000);
        assert_eq!(
            vtt,
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:02.000\n\n\
             00:00:01.500 --> 00:00:02.500\nb\n\n00:00:03.900 --> 00:00:04.200\nc\n\n"
        );
    }
}
