//! Descriptive statistics of a world, per family: what `sweep` prints and
//! records so a reader can see what the world looks like before trusting
//! results computed on it.
use std::fmt;

use serde::Serialize;

use super::{FAMILIES, FamilyData, WorldConfig, generate_family, gold_scorer, tokenizer};
use crate::data::{PreferencePair, Tokenizer};

/// Statistics of every family of one world.
#[derive(Debug, Clone, Serialize)]
pub struct WorldStats {
    pub seed: u64,
    pub vocab_size: usize,
    pub families: Vec<FamilyStats>,
}

/// Statistics of one family.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyStats {
    pub family: String,
    pub n_pairs: usize,
    pub n_test_prompts: usize,
    /// Prompt length in tokens.
    pub prompt_tokens: Lengths,
    /// Response length in tokens (chosen and rejected together).
    pub response_tokens: Lengths,
    /// Share of pairs whose chosen response has the higher gold reward (ties count ½).
    pub agreement: f64,
    /// Share of pairs whose two responses have equal gold reward.
    pub tie_rate: f64,
    /// Distribution of gold(chosen) − gold(rejected).
    pub gold_gap: Gaps,
    /// Mean words(chosen) − words(rejected): the labels' length bias.
    pub length_gap_words: f64,
    pub mean_gold_chosen: f64,
    pub mean_gold_rejected: f64,
    /// The first few pairs, with their gold rewards.
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lengths {
    pub mean: f64,
    pub max: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Gaps {
    pub mean_abs: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
    pub gold_chosen: f64,
    pub gold_rejected: f64,
}

/// Examples shown per family.
const N_EXAMPLES: usize = 3;

/// Generates every family of `cfg` and describes it.
pub fn world_stats(cfg: &WorldConfig) -> anyhow::Result<WorldStats> {
    let families = FAMILIES
        .iter()
        .map(|family| family_stats(cfg, family, &generate_family(cfg, family)?))
        .collect::<anyhow::Result<_>>()?;
    Ok(WorldStats {
        seed: cfg.seed,
        vocab_size: tokenizer().vocab_size(),
        families,
    })
}

/// Describes one family's generated data.
pub fn family_stats(
    cfg: &WorldConfig,
    family: &str,
    data: &FamilyData,
) -> anyhow::Result<FamilyStats> {
    let tok = tokenizer();
    let gold = gold_scorer(cfg, family)?;
    let golds: Vec<(f64, f64)> = data
        .pairs
        .iter()
        .map(|p| {
            Ok((
                gold.reward(&p.prompt, &p.chosen)?,
                gold.reward(&p.prompt, &p.rejected)?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let (agreement, tie_rate) = agreement_of(&golds);
    let mut gaps: Vec<f64> = golds.iter().map(|(c, r)| c - r).collect();
    gaps.sort_by(f64::total_cmp);
    let n = golds.len().max(1) as f64;
    let lengths = |texts: &mut dyn Iterator<Item = &String>| -> anyhow::Result<Lengths> {
        let lens: Vec<usize> = texts
            .map(|t| Ok(tok.encode(t)?.len()))
            .collect::<anyhow::Result<_>>()?;
        Ok(Lengths {
            mean: lens.iter().sum::<usize>() as f64 / lens.len().max(1) as f64,
            max: lens.iter().copied().max().unwrap_or(0),
        })
    };
    let pairs: &[PreferencePair] = &data.pairs;
    Ok(FamilyStats {
        family: family.to_string(),
        n_pairs: pairs.len(),
        n_test_prompts: data.test_prompts.len(),
        prompt_tokens: lengths(&mut pairs.iter().map(|p| &p.prompt))?,
        response_tokens: lengths(&mut pairs.iter().flat_map(|p| [&p.chosen, &p.rejected]))?,
        agreement,
        tie_rate,
        gold_gap: Gaps {
            mean_abs: gaps.iter().map(|g| g.abs()).sum::<f64>() / n,
            p10: quantile(&gaps, 0.1),
            p50: quantile(&gaps, 0.5),
            p90: quantile(&gaps, 0.9),
        },
        length_gap_words: pairs
            .iter()
            .map(|p| word_count(&p.chosen) - word_count(&p.rejected))
            .sum::<f64>()
            / n,
        mean_gold_chosen: golds.iter().map(|g| g.0).sum::<f64>() / n,
        mean_gold_rejected: golds.iter().map(|g| g.1).sum::<f64>() / n,
        examples: pairs
            .iter()
            .zip(&golds)
            .take(N_EXAMPLES)
            .map(|(p, g)| Example {
                prompt: p.prompt.clone(),
                chosen: p.chosen.clone(),
                rejected: p.rejected.clone(),
                gold_chosen: g.0,
                gold_rejected: g.1,
            })
            .collect(),
    })
}

/// (agreement, tie rate) of (gold chosen, gold rejected) pairs; ties count ½.
pub fn agreement_of(golds: &[(f64, f64)]) -> (f64, f64) {
    let n = golds.len().max(1) as f64;
    let agree = golds.iter().filter(|(c, r)| c > r).count() as f64;
    let ties = golds.iter().filter(|(c, r)| c == r).count() as f64;
    ((agree + 0.5 * ties) / n, ties / n)
}

fn word_count(text: &str) -> f64 {
    text.split_whitespace().count() as f64
}

/// Nearest-rank quantile of sorted values (0 for none).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

impl fmt::Display for WorldStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "synthetic world, seed {}, vocabulary {} words",
            self.seed, self.vocab_size
        )?;
        writeln!(
            f,
            "{:<18} {:>6} {:>5} {:>11} {:>11} {:>7} {:>5} {:>6} {:>6} {:>6} {:>6} {:>5}",
            "family",
            "pairs",
            "test",
            "prompt tok",
            "resp tok",
            "agree",
            "ties",
            "|gap|",
            "gap10",
            "gap50",
            "gap90",
            "Δlen"
        )?;
        for s in &self.families {
            writeln!(
                f,
                "{:<18} {:>6} {:>5} {:>6.1}/{:<4} {:>6.1}/{:<4} {:>6.1}% {:>4.1}% {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>+5.2}",
                s.family,
                s.n_pairs,
                s.n_test_prompts,
                s.prompt_tokens.mean,
                s.prompt_tokens.max,
                s.response_tokens.mean,
                s.response_tokens.max,
                100.0 * s.agreement,
                100.0 * s.tie_rate,
                s.gold_gap.mean_abs,
                s.gold_gap.p10,
                s.gold_gap.p50,
                s.gold_gap.p90,
                s.length_gap_words
            )?;
        }
        for s in &self.families {
            writeln!(f, "\n{} examples (gold chosen / rejected):", s.family)?;
            for e in &s.examples {
                writeln!(f, "  prompt:   {}", e.prompt)?;
                writeln!(f, "  chosen:   {}  [{:.3}]", e.chosen, e.gold_chosen)?;
                writeln!(f, "  rejected: {}  [{:.3}]", e.rejected, e.gold_rejected)?;
            }
        }
        Ok(())
    }
}
