//! How simulated humans err when they compare two responses. The model is a
//! manifest choice: Bradley–Terry on the gold gap, or a pool of annotators
//! with their own temperatures and systematic biases on observable features;
//! a random flip rate (a field of `WorldConfig`) applies on top of either.
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::lexicon::{CATEGORIES, DOMAINS, NAMES, OBJECTS, POLITE, REFUSAL_MARKERS};

/// The human-noise model of a world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "lowercase", deny_unknown_fields)]
pub enum HumanNoise {
    /// P(a ≻ b) = σ((gold(a) − gold(b)) / temperature): unbiased noise.
    Bt { temperature: f64 },
    /// Each pair is judged by one annotator drawn from a pool of `pool_size`
    /// (generated from the world seed). Annotator i has temperature
    /// `temperature · (1 + temperature_spread · u)` and, for each bias,
    /// weight `mean · (1 + bias_spread · u)`, u ~ U(−1, 1) drawn per annotator:
    /// P(a ≻ b) = σ(Δgold / T_i + length_bias_i · Δwords
    ///            + position_bias_i · [a shown first − b shown first]
    ///            + politeness_bias_i · Δ(polite and refusal words)
    ///            + keyword_bias_i · Δ(words from the annotator's liked keywords)).
    /// The first `round(careless_share · pool_size)` annotators are careless:
    /// they click without reading, P(a ≻ b) = ½ whatever the pair.
    Annotators(AnnotatorPool),
}

/// The parameters of [`HumanNoise::Annotators`]. A struct of its own (serde
/// writes it as the variant's fields, beside `model`), so that checking
/// and drawing the pool read its fields by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotatorPool {
    pub pool_size: usize,
    pub temperature: f64,
    pub temperature_spread: f64,
    pub length_bias: f64,
    pub position_bias: f64,
    pub politeness_bias: f64,
    pub keyword_bias: f64,
    pub bias_spread: f64,
    /// How many content words each annotator likes.
    pub liked_keywords: usize,
    /// Share of the pool that answers at random (0 when unset, which
    /// leaves the world and its cache keys as they were).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub careless_share: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Default for HumanNoise {
    /// A pool of 16 annotators who, like real ones, prefer longer answers and
    /// the answer shown first, and have personal keyword tastes.
    fn default() -> Self {
        HumanNoise::Annotators(AnnotatorPool {
            pool_size: 16,
            temperature: 0.55,
            temperature_spread: 0.5,
            length_bias: 0.1,
            position_bias: 0.2,
            politeness_bias: 0.15,
            keyword_bias: 0.3,
            bias_spread: 1.0,
            liked_keywords: 6,
            careless_share: 0.0,
        })
    }
}

impl HumanNoise {
    /// Errors on non-finite or out-of-range parameters, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = |key: &str, v: f64| {
            anyhow::ensure!(
                v.is_finite() && v > 0.0,
                "world human noise `{key}` = {v} must be a finite number > 0"
            );
            Ok(())
        };
        let finite = |key: &str, v: f64| {
            anyhow::ensure!(
                v.is_finite(),
                "world human noise `{key}` = {v} must be finite"
            );
            Ok(())
        };
        match self {
            HumanNoise::Bt { temperature } => positive("temperature", *temperature),
            HumanNoise::Annotators(pool) => {
                anyhow::ensure!(
                    pool.pool_size > 0,
                    "world human noise `pool_size` must be at least 1"
                );
                positive("temperature", pool.temperature)?;
                let temperature_spread = pool.temperature_spread;
                anyhow::ensure!(
                    (0.0..1.0).contains(&temperature_spread),
                    "world human noise `temperature_spread` = {temperature_spread} must be in [0, 1) \
                     so every annotator's temperature stays positive"
                );
                finite("length_bias", pool.length_bias)?;
                finite("position_bias", pool.position_bias)?;
                finite("politeness_bias", pool.politeness_bias)?;
                finite("keyword_bias", pool.keyword_bias)?;
                finite("bias_spread", pool.bias_spread)?;
                let careless_share = pool.careless_share;
                anyhow::ensure!(
                    (0.0..=1.0).contains(&careless_share),
                    "world human noise `careless_share` = {careless_share} must be in [0, 1]"
                );
                Ok(())
            }
        }
    }

    /// The annotators this model implies; `Bt` is a single unbiased one.
    pub fn panel(&self, rng: &mut ChaCha8Rng) -> Vec<Annotator> {
        match self {
            HumanNoise::Bt { temperature } => vec![Annotator {
                temperature: *temperature,
                length_bias: 0.0,
                position_bias: 0.0,
                politeness_bias: 0.0,
                keyword_bias: 0.0,
                liked: Vec::new(),
                careless: false,
            }],
            HumanNoise::Annotators(AnnotatorPool {
                pool_size,
                temperature,
                temperature_spread,
                length_bias,
                position_bias,
                politeness_bias,
                keyword_bias,
                bias_spread,
                liked_keywords,
                careless_share,
            }) => {
                let keywords = keyword_pool();
                // Careless annotators are chosen by index, not drawn, so the
                // rng stream (and every careful annotator) is the same at
                // any share.
                let careless = (careless_share * *pool_size as f64).round() as usize;
                (0..*pool_size)
                    .map(|i| {
                        let mut spread = |mean: f64, spread: f64| {
                            mean * (1.0 + spread * rng.random_range(-1.0..=1.0))
                        };
                        Annotator {
                            temperature: spread(*temperature, *temperature_spread),
                            length_bias: spread(*length_bias, *bias_spread),
                            position_bias: spread(*position_bias, *bias_spread),
                            politeness_bias: spread(*politeness_bias, *bias_spread),
                            keyword_bias: spread(*keyword_bias, *bias_spread),
                            liked: keywords
                                .choose_multiple(rng, *liked_keywords)
                                .copied()
                                .collect(),
                            careless: i < careless,
                        }
                    })
                    .collect()
            }
        }
    }
}

/// Content words an annotator may happen to like.
fn keyword_pool() -> Vec<&'static str> {
    CATEGORIES
        .iter()
        .flat_map(|c| c.members.iter().copied())
        .chain(DOMAINS.iter().flat_map(|d| d.advice.iter().copied()))
        .chain(NAMES.iter().copied())
        .chain(OBJECTS.iter().copied())
        .collect()
}

/// One simulated human.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotator {
    pub temperature: f64,
    pub length_bias: f64,
    pub position_bias: f64,
    pub politeness_bias: f64,
    pub keyword_bias: f64,
    pub liked: Vec<&'static str>,
    /// Answers at random: log-odds 0 for every pair.
    pub careless: bool,
}

impl Annotator {
    /// Log-odds that this annotator prefers `a` over `b`, given their gold
    /// rewards and whether `a` was shown first.
    pub fn logit(&self, a: &str, gold_a: f64, b: &str, gold_b: f64, a_shown_first: bool) -> f64 {
        if self.careless {
            return 0.0;
        }
        let features = |text: &str| {
            let words: Vec<&str> = text.split_whitespace().collect();
            let polite = words
                .iter()
                .filter(|w| POLITE.contains(w) || REFUSAL_MARKERS.contains(w))
                .count();
            let liked = words.iter().filter(|w| self.liked.contains(w)).count();
            (words.len() as f64, polite as f64, liked as f64)
        };
        let (len_a, pol_a, kw_a) = features(a);
        let (len_b, pol_b, kw_b) = features(b);
        let position = if a_shown_first { 1.0 } else { -1.0 };
        (gold_a - gold_b) / self.temperature
            + self.length_bias * (len_a - len_b)
            + self.position_bias * position
            + self.politeness_bias * (pol_a - pol_b)
            + self.keyword_bias * (kw_a - kw_b)
    }

    /// Samples whether this annotator prefers `a` (shown in a random order).
    pub fn prefers_first(
        &self,
        a: &str,
        gold_a: f64,
        b: &str,
        gold_b: f64,
        rng: &mut ChaCha8Rng,
    ) -> bool {
        let a_shown_first = rng.random_bool(0.5);
        let p = sigmoid(self.logit(a, gold_a, b, gold_b, a_shown_first));
        rng.random::<f64>() < p
    }
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn biased_annotator_prefers_longer_and_polite_answers_at_equal_gold() {
        let ann = Annotator {
            temperature: 1.0,
            length_bias: 0.2,
            position_bias: 0.0,
            politeness_bias: 0.5,
            keyword_bias: 0.0,
            liked: vec![],
            careless: false,
        };
        assert!(ann.logit("sure , 2 5 9 ok", 0.5, "2 5 9", 0.5, true) > 0.0);
        assert!(ann.logit("2 5 9", 0.5, "sure , 2 5 9", 0.5, true) < 0.0);
    }

    #[test]
    fn annotators_toml_parses_and_rejects_unknown_keys() {
        let noise: HumanNoise = toml::from_str("model = \"bt\"\ntemperature = 0.5").unwrap();
        assert_eq!(noise, HumanNoise::Bt { temperature: 0.5 });
        let err = toml::from_str::<HumanNoise>("model = \"bt\"\ntemprature = 0.5").unwrap_err();
        assert!(err.to_string().contains("temprature"), "{err}");
        let default = HumanNoise::default();
        let back: HumanNoise = toml::from_str(&toml::to_string(&default).unwrap()).unwrap();
        assert_eq!(back, default);
        // The pool's fields stand beside `model`, as when they were the
        // variant's own: the world's serialised form (its cache keys) is
        // unchanged, and an unknown key is still refused.
        assert_eq!(
            serde_json::to_string(&default).unwrap(),
            "{\"model\":\"annotators\",\"pool_size\":16,\"temperature\":0.55,\
             \"temperature_spread\":0.5,\"length_bias\":0.1,\"position_bias\":0.2,\
             \"politeness_bias\":0.15,\"keyword_bias\":0.3,\"bias_spread\":1.0,\
             \"liked_keywords\":6}"
        );
        let err =
            toml::from_str::<HumanNoise>("model = \"annotators\"\npool_sise = 3").unwrap_err();
        assert!(err.to_string().contains("pool_sise"), "{err}");
    }

    #[test]
    fn panel_is_deterministic_and_sized() {
        let noise = HumanNoise::default();
        let a = noise.panel(&mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a.len(), 16);
        assert_eq!(a, noise.panel(&mut ChaCha8Rng::seed_from_u64(1)));
        assert!(a.iter().all(|x| x.temperature > 0.0));
    }

    #[test]
    fn careless_annotators_are_chosen_by_index_and_leave_the_rest_unchanged() {
        let HumanNoise::Annotators(AnnotatorPool { pool_size, .. }) = HumanNoise::default() else {
            unreachable!("the default human noise is a pool of annotators")
        };
        let with_share = |share: f64| {
            let mut noise = HumanNoise::default();
            if let HumanNoise::Annotators(pool) = &mut noise {
                pool.careless_share = share;
            }
            noise
        };
        let careful = with_share(0.0).panel(&mut ChaCha8Rng::seed_from_u64(3));
        let quarter = with_share(0.25).panel(&mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(quarter.iter().filter(|a| a.careless).count(), pool_size / 4);
        for (a, b) in careful.iter().zip(&quarter) {
            assert_eq!(a.temperature, b.temperature);
            assert_eq!(a.liked, b.liked);
        }
        // A careless annotator ignores even a huge gold gap.
        let lazy = quarter.iter().find(|a| a.careless).unwrap();
        assert_eq!(lazy.logit("a", 10.0, "b", -10.0, true), 0.0);
        assert!(careful[0].logit("a", 10.0, "b", -10.0, true) > 5.0);
        // Unset, the key stays out of the serialised world (cache keys unchanged).
        assert!(
            !toml::to_string(&with_share(0.0))
                .unwrap()
                .contains("careless")
        );
        assert!(with_share(1.5).validate().is_err());
    }
}
