//! Per-pair weights from the weak annotator's scores (Table 5's axis), and
//! the top-N% confidence filter (Fig. 2, Table 4).
//!
//! CW-PO never drops a pair: it multiplies each pair's loss by a weight.
//! Filtering is the baseline it is compared with.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::WeakLabel;
use super::expression::{Expression, ParseError, sigmoid};

/// The values of a weighting expression's variables for one pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bindings {
    pub s_c: f64,
    pub s_r: f64,
}

impl Bindings {
    pub fn delta(&self) -> f64 {
        self.s_c - self.s_r
    }

    /// 2σ(Δ) − 1, computed as tanh(Δ/2) (the same number, without the
    /// cancellation of 2σ − 1 near Δ = 0).
    pub fn confidence(&self) -> f64 {
        (self.delta() / 2.0).tanh()
    }

    /// The values of [`VARIABLES`], in order.
    fn values(&self) -> [f64; 4] {
        [self.s_c, self.s_r, self.delta(), self.confidence()]
    }
}

/// The names a weighting expression may read. `delta` = s_c − s_r, `c` = 2σ(delta) − 1.
const VARIABLES: [&str; 4] = ["s_c", "s_r", "delta", "c"];

/// How a weak label's scores become a loss weight. Serde: one string, a
/// scheme name or else an expression over `s_c`, `s_r`, `delta`, `c`:
/// `weighting = "cw"` or `weighting = "2*sigmoid(s_c - s_r) - 1"`.
///
/// The expression `2*sigmoid(s_c - s_r) - 1` is the named scheme `cw`, the
/// paper's confidence: a pair scored 2 vs 0 weighs 2σ(2) − 1 ≈ 0.76, a tie 0.
///
/// ```
/// use cwpo::train::{WeakLabel, WeightingScheme};
///
/// let formula: WeightingScheme = "2*sigmoid(s_c - s_r) - 1".parse()?;
/// let labels = [
///     WeakLabel { prefers_chosen: true, s_c: 2.0, s_r: 0.0 },
///     WeakLabel { prefers_chosen: true, s_c: 1.0, s_r: 1.0 },
/// ];
/// let weights = formula.weights(&labels)?;
/// assert!((weights[0] - 0.7615941559557649).abs() < 1e-12);
/// assert_eq!(weights[1], 0.0);
/// let cw = WeightingScheme::Cw.weights(&labels)?;
/// assert!((weights[0] - cw[0]).abs() < 1e-12);
/// // What the parser rejects, `sweep validate` rejects too.
/// assert!("s_c + foo".parse::<WeightingScheme>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum WeightingScheme {
    /// 2σ(Δ) − 1, the paper's confidence (Eq. 8).
    Cw,
    /// σ(Δ).
    Sigmoid,
    /// Δ, raw and unbounded.
    Margin,
    /// (2σ(Δ) − 1)².
    Squared,
    /// 1: the unweighted loss.
    Uniform,
    /// A user's formula.
    Expression(Expression),
}

/// A weight that is NaN or infinite: names the scheme and the pair.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "weighting `{scheme}` gave {weight} for pair {index} (s_c = {s_c}, s_r = {s_r}); \
     weights must be finite: guard the formula (e.g. clamp, or log of a positive value)"
)]
pub struct NonFiniteWeight {
    pub scheme: String,
    pub index: usize,
    pub weight: f64,
    pub s_c: f64,
    pub s_r: f64,
}

impl WeightingScheme {
    /// The scheme's name, or the expression's text.
    pub fn name(&self) -> &str {
        match self {
            Self::Cw => "cw",
            Self::Sigmoid => "sigmoid",
            Self::Margin => "margin",
            Self::Squared => "squared",
            Self::Uniform => "uniform",
            Self::Expression(e) => e.source(),
        }
    }

    fn weight(&self, b: &Bindings) -> f64 {
        match self {
            Self::Cw => b.confidence(),
            Self::Sigmoid => sigmoid(b.delta()),
            Self::Margin => b.delta(),
            Self::Squared => b.confidence().powi(2),
            Self::Uniform => 1.0,
            Self::Expression(e) => e.eval_scalar(&b.values()),
        }
    }

    /// One weight per label, in order; a NaN or infinite weight is an error
    /// naming the scheme and the pair's index.
    pub fn weights(&self, labels: &[WeakLabel]) -> Result<Vec<f64>, NonFiniteWeight> {
        labels
            .iter()
            .enumerate()
            .map(|(index, label)| {
                let weight = self.weight(&label.bindings());
                if weight.is_finite() {
                    Ok(weight)
                } else {
                    Err(NonFiniteWeight {
                        scheme: self.name().to_string(),
                        index,
                        weight,
                        s_c: label.s_c,
                        s_r: label.s_r,
                    })
                }
            })
            .collect()
    }
}

impl FromStr for WeightingScheme {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Ok(match s.trim() {
            "cw" => Self::Cw,
            "sigmoid" => Self::Sigmoid,
            "margin" => Self::Margin,
            "squared" => Self::Squared,
            "uniform" => Self::Uniform,
            _ => Self::Expression(Expression::parse(s, &VARIABLES)?),
        })
    }
}

impl TryFrom<String> for WeightingScheme {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<WeightingScheme> for String {
    fn from(w: WeightingScheme) -> String {
        w.name().to_string()
    }
}

impl fmt::Display for WeightingScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Indices of the `percent`% most confident pairs, in ascending index order
/// (so the kept pairs keep their data order). Keeps round(n · percent / 100)
/// pairs, at least one when n > 0; equal confidences go to the lower index.
pub fn top_confident(confidences: &[f64], percent: f64) -> anyhow::Result<Vec<usize>> {
    anyhow::ensure!(
        percent > 0.0 && percent <= 100.0,
        "top-N% filter: N = {percent} must be in (0, 100]"
    );
    if let Some(i) = confidences.iter().position(|c| !c.is_finite()) {
        anyhow::bail!(
            "top-N% filter: confidence of pair {i} is {}, not a finite number",
            confidences[i]
        );
    }
    let n = confidences.len();
    let keep = ((n as f64 * percent / 100.0).round() as usize).clamp(n.min(1), n);
    let mut ranked: Vec<usize> = (0..n).collect();
    // Highest confidence first; the stable sort leaves ties in index order.
    ranked.sort_by(|&a, &b| confidences[b].total_cmp(&confidences[a]));
    let mut kept = ranked[..keep].to_vec();
    kept.sort_unstable();
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigmoid_f64(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Pairs with deltas 0, 0.5, 2 (s_c, s_r chosen so that s_c alone is not Δ).
    fn labels() -> Vec<WeakLabel> {
        vec![
            WeakLabel::from_scores(0.3, 0.3),
            WeakLabel::from_scores(-1.0, -1.5),
            WeakLabel::from_scores(1.0, 3.0),
        ]
    }

    fn check(scheme: &str, f: impl Fn(f64) -> f64) {
        let scheme: WeightingScheme = scheme.parse().unwrap();
        let got = scheme.weights(&labels()).unwrap();
        let want: Vec<f64> = [0.0, 0.5, 2.0].iter().map(|&d| f(d)).collect();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() < 1e-14,
                "{scheme} pair {i}: got {g}, want {w}"
            );
        }
    }

    #[test]
    fn named_schemes_by_hand() {
        check("cw", |d| 2.0 * sigmoid_f64(d) - 1.0);
        check("sigmoid", sigmoid_f64);
        check("margin", |d| d);
        check("squared", |d| (2.0 * sigmoid_f64(d) - 1.0).powi(2));
        check("uniform", |_| 1.0);
        assert_eq!(
            "cw".parse::<WeightingScheme>().unwrap(),
            WeightingScheme::Cw
        );
    }

    #[test]
    fn expression_equal_to_cw_gives_the_same_weights() {
        let cw = WeightingScheme::Cw.weights(&labels()).unwrap();
        for src in ["2*sigmoid(s_c - s_r) - 1", "2*sigmoid(delta) - 1", "c"] {
            let scheme: WeightingScheme = src.parse().unwrap();
            assert!(matches!(scheme, WeightingScheme::Expression(_)));
            let got = scheme.weights(&labels()).unwrap();
            for (g, w) in got.iter().zip(&cw) {
                assert!((g - w).abs() < 1e-15, "{src}: {got:?} vs {cw:?}");
            }
        }
    }

    #[test]
    fn serde_takes_a_name_or_an_expression() {
        #[derive(Debug, Deserialize, Serialize)]
        struct Row {
            weighting: WeightingScheme,
        }
        let row: Row = toml::from_str("weighting = \"squared\"").unwrap();
        assert_eq!(row.weighting, WeightingScheme::Squared);
        let row: Row = toml::from_str("weighting = \"2*sigmoid(s_c - s_r) - 1\"").unwrap();
        assert_eq!(row.weighting.name(), "2*sigmoid(s_c - s_r) - 1");
        assert_eq!(
            toml::to_string(&row).unwrap().trim(),
            "weighting = \"2*sigmoid(s_c - s_r) - 1\""
        );
        let err = toml::from_str::<Row>("weighting = \"sigmoid(s_x)\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sigmoid(s_x)") && err.contains("unknown variable `s_x`"),
            "{err}"
        );
    }

    #[test]
    fn nan_and_inf_weights_name_the_expression_and_the_pair() {
        // log(Δ) is −inf at Δ = 0 (pair 0); sqrt(s_r) is NaN for s_r < 0 (pair 1).
        let err = "log(delta)"
            .parse::<WeightingScheme>()
            .unwrap()
            .weights(&labels())
            .unwrap_err();
        assert_eq!((err.index, err.scheme.as_str()), (0, "log(delta)"));
        assert!(
            err.to_string().contains("`log(delta)`") && err.to_string().contains("pair 0"),
            "{err}"
        );
        let err = "sqrt(s_r)"
            .parse::<WeightingScheme>()
            .unwrap()
            .weights(&labels())
            .unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err.weight.is_nan(), "{err}");
    }

    #[test]
    fn top_n_percent_keeps_the_most_confident_with_ties_by_index() {
        let c = [0.2, 0.9, 0.5, 0.9, 0.1, 0.5, 0.7, 0.0, 0.3, 0.6];
        assert_eq!(top_confident(&c, 30.0).unwrap(), vec![1, 3, 6]);
        // Ties go to the lower index: 0.9 at 1 and 3, 0.5 at 2 and 5.
        assert_eq!(top_confident(&c, 10.0).unwrap(), vec![1]);
        assert_eq!(top_confident(&c, 50.0).unwrap(), vec![1, 2, 3, 6, 9]);
        assert_eq!(top_confident(&c, 60.0).unwrap(), vec![1, 2, 3, 5, 6, 9]);
        assert_eq!(
            top_confident(&c, 100.0).unwrap(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(
            top_confident(&c, 1.0).unwrap(),
            vec![1],
            "at least one pair"
        );
        assert!(top_confident(&c, 0.0).is_err());
        assert!(
            top_confident(&[0.1, f64::NAN], 50.0)
                .unwrap_err()
                .to_string()
                .contains("pair 1")
        );
    }
}
