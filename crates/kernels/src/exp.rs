//! eˣ in f64, written so the compiler can vectorise it.
//!
//! Why: the kernels compute every exponential in f64 (softmax over the
//! attention scores, SiLU's sigmoid, the log-softmax over the vocabulary),
//! and libm's `exp` is a call per value that no loop around it can
//! vectorise: in a tiny decoder's training step it was 17% of the time,
//! second only to the matmuls. [`exp`] is the textbook method in plain
//! arithmetic, with no calls and only selects at the range's edges, so a
//! loop of it compiles to SIMD code; [`exp_in_place`] runs that loop compiled for the widest
//! vector unit the CPU has.
//!
//! The method (Cody & Waite's range reduction, then a Taylor polynomial):
//!
//! ```text
//! n = round(x / ln 2)                   (an integer)
//! r = x − n·ln 2                        |r| ≤ ln 2 / 2 ≈ 0.347, ln 2 split in
//!                                       two parts so that n·LN2_HI is exact
//! eʳ = Σ_{k=0}^{13} rᵏ / k!             truncation error < 0.35¹⁴/14! ≈ 4e-18
//! eˣ = eʳ · 2ⁿ                          2ⁿ built from its bits, in two
//!                                       halves so that subnormal results
//!                                       round once, as they should
//! ```
//!
//! Accuracy: within 1 ulp of libm's f64 `exp` over the whole range (tested
//! below). The kernels round their f64 results to f32, where a 1-ulp f64
//! difference changes the f32 value only when it lies within 2⁻⁵² of an f32
//! rounding boundary. Rare is not never: of the 6,126 stages of `sweep run
//! experiments/`, one 1,500-step pretraining run took another last bit and
//! drifted from there, which is why stage keys carry
//! [`crate::NUMERICS_VERSION`].
//!
//! Same bits everywhere: the arithmetic is IEEE add, multiply and bit moves,
//! which Rust never fuses into FMAs, so the scalar function and each SIMD
//! build of [`exp_in_place`] return identical bits (tested below).

/// 1 / ln 2.
const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO; LN2_HI has 32 significant bits, so n·LN2_HI is
/// exact for every n this range needs (fdlibm's constants, by their bits).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1.5 · 2⁵²: adding it rounds a value below 2⁵¹ in magnitude to an integer,
/// which then sits in the low bits of the sum.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// Above this eˣ overflows f64; below `UNDERFLOW` it rounds to 0.
const OVERFLOW: f64 = 709.782_712_893_384;
const UNDERFLOW: f64 = -745.133_219_101_941_1;

/// 1/k! for k = 13 down to 2, the Horner order.
const INV_FACTORIALS: [f64; 12] = [
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    1.0 / 2.0,
];

/// 2ᵏ for an integer k in [−1022, 1023], from its bits.
#[inline(always)]
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// eˣ, within 1 ulp of libm's; inf above ~709.78, 0 below ~−745.13, NaN for NaN.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    // Clamped so that n stays in [−1075, 1025] and both halves of 2ⁿ are
    // normal numbers; the out-of-range results are chosen at the end.
    let xc = x.clamp(UNDERFLOW - 1.0, OVERFLOW + 1.0);
    let shifted = xc * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let n_int = shifted.to_bits() as i64 - ROUND.to_bits() as i64;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = INV_FACTORIALS[0];
    for c in &INV_FACTORIALS[1..] {
        p = p * r + c;
    }
    let er = (p * r + 1.0) * r + 1.0;
    let half = n_int >> 1;
    let y = er * pow2(half) * pow2(n_int - half);
    if x > OVERFLOW {
        f64::INFINITY
    } else if x < UNDERFLOW {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// Replaces every value of `xs` by its [`exp`], with the CPU's widest
/// vector unit (AVX-512, else AVX2, else the baseline's SSE2).
pub fn exp_in_place(xs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has just been checked to support AVX-512F.
            return unsafe { exp_in_place_avx512(xs) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has just been checked to support AVX2.
            return unsafe { exp_in_place_avx2(xs) };
        }
    }
    exp_loop(xs);
}

/// The loop, in blocks of a fixed 32 values: the polynomial is a chain of
/// 26 dependent operations, and a block lets the compiler interleave
/// several vectors' chains instead of waiting on one.
#[inline(always)]
fn exp_loop(xs: &mut [f64]) {
    let (blocks, rest) = xs.as_chunks_mut::<32>();
    for block in blocks {
        for x in block {
            *x = exp(*x);
        }
    }
    for x in rest {
        *x = exp(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_in_place_avx512(xs: &mut [f64]) {
    exp_loop(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exp_in_place_avx2(xs: &mut [f64]) {
    exp_loop(xs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units of the last place between two finite f64 of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    /// A deterministic spread of inputs: a fine grid over the kernels'
    /// range (softmax feeds x − max ≤ 0, the sigmoid ±x) and the extremes.
    fn inputs() -> Vec<f64> {
        let mut xs: Vec<f64> = (0..200_001).map(|i| -100.0 + i as f64 * 1e-3).collect();
        xs.extend((0..20_001).map(|i| -745.0 + i as f64 * 0.0727));
        xs.extend([
            0.0, -0.0, 1e-300, -1e-300, 0.5, -0.5, 700.0, 709.7, -708.0, -744.0,
        ]);
        xs
    }

    #[test]
    fn within_one_ulp_of_libm() {
        for x in inputs() {
            let (got, want) = (exp(x), x.exp());
            // Below 2⁻¹⁰²² an ulp is the subnormals' fixed step.
            assert!(ulps(got, want) <= 1, "exp({x}) = {got:e}, libm {want:e}");
        }
    }

    #[test]
    fn ln2_splits_into_its_two_parts() {
        assert_eq!(LN2_HI + LN2_LO, std::f64::consts::LN_2);
        assert_eq!(
            LN2_HI.to_bits() & 0x1f_ffff,
            0,
            "LN2_HI's low 21 bits are zero"
        );
    }

    #[test]
    fn exact_at_zero_and_right_at_the_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert!(ulps(exp(1.0), std::f64::consts::E) <= 1);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp(-746.0), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn the_vector_loop_gives_the_scalar_bits() {
        let xs = inputs();
        let mut vectorised = xs.clone();
        exp_in_place(&mut vectorised);
        for (x, v) in xs.iter().zip(&vectorised) {
            assert_eq!(v.to_bits(), exp(*x).to_bits(), "exp({x})");
        }
    }
}
