//! Datasets: named columns of rows, split into fixed-size batches.
//!
//! In: columns whose first axis is the row (sample) axis, and "whole" columns that have
//! no row axis (a graph's edge list `g.edges`, its edge features): those are passed
//! unchanged with every batch. Out: batches in a seeded shuffled order; every batch
//! holds `batch` rows except the last, which holds the rest (the session runs it with a
//! step compiled for that many rows), so an epoch sees every row once.
//!
//! A graph model's rows are its nodes, and its edges refer to them by index: such a
//! dataset is `full_batch`, and its epoch is one batch of every row in order, never
//! shuffled or split.
//!
//! Reading `--data DIR`: `load.rs` finds the files and splits off held-out rows,
//! `spec.rs` says what each file must hold, `column.rs` reads and checks one file's
//! values (through `npy.rs` and `csv.rs`); `defaults.rs` and `synthetic.rs` make data
//! when none is given.

mod column;
pub mod csv;
pub mod defaults;
pub mod graphs;
pub mod load;
pub mod npy;
mod spec;
pub mod synthetic;

use mpc_compiler::seeded::SplitMix64;

/// A column is a host tensor: `rows` rows, each of `row_shape` elements, row-major.
pub use mpc_compiler::tensor::Tensor;

/// Rows `rows` (in that order) of a column whose rows have `width` elements.
fn pick(column: &Tensor, width: usize, rows: &[usize]) -> Tensor {
    let range = |r: &usize| *r * width..(*r + 1) * width;
    match column {
        Tensor::Float(v) => Tensor::Float(rows.iter().flat_map(|r| v[range(r)].iter().copied()).collect()),
        Tensor::Int(v) => Tensor::Int(rows.iter().flat_map(|r| v[range(r)].iter().copied()).collect()),
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    pub rows: usize,
    /// (name, per-row shape, data), in the order the model declares its inputs.
    pub columns: Vec<(String, Vec<usize>, Tensor)>,
    /// (name, shape, data) of the inputs without the batch axis, e.g. `g.edges`
    /// `[2, E]`: loaded once and passed whole with every batch.
    pub whole: Vec<(String, Vec<usize>, Tensor)>,
    /// The rows are a graph's nodes: an epoch is one batch of every row, in order.
    pub full_batch: bool,
    /// The rows are graphs of a data set of graphs (a model with `graphs G`): batches
    /// are block-diagonal graphs padded to a capacity (`graphs.rs`).
    pub graphs: Option<graphs::GraphRows>,
}

impl Dataset {
    /// A dataset of per-row columns only.
    pub fn new(rows: usize, columns: Vec<(String, Vec<usize>, Tensor)>) -> Dataset {
        Dataset {
            rows,
            columns,
            ..Dataset::default()
        }
    }

    /// Rows `order[..]` of every column, then every whole column. Rows of graphs come
    /// with their nodes and edges as one padded block-diagonal graph.
    pub fn batch(&self, order: &[usize]) -> Vec<(String, Tensor)> {
        let rows = self.columns.iter().map(|(name, shape, col)| {
            let width: usize = shape.iter().product();
            (name.clone(), pick(col, width, order))
        });
        let whole = self.whole.iter().map(|(name, _, col)| (name.clone(), col.clone()));
        match &self.graphs {
            Some(g) => g.batch(order, rows.collect()).into_iter().chain(whole).collect(),
            None => rows.chain(whole).collect(),
        }
    }

    /// The batches of one epoch, rows shuffled with `rng`; the last may be partial. A
    /// full-batch dataset (a graph's nodes) gives one batch of every row in order and
    /// leaves `rng` as it was.
    pub fn epoch_batches(&self, batch: usize, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.rows).collect();
        if self.full_batch {
            return vec![order];
        }
        rng.shuffle(&mut order);
        order.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
    }

    /// Splits off the last `n` rows (e.g. a held-out set); both parts keep the whole
    /// columns. Not for full-batch data, whose rows are nodes that edges refer to.
    pub fn split_tail(&self, n: usize) -> (Dataset, Dataset) {
        assert!(!self.full_batch, "a graph's nodes cannot be split");
        let keep = self.rows - n.min(self.rows);
        let part = |range: std::ops::Range<usize>| Dataset {
            rows: range.len(),
            columns: self
                .columns
                .iter()
                .map(|(name, shape, col)| {
                    let w: usize = shape.iter().product();
                    let rows: Vec<usize> = range.clone().collect();
                    (name.clone(), shape.clone(), pick(col, w, &rows))
                })
                .collect(),
            whole: self.whole.clone(),
            full_batch: false,
            graphs: self.graphs.as_ref().map(|g| graphs::GraphRows {
                ids: g.ids[range.clone()].to_vec(),
                ..g.clone()
            }),
        };
        (part(0..keep), part(keep..self.rows))
    }

    /// The column (per-row or whole) called `name`.
    pub fn column(&self, name: &str) -> Option<&Tensor> {
        self.columns
            .iter()
            .chain(&self.whole)
            .find(|(n, _, _)| n == name)
            .map(|(_, _, c)| c)
    }

    /// The column called `name`, mutably (per-row or whole).
    pub fn column_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        self.columns
            .iter_mut()
            .chain(&mut self.whole)
            .find(|(n, _, _)| n == name)
            .map(|(_, _, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(full_batch: bool) -> Dataset {
        Dataset {
            rows: 4,
            columns: vec![
                ("x".into(), vec![2], Tensor::Float(vec![0., 1., 2., 3., 4., 5., 6., 7.])),
                ("y".into(), vec![], Tensor::Int(vec![0, 1, -1, 1])),
            ],
            whole: vec![("g.edges".into(), vec![2, 3], Tensor::Int(vec![0, 1, 2, 1, 2, 3]))],
            full_batch,
            graphs: None,
        }
    }

    #[test]
    fn whole_columns_ride_with_every_batch() {
        let d = data(false);
        let b = d.batch(&[2, 0]);
        assert_eq!(
            b,
            vec![
                ("x".into(), Tensor::Float(vec![4., 5., 0., 1.])),
                ("y".into(), Tensor::Int(vec![-1, 0])),
                ("g.edges".into(), Tensor::Int(vec![0, 1, 2, 1, 2, 3])),
            ]
        );
        let (train, held) = d.split_tail(1);
        assert_eq!((train.rows, held.rows), (3, 1));
        assert_eq!(held.whole, d.whole);
        assert_eq!(held.column("y"), Some(&Tensor::Int(vec![1])));
    }

    #[test]
    fn full_batch_is_one_batch_in_order() {
        let d = data(true);
        let mut rng = SplitMix64::new(3);
        let before = rng.clone();
        for batch in [1, 2, 4, 100] {
            assert_eq!(d.epoch_batches(batch, &mut rng), vec![vec![0, 1, 2, 3]]);
        }
        assert_eq!(rng.next_u64(), before.clone().next_u64(), "no draws");
        // Row data shuffles otherwise.
        let mut rng = SplitMix64::new(3);
        let batches = data(false).epoch_batches(2, &mut rng);
        assert_eq!(batches.len(), 2);
    }
}
