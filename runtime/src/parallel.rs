//! Data-parallel training: which rows of a batch each process (rank) trains on, and how
//! the ranks' gradients become one sum with the same bits on every rank and every run.
//!
//! In: a global batch (row indices, the same on every rank: each shuffles with the run's
//! seed), this rank and the number of ranks. Out: the rows this rank trains on
//! ([`shard`]), and through a [`Collective`] (MPI in the `mpc` binary's `mpi` feature,
//! [`Alone`] for one process) the sum of every rank's gradient buffer.
//!
//! **Shards.** A batch of `B` rows is cut into blocks of `ceil(B / K)` rows, one per rank
//! in rank order; the last partial batch of an epoch leaves the last ranks fewer rows or
//! none. Each rank compiles its step for its block from its block's first row
//! (`Options::first_row`), so dropout draws the same masks as one process on the whole
//! batch.
//!
//! **The gradient buffer** ([`GradientLayout`]): every parameter's gradient of the
//! shard's mean loss times the shard's share of the batch (`rows / B`), so that the sum
//! over the ranks is the gradient of the batch's mean loss; then the [`Tail`] of metric
//! sums and a failure flag; zeros up to a multiple of `K`.
//!
//! **The sum** ([`sum_in_rank_order`]): the buffer is cut into `K` chunks; rank `j`
//! receives chunk `j` of every rank (an all-to-all), adds them in rank order
//! `((c_0 + c_1) + c_2) + ...`, and every rank gathers the summed chunks (an
//! all-gather). That moves `2 (K - 1) / K` of the buffer per rank, as a ring all-reduce
//! does, and its order is fixed by construction, not by whichever algorithm the MPI
//! library picks for a message size: two runs give the same bits.

/// The ranks of one run and the two collective operations data-parallel training uses.
pub trait Collective {
    /// This process's rank, `0..ranks()`.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn ranks(&self) -> usize;
    /// Replaces `buf` (as long on every rank, a multiple of `ranks()` long) with the
    /// element-wise sum of every rank's `buf`, added in rank order
    /// ([`sum_in_rank_order`]).
    fn sum(&mut self, buf: &mut [f32]) -> Result<(), String>;
    /// Every rank's `value`, in rank order (agreeing on a fingerprint, or on who failed).
    fn gather(&mut self, value: u64) -> Result<Vec<u64>, String>;
}

/// One process alone: the sum of one buffer is itself.
pub struct Alone;

impl Collective for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn ranks(&self) -> usize {
        1
    }
    fn sum(&mut self, _buf: &mut [f32]) -> Result<(), String> {
        Ok(())
    }
    fn gather(&mut self, value: u64) -> Result<Vec<u64>, String> {
        Ok(vec![value])
    }
}

/// Rows of a `batch`-row batch per rank.
pub fn shard_rows(batch: usize, ranks: usize) -> usize {
    batch.div_ceil(ranks.max(1)).max(1)
}

/// The part of a batch's rows (`order`) that `rank` trains on, in blocks of `rows`.
pub fn shard(order: &[usize], rank: usize, rows: usize) -> &[usize] {
    let start = (rank * rows).min(order.len());
    let end = ((rank + 1) * rows).min(order.len());
    &order[start..end]
}

/// `received` holds `ranks` chunks of `sum.len()` values, rank 0's first: their
/// element-wise sum into `sum`, added in rank order.
pub fn sum_in_rank_order(received: &[f32], ranks: usize, sum: &mut [f32]) {
    let chunk = sum.len();
    sum.copy_from_slice(&received[..chunk]);
    for r in 1..ranks {
        for (s, x) in sum.iter_mut().zip(&received[r * chunk..(r + 1) * chunk]) {
            *s += x;
        }
    }
}

/// The metric sums after the gradients in the buffer, one value each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// The shard's loss times its share of the batch: their sum is the batch's loss.
    Loss,
    /// Rows whose highest-scoring class is the label.
    Hits,
    /// Rows with a label (not -1).
    Labeled,
    /// Sum of `|prediction - label|` (regressions).
    AbsError,
    /// Predictions that error sums over.
    Predicted,
    /// Rows trained on.
    Rows,
    /// 1 on a rank whose step failed: every rank stops.
    Failed,
}

impl Tail {
    pub const ALL: [Tail; 7] = [
        Tail::Loss,
        Tail::Hits,
        Tail::Labeled,
        Tail::AbsError,
        Tail::Predicted,
        Tail::Rows,
        Tail::Failed,
    ];
}

/// Where each parameter's gradient and each [`Tail`] value lies in the buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientLayout {
    /// (parameter, first element, elements), in the step's parameter order.
    pub params: Vec<(String, usize, usize)>,
    /// Where the tail starts.
    pub tail: usize,
    /// The whole buffer: params, tail, zeros up to a multiple of the ranks.
    pub len: usize,
}

impl GradientLayout {
    /// The layout for parameters of `sizes` (name, elements) summed over `ranks` ranks.
    pub fn new(sizes: impl IntoIterator<Item = (String, usize)>, ranks: usize) -> GradientLayout {
        let mut at = 0;
        let params = sizes
            .into_iter()
            .map(|(name, n)| {
                at += n;
                (name, at - n, n)
            })
            .collect();
        let tail = at;
        let len = (tail + Tail::ALL.len()).div_ceil(ranks.max(1)) * ranks.max(1);
        GradientLayout { params, tail, len }
    }

    /// The buffer of a rank that trains on no rows of a batch (`failed`: whose step
    /// failed) into `buf`: zeros, but for the failure flag, the layout's length.
    pub fn empty(&self, failed: bool, buf: &mut Vec<f32>) {
        buf.clear();
        buf.resize(self.len, 0.0);
        buf[self.at(Tail::Failed)] = if failed { 1.0 } else { 0.0 };
    }

    /// The index of `t` in the buffer.
    pub fn at(&self, t: Tail) -> usize {
        self.tail + t as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_a_batch_in_rank_order() {
        let order: Vec<usize> = (10..17).collect();
        let rows = shard_rows(order.len(), 3);
        assert_eq!(rows, 3);
        let parts: Vec<&[usize]> = (0..3).map(|r| shard(&order, r, rows)).collect();
        assert_eq!(parts, [&[10, 11, 12][..], &[13, 14, 15], &[16]]);
        // A partial batch smaller than the blocks leaves the last ranks nothing.
        assert_eq!(shard(&order[..2], 1, rows), &[] as &[usize]);
    }

    #[test]
    fn the_sum_adds_in_rank_order() {
        // Rounding tells orders apart: (1e8 + 1) - 1e8 is 0 in f32, 1e8 + (1 - 1e8) is 0
        // too, but (1e8 - 1e8) + 1 is 1.
        let received = [1e8f32, 1.0, -1e8, 2.0, 1.0, 3.0];
        let mut sum = [0.0; 2];
        sum_in_rank_order(&received, 3, &mut sum);
        assert_eq!(sum, [(1e8f32 + -1e8) + 1.0, 6.0]);
        assert_eq!(sum[0], 1.0);
    }

    #[test]
    fn the_layout_pads_to_a_multiple_of_the_ranks() {
        let layout = GradientLayout::new([("a".to_string(), 5), ("b".to_string(), 3)], 4);
        assert_eq!(layout.params[1], ("b".to_string(), 5, 3));
        assert_eq!(layout.at(Tail::Loss), 8);
        assert_eq!(layout.at(Tail::Failed), 14);
        assert_eq!(layout.len, 16);
    }
}
