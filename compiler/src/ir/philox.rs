//! Philox4x32-10, the counter-based generator behind `random_uniform` (dropout masks).
//!
//! In: a key (seed, stream) and a counter (element index, step). Out: four u32 words.
//! Being a pure function of its inputs, it gives the same mask on every backend and
//! thread count; constants from Salmon et al., "Parallel random numbers: as easy as
//! 1, 2, 3" (SC'11), as used by cuRAND and JAX.
//!
//! This is the reference: both code generators inline the same algorithm and take its
//! constants from here (tests check the JIT bit for bit against [`uniform`] and the PTX
//! text for these constants).

/// Multipliers of the two products of a round (counter words 0 and 2).
pub const M0: u32 = 0xD251_1F53;
pub const M1: u32 = 0xCD9E_8D57;
/// Weyl increments of the two key words, added between rounds.
pub const W0: u32 = 0x9E37_79B9;
pub const W1: u32 = 0xBB67_AE85;
/// Rounds per call (Philox4x32-10).
pub const ROUNDS: usize = 10;
/// u32 -> `[0, 1)`: the top 24 bits (`word >> UNIFORM_SHIFT`), exact in f32, times 2^-24.
pub const UNIFORM_SHIFT: u32 = 8;
pub const UNIFORM_SCALE: f32 = 1.0 / 16_777_216.0;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// [`ROUNDS`] rounds of Philox4x32 on `counter` with `key`.
pub fn philox4x32(mut counter: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for _ in 0..ROUNDS {
        let (hi0, lo0) = mulhilo(M0, counter[0]);
        let (hi1, lo1) = mulhilo(M1, counter[2]);
        counter = [hi1 ^ counter[1] ^ key[0], lo1, hi0 ^ counter[3] ^ key[1], lo0];
        key = [key[0].wrapping_add(W0), key[1].wrapping_add(W1)];
    }
    counter
}

/// The uniform `[0, 1)` number for element `index` of a `random_uniform` node: word
/// `index % 4` of the call with counter `(index / 4, step, 0, 0)` and key `(seed,
/// stream)`, its top 24 bits. One call serves four consecutive elements (as cuRAND uses
/// all four words), so the JIT's f32x4 loops draw four numbers per call.
pub fn uniform(seed: i32, step: i32, stream: u32, index: u32) -> f32 {
    let words = philox4x32([index >> 2, step as u32, 0, 0], [seed as u32, stream]);
    to_unit(words[(index & 3) as usize])
}

/// A word's top 24 bits as an f32 in `[0, 1)`.
pub fn to_unit(word: u32) -> f32 {
    (word >> UNIFORM_SHIFT) as f32 * UNIFORM_SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer test from the Random123 distribution (kat_vectors, philox4x32_10).
    #[test]
    fn matches_random123_known_answers() {
        assert_eq!(
            philox4x32([0, 0, 0, 0], [0, 0]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32([0xffff_ffff; 4], [0xffff_ffff; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn uniform_is_in_unit_interval_and_mean_half() {
        let n = 10_000;
        let mut sum = 0.0;
        for i in 0..n {
            let u = uniform(42, 7, 3, i);
            assert!((0.0..1.0).contains(&u));
            sum += u as f64;
        }
        assert!((sum / n as f64 - 0.5).abs() < 0.01);
    }
}
