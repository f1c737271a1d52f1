//! Fused attention kernels (`schedule/attention.rs`, the CPU's `fuse_attention`): the
//! chain scores -> transform -> softmax -> weighted sum becomes one kernel where nothing
//! else reads its intermediates, and that kernel agrees with the interpreter and gives
//! the same bits on 1 and 2 threads: on the examples' evaluation steps (a padding mask;
//! a causal mask and a padding mask) and on hand-built attention with query blocks of
//! two sizes, depths and widths off the vector width, a key operand read transposed,
//! and two additive biases.

mod common;

use common::jit::*;
use mpc_compiler::ir::{ArgKind, Builder, Graph, Type, ValueId};
use mpc_compiler::pipeline;
use mpc_compiler::schedule::attention::Attention;
use mpc_compiler::schedule::KernelBody;

/// How many fused attention kernels `g`'s CPU program has.
fn fused(g: &Graph) -> usize {
    attentions(g).len()
}

/// The fused attention kernels of `g`'s CPU program, and whether each one's output is
/// read by a matmul directly (the copy that joined the heads folded into it).
fn attentions(g: &Graph) -> Vec<(Attention, bool)> {
    let p = pipeline::schedule_cpu(g);
    let read_by_matmul = |buf| {
        p.kernels
            .iter()
            .any(|k| matches!(&k.body, KernelBody::MatMul(m) if m.a.buf == buf || m.b.buf == buf))
    };
    p.kernels
        .iter()
        .filter_map(|k| match &k.body {
            KernelBody::Attention(a) => Some((a.clone(), read_by_matmul(a.out.buf))),
            _ => None,
        })
        .collect()
}

fn example(name: &str) -> pipeline::Compiled {
    let path = format!("{}/../examples/{name}.mp", env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(&path).unwrap();
    pipeline::compile(&src, &[]).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn assert_same_bits_on_1_and_2_threads(g: &Graph, args: &mpc_compiler::interp::Args<f32>) {
    let one = run_jit(g, args, 1).unwrap();
    let two = run_jit(g, args, 2).unwrap();
    for ((name, a), (_, b)) in one.iter().zip(&two) {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name} differs between 1 and 2 threads");
    }
}

#[test]
fn the_examples_evaluation_steps_run_fused_attention_that_matches_the_interpreter() {
    // (example, bound of each integer input, tolerance): a padding mask; causal and
    // padding. Weights uniform in [-1, 1) make char_lm's logits large: the unfused
    // program (`MPC_UNFUSED_ATTENTION=1`) differs from the interpreter by 2.8e-4 too.
    type Bound = fn(&str) -> u64;
    let cases: [(&str, Bound, f32); 2] = [
        (
            "transformer",
            |name| match name {
                "chars" => 52,
                "bigrams" => 2704,
                _ => 5,
            },
            1e-4,
        ),
        ("char_lm", |_| 52, 1e-3),
    ];
    for (name, bound, rtol) in cases {
        let compiled = example(name);
        let (eval, _) = pipeline::optimize(&compiled.eval.graph).unwrap();
        let [(att, joined)] = &attentions(&eval)[..] else {
            panic!("{name}: the evaluation step's one attention is fused")
        };
        // The head split with its bias add and the join of the heads are folded in: the
        // kernel reads the in-projection's output plus its bias and writes what the
        // out-projection reads.
        let plus = [&att.q, &att.k, &att.v].map(|x| x.plus.is_some());
        assert_eq!(plus, [true; 3], "{name}: q, k and v read with their bias added");
        assert!(joined, "{name}: the out-projection reads the kernel's output");
        let args = random_args(&eval, bound, 11);
        assert_matches_interp(&eval, &args, rtol, name);
        assert_same_bits_on_1_and_2_threads(&eval, &args);
        // Training keeps the softmax's weights for the gradient: nothing to fuse.
        let (train, _) = pipeline::optimize(&compiled.train_step.graph).unwrap();
        assert_eq!(
            fused(&train),
            0,
            "{name}: the training step keeps its attention kernels"
        );
    }
}

fn f(b: &mut Builder, name: &str, shape: &[usize]) -> ValueId {
    b.arg(ArgKind::Param, name, Type::f32(shape))
}

/// `softmax(q k^T * scale + bias_keys[b, k] + bias_pairs[q, k]) v` per (batch, head),
/// with the key operand stored `[B, Tk, H, D]` and an output `[B, H, Tq, W]`.
fn attention(bsz: usize, heads: usize, tq: usize, tk: usize, depth: usize, width: usize) -> Graph {
    let mut b = Builder::new("attention");
    let q = f(&mut b, "q", &[bsz, heads, tq, depth]);
    let kt = f(&mut b, "kt", &[bsz, tk, heads, depth]);
    let v = f(&mut b, "v", &[bsz, heads, tk, width]);
    let k = b.transpose(kt, &[0, 2, 1, 3]);
    let o = attention_of(&mut b, q, k, v);
    b.output("o", o);
    b.finish()
}

/// The attention of `q: [B, H, Tq, D]`, `k: [B, H, Tk, D]`, `v: [B, H, Tk, W]` with
/// two additive biases (new parameters): `[B, H, Tq, W]`.
fn attention_of(b: &mut Builder, q: ValueId, k: ValueId, v: ValueId) -> ValueId {
    let (qs, vs) = (b.shape(q), b.shape(v));
    let (bsz, heads, tq, depth) = (qs[0], qs[1], qs[2], qs[3]);
    let (tk, width) = (vs[2], vs[3]);
    let keys_bias = f(b, "keys_bias", &[bsz, tk]);
    let pairs_bias = f(b, "pairs_bias", &[tq, tk]);
    let dom = [bsz, heads, tq, tk, depth];
    let qb = b.broadcast(q, &dom, &[0, 1, 2, 4]);
    let kb = b.broadcast(k, &dom, &[0, 1, 3, 4]);
    let prod = b.mul(qb, kb);
    let s = b.reduce_sum(prod, &[4]);
    let s = b.scale(s, 0.3);
    let scores = [bsz, heads, tq, tk];
    let kb = b.broadcast(keys_bias, &scores, &[0, 3]);
    let pb = b.broadcast(pairs_bias, &scores, &[2, 3]);
    let s = b.add(s, kb);
    let s = b.add(s, pb);
    let m = b.reduce_max(s, &[3]);
    let m = b.broadcast_reduced(m, &scores, &[3]);
    let shifted = b.sub(s, m);
    let e = b.exp(shifted);
    let z = b.reduce_sum(e, &[3]);
    let z = b.broadcast_reduced(z, &scores, &[3]);
    let p = b.div(e, z);
    let dom2 = [bsz, heads, tq, tk, width];
    let pb = b.broadcast(p, &dom2, &[0, 1, 2, 3]);
    let vb = b.broadcast(v, &dom2, &[0, 1, 3, 4]);
    let pv = b.mul(pb, vb);
    b.reduce_sum(pv, &[3])
}

/// Attention as `self_attention` lowers it: q, k and v sliced from one projection
/// `x W` reshaped `[B, T, 3, H, D]` with a bias added (`bias`) or not, the heads joined
/// `[B, T, H D]` into a product.
fn projected_attention(bsz: usize, t: usize, heads: usize, depth: usize, bias: bool) -> Graph {
    let mut b = Builder::new("projected");
    let x = f(&mut b, "x", &[bsz * t, 6]);
    let w_in = f(&mut b, "w_in", &[6, 3 * heads * depth]);
    let w = f(&mut b, "w", &[heads * depth, 7]);
    let mut x = b.matmul(x, w_in);
    if bias {
        let bias = f(&mut b, "bias", &[3 * heads * depth]);
        let bias = b.broadcast(bias, &[bsz * t, 3 * heads * depth], &[1]);
        x = b.add(x, bias);
    }
    let x = b.reshape(x, &[bsz, t, 3, heads, depth]);
    let mut part = |i: usize| {
        let p = b.slice(x, 2, i, i + 1);
        let p = b.reshape(p, &[bsz, t, heads, depth]);
        b.transpose(p, &[0, 2, 1, 3])
    };
    let (q, k, v) = (part(0), part(1), part(2));
    let o = attention_of(&mut b, q, k, v);
    let joined = b.transpose(o, &[0, 2, 1, 3]);
    let joined = b.reshape(joined, &[bsz * t, heads * depth]);
    let y = b.matmul(joined, w);
    b.output("y", y);
    b.finish()
}

#[test]
fn a_head_split_with_its_bias_and_the_heads_join_fold_into_the_kernel() {
    // 37 positions (blocks of 16, 16 and 5 lanes), 3 heads of depth 5; with a bias the
    // operands read the projection plus the bias, without one the projection alone.
    for bias in [true, false] {
        let g = projected_attention(2, 37, 3, 5, bias);
        let (g, _) = pipeline::optimize(&g).unwrap();
        let program = mpc_compiler::schedule::print_program(&pipeline::schedule_cpu(&g));
        let [(att, joined)] = &attentions(&g)[..] else {
            panic!("one fused attention: {program}")
        };
        assert!(
            [&att.q, &att.k, &att.v]
                .iter()
                .all(|x| x.buf == att.q.buf && x.plus.is_some() == bias),
            "q, k and v read from the projection: {program}"
        );
        assert!(joined, "{program}");
        let args = random_args(&g, |_| 1, 21);
        assert_matches_interp(&g, &args, 1e-4, "projected attention");
        assert_same_bits_on_1_and_2_threads(&g, &args);
    }
}

#[test]
fn hand_built_attention_of_odd_shapes_is_fused_and_matches_the_interpreter() {
    // 70 queries: a block of 64 lanes and one of 6; 300 keys: blocks of 54 and 16.
    // A product too small for a GEMM call stays a loop: no chain to fuse, same results.
    let cases = [
        (70, 37, 5, 7, 1),
        (70, 300, 3, 9, 1),
        (3, 40, 8, 33, 1),
        (2, 2, 2, 2, 0),
    ];
    for (i, &(tq, tk, depth, width, kernels)) in cases.iter().enumerate() {
        let g = attention(3, 2, tq, tk, depth, width);
        let (g, _) = pipeline::optimize(&g).unwrap();
        let program = mpc_compiler::schedule::print_program(&pipeline::schedule_cpu(&g));
        assert_eq!(fused(&g), kernels, "case {i}: {program}");
        let args = random_args(&g, |_| 1, 7 + i as u64);
        // Each score and output is one fma chain (the interpreter rounds each product).
        assert_matches_interp(&g, &args, 1e-4, &format!("case {i}"));
        assert_same_bits_on_1_and_2_threads(&g, &args);
    }
}
