//! The synthetic preference world: a seeded generator of a small word-level
//! language whose task families stand in for the paper's datasets (HH-RLHF
//! harmless / helpful, TL;DR, UltraFeedback, SHP forums).
//!
//! A family's pairs are made in three steps: draw a task ([`task`]), sample
//! candidate responses from the noisy base policy ([`policy`]), and let a
//! simulated human pick one ([`human`]), or, for `ufb`, a noisy judge. The
//! gold reward ([`reward`]) is a function of the prompt and response text
//! only. Everything is drawn from ChaCha8 streams derived from
//! `WorldConfig::seed`, the family and the stream's purpose, so the same
//! config gives byte-identical data and families do not disturb each other.
pub mod hh_layout;
pub mod human;
pub mod lexicon;
pub mod policy;
pub mod reward;
pub mod stats;
pub mod task;

use anyhow::{Context, bail, ensure};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use human::{AnnotatorPool, HumanNoise};
pub use policy::PolicyNoise;

use crate::data::PreferencePair;
use crate::data::word_tokenizer::WordTokenizer;
use crate::eval::gold::TrueReward;
use lexicon::DOMAINS;
pub use task::SummaryStyle;
use task::{Task, TaskKind};

/// The task families, named after the datasets they stand in for.
pub const FAMILIES: &[&str] = &[
    "harmless",
    "helpful",
    "hh-rlhf",
    "tldr",
    "ufb",
    "shp-askacademia",
    "shp-askbaking",
    "shp-askengineers",
    "shp-askphilosophy",
];

/// Candidates per `ufb` prompt, as in UltraFeedback.
pub const UFB_CANDIDATES: usize = 4;

/// Everything that defines a world. Every field has a documented default, so
/// a manifest names only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    /// Seed of every random stream of the world.
    pub seed: u64,
    /// Preference pairs per family.
    pub n_pairs: usize,
    /// Held-out prompts per family for generation / GRA.
    pub n_test_prompts: usize,
    /// Share of the prompt space reserved for test prompts (by a seeded hash
    /// of the prompt text), so training and test prompts never meet.
    pub test_prompt_share: f64,
    /// Most items in a copy / sort / reverse prompt (and list size); prompts
    /// stay within about 10 words.
    pub max_items: usize,
    /// Responses are cut to this many words.
    pub max_response_words: usize,
    /// The base policy's corruption rates.
    pub policy: PolicyNoise,
    /// How simulated humans choose (not used by `ufb`, whose noise is its judge's).
    pub human: HumanNoise,
    /// Probability that a human label is flipped after the noise model chose.
    pub flip: f64,
    /// Standard deviation of the `ufb` judge's Gaussian noise on the gold reward.
    pub ufb_judge_noise: f64,
    /// How much the text every tiny model is pretrained on leans the way the
    /// gold judge does: the share of pretraining documents whose response is
    /// the gold-best of [`PRIOR_CANDIDATES`] base-policy samples instead of a
    /// single sample. The paper's weak annotator and gold RM have read the
    /// same web text, so their priors agree; at 0 (the default, today's
    /// world) nothing links them. Changes only the `pretrain` corpus, never
    /// the pairs, their labels, the test prompts or the judge (issue 18).
    pub pretrain_gold_share: f64,
    /// What a good TL;DR summary is (`tldr` and `ufb`'s TL;DR prompts): the
    /// post's gist (`event`, the default) or its entities (`entities`, the
    /// world before issue 21, which the tiny policies cannot learn: they do
    /// not copy names from their prompt). See [`task::SummaryStyle`].
    pub tldr_summary: SummaryStyle,
}

/// World keys the pretraining corpus never reads: the labels' noise and the
/// pair and test-prompt counts. [`pretraining_world`] drops them, so worlds
/// that differ only in how humans label (a clean-label control, a flip-rate
/// sweep) share one pretrained model per size instead of training it again.
const KEYS_THE_CORPUS_IGNORES: &[&str] = &[
    "n_pairs",
    "n_test_prompts",
    "human",
    "flip",
    "ufb_judge_noise",
];

/// A world config written as JSON (profile `[world]` + manifest `[world]`),
/// less the keys the pretraining corpus does not depend on: the `pretrain`
/// stage's view of the world and so part of its cache key. Keys are dropped
/// by name from a fixed list, so a new key is kept (safe: at worst a shared
/// model is trained twice); a test checks that the dropped keys indeed leave
/// the corpus unchanged.
pub fn pretraining_world(world: &serde_json::Value) -> serde_json::Value {
    let mut view = world.clone();
    if let Some(table) = view.as_object_mut() {
        for key in KEYS_THE_CORPUS_IGNORES {
            table.remove(*key);
        }
    }
    view
}

/// Base-policy samples a gold-leaning pretraining document picks the best of.
pub const PRIOR_CANDIDATES: usize = 4;

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            n_pairs: 1000,
            n_test_prompts: 50,
            test_prompt_share: 0.2,
            max_items: 4,
            max_response_words: 12,
            policy: PolicyNoise::default(),
            human: HumanNoise::default(),
            flip: 0.05,
            ufb_judge_noise: 0.9,
            pretrain_gold_share: 0.0,
            tldr_summary: SummaryStyle::Event,
        }
    }
}

impl WorldConfig {
    /// One base-policy response to `task` (at most `max_response_words`).
    pub fn base_response(&self, task: &Task, rng: &mut ChaCha8Rng) -> String {
        self.policy
            .sample(task, self.tldr_summary, self.max_response_words, rng)
    }

    /// The gold reward of `response` to `task` in this world.
    pub fn gold(&self, task: &Task, response: &str) -> f64 {
        reward::gold_reward(task, self.tldr_summary, response)
    }

    /// A world config written as JSON (a profile's `[world]` with a
    /// manifest's `[world]` over it): unknown keys are denied and every
    /// value is range-checked. The one conversion every reader uses.
    pub fn from_json(world: &serde_json::Value) -> anyhow::Result<WorldConfig> {
        let config: WorldConfig =
            serde_json::from_value(world.clone()).map_err(anyhow::Error::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Errors on any out-of-range value, naming the key and the valid range.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.n_pairs > 0, "world `n_pairs` must be at least 1");
        ensure!(
            self.test_prompt_share > 0.0 && self.test_prompt_share < 1.0,
            "world `test_prompt_share` = {} must be in (0, 1); e.g. 0.2",
            self.test_prompt_share
        );
        ensure!(
            (2..=8).contains(&self.max_items),
            "world `max_items` = {} must be in 2..=8",
            self.max_items
        );
        ensure!(
            self.max_response_words >= 4,
            "world `max_response_words` = {} must be at least 4 (the shortest ideal answer)",
            self.max_response_words
        );
        ensure!(
            (0.0..=0.5).contains(&self.flip),
            "world `flip` = {} must be in [0, 0.5]",
            self.flip
        );
        ensure!(
            self.ufb_judge_noise.is_finite() && self.ufb_judge_noise >= 0.0,
            "world `ufb_judge_noise` = {} must be a finite number ≥ 0",
            self.ufb_judge_noise
        );
        ensure!(
            (0.0..=1.0).contains(&self.pretrain_gold_share),
            "world `pretrain_gold_share` = {} must be in [0, 1]",
            self.pretrain_gold_share
        );
        self.policy.validate()?;
        self.human.validate()
    }
}

/// One family's data: human-labelled pairs and held-out test prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyData {
    pub pairs: Vec<PreferencePair>,
    pub test_prompts: Vec<String>,
}

/// Generates `family`'s pairs and test prompts. Unknown family → an error
/// listing [`FAMILIES`].
pub fn generate_family(cfg: &WorldConfig, family: &str) -> anyhow::Result<FamilyData> {
    cfg.validate()?;
    let family = known_family(family)?;
    let panel = cfg.human.panel(&mut stream(cfg.seed, "", "annotators"));
    let mut rng = stream(cfg.seed, family, "pairs");
    let mut pairs = Vec::with_capacity(cfg.n_pairs);
    for _ in 0..cfg.n_pairs {
        let task = training_task(cfg, family, &mut rng);
        pairs.push(labelled_pair(cfg, family, &task, &panel, &mut rng)?);
    }
    let test_prompts = test_prompts(cfg, family)?;
    Ok(FamilyData {
        pairs,
        test_prompts,
    })
}

/// Two (for `ufb`, [`UFB_CANDIDATES`]) base-policy responses to `task`, the
/// one the family's labeller picks as `chosen`: a simulated human of `panel`
/// (with the world's label flips), or for `ufb` its noisy judge.
fn labelled_pair(
    cfg: &WorldConfig,
    family: &str,
    task: &Task,
    panel: &[human::Annotator],
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<PreferencePair> {
    let n_candidates = if family == "ufb" { UFB_CANDIDATES } else { 2 };
    let candidates = distinct_candidates(cfg, task, n_candidates, rng)?;
    let gold: Vec<f64> = candidates.iter().map(|c| cfg.gold(task, c)).collect();
    let (chosen, rejected) = if family == "ufb" {
        judge_pick(&gold, cfg.ufb_judge_noise, rng)
    } else {
        let annotator = panel.choose(rng).expect("validated pool_size ≥ 1");
        let first = annotator.prefers_first(&candidates[0], gold[0], &candidates[1], gold[1], rng);
        let first = first ^ rng.random_bool(cfg.flip);
        if first { (0, 1) } else { (1, 0) }
    };
    Ok(PreferencePair {
        prompt: task.prompt(),
        chosen: candidates[chosen].clone(),
        rejected: candidates[rejected].clone(),
    })
}

/// A labelled pair for each of `family`'s test prompts, in the test
/// prompts' order, made as the training pairs are (base-policy candidates,
/// the family's labeller): the "dataset's chosen response" a policy's
/// answer to a test prompt is judged against (Table 17's win rate). Its own
/// random stream, so the training pairs and test prompts are unchanged.
pub fn test_pairs(cfg: &WorldConfig, family: &str) -> anyhow::Result<Vec<PreferencePair>> {
    cfg.validate()?;
    let family = known_family(family)?;
    let panel = cfg.human.panel(&mut stream(cfg.seed, "", "annotators"));
    let mut rng = stream(cfg.seed, family, "test-pairs");
    test_prompts(cfg, family)?
        .iter()
        .map(|prompt| {
            let task = Task::parse(prompt)?;
            labelled_pair(cfg, family, &task, &panel, &mut rng)
        })
        .collect()
}

/// `n_docs` base-policy samples `"prompt response"` over all families (test
/// prompts excluded): the corpus tiny models are pretrained on. A share
/// `pretrain_gold_share` of them carry the gold-best of several samples.
///
/// # Panics
/// If `cfg` does not validate (the `dataset` stage validates it first).
pub fn pretraining_corpus(cfg: &WorldConfig, n_docs: usize) -> Vec<String> {
    if let Err(e) = cfg.validate() {
        panic!("pretraining_corpus needs a valid world config: {e:#}");
    }
    let mut rng = stream(cfg.seed, "", "pretraining");
    (0..n_docs)
        .map(|_| {
            let family = FAMILIES.choose(&mut rng).unwrap();
            let task = training_task(cfg, family, &mut rng);
            // No draw at share 0, so the default world's corpus is unchanged.
            let leans_gold =
                cfg.pretrain_gold_share > 0.0 && rng.random_bool(cfg.pretrain_gold_share);
            let response = if leans_gold {
                gold_best_sample(cfg, &task, &mut rng)
            } else {
                cfg.base_response(&task, &mut rng)
            };
            format!("{} {response}", task.prompt())
        })
        .collect()
}

/// The best by gold reward of [`PRIOR_CANDIDATES`] base-policy samples (the
/// first of equals): a document of a corpus that leans the gold judge's way.
fn gold_best_sample(cfg: &WorldConfig, task: &Task, rng: &mut ChaCha8Rng) -> String {
    let samples: Vec<String> = (0..PRIOR_CANDIDATES)
        .map(|_| cfg.base_response(task, rng))
        .collect();
    let gold = |s: &String| cfg.gold(task, s);
    let best = samples
        .iter()
        .reduce(|best, s| if gold(s) > gold(best) { s } else { best })
        .expect("PRIOR_CANDIDATES ≥ 1");
    best.clone()
}

/// `n` pairs of base-policy responses labelled by the *true* reward (chosen =
/// higher gold; gold ties are skipped), the training set of the `learned`
/// judge. `family = None` draws every pair's family uniformly from
/// [`FAMILIES`]. Test prompts are excluded, and `purpose` names the random
/// stream (`"gold-rm/train"`, `"gold-rm/valid"`), so these pairs are not the
/// humans' pairs and a judge's training and validation sets differ.
pub fn gold_labelled_pairs(
    cfg: &WorldConfig,
    family: Option<&str>,
    n: usize,
    purpose: &str,
) -> anyhow::Result<Vec<PreferencePair>> {
    cfg.validate()?;
    let fixed = family.map(known_family).transpose()?;
    let mut rng = stream(cfg.seed, fixed.unwrap_or(""), purpose);
    let mut pairs = Vec::with_capacity(n);
    while pairs.len() < n {
        let family = fixed.unwrap_or_else(|| FAMILIES.choose(&mut rng).unwrap());
        let task = training_task(cfg, family, &mut rng);
        let candidates = distinct_candidates(cfg, &task, 2, &mut rng)?;
        let (a, b) = (
            cfg.gold(&task, &candidates[0]),
            cfg.gold(&task, &candidates[1]),
        );
        if a == b {
            continue;
        }
        let (chosen, rejected) = if a > b { (0, 1) } else { (1, 0) };
        pairs.push(PreferencePair {
            prompt: task.prompt(),
            chosen: candidates[chosen].clone(),
            rejected: candidates[rejected].clone(),
        });
    }
    Ok(pairs)
}

/// The world's word-level tokenizer (fixed vocabulary, `<pad> <eos> <unk>` first).
pub fn tokenizer() -> WordTokenizer {
    WordTokenizer::new(&lexicon::all_words()[lexicon::SPECIALS.len()..])
        .expect("the lexicon lists each word once (tested)")
}

/// The true (gold) reward of `family` in the world `cfg`; unknown family →
/// an error listing [`FAMILIES`].
pub fn gold_scorer(cfg: &WorldConfig, family: &str) -> anyhow::Result<TrueReward> {
    Ok(TrueReward::new(known_family(family)?, cfg.tldr_summary))
}

/// [`gold_scorer`] for a world written as JSON (a dataset's
/// `DatasetSource::Synthetic { family, world }`, as the stages read it).
pub fn gold_scorer_of(world: &serde_json::Value, family: &str) -> anyhow::Result<TrueReward> {
    gold_scorer(&WorldConfig::from_json(world)?, family)
}

/// `family` as the static name in [`FAMILIES`], or an error listing them.
fn known_family(family: &str) -> anyhow::Result<&'static str> {
    FAMILIES
        .iter()
        .find(|f| **f == family)
        .copied()
        .with_context(|| {
            format!(
                "unknown synthetic family {family:?}; known families: {}",
                FAMILIES.join(", ")
            )
        })
}

/// The task kinds a family draws from, uniformly.
fn family_kinds(family: &str) -> Vec<TaskKind> {
    match family {
        "harmless" => vec![TaskKind::Harmless],
        "helpful" => vec![TaskKind::Helpful],
        "hh-rlhf" => vec![TaskKind::Helpful, TaskKind::Harmless],
        "tldr" => vec![TaskKind::Summary],
        "ufb" => vec![
            TaskKind::Helpful,
            TaskKind::Harmless,
            TaskKind::Summary,
            TaskKind::AnyAdvice,
        ],
        shp => {
            let domain = DOMAINS.iter().position(|d| d.family == shp);
            vec![TaskKind::Advice(
                domain.expect("FAMILIES and DOMAINS list the same forums"),
            )]
        }
    }
}

fn sample_task(cfg: &WorldConfig, family: &str, rng: &mut ChaCha8Rng) -> Task {
    let kind = *family_kinds(family).choose(rng).unwrap();
    Task::sample(kind, cfg.max_items, rng)
}

/// A task whose prompt is not held out for testing.
fn training_task(cfg: &WorldConfig, family: &str, rng: &mut ChaCha8Rng) -> Task {
    loop {
        let task = sample_task(cfg, family, rng);
        if !is_held_out(cfg, &task.prompt()) {
            return task;
        }
    }
}

/// `n_test_prompts` distinct held-out prompts of `family`.
fn test_prompts(cfg: &WorldConfig, family: &str) -> anyhow::Result<Vec<String>> {
    let mut rng = stream(cfg.seed, family, "test");
    let mut prompts: Vec<String> = Vec::with_capacity(cfg.n_test_prompts);
    let max_draws = 1000 * (cfg.n_test_prompts + 1);
    for _ in 0..max_draws {
        if prompts.len() == cfg.n_test_prompts {
            return Ok(prompts);
        }
        let prompt = sample_task(cfg, family, &mut rng).prompt();
        if is_held_out(cfg, &prompt) && !prompts.contains(&prompt) {
            prompts.push(prompt);
        }
    }
    if prompts.len() == cfg.n_test_prompts {
        return Ok(prompts);
    }
    bail!(
        "family {family:?} has only {} distinct held-out prompts after {max_draws} draws but world \
         `n_test_prompts` = {}; lower `n_test_prompts` or raise `test_prompt_share` (now {})",
        prompts.len(),
        cfg.n_test_prompts,
        cfg.test_prompt_share
    )
}

/// Whether `prompt` belongs to the test share of the prompt space: a seeded
/// hash of its text, so the partition holds across families and calls.
fn is_held_out(cfg: &WorldConfig, prompt: &str) -> bool {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"held-out");
    hasher.update(&cfg.seed.to_le_bytes());
    hasher.update(prompt.as_bytes());
    let h = u64::from_le_bytes(hasher.finalize().as_bytes()[..8].try_into().unwrap());
    (h as f64 / u64::MAX as f64) < cfg.test_prompt_share
}

/// `n` pairwise-different base-policy responses to `task`.
fn distinct_candidates(
    cfg: &WorldConfig,
    task: &Task,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    for _ in 0..100 * n {
        let response = cfg.base_response(task, rng);
        if !out.contains(&response) {
            out.push(response);
            if out.len() == n {
                return Ok(out);
            }
        }
    }
    bail!(
        "the base policy gave fewer than {n} distinct responses to {:?} in {} draws; \
         raise the world `policy` noise rates",
        task.prompt(),
        100 * n
    )
}

/// UltraFeedback's rule: the judge scores gold + N(0, noise²); chosen = the
/// best by judge, rejected = a uniformly random other. Returns indices.
fn judge_pick(gold: &[f64], noise: f64, rng: &mut ChaCha8Rng) -> (usize, usize) {
    let judge: Vec<f64> = gold
        .iter()
        .map(|g| g + noise * standard_normal(rng))
        .collect();
    let best = (0..judge.len())
        .max_by(|&a, &b| judge[a].total_cmp(&judge[b]))
        .expect("at least two candidates");
    let others: Vec<usize> = (0..judge.len()).filter(|&i| i != best).collect();
    (best, *others.choose(rng).unwrap())
}

/// A standard normal draw (Box–Muller), from our seeded stream.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1], so ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The random stream for (`seed`, `family`, `purpose`).
fn stream(seed: u64, family: &str, purpose: &str) -> ChaCha8Rng {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(family.as_bytes());
    hasher.update(b"/");
    hasher.update(purpose.as_bytes());
    ChaCha8Rng::from_seed(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests;
