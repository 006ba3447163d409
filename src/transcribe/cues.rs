//! From the recogniser's hypotheses to timed cues: pure, no GStreamer, no files.
//!
//! Owns: turning the stream of partial and final hypotheses into utterances with a time for
//! each word, and cutting utterances into cues short enough to read. Must not touch: the
//! pipeline, WebVTT text.
//!
//! Why partials: the `pocketsphinx` element posts a final hypothesis without a timestamp (its
//! `timestamp` is `GST_CLOCK_TIME_NONE`), but each partial hypothesis carries the timestamp of
//! the audio it was made on. A word's time is taken as the first partial holding at least that
//! many words: when the recogniser had heard that far. The end of an utterance is where the
//! audio was when the final hypothesis came (the recogniser's silence detector closing it).

/// One word of an utterance and when, in ms on the recording's timeline, it was heard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedWord {
    pub text: String,
    pub at_ms: u64,
}

/// One utterance: what the recogniser settled on, with its words' times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Utterance {
    pub words: Vec<TimedWord>,
    pub end_ms: u64,
}

/// A subtitle cue on the recording's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cue {
    pub start_ms: u64,
    pub end_ms: u64,
    /// Plain text (escaped only when written as WebVTT).
    pub text: String,
}

/// Collects hypotheses in the order the recogniser posts them.
#[derive(Debug, Default)]
pub struct Collector {
    /// (timestamp ms, word count) of the current utterance's partials.
    partials: Vec<(u64, usize)>,
    utterances: Vec<Utterance>,
}

impl Collector {
    /// A partial hypothesis made on audio at `at_ms`.
    pub fn partial(&mut self, hypothesis: &str, at_ms: u64) {
        let words = hypothesis.split_whitespace().count();
        if words > 0 {
            self.partials.push((at_ms, words));
        }
    }

    /// The final hypothesis of the current utterance, posted when the audio was at `end_ms`.
    pub fn final_hypothesis(&mut self, hypothesis: &str, end_ms: u64) {
        let partials = std::mem::take(&mut self.partials);
        let texts: Vec<&str> = hypothesis.split_whitespace().collect();
        if texts.is_empty() {
            return;
        }
        let first = partials.first().map_or(end_ms, |p| p.0);
        let mut last = first;
        let words = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                // The first partial that had heard this many words; later words than any
                // partial showed are placed at the last time known (never before the previous).
                let heard = partials.iter().find(|p| p.1 > i).map_or(last, |p| p.0);
                last = heard.max(last).min(end_ms.max(first));
                TimedWord {
                    text: (*text).to_owned(),
                    at_ms: last,
                }
            })
            .collect();
        self.utterances.push(Utterance {
            words,
            end_ms: end_ms.max(first),
        });
    }

    pub fn into_utterances(self) -> Vec<Utterance> {
        self.utterances
    }
}

/// A cue holds at most this many words: two lines of a subtitle.
pub const MAX_CUE_WORDS: usize = 12;
/// And lasts at most this long, so that text and speech stay close.
pub const MAX_CUE_MS: u64 = 6_000;
/// A cue shorter than this is stretched (within its utterance) so it can be read.
pub const MIN_CUE_MS: u64 = 800;

/// Cut each utterance into cues of at most [`MAX_CUE_WORDS`] words and [`MAX_CUE_MS`]; a cue
/// starts at its first word and ends where the next one starts (or the utterance ends).
pub fn cues(utterances: &[Utterance]) -> Vec<Cue> {
    let mut out = Vec::new();
    for u in utterances {
        let mut chunks: Vec<&[TimedWord]> = Vec::new();
        let mut start = 0;
        for (i, w) in u.words.iter().enumerate() {
            let too_many = i - start >= MAX_CUE_WORDS;
            let too_long = w.at_ms.saturating_sub(u.words[start].at_ms) >= MAX_CUE_MS;
            if i > start && (too_many || too_long) {
                chunks.push(&u.words[start..i]);
                start = i;
            }
        }
        if start < u.words.len() {
            chunks.push(&u.words[start..]);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            let start_ms = chunk[0].at_ms;
            let next = chunks.get(i + 1).map_or(u.end_ms, |c| c[0].at_ms);
            let end_ms = next.max(start_ms + MIN_CUE_MS.min(u.end_ms.saturating_sub(start_ms)));
            let text: Vec<&str> = chunk.iter().map(|w| w.text.as_str()).collect();
            out.push(Cue {
                start_ms,
                end_ms: end_ms.max(start_ms + 1),
                text: text.join(" "),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_take_the_time_of_the_first_partial_that_heard_them() {
        let mut c = Collector::default();
        c.partial("the", 1_000);
        c.partial("the cat", 1_400);
        c.partial("the hat", 1_500);
        c.partial("the cat sat", 1_900);
        c.final_hypothesis("the cat sat down", 2_600);
        let u = c.into_utterances();
        let times: Vec<u64> = u[0].words.iter().map(|w| w.at_ms).collect();
        assert_eq!(times, [1_000, 1_400, 1_900, 1_900]);
        assert_eq!(u[0].end_ms, 2_600);
    }

    #[test]
    fn each_final_starts_a_new_utterance() {
        let mut c = Collector::default();
        c.partial("one", 500);
        c.final_hypothesis("one", 900);
        c.partial("two", 5_000);
        c.final_hypothesis("two three", 6_000);
        c.final_hypothesis("", 7_000);
        let u = c.into_utterances();
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].words[0].at_ms, 5_000);
        assert_eq!(u[1].words[1].at_ms, 5_000);
    }

    #[test]
    fn long_utterances_are_cut_into_readable_cues() {
        let words = (0..30)
            .map(|i| TimedWord {
                text: format!("w{i}"),
                at_ms: 1_000 + i * 300,
            })
            .collect();
        let cues = cues(&[Utterance {
            words,
            end_ms: 11_000,
        }]);
        assert_eq!(cues.len(), 3);
        assert!(cues
            .iter()
            .all(|c| c.text.split(' ').count() <= MAX_CUE_WORDS));
        assert_eq!(cues[0].start_ms, 1_000);
        assert_eq!(cues[0].end_ms, cues[1].start_ms);
        assert_eq!(cues[2].end_ms, 11_000);
        let all: Vec<&str> = cues.iter().flat_map(|c| c.text.split(' ')).collect();
        assert_eq!(all.len(), 30);
    }

    #[test]
    fn a_cue_lasts_long_enough_to_read_within_its_utterance() {
        let u = Utterance {
            words: vec![TimedWord {
                text: "yes".into(),
                at_ms: 2_000,
            }],
            end_ms: 2_100,
        };
        let c = cues(&[u]);
        assert_eq!((c[0].start_ms, c[0].end_ms), (2_000, 2_100));
    }
}
