//! Datasets: named columns of rows, split into fixed-size batches.
//!
//! In: columns whose first axis is the row (sample) axis. Out: batches in a seeded
//! shuffled order; every batch holds `batch` rows except the last, which holds the rest
//! (the session runs it with a step compiled for that many rows), so an epoch sees
//! every row once.

pub mod csv;
pub mod defaults;
pub mod load;
pub mod npy;
pub mod synthetic;

use mpc_compiler::seeded::SplitMix64;

/// One column: `rows` rows, each of `row_shape` elements.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub rows: usize,
    /// (name, per-row shape, data), in the order the model declares its inputs.
    pub columns: Vec<(String, Vec<usize>, Column)>,
}

impl Dataset {
    /// Rows `order[start..start + batch]` of every column.
    pub fn batch(&self, order: &[usize]) -> Vec<(String, Column)> {
        self.columns
            .iter()
            .map(|(name, shape, col)| {
                let width: usize = shape.iter().product();
                let pick = |r: &usize| *r * width..(*r + 1) * width;
                let col = match col {
                    Column::F32(v) => Column::F32(order.iter().flat_map(|r| v[pick(r)].iter().copied()).collect()),
                    Column::I32(v) => Column::I32(order.iter().flat_map(|r| v[pick(r)].iter().copied()).collect()),
                };
                (name.clone(), col)
            })
            .collect()
    }

    /// The batches of one epoch, rows shuffled with `rng`; the last may be partial.
    pub fn epoch_batches(&self, batch: usize, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.rows).collect();
        rng.shuffle(&mut order);
        order.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
    }

    /// Splits off the last `n` rows (e.g. a held-out set).
    pub fn split_tail(&self, n: usize) -> (Dataset, Dataset) {
        let keep = self.rows - n.min(self.rows);
        let part = |range: std::ops::Range<usize>| Dataset {
            rows: range.len(),
            columns: self
                .columns
                .iter()
                .map(|(name, shape, col)| {
                    let w: usize = shape.iter().product();
                    let r = range.start * w..range.end * w;
                    let col = match col {
                        Column::F32(v) => Column::F32(v[r].to_vec()),
                        Column::I32(v) => Column::I32(v[r].to_vec()),
                    };
                    (name.clone(), shape.clone(), col)
                })
                .collect(),
        };
        (part(0..keep), part(keep..self.rows))
    }
}
