//! Seeded synthetic datasets whose labels depend on the inputs, for tests and for
//! examples that ship no data.
//!
//! Token classification: every class owns a small set of keyword ids; a sequence of
//! class `c` has each position drawn from `c`'s keywords with probability `signal`,
//! otherwise uniformly from the vocabulary (which includes every class's keywords, so
//! single tokens are noisy evidence and the model must weigh the whole sequence).

use super::{Column, Dataset};
use mpc_compiler::seeded::SplitMix64;

pub struct TokenTask {
    pub rows: usize,
    pub seq_len: usize,
    pub vocab: usize,
    pub classes: usize,
    /// Keyword ids per class.
    pub keywords: usize,
    /// Probability that a position is one of its class's keywords.
    pub signal: f64,
    pub seed: u64,
}

impl TokenTask {
    /// Columns named `tokens` (i32[seq_len]) and `labels` (i32[]) unless renamed.
    pub fn generate(&self, tokens_name: &str, labels_name: &str) -> Dataset {
        assert!(
            self.classes * self.keywords <= self.vocab,
            "keywords must fit in the vocabulary"
        );
        let mut rng = SplitMix64::new(self.seed);
        // Keyword sets: a seeded choice of distinct ids.
        let mut ids: Vec<usize> = (0..self.vocab).collect();
        rng.shuffle(&mut ids);
        let keywords: Vec<&[usize]> = ids.chunks(self.keywords).take(self.classes).collect();
        let mut tokens = Vec::with_capacity(self.rows * self.seq_len);
        let mut labels = Vec::with_capacity(self.rows);
        for _ in 0..self.rows {
            let c = rng.below(self.classes as u64) as usize;
            labels.push(c as i32);
            for _ in 0..self.seq_len {
                let t = if rng.uniform() < self.signal {
                    keywords[c][rng.below(self.keywords as u64) as usize]
                } else {
                    rng.below(self.vocab as u64) as usize
                };
                tokens.push(t as i32);
            }
        }
        Dataset {
            rows: self.rows,
            columns: vec![
                (tokens_name.to_string(), vec![self.seq_len], Column::I32(tokens)),
                (labels_name.to_string(), vec![], Column::I32(labels)),
            ],
        }
    }
}
