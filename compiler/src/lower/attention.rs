//! Lowering self-attention: `self_attention(x, heads: H[, causal: true])` as IR
//! primitives, the computation of `nn.MultiheadAttention(D, H, batch_first=True)` with
//! query = key = value = x (and with a causal mask, PyTorch's `is_causal`).
//!
//! In: `x: [B, T, D]` and the four parameters. Out: `[B, T, D]`. A causal mask needs
//! the positions `0..T-1`: they come from the step input `@positions` that the runtime
//! fills (the IR has no index-generating op), compared as `key > query`.

use super::Lowering;
use crate::ir::ValueId;

/// Added (negated) to the scores of masked keys: exp underflows to exactly 0, like
/// PyTorch's -inf, without an infinity whose gradient would be NaN.
const MASKED: f64 = 1e30;

impl Lowering<'_> {
    /// Multi-head self-attention of `x: [B, T, D]` as `nn.MultiheadAttention` computes
    /// it: `q, k, v = x W_in + b_in` split in three and in `heads` heads of `D / heads`,
    /// `softmax(q k^T / sqrt(D / heads)) v` per head, heads joined, then `W_out`, `b_out`.
    /// The per-head products are broadcasts multiplied and summed over one axis, which
    /// the scheduler runs as batched matmuls over (batch, head) (`schedule/fuse/bmm.rs`;
    /// small heads stay fused loops; no `[B, H, T, T, D/H]` buffer either way).
    /// `causal`: the scores of keys after the query are pushed to -1e30 before the
    /// softmax; so are
    /// those of padded keys (`padding`, `[B, T]`, 1.0 at a pad). A query whose keys are
    /// all masked weighs them equally (PyTorch gives NaN there).
    pub(super) fn self_attention(
        &mut self,
        x: ValueId,
        heads: usize,
        causal: bool,
        padding: Option<ValueId>,
        [w_in, b_in, w_out, b_out]: [ValueId; 4],
    ) -> Result<ValueId, String> {
        let shape = self.b.shape(x);
        let (batch, t, d) = (shape[0], shape[1], shape[2]);
        if heads == 0 || d % heads != 0 {
            return Err(format!(
                "self_attention: {heads} heads do not divide the model width {d}"
            ));
        }
        let dh = d / heads;
        let qkv = self.linear(x, w_in, Some(b_in)); // [B, T, 3D]
        let b = &mut self.b;
        let qkv = b.reshape(qkv, &[batch, t, 3, heads, dh]);
        // q, k, v: [B, H, T, dh]
        let mut part = |i: usize| {
            let p = b.slice(qkv, 2, i, i + 1);
            let p = b.reshape(p, &[batch, t, heads, dh]);
            b.transpose(p, &[0, 2, 1, 3])
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let pairs = [batch, heads, t, t, dh];
        let qb = b.broadcast(q, &pairs, &[0, 1, 2, 4]);
        let kb = b.broadcast(k, &pairs, &[0, 1, 3, 4]);
        let qk = b.mul(qb, kb);
        let scores = b.reduce_sum(qk, &[4]);
        let mut scores = b.scale(scores, 1.0 / (dh as f64).sqrt()); // [B, H, T(query), T(key)]
        if causal {
            let future = self.future_keys(t)?;
            let b = &mut self.b;
            let penalty = b.scale(future, -MASKED);
            let penalty = b.broadcast(penalty, &[batch, heads, t, t], &[2, 3]);
            scores = b.add(scores, penalty);
        }
        if let Some(padding) = padding {
            // [B, T] over the keys: a padded key gets no weight from any query.
            let b = &mut self.b;
            let penalty = b.scale(padding, -MASKED);
            let penalty = b.broadcast(penalty, &[batch, heads, t, t], &[0, 3]);
            scores = b.add(scores, penalty);
        }
        let weights = self.softmax(scores, 3, false);
        let b = &mut self.b;
        let wb = b.broadcast(weights, &pairs, &[0, 1, 2, 3]);
        let vb = b.broadcast(v, &pairs, &[0, 1, 3, 4]);
        let wv = b.mul(wb, vb);
        let heads_out = b.reduce_sum(wv, &[3]); // [B, H, T, dh]
        let joined = b.transpose(heads_out, &[0, 2, 1, 3]);
        let joined = b.reshape(joined, &[batch, t, d]);
        Ok(self.linear(joined, w_out, Some(b_out)))
    }

    /// `[T, T]`: 1.0 where the key (axis 1) comes after the query (axis 0), else 0.0.
    fn future_keys(&mut self, t: usize) -> Result<ValueId, String> {
        let positions = self.positions(t, "a causal self_attention")?;
        let b = &mut self.b;
        let positions = b.convert(positions);
        let query = b.broadcast(positions, &[t, t], &[0]);
        let key = b.broadcast(positions, &[t, t], &[1]);
        Ok(b.greater(key, query))
    }
}
