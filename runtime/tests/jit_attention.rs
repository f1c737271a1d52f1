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
use mpc_compiler::schedule::KernelBody;

/// How many fused attention kernels `g`'s CPU program has.
fn fused(g: &Graph) -> usize {
    pipeline::schedule_cpu(g)
        .kernels
        .iter()
        .filter(|k| matches!(k.body, KernelBody::Attention(_)))
        .count()
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
        assert_eq!(fused(&eval), 1, "{name}: the evaluation step's one attention is fused");
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
    let keys_bias = f(&mut b, "keys_bias", &[bsz, tk]);
    let pairs_bias = f(&mut b, "pairs_bias", &[tq, tk]);
    let k = b.transpose(kt, &[0, 2, 1, 3]);
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
    let o = b.reduce_sum(pv, &[3]);
    b.output("o", o);
    b.finish()
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
