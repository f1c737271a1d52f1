//! Attention's per-head products are scheduled as batched matmuls: the transformer
//! example's optimized training step (as `mpc compile --emit kernels` prints it) runs
//! the forward `q k^T` and `weights v` and their four gradient products as batched GEMM
//! calls over (batch, head), with no `[B, H, T, T, dh]` loop left; the evaluation step
//! has the forward two.

use mpc_compiler::pipeline::{compile, optimize, schedule};
use mpc_compiler::schedule::{print_program, KernelBody, Program};

fn source() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/transformer.mp");
    std::fs::read_to_string(path).unwrap()
}

/// (batched matmuls as (batches, m, k, n), loops of rank 5).
fn products(p: &Program) -> (Vec<(usize, usize, usize, usize)>, usize) {
    let mut mms = Vec::new();
    let mut loops5 = 0;
    for k in &p.kernels {
        match &k.body {
            KernelBody::MatMul(m) if !m.batch.is_empty() => mms.push((m.batches(), m.m, m.k, m.n)),
            KernelBody::Loop(l) if l.domain.len() == 5 && l.domain[2] == l.domain[3] => loops5 += 1,
            _ => {}
        }
    }
    (mms, loops5)
}

#[test]
fn transformer_attention_products_are_batched_matmuls() {
    let c = compile(&source(), &[]).unwrap_or_else(|d| panic!("{d:?}"));
    let (b, t, heads) = (c.dims["B"], c.dims["L"], 4);
    let dh = 64 / heads;
    for (graph, want) in [(&c.train_step, 6), (&c.eval, 2)] {
        let (opt, _) = optimize(graph).unwrap();
        let p = schedule(&opt);
        let (mms, loops5) = products(&p);
        let text = print_program(&p);
        assert_eq!(mms.len(), want, "{}: {mms:?}\n{text}", graph.name);
        assert_eq!(loops5, 0, "{}: a per-head product is still a loop\n{text}", graph.name);
        for (batches, m, k, n) in mms {
            assert_eq!(batches, b * heads);
            // q k^T is [T, dh] x [dh, T]; weights v and the gradients mix T and dh.
            for d in [m, k, n] {
                assert!(d == t || d == dh, "{m}x{k}x{n}");
            }
        }
        assert_eq!(text.matches("[batch=").count(), want, "the printer shows each one");
    }
}
