//! Seeded parameter initialization.
//!
//! In: the model's parameters with concrete shapes and initializers, and a seed. Out:
//! the initial values by name. Each parameter draws from its own stream, seeded by the
//! model seed and its name, so adding a layer does not change the others' values.
//! The distributions are PyTorch's defaults: embeddings N(0, 1), linear weights and
//! biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::specialize::{ConcreteInit, ConcreteParam};
use std::collections::BTreeMap;

/// FNV-1a, to turn a parameter name into a stream seed.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Parameters of at least this many values are filled by several threads.
const SPLIT: usize = 1 << 16;

pub fn initialize(params: &[ConcreteParam], seed: u64) -> BTreeMap<String, Vec<f32>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    params
        .iter()
        .map(|p| {
            let rng = SplitMix64::new(seed ^ name_hash(&p.name));
            let n: usize = p.shape.iter().product();
            let values = match p.init {
                ConcreteInit::Constant { value } => vec![value as f32; n],
                init => {
                    let mut values = vec![0.0f32; n];
                    let part = if n >= SPLIT { n.div_ceil(threads) } else { n.max(1) };
                    let parts = n.div_ceil(part);
                    let rng = &rng;
                    std::thread::scope(|scope| {
                        for (k, chunk) in values.chunks_mut(part).enumerate() {
                            // The last part on this thread, the others on new ones.
                            if k + 1 == parts {
                                fill(chunk, init, rng, k * part);
                            } else {
                                scope.spawn(move || fill(chunk, init, rng, k * part));
                            }
                        }
                    });
                    values
                }
            };
            (p.name.clone(), values)
        })
        .collect()
}

/// Values `first..first + out.len()` of a parameter's stream `rng` (a normal takes two
/// draws, a uniform one): the same values whichever thread fills which part.
fn fill(out: &mut [f32], init: ConcreteInit, rng: &SplitMix64, first: usize) {
    match init {
        ConcreteInit::Normal { std } => {
            let mut rng = rng.skipped(2 * first as u64);
            out.iter_mut().for_each(|v| *v = (rng.normal() * std) as f32);
        }
        ConcreteInit::Uniform { bound } => {
            let mut rng = rng.skipped(first as u64);
            out.iter_mut().for_each(|v| *v = rng.range(-bound, bound) as f32);
        }
        ConcreteInit::Constant { value } => out.fill(value as f32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parameter filled by several threads holds its stream's values in order, the
    /// values one thread drawing one after the other gives (checkpoints and every
    /// reproduced run depend on them).
    #[test]
    fn a_large_parameter_filled_in_parts_is_its_stream_in_order() {
        let n = 3 * SPLIT + 5;
        for init in [ConcreteInit::Normal { std: 0.5 }, ConcreteInit::Uniform { bound: 0.1 }] {
            let param = ConcreteParam {
                name: "table".into(),
                shape: vec![n],
                init,
            };
            let got = &initialize(std::slice::from_ref(&param), 7)["table"];
            let mut rng = SplitMix64::new(7 ^ name_hash("table"));
            let want: Vec<f32> = (0..n)
                .map(|_| match init {
                    ConcreteInit::Normal { std } => (rng.normal() * std) as f32,
                    ConcreteInit::Uniform { bound } => rng.range(-bound, bound) as f32,
                    ConcreteInit::Constant { .. } => unreachable!(),
                })
                .collect();
            assert!(
                got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{init:?}"
            );
        }
    }
}
