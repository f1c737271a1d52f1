//! Lowering message passing along a graph's edges: the edge list (with a self-loop per
//! node when the graph declares `self_loops`), and the aggregations of per-edge
//! messages at their destination nodes (sum, mean, max, and the softmax aggregation of
//! graph attention).
//!
//! In: the graph's edge-list input `i32[2, E]` and messages `[E', D]`, where `E'` is `E`
//! or, with self-loops, `E + N` (edge `E + i` runs from node `i` to itself). Out: node
//! values `[N, D]`. Every aggregation is a scatter in edge order, so results do not
//! depend on threads; a node that no edge reaches gets 0.

use super::Lowering;
use crate::check::Reduction;
use crate::ir::{ArgKind, Type, ValueId};
use crate::signature::graph_of;
use crate::specialize::concrete;

impl Lowering<'_> {
    /// Graph `g`'s node count.
    fn nodes(&self, g: usize) -> Result<usize, String> {
        Ok(concrete(std::slice::from_ref(&self.graphs[g].nodes), self.dims)?[0])
    }

    /// The sources and destinations of graph `g`'s edges, as `i32[E']`: row 0 and row 1
    /// of its edge list, followed by `0..N` on both sides when it has self-loops.
    pub(super) fn edge_ends(&mut self, g: usize) -> Result<(ValueId, ValueId), String> {
        let edges = self.args[&self.graphs[g].edges_input];
        let e = self.b.shape(edges)[1];
        let b = &mut self.b;
        let src = b.slice(edges, 0, 0, 1);
        let dst = b.slice(edges, 0, 1, 2);
        let (src, dst) = (b.reshape(src, &[e]), b.reshape(dst, &[e]));
        if !self.graphs[g].self_loops {
            return Ok((src, dst));
        }
        let n = self.nodes(g)?;
        let name = self.graphs[g].name.clone();
        let loops = self.positions(n, &format!("graph '{name}' with self_loops"))?;
        let b = &mut self.b;
        Ok((b.concat(&[src, loops], 0), b.concat(&[dst, loops], 0)))
    }

    /// Messages `[E', D]` aggregated at their destinations: `[N, D]`, 0 where no edge arrives.
    pub(super) fn aggregate(&mut self, g: usize, messages: ValueId, op: Reduction) -> Result<ValueId, String> {
        let n = self.nodes(g)?;
        let (_, dst) = self.edge_ends(g)?;
        self.segment_reduce(messages, dst, n, op)
    }

    /// `readout(g, x, op)`: node vectors `[N, D]` of a batch of graphs pooled per graph,
    /// `[G, D]`. Node `i` belongs to graph `g.graph_of[i]`, an input the runtime fills
    /// with each batch; padding nodes belong to graph `G`, an extra row that is cut off.
    pub(super) fn readout(&mut self, g: usize, x: ValueId, op: Reduction) -> Result<ValueId, String> {
        let info = &self.graphs[g];
        let Some(graphs) = &info.graphs else {
            return Err(format!("readout: graph '{}' is not a batch of graphs", info.name));
        };
        let graphs = concrete(std::slice::from_ref(graphs), self.dims)?[0];
        let name = graph_of(&info.name);
        let n = self.nodes(g)?;
        let b = &mut self.b;
        let of = match b.graph.arg(ArgKind::Input, &name) {
            Some(v) => v,
            None => b.arg(ArgKind::Input, &name, Type::i32([n])),
        };
        let pooled = self.segment_reduce(x, of, graphs + 1, op)?;
        Ok(self.b.slice(pooled, 0, 0, graphs))
    }

    /// Rows `values: [P, D]` reduced into `rows` rows by `index: i32[P]` (a scatter in
    /// position order): `[rows, D]`, 0 in a row that no position reaches.
    fn segment_reduce(
        &mut self,
        values: ValueId,
        index: ValueId,
        rows: usize,
        op: Reduction,
    ) -> Result<ValueId, String> {
        let (n, dst) = (rows, index);
        let [e, d] = self.b.shape(values)[..] else {
            return Err("messages must be [E, D]".into());
        };
        let messages = values;
        let b = &mut self.b;
        let ones = b.constant(1.0, &[e]);
        let in_degree = b.scatter_add(ones, dst, n);
        Ok(match op {
            Reduction::Sum => b.scatter_add(messages, dst, n),
            Reduction::Mean => {
                let sum = b.scatter_add(messages, dst, n);
                let one = b.constant(1.0, &[n]);
                let count = b.max(in_degree, one);
                let count = b.broadcast(count, &[n, d], &[0]);
                b.div(sum, count)
            }
            // Empty rows are -inf in scatter_max: floor them to a finite number, then zero them.
            Reduction::Max => {
                let max = b.scatter_max(messages, dst, n);
                let floor = b.constant(-3.0e38, &[n, d]);
                let finite = b.max(max, floor);
                let zero = b.constant(0.0, &[n]);
                let has_edges = b.greater(in_degree, zero);
                let has_edges = b.broadcast(has_edges, &[n, d], &[0]);
                b.mul(finite, has_edges)
            }
        })
    }

    /// Graph attention's aggregation: node `i` gets `sum_j alpha_ji m_ji` over its
    /// incoming edges, `alpha = softmax` of the edges' scores over those edges, per head
    /// (scores `[E', H]`; head `h` weighs columns `h*D/H..(h+1)*D/H` of the messages
    /// `[E', D]`). The softmax is shifted by each destination's max score, so no exp
    /// overflows; the shift cancels in the weights, so it is a constant to autodiff.
    pub(super) fn softmax_aggregate(
        &mut self,
        g: usize,
        messages: ValueId,
        scores: ValueId,
    ) -> Result<ValueId, String> {
        let n = self.nodes(g)?;
        let (_, dst) = self.edge_ends(g)?;
        let (m_shape, s_shape) = (self.b.shape(messages), self.b.shape(scores));
        let (&[e, d], &[_, heads]) = (&m_shape[..], &s_shape[..]) else {
            return Err("messages must be [E, D] and scores [E, H]".into());
        };
        if heads == 0 || d % heads != 0 {
            return Err(format!("{heads} heads of scores cannot weigh messages of width {d}"));
        }
        let b = &mut self.b;
        // A row no edge reaches stays -inf here, but no edge gathers it back. The shift
        // cancels in alpha, so it takes no gradient (as in PyG and JAX): no argmax.
        let max = b.scatter_max(scores, dst, n);
        let max = b.stop_gradient(max);
        let shift = b.gather(max, dst);
        let shifted = b.sub(scores, shift);
        let weights = b.exp(shifted);
        let total = b.scatter_add(weights, dst, n);
        let total = b.gather(total, dst);
        let alpha = b.div(weights, total);
        let per_head = b.reshape(messages, &[e, heads, d / heads]);
        let alpha = b.broadcast(alpha, &[e, heads, d / heads], &[0, 1]);
        let weighted = b.mul(per_head, alpha);
        let weighted = b.reshape(weighted, &[e, d]);
        Ok(b.scatter_add(weighted, dst, n))
    }
}
