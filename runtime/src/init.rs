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

pub fn initialize(params: &[ConcreteParam], seed: u64) -> BTreeMap<String, Vec<f32>> {
    params
        .iter()
        .map(|p| {
            let mut rng = SplitMix64::new(seed ^ name_hash(&p.name));
            let n: usize = p.shape.iter().product();
            let values = match p.init {
                ConcreteInit::Normal { std } => (0..n).map(|_| (rng.normal() * std) as f32).collect(),
                ConcreteInit::Uniform { bound } => (0..n).map(|_| rng.range(-bound, bound) as f32).collect(),
                ConcreteInit::Constant { value } => vec![value as f32; n],
            };
            (p.name.clone(), values)
        })
        .collect()
}
