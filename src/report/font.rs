//! The figure font, shipped in the repo (assets/fonts/DejaVuSans.ttf, license
//! beside it) and registered with plotters' ab_glyph backend, so figures look
//! the same on every machine and need no system fonts.
use std::sync::OnceLock;

use anyhow::anyhow;
use plotters::style::FontStyle;

/// The family name figures ask for.
pub const FAMILY: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font once per process.
pub fn ensure_registered() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| plotters::style::register_font(FAMILY, style, DEJAVU_SANS).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "the embedded font assets/fonts/DejaVuSans.ttf is not a valid TrueType font"
        ))
    }
}
