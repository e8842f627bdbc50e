//! `score`: gold scores of a generation, by the cell's judge: the synthetic
//! world's true reward, the world's learned RM (a `gold_train` artifact,
//! role `gold_model`), or a real gold RM (paper profile).
//!
//! Scoring runs in chunks of [`SCORE_CHUNK`] generations, and the finished
//! chunks' scores are saved in the stage's partial dir as `generate` saves
//! its batches, so a killed 8B-judge scoring run resumes after its last save.
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::artifacts::dataset_source;
use super::dataset::DatasetSource;
use super::generate::{GENERATIONS_FILE, Generation};
use super::gold_train::GOLD_DIR;
use super::models::tokenizer_of_checkpoint;
use super::{Stage, StageContext, StageOutcome, read_json, write_json};
use crate::eval::learned::LearnedGold;
use crate::eval::real_gold::{RealGoldKind, load_real_gold};
use crate::eval::{GoldScorer, GoldSpec};

pub struct Score;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The judge (e.g. `{"kind": "true_reward"}`).
    pub gold: GoldSpec,
}

pub const SCORES_FILE: &str = "scores.json";

/// Generations scored per call to the judge, the unit of a resume. A
/// multiple of every scorer's own batch (the learned gold's 64, real gold's
/// 8), so the judge sees the same forward passes chunked or not: the scores
/// do not depend on it (and real gold's do not depend on batching at all).
pub const SCORE_CHUNK: usize = 256;

/// What saved scores belong to: the judge and the generations it scores.
fn fingerprint(gold: &GoldSpec, prompts: &[String], responses: &[String]) -> Vec<u8> {
    serde_json::to_vec(&(gold, prompts, responses)).expect("serialisable")
}

/// `scorer`'s scores of (`prompts[i]`, `responses[i]`), [`SCORE_CHUNK`] at a
/// time, continuing after `done` (the scores of an earlier attempt's first
/// whole chunks) and calling `after_chunk` with every score so far after
/// each chunk. The result is an uninterrupted call's: a chunk's scores
/// depend only on its own generations.
pub fn score_resuming(
    scorer: &dyn GoldScorer,
    prompts: &[String],
    responses: &[String],
    done: Vec<f32>,
    after_chunk: &mut dyn FnMut(&[f32]) -> Result<()>,
) -> Result<Vec<f32>> {
    anyhow::ensure!(
        prompts.len() == responses.len(),
        "score: {} prompts but {} responses",
        prompts.len(),
        responses.len()
    );
    anyhow::ensure!(
        done.len() <= prompts.len()
            && (done.len().is_multiple_of(SCORE_CHUNK) || done.len() == prompts.len()),
        "score: {} saved scores is not a whole number of {SCORE_CHUNK}-generation chunks of {}",
        done.len(),
        prompts.len()
    );
    let mut scores = done;
    scores.reserve(prompts.len() - scores.len());
    while scores.len() < prompts.len() {
        let range = scores.len()..(scores.len() + SCORE_CHUNK).min(prompts.len());
        let chunk = scorer.score(&prompts[range.clone()], &responses[range.clone()])?;
        anyhow::ensure!(
            chunk.len() == range.len(),
            "the judge returned {} scores for generations {range:?}",
            chunk.len()
        );
        // Checked per chunk: a saved non-finite score would not read back.
        if let Some(i) = chunk.iter().position(|s| !s.is_finite()) {
            bail!(
                "gold score of generation {} is {}, not finite",
                range.start + i,
                chunk[i]
            );
        }
        scores.extend(chunk);
        after_chunk(&scores)?;
    }
    Ok(scores)
}

/// The judge `spec` names, for the dataset being scored.
pub(super) fn gold_scorer(spec: &GoldSpec, ctx: &StageContext) -> Result<Box<dyn GoldScorer>> {
    let source = dataset_source(ctx)?;
    match (spec, &source) {
        (GoldSpec::TrueReward, DatasetSource::Synthetic { family, world }) => Ok(Box::new(
            crate::data::synthetic::gold_scorer_of(world, family)?,
        )),
        // The world's judge (`gold_train`) or a real model's (`gold_train_files`,
        // whose checkpoint keeps its tokenizer.json).
        (GoldSpec::Learned, _) => {
            let dir = ctx.input("gold_model")?.join(GOLD_DIR);
            let tokenizer = tokenizer_of_checkpoint(&dir)?;
            Ok(Box::new(LearnedGold::load(&dir, tokenizer, ctx.device)?))
        }
        (GoldSpec::TrueReward, DatasetSource::Files { .. }) => bail!(
            "gold `{}` exists only for the synthetic world; a real dataset needs a gold reward model",
            spec.kind_name()
        ),
        (GoldSpec::RewardModel { path }, _) => {
            load_real_gold(RealGoldKind::SeqCls, path, ctx.device)
        }
        (GoldSpec::DebertaReward { path }, _) => {
            load_real_gold(RealGoldKind::Deberta, path, ctx.device)
        }
        (GoldSpec::Steamshp { path }, _) => {
            load_real_gold(RealGoldKind::SteamShp, path, ctx.device)
        }
    }
}

impl Stage for Score {
    const KIND: &'static str = "score";
    /// 3: SteamSHP scores a response against the dummy `.` in both orders
    /// (its pairwise rule), not in one.
    /// 4: the true reward of TL;DR summaries follows the world's `tldr_summary`.
    const VERSION: u32 = 4;
    const INPUTS: &'static [&'static str] = &["dataset", "generation", "gold_model"];
    type Params = Params;

    fn run(params: &Params, ctx: &StageContext) -> Result<StageOutcome> {
        let scorer = gold_scorer(&params.gold, ctx)?;
        let generations: Vec<Generation> = read_json(ctx.input("generation")?, GENERATIONS_FILE)?;
        let (prompts, responses): (Vec<String>, Vec<String>) = generations
            .into_iter()
            .map(|g| (g.prompt, g.response))
            .unzip();
        ctx.progress.set_total(prompts.len() as u64);
        // Finished chunks survive a kill: their scores are saved in the
        // partial dir as the checkpoint interval says.
        let mut checkpoint =
            ctx.outputs_checkpointer("score", &fingerprint(&params.gold, &prompts, &responses));
        let done = match checkpoint.as_mut() {
            Some(c) => c.resume::<f32>()?,
            None => Vec::new(),
        };
        let scores = score_resuming(&*scorer, &prompts, &responses, done, &mut |so_far| {
            ctx.progress.set_step(so_far.len() as u64, None);
            match checkpoint.as_mut() {
                Some(c) => c.after_batch(so_far, prompts.len()),
                None => Ok(()),
            }
        })?;
        write_json(ctx.out_dir, SCORES_FILE, &scores)?;
        let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len().max(1) as f64;
        Ok(StageOutcome {
            metrics: [("gold_mean".to_string(), mean)].into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::train::checkpoint::{CheckpointEvery, CheckpointPlace, OutputsCheckpointer};

    /// A judge that scores a response by its length plus a tenth of its
    /// prompt's, and counts what it scored.
    struct Counting(AtomicUsize);

    impl GoldScorer for Counting {
        fn score(&self, prompts: &[String], responses: &[String]) -> Result<Vec<f32>> {
            self.0.fetch_add(prompts.len(), Ordering::Relaxed);
            Ok(prompts
                .iter()
                .zip(responses)
                .map(|(p, r)| r.len() as f32 + p.len() as f32 / 10.0)
                .collect())
        }
    }

    /// 2 whole chunks and a partial one.
    fn generations() -> (Vec<String>, Vec<String>) {
        let n = 2 * SCORE_CHUNK + 88;
        let prompts = (0..n).map(|i| "p".repeat(i % 7)).collect();
        let responses = (0..n).map(|i| "r".repeat(i % 13)).collect();
        (prompts, responses)
    }

    /// Killed after two chunks, a re-run scores only the third and ends
    /// with an uninterrupted run's scores; saved scores of other
    /// generations, or edited ones, are refused with a warning and scoring
    /// restarts from the first chunk.
    #[test]
    fn saved_scores_resume_and_mismatched_or_edited_ones_restart() -> Result<()> {
        let (prompts, responses) = generations();
        let gold = GoldSpec::TrueReward;
        let judge = Counting(AtomicUsize::new(0));
        let uninterrupted =
            score_resuming(&judge, &prompts, &responses, Vec::new(), &mut |_| Ok(()))?;
        assert_eq!(uninterrupted.len(), prompts.len());

        let dir = tempfile::tempdir()?;
        let place = CheckpointPlace {
            dir: dir.path().to_path_buf(),
            stage: "score/test".into(),
            every: CheckpointEvery {
                steps: 1,
                interval: Duration::from_secs(3600),
            },
        };
        let log = RefCell::new(Vec::<String>::new());
        let logged = |l: &str| log.borrow_mut().push(l.into());
        let checkpointer = |responses: &[String]| {
            OutputsCheckpointer::new(
                &place,
                "score",
                &fingerprint(&gold, &prompts, responses),
                logged,
            )
        };

        let mut c = checkpointer(&responses);
        let killed = score_resuming(&judge, &prompts, &responses, c.resume()?, &mut |so_far| {
            c.after_batch(so_far, prompts.len())?;
            anyhow::ensure!(so_far.len() < 2 * SCORE_CHUNK, "killed");
            Ok(())
        });
        assert!(killed.is_err());

        let judge = Counting(AtomicUsize::new(0));
        let mut c = checkpointer(&responses);
        let done = c.resume::<f32>()?;
        assert_eq!(done.len(), 2 * SCORE_CHUNK);
        assert!(log.borrow()[0].contains("resuming score after its 512 saved outputs"));
        let resumed = score_resuming(&judge, &prompts, &responses, done, &mut |_| Ok(()))?;
        assert_eq!(judge.0.load(Ordering::Relaxed), 88);
        assert_eq!(resumed, uninterrupted);

        // Other generations (one response edited): not resumed.
        let mut edited = responses.clone();
        edited[3].push('!');
        assert!(checkpointer(&edited).resume::<f32>()?.is_empty());
        assert!(log.borrow().last().unwrap().contains("another run"));

        // A saved score edited on disk: the checksum refuses it.
        let mut c = checkpointer(&responses);
        c.after_batch(&uninterrupted[..SCORE_CHUNK], prompts.len())?;
        let path = c.path().to_path_buf();
        let text = fs::read_to_string(&path)?;
        let first = format!("[{:?},", uninterrupted[0]);
        assert!(text.contains(&first), "{text}");
        fs::write(&path, text.replace(&first, "[1e9,"))?;
        assert!(checkpointer(&responses).resume::<f32>()?.is_empty());
        assert!(log.borrow().last().unwrap().contains("checksum"));
        Ok(())
    }
}
