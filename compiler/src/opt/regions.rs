//! Regions: equality saturation of a big graph one bounded piece at a time.
//!
//! In: a valid IR graph larger than [`REGION_NODES`] and the [`Limits`] one region gets.
//! Out: the graph with every region replaced by its optimized version, and each region's
//! [`Stats`] (the caller combines them and compares the whole graph's costs).
//!
//! Why: saturating a whole deep model at once costs more than linear time and memory.
//! egg checks its node limit between rules, so one iteration over a big e-graph already
//! costs the size of the graph times the rules, and DAG extraction
//! ([`super::extract`]) carries, for each e-class, the set of classes its best term
//! needs: on a chain that set is as long as the chain, so extraction is quadratic
//! (optimizing a 1,000-layer chain's two steps took 15-23 s, with 7 GB at the peak). Cutting the graph into regions of at most
//! [`REGION_NODES`] nodes bounds both per region, so the whole pass is linear in the
//! graph's size, and every region gets the same deterministic node and iteration limits
//! as a small model gets for its whole graph.
//!
//! A region is a contiguous run of the graph's nodes in their (topological) order, so
//! the producers of anything it reads are in earlier regions. Inside the region those
//! values become arguments (`region:%i`), constants are copied in (they are free and
//! constant folding needs to see them), and every value a later region or the graph's
//! outputs read becomes an output. Each region is optimized as a graph of its own (never
//! costlier than itself, see [`super::optimize`]), and the results are stitched back in
//! order through the hash-consing builder (regions are optimized a few at a time on
//! their own threads; the order of stitching, hence the result, does not depend on how
//! many). What is lost: rewrites whose left side spans a region boundary. The caller
//! keeps the input if the stitched graph is not cheaper.

use super::{Limits, Stats};
use crate::ir::{ArgKind, Builder, Graph, Op, ValueId};
use std::collections::HashMap;

/// The most non-argument nodes one region holds; a graph of at most this many
/// non-argument nodes is optimized whole (every example model is, so their results do not depend on regions).
pub const REGION_NODES: usize = 1024;

/// A region of the input as a graph of its own.
struct Region {
    graph: Graph,
    /// Argument names of the values produced by earlier regions, and those values.
    inputs: HashMap<String, ValueId>,
    /// The input's values that the region's outputs stand for, in output order.
    outputs: Vec<ValueId>,
}

/// The name of the region argument that stands for the input's value `v`.
fn input_name(v: usize) -> String {
    format!("region:%{v}")
}

/// Cuts `g` into regions of at most `size` non-argument nodes each.
fn split(g: &Graph, size: usize) -> Vec<Region> {
    let n = g.nodes.len();
    // The last node that reads each value (or `n` when a graph output does).
    let mut last_use = vec![0usize; n];
    for (i, node) in g.nodes.iter().enumerate() {
        for o in &node.operands {
            last_use[o.index()] = last_use[o.index()].max(i);
        }
    }
    for (_, v) in &g.outputs {
        last_use[v.index()] = n;
    }
    let body: Vec<usize> = (0..n).filter(|&i| !matches!(g.nodes[i].op, Op::Arg { .. })).collect();
    body.chunks(size.max(1))
        .map(|chunk| {
            let last = *chunk.last().expect("chunks are not empty");
            let mut b = Builder::new(&g.name);
            let mut inputs = HashMap::new();
            // The region's value of each input value it has seen so far.
            let mut here: HashMap<usize, ValueId> = HashMap::new();
            for &i in chunk {
                let node = &g.nodes[i];
                let mut xs = Vec::with_capacity(node.operands.len());
                for o in &node.operands {
                    let o = o.index();
                    let v = match here.get(&o) {
                        Some(&v) => v,
                        None => {
                            let producer = &g.nodes[o];
                            let v = match &producer.op {
                                Op::Arg { .. } | Op::Const { .. } => b.push(producer.op.clone(), &[]),
                                _ => {
                                    let name = input_name(o);
                                    let v = b.arg(ArgKind::Input, name.clone(), producer.ty.clone());
                                    inputs.insert(name, ValueId(o as u32));
                                    v
                                }
                            };
                            here.insert(o, v);
                            v
                        }
                    };
                    xs.push(v);
                }
                here.insert(i, b.push(node.op.clone(), &xs));
            }
            let mut outputs = Vec::new();
            for &i in chunk {
                if last_use[i] > last {
                    b.output(format!("%{i}"), here[&i]);
                    outputs.push(ValueId(i as u32));
                }
            }
            Region {
                graph: b.finish(),
                inputs,
                outputs,
            }
        })
        .collect()
}

/// Optimizes `g` in regions of `size` nodes with `optimize_region` (the whole-graph
/// optimizer), up to `threads` regions at a time; returns the stitched graph (dead code
/// included: the caller removes it) and each region's statistics. Regions are stitched
/// in order whatever the thread count, so the result does not depend on it.
pub fn optimize_by_regions(
    g: &Graph,
    size: usize,
    limits: &Limits,
    threads: usize,
    optimize_region: impl Fn(&Graph, &Limits) -> Result<(Graph, Stats), String> + Sync,
) -> Result<(Graph, Vec<Stats>), String> {
    let mut out = Builder::new(&g.name);
    // The stitched graph's value of each input value, arguments first and in their
    // original order so that the signature does not change.
    let mut value: Vec<Option<ValueId>> = vec![None; g.nodes.len()];
    let mut args: HashMap<&str, ValueId> = HashMap::new();
    for (i, node) in g.nodes.iter().enumerate() {
        if let Op::Arg { name, .. } = &node.op {
            let v = out.push(node.op.clone(), &[]);
            value[i] = Some(v);
            args.insert(name, v);
        }
    }
    let regions = split(g, size);
    let mut stats = Vec::with_capacity(regions.len());
    // A batch of regions is optimized at once (one e-graph per thread), then stitched.
    for batch in regions.chunks(threads.max(1)) {
        let optimize = &optimize_region;
        let results: Vec<Result<(Graph, Stats), String>> = if batch.len() == 1 {
            vec![optimize(&batch[0].graph, limits)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|r| scope.spawn(move || optimize(&r.graph, limits)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("an optimizer thread panicked"))
                    .collect()
            })
        };
        for (region, result) in batch.iter().zip(results) {
            let (optimized, s) = result?;
            stats.push(s);
            stitch(&mut out, &mut value, &args, region, &optimized);
        }
    }
    for (name, v) in &g.outputs {
        let v = value[v.index()].expect("every output is stitched");
        out.output(name.clone(), v);
    }
    Ok((out.finish(), stats))
}

/// Appends `optimized` (the optimized graph of `region`) to `out`, reading the values
/// of earlier regions, and records the values of the region's outputs.
fn stitch(
    out: &mut Builder,
    value: &mut [Option<ValueId>],
    args: &HashMap<&str, ValueId>,
    region: &Region,
    optimized: &Graph,
) {
    let mut local: Vec<ValueId> = Vec::with_capacity(optimized.nodes.len());
    for node in &optimized.nodes {
        let v = match &node.op {
            Op::Arg { name, .. } => match region.inputs.get(name) {
                Some(v) => value[v.index()].expect("regions come in order"),
                None => args[name.as_str()],
            },
            op => {
                let xs: Vec<ValueId> = node.operands.iter().map(|o| local[o.index()]).collect();
                out.push(op.clone(), &xs)
            }
        };
        local.push(v);
    }
    for ((name, v), original) in optimized.outputs.iter().zip(&region.outputs) {
        debug_assert_eq!(*name, format!("%{}", original.index()));
        value[original.index()] = Some(local[v.index()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Type;

    /// x -> exp -> neg -> exp -> neg ..., cut into regions of 2 nodes.
    #[test]
    fn regions_read_earlier_values_as_arguments_and_stitch_back() {
        let mut b = Builder::new("chain");
        let x = b.arg(ArgKind::Input, "x", Type::f32([4]));
        let mut v = x;
        for _ in 0..3 {
            v = b.exp(v);
            v = b.neg(v);
        }
        b.output("y", v);
        let g = b.finish();
        let regions = split(&g, 2);
        assert_eq!(regions.len(), 3);
        assert_eq!(regions[0].inputs.len(), 0);
        assert_eq!(regions[1].inputs.len(), 1);
        assert!(regions.iter().all(|r| r.outputs.len() == 1));
        let keep = |g: &Graph, _: &Limits| -> Result<(Graph, Stats), String> {
            let (_, s) = super::super::optimize(g, &Limits::deterministic())?;
            Ok((g.clone(), s))
        };
        for threads in [1, 2] {
            let (stitched, stats) = optimize_by_regions(&g, 2, &Limits::deterministic(), threads, keep).unwrap();
            assert_eq!(stats.len(), 3);
            assert_eq!(stitched.validate(), Ok(()));
            assert_eq!(stitched.nodes.len(), g.nodes.len());
        }
    }
}
