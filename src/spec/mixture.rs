//! What D_L and D_U are drawn from when they are not one dataset split at
//! random (Appendix J.8 of the paper):
//!
//! - `weak_mixture = "harmless80-helpful20"`: the weak annotator's labelled
//!   set D_L takes exactly 80% of its pairs from the `harmless` dataset and
//!   20% from `helpful` (Table 24);
//! - `unlabeled_mixture = "harmless50-helpful50"`: the same for D_U;
//! - `poison_ratio = 0.1`, `poison_from = "harmless"`: 10% of D_L is
//!   replaced by pairs of `harmless` whose gold reward gap is largest, with
//!   their labels flipped, so the harmful response is "preferred" (Eq. 18;
//!   Table 25, Figure 8).
//!
//! A mixture is written as `<dataset><percent>` parts joined by `-`, the
//! percents whole numbers summing to 100: the form is its own report label
//! (the paper's table rows are named this way) and shares are exact. Every
//! dataset is a profile dataset slot; they form the cell's pool of pairs,
//! from which D_L and D_U are drawn disjoint (`stage::split`).
use serde::{Deserialize, Serialize};

use super::dataset::DatasetSource;

/// Shares of datasets in D_L or D_U, in percent (whole numbers, sum 100).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mixture {
    /// (dataset slot, percent), in the order written; each slot once.
    pub parts: Vec<(String, u32)>,
}

impl Mixture {
    /// All of D_L or D_U from one dataset: what an unset mixture means.
    pub fn single(dataset: &str) -> Mixture {
        Mixture {
            parts: vec![(dataset.to_string(), 100)],
        }
    }

    /// Parses `harmless80-helpful20`; dataset names may hold `-`
    /// (`shp-askacademia50-helpful50`): a part ends at the first
    /// `-`-separated piece that ends in digits.
    pub fn parse(text: &str) -> Result<Mixture, String> {
        let example = "e.g. \"harmless80-helpful20\" (80% harmless, 20% helpful)";
        let mut parts: Vec<(String, u32)> = Vec::new();
        let mut name = String::new();
        for piece in text.split('-') {
            if !name.is_empty() {
                name.push('-');
            }
            let digits = piece.len() - piece.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            name.push_str(&piece[..piece.len() - digits]);
            if digits == 0 {
                continue;
            }
            let percent: u32 = piece[piece.len() - digits..]
                .parse()
                .map_err(|_| format!("`{text}`: `{piece}` is no whole percent; {example}"))?;
            if name.is_empty() {
                return Err(format!("`{text}`: `{piece}` names no dataset; {example}"));
            }
            if parts.iter().any(|(n, _)| *n == name) {
                return Err(format!("`{text}` names `{name}` twice; {example}"));
            }
            parts.push((std::mem::take(&mut name), percent));
        }
        if !name.is_empty() || parts.is_empty() {
            return Err(format!(
                "`{text}` does not end in a percent; write <dataset><percent> parts joined by `-`, {example}"
            ));
        }
        if let Some((n, _)) = parts.iter().find(|(_, p)| *p == 0) {
            return Err(format!("`{text}` gives `{n}` 0%: leave it out; {example}"));
        }
        let total: u32 = parts.iter().map(|(_, p)| p).sum();
        if total != 100 {
            return Err(format!(
                "`{text}`: the percents sum to {total}, not 100; {example}"
            ));
        }
        Ok(Mixture { parts })
    }

    /// The canonical text, as [`Mixture::parse`] reads it.
    pub fn name(&self) -> String {
        self.parts
            .iter()
            .map(|(n, p)| format!("{n}{p}"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Percent of `dataset` (0 when absent).
    pub fn percent_of(&self, dataset: &str) -> u32 {
        self.parts
            .iter()
            .find(|(n, _)| n == dataset)
            .map_or(0, |(_, p)| *p)
    }

    /// How many of `total` pairs each part gives, in part order: the exact
    /// share `total · percent / 100` rounded down, the pairs left over going
    /// one each to the largest remainders (then the earliest part), so the
    /// counts sum to `total` and each is within one of its exact share.
    pub fn counts(&self, total: usize) -> Vec<usize> {
        let exact: Vec<(usize, usize)> = self
            .parts
            .iter()
            .map(|(_, p)| {
                let scaled = total * *p as usize;
                (scaled / 100, scaled % 100)
            })
            .collect();
        let mut counts: Vec<usize> = exact.iter().map(|(q, _)| *q).collect();
        let left = total - counts.iter().sum::<usize>();
        let mut by_remainder: Vec<usize> = (0..exact.len()).collect();
        by_remainder.sort_by_key(|&i| std::cmp::Reverse(exact[i].1));
        for &i in by_remainder.iter().take(left) {
            counts[i] += 1;
        }
        counts
    }
}

impl TryFrom<String> for Mixture {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Mixture::parse(&text)
    }
}

impl From<Mixture> for String {
    fn from(m: Mixture) -> String {
        m.name()
    }
}

impl std::fmt::Display for Mixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Adversarial poisoning of D_L (Eq. 18): a share `ratio` of D_L's pairs are
/// pairs of dataset `from` that the gold judge separates most, labelled
/// against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poison {
    /// Share of D_L replaced, in (0, 1) (the paper's 5–20%).
    pub ratio: f64,
    /// The dataset slot the poisoned pairs come from (`harmless`).
    pub from: String,
}

/// How a cell draws D_L and D_U from a pool of datasets (`split`'s params
/// when any of `weak_mixture`, `unlabeled_mixture`, `poison_ratio` is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitMixture {
    pub labeled: Mixture,
    pub unlabeled: Mixture,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poison: Option<Poison>,
}

impl SplitMixture {
    /// Every dataset the draw reads, each once, in order of first mention
    /// (D_U's parts, D_L's, then the poison's): the pool's layout.
    pub fn datasets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let names = self
            .unlabeled
            .parts
            .iter()
            .chain(&self.labeled.parts)
            .map(|(n, _)| n)
            .chain(self.poison.as_ref().map(|p| &p.from));
        for name in names {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }

    /// Readable tag for stage names, e.g. `Lharmless80-helpful20/Uharmless50-helpful50/p0.1harmless`.
    pub fn tag(&self) -> String {
        let poison = self
            .poison
            .as_ref()
            .map(|p| format!("/p{}{}", p.ratio, p.from))
            .unwrap_or_default();
        format!("L{}/U{}{poison}", self.labeled, self.unlabeled)
    }
}

/// One dataset of a cell's pool: its slot name and where its pairs come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolPart {
    pub name: String,
    pub source: DatasetSource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hyphenated_names_and_round_trips() {
        let m = Mixture::parse("shp-askacademia30-helpful70").unwrap();
        assert_eq!(
            m.parts,
            [
                ("shp-askacademia".to_string(), 30),
                ("helpful".to_string(), 70)
            ]
        );
        assert_eq!(m.name(), "shp-askacademia30-helpful70");
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json, "shp-askacademia30-helpful70");
        assert_eq!(serde_json::from_value::<Mixture>(json).unwrap(), m);
        assert_eq!(
            Mixture::parse("hh-rlhf100").unwrap(),
            Mixture::single("hh-rlhf")
        );
        assert_eq!(m.percent_of("helpful"), 70);
        assert_eq!(m.percent_of("harmless"), 0);
    }

    #[test]
    fn rejects_what_is_no_exact_mixture() {
        for (text, says) in [
            ("harmless80-helpful30", "sum to 110"),
            ("harmless80-helpful", "does not end in a percent"),
            ("harmless", "does not end in a percent"),
            ("", "does not end in a percent"),
            ("80-helpful20", "names no dataset"),
            ("harmless50-harmless50", "twice"),
            ("harmless100-helpful0", "0%"),
        ] {
            let err = Mixture::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    /// Counts are exact where the shares divide the total, within one of the
    /// share otherwise, and always sum to the total. Worked by hand: 7 × 33%
    /// = 2.31, 7 × 67% = 4.69 → 2 + 4 = 6, the one left goes to the larger
    /// remainder (69 > 31): 2 + 5.
    #[test]
    fn counts_are_exact_shares_summing_to_the_total() {
        let m = Mixture::parse("harmless80-helpful20").unwrap();
        assert_eq!(m.counts(300), [240, 60]);
        assert_eq!(m.counts(0), [0, 0]);
        let uneven = Mixture::parse("harmless33-helpful67").unwrap();
        assert_eq!(uneven.counts(7), [2, 5]);
        let thirds = Mixture::parse("a34-b33-c33").unwrap();
        assert_eq!(thirds.counts(10), [4, 3, 3]);
        for total in 0..50 {
            assert_eq!(thirds.counts(total).iter().sum::<usize>(), total);
        }
    }

    #[test]
    fn pool_lists_each_dataset_once_unlabeled_first() {
        let mix = SplitMixture {
            labeled: Mixture::parse("harmless80-helpful20").unwrap(),
            unlabeled: Mixture::parse("helpful50-harmless50").unwrap(),
            poison: Some(Poison {
                ratio: 0.1,
                from: "tldr".into(),
            }),
        };
        assert_eq!(mix.datasets(), ["helpful", "harmless", "tldr"]);
        assert_eq!(
            mix.tag(),
            "Lharmless80-helpful20/Uhelpful50-harmless50/p0.1tldr"
        );
    }
}
