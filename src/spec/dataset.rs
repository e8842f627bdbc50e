//! Where a cell's preference pairs come from: a family of the synthetic
//! world under a world config, or real dataset files in a known format.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the pairs come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DatasetSource {
    /// A task family of the synthetic world, under a world config (the world's
    /// `WorldConfig` as JSON; it denies unknown keys itself).
    Synthetic {
        family: String,
        world: serde_json::Value,
    },
    /// Real dataset files (paper profile): `format` names the loader.
    Files {
        format: DatasetFormat,
        train: PathBuf,
        test: PathBuf,
    },
}

/// The paper's datasets, each with its published layout and length limit.
///
/// Serde: the canonical name (`hh-rlhf`, `ultrafeedback`, `tldr`, `shp`), as
/// profiles write it and stage keys hold it; the aliases of [`Self::from_name`]
/// are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatasetFormat {
    /// Anthropic HH-RLHF: `{"chosen": transcript, "rejected": transcript}` per line.
    #[serde(
        rename = "hh-rlhf",
        alias = "hh",
        alias = "harmless-base",
        alias = "helpful-base"
    )]
    HhRlhf,
    /// HuggingFaceH4/ultrafeedback_binarized parquet.
    #[serde(
        rename = "ultrafeedback",
        alias = "ufb",
        alias = "ultrafeedback-binarized",
        alias = "ultra-feedback"
    )]
    UltraFeedback,
    /// openai/summarize-from-feedback comparisons.
    #[serde(rename = "tldr", alias = "tl;dr")]
    Tldr,
    /// stanfordnlp/SHP.
    #[serde(rename = "shp")]
    Shp,
}

impl DatasetFormat {
    /// Names accepted on the command line and in profiles.
    pub const NAMES: &'static [&'static str] = &[
        "hh-rlhf",
        "harmless-base",
        "helpful-base",
        "ultrafeedback",
        "ufb",
        "tldr",
        "shp",
    ];

    /// Parses a dataset name (`hh-rlhf`, `harmless-base`, `helpful-base` all
    /// use the HH layout; a subset is the file it is read from).
    pub fn from_name(name: &str) -> anyhow::Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "hh-rlhf" | "hh" | "harmless-base" | "helpful-base" => Self::HhRlhf,
            "ultrafeedback" | "ufb" | "ultrafeedback-binarized" => Self::UltraFeedback,
            "tldr" | "tl;dr" => Self::Tldr,
            "shp" => Self::Shp,
            other => anyhow::bail!(
                "unknown dataset `{other}`; known datasets: {}",
                Self::NAMES.join(", ")
            ),
        })
    }

    /// The paper's length filter (Appendix G): pairs over this many tokens are dropped.
    pub fn max_tokens(self) -> usize {
        match self {
            Self::HhRlhf | Self::Shp => 512,
            Self::Tldr => 1024,
            Self::UltraFeedback => 2048,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_serialise_as_their_canonical_name_and_read_aliases() {
        for (format, name) in [
            (DatasetFormat::HhRlhf, "hh-rlhf"),
            (DatasetFormat::UltraFeedback, "ultrafeedback"),
            (DatasetFormat::Tldr, "tldr"),
            (DatasetFormat::Shp, "shp"),
        ] {
            assert_eq!(serde_json::to_value(format).unwrap(), name);
            assert_eq!(DatasetFormat::from_name(name).unwrap(), format);
        }
        let ufb: DatasetFormat = serde_json::from_value("ufb".into()).unwrap();
        assert_eq!(ufb, DatasetFormat::UltraFeedback);
        assert!(DatasetFormat::from_name("imdb").is_err());
    }
}
