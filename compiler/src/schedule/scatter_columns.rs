//! Serial scatter-adds split by column chunks (the pass `split_scatter_columns`, for the
//! CPU, after `zero_scatter_targets`).
//!
//! In: a scheduled [`Program`]. Out: the same program in which a scatter-add that runs
//! on one thread (its adds follow position order), whose output an earlier kernel
//! zeroed, and whose rows are at least [`MIN_CHUNKS`] chunks of [`CHUNK`] floats wide,
//! is split between threads by column chunks: every thread walks every position in
//! order but reads, computes and adds only its own chunks' columns
//! (`LoopKernel::col_chunks`). Any other is split by output rows (`by_rows`).
//! Each output element still receives its adds from one thread in position order, so
//! the result is the serial one bit for bit, on any number of threads.
//!
//! Why columns and not rows: threads that own output rows must each scan every
//! position to find theirs (measured slower, bench/README.md). Chunks are one cache
//! line (16 floats), so with rows of a multiple of 16 floats no line is shared between
//! threads, and each thread streams only its share of the per-position values.

use super::{KernelBody, LoopKernel, Program, Store};

/// Columns per chunk: one 64-byte cache line of f32.
pub const CHUNK: usize = 16;
/// Rows of fewer chunks stay serial: at 2 chunks (GAT's and gnn-nonlinear's 32-wide
/// scatters) the split measured no faster or slower, at 4 (the graph model's 64-wide
/// ones) faster (bench/README.md).
pub const MIN_CHUNKS: usize = 4;

/// Rewrites `p`'s serial, pre-zeroed scatter-adds (see the module doc).
pub fn split_scatter_columns(p: &mut Program) {
    for k in 0..p.kernels.len() {
        let kernel = &p.kernels[k];
        let split = matches!(&kernel.body, KernelBody::Loop(lk) if !kernel.parallel && splittable(p, lk));
        let by_rows = matches!(&kernel.body, KernelBody::Loop(lk) if !kernel.parallel && !split && by_rows(lk));
        let kernel = &mut p.kernels[k];
        if let (true, KernelBody::Loop(lk)) = (split, &mut kernel.body) {
            lk.col_chunks = Some(CHUNK);
            kernel.range = lk.chunks();
            kernel.parallel = true;
        }
        if by_rows {
            kernel.parallel = true;
        }
    }
}

/// A scatter-add whose output is zeroed already and that columns do not split (rows
/// of fewer than [`MIN_CHUNKS`] chunks, or more than one axis inside the position, as
/// a bag of embeddings' `[B, T, 64]` gradient): threads split it by output rows
/// (`LoopKernel::scatter_rows`), each first gathering the positions of its rows
/// without a branch per position (the CPU codegen's `owned_rows.rs`), then computing
/// only those. With a branch per position the walk cost as much as the work (measured
/// slower, bench/README.md); gathered, the text classifier's embedding gradient went
/// from 99.5 us on one thread to 33.1 us on two (its step 11% faster), gnn-nonlinear's
/// `tanh` messages summed into 32 columns from 945 to 640 us. By column chunks instead,
/// with rows of two chunks, that one ran slower than on one thread (1.2-1.3 ms on an
/// Intel Xeon, where the two threads' 64-byte lines of a row share a 128-byte prefetch
/// pair).
fn by_rows(lk: &LoopKernel) -> bool {
    lk.scatter_rows.is_some()
        && lk.zeroed
        && lk.row_blocks.is_none()
        && lk.col_chunks.is_none()
        && lk.stores.iter().all(|s| matches!(s, Store::Scatter { .. }))
}

/// A rank-2 scatter over `[positions, columns]` whose output is zeroed already, with
/// rows of whole chunks (two at least), and whose every store writes one element per
/// column (no reduction, nothing a thread would share).
fn splittable(p: &Program, lk: &LoopKernel) -> bool {
    let [_, columns] = lk.domain[..] else { return false };
    lk.scatter_rows.is_some()
        && lk.zeroed
        && lk.row_blocks.is_none()
        && p.dynamic_slot(columns).is_none()
        && columns >= MIN_CHUNKS * CHUNK
        && columns % CHUNK == 0
        && lk.stores.iter().all(|s| match s {
            Store::Scatter { at, row_len, .. } => at.coef[1] == 1 && *row_len as usize == columns,
            Store::Write { at, .. } => at.coef[1] == 1 && at.coef[0] % CHUNK as i64 == 0,
            Store::Reduce { .. } => false,
        })
}
