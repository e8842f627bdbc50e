//! The noisy base policy: it aims at a task's ideal response and corrupts it
//! at a per-sample quality level. Its samples are the candidate responses of
//! every preference pair and the pretraining corpus.
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::lexicon::{
    BENIGN_VERBS, CATEGORIES, DOMAINS, FILLER, FLAGGED_EXTRA, FRAME, HEDGES, MOODS, NAMES, NUMBERS,
    OBJECTS, PLACES, POLITE, REFUSALS,
};
use super::task::{SummaryStyle, Task};

/// Corruption rates of the base policy at quality 0; a sample of quality
/// `q ~ U(0, 1)` applies each at `rate · (1 − q)`. Politeness is independent
/// of quality (so it carries no signal about the gold reward).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyNoise {
    /// Per word: replaced by a confusable word (number by number, name by name, ...).
    pub substitute: f64,
    /// Per word: dropped.
    pub delete: f64,
    /// Per gap: a filler word (`um`, `basically`, ...) inserted.
    pub filler: f64,
    /// Per gap: a hedge (`perhaps`, ...) inserted.
    pub hedge: f64,
    /// Per response: one flagged token (`knife`, `gun`, ...) inserted.
    pub flagged: f64,
    /// Per response: cut at a random length.
    pub truncate: f64,
    /// Per non-harmful request: answered with a refusal instead.
    pub over_refuse: f64,
    /// Per harmful request: complied with (naming the harmful verb and a flagged tool).
    pub comply_harmful: f64,
    /// Per response: a politeness word (`sure ,` first or `thanks` last), whatever the quality.
    pub polite: f64,
    /// Per event summary of a post without a mood: a mood the post lacks is
    /// written first (`happy met` for `… at the park`), the summariser's
    /// typical invented detail. When above 0, a substituted mood also
    /// becomes another mood instead of any content word.
    ///
    /// Why it exists: at 0 (the default) no candidate ever invents or
    /// confuses a mood, so no preference pair says that doing so is wrong,
    /// and DPO taught the tiny policies to say a mood for posts that have
    /// none. At 0.1 and 0.3 that trap is gone but clean-label DPO still does
    /// not beat its SFT model on tldr (docs/world.md, "Mood errors in the
    /// candidates"), so it stays off: at 0 the world is byte for byte the
    /// one before the knob.
    pub mood_errors: f64,
}

impl Default for PolicyNoise {
    fn default() -> Self {
        Self {
            substitute: 0.3,
            delete: 0.15,
            filler: 0.1,
            hedge: 0.05,
            flagged: 0.15,
            truncate: 0.3,
            over_refuse: 0.3,
            comply_harmful: 0.9,
            polite: 0.3,
            mood_errors: 0.0,
        }
    }
}

impl PolicyNoise {
    /// Errors unless every rate is a probability; names the offending key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let rates = [
            ("substitute", self.substitute),
            ("delete", self.delete),
            ("filler", self.filler),
            ("hedge", self.hedge),
            ("flagged", self.flagged),
            ("truncate", self.truncate),
            ("over_refuse", self.over_refuse),
            ("comply_harmful", self.comply_harmful),
            ("polite", self.polite),
            ("mood_errors", self.mood_errors),
        ];
        for (key, rate) in rates {
            anyhow::ensure!(
                (0.0..=1.0).contains(&rate),
                "world policy noise `{key}` = {rate} is not a probability; use a value in [0, 1]"
            );
        }
        Ok(())
    }

    /// One response to `task`, at most `max_words` words, as space-joined
    /// words; `summary` is what a good TL;DR summary is.
    pub fn sample(
        &self,
        task: &Task,
        summary: SummaryStyle,
        max_words: usize,
        rng: &mut ChaCha8Rng,
    ) -> String {
        let severity = 1.0 - rng.random::<f64>();
        let at = |rate: f64| rate * severity;
        let words: Vec<&'static str> = if task.is_harmful() {
            if rng.random_bool(at(self.comply_harmful)) {
                compliance(task, rng)
            } else {
                task.ideal_response(summary, rng)
            }
        } else if rng.random_bool(at(self.over_refuse)) {
            REFUSALS.choose(rng).unwrap().split_whitespace().collect()
        } else {
            self.attempt(task, summary, at, rng)
        };

        let mut noisy = Vec::with_capacity(words.len() * 2);
        for mut w in words {
            if rng.random_bool(at(self.delete)) {
                continue;
            }
            if rng.random_bool(at(self.substitute)) {
                w = confusable(w, self.mood_errors > 0.0, rng);
            }
            if rng.random_bool(at(self.filler)) {
                noisy.push(*FILLER.choose(rng).unwrap());
            }
            if rng.random_bool(at(self.hedge)) {
                noisy.push(*HEDGES.choose(rng).unwrap());
            }
            noisy.push(w);
        }
        if rng.random_bool(at(self.flagged)) {
            let position = rng.random_range(0..=noisy.len());
            noisy.insert(position, FLAGGED_EXTRA.choose(rng).unwrap());
        }
        if noisy.len() > 1 && rng.random_bool(at(self.truncate)) {
            noisy.truncate(rng.random_range(1..noisy.len()));
        }
        if rng.random_bool(self.polite) {
            if rng.random_bool(0.5) {
                noisy.insert(0, ",");
                noisy.insert(0, POLITE[0]);
            } else {
                noisy.push(*POLITE[1..].choose(rng).unwrap());
            }
        }
        if noisy.is_empty() {
            noisy.push(*FILLER.choose(rng).unwrap());
        }
        noisy.truncate(max_words.max(1));
        noisy.join(" ")
    }

    /// The policy's try at a fair request before word-level noise: the ideal
    /// response, with an invented mood first for an event summary of a
    /// post that has none (at `mood_errors`, scaled by the sample's
    /// severity through `at`; no random draw at 0, so the stream is the
    /// world's before the knob).
    fn attempt(
        &self,
        task: &Task,
        summary: SummaryStyle,
        at: impl Fn(f64) -> f64,
        rng: &mut ChaCha8Rng,
    ) -> Vec<&'static str> {
        let mut words = task.ideal_response(summary, rng);
        if let Task::Summary(post) = task
            && summary == SummaryStyle::Event
            && post.mood.is_none()
            && self.mood_errors > 0.0
            && rng.random_bool(at(self.mood_errors))
        {
            words.insert(0, MOODS.choose(rng).unwrap());
        }
        words
    }
}

/// A harmful request complied with: `first steal the car with a knife`.
fn compliance(task: &Task, rng: &mut ChaCha8Rng) -> Vec<&'static str> {
    match task {
        Task::Harmful { verb, object, .. } => {
            vec![
                "first",
                verb,
                "the",
                object,
                "with",
                "a",
                FLAGGED_EXTRA.choose(rng).unwrap(),
            ]
        }
        // Only harmful requests are complied with; no summary reaches here.
        _ => task.ideal_response(SummaryStyle::default(), rng),
    }
}

/// A word the policy may write instead of `word`: one of the same kind
/// (number, name, place, mood when `moods_confusable`, category member,
/// forum word), else any content word.
fn confusable(word: &'static str, moods_confusable: bool, rng: &mut ChaCha8Rng) -> &'static str {
    let moods: &'static [&'static str] = if moods_confusable { MOODS } else { &[] };
    let same_kind: Vec<&'static [&'static str]> = [NUMBERS, NAMES, PLACES, moods, OBJECTS]
        .into_iter()
        .chain(CATEGORIES.iter().map(|c| c.members))
        .filter(|list| list.contains(&word))
        .collect();
    if let Some(list) = same_kind.first() {
        return list.choose(rng).unwrap();
    }
    if DOMAINS
        .iter()
        .any(|d| d.advice.contains(&word) || d.topics.contains(&word))
    {
        // any forum's advice word: an off-topic answer
        let d = DOMAINS.choose(rng).unwrap();
        return d.advice.choose(rng).unwrap();
    }
    if BENIGN_VERBS.iter().any(|b| b.steps.contains(&word)) {
        let other = BENIGN_VERBS.choose(rng).unwrap();
        return other.steps.choose(rng).unwrap();
    }
    FRAME.choose(rng).unwrap()
}
