//! Batched matmuls (`schedule/fuse/bmm.rs`): sums of products of two views that the
//! scheduler turns into GEMM calls instead of loops, on the JIT against the
//! interpreter, and bit-identical on 1 and 2 threads. Shapes are chosen off the
//! f32x4 width and the 64-row block (70 rows: a full block and a partial one), with
//! transposed operands, two batch axes, a transposed output and a shared operand;
//! and the cases the cost rule or the pattern leave as loops.

mod common;

use common::jit::*;
use mpc_compiler::ir::{ArgKind, Builder, Graph, Type, ValueId};
use mpc_compiler::schedule::{schedule, KernelBody, MatMul};
use mpc_runtime::backend::jit::splits;

fn f(b: &mut Builder, name: &str, shape: &[usize]) -> ValueId {
    b.arg(ArgKind::Param, name, Type::f32(shape))
}

/// The batched matmul kernels of `g`'s schedule, and whether any loop has rank 5.
fn batched(g: &Graph) -> (Vec<MatMul>, bool) {
    let p = schedule(g);
    let mms = p
        .kernels
        .iter()
        .filter_map(|k| match &k.body {
            KernelBody::MatMul(m) if !m.batch.is_empty() => Some(m.clone()),
            _ => None,
        })
        .collect();
    let loop5 = p
        .kernels
        .iter()
        .any(|k| matches!(&k.body, KernelBody::Loop(l) if l.domain.len() == 5));
    (mms, loop5)
}

const B: usize = 3;
const H: usize = 5;
const M: usize = 70;
const N: usize = 37;
const K: usize = 29;

/// Attention-shaped products: `s[b,h,m,n] = sum_k q[b,h,m,k] kt[b,n,h,k]` (the key
/// operand stored `[B, N, H, K]` and transposed in: a column-strided view), and
/// `o[b,h,k,m]`-ordered output of `sum_n s'[b,h,m,n] v[b,h,n,k]` written through a
/// transpose (the output's N stride is the row stride).
fn attention_like() -> Graph {
    let mut b = Builder::new("bmm");
    let q = f(&mut b, "q", &[B, H, M, K]);
    let kt = f(&mut b, "kt", &[B, N, H, K]);
    let k = b.transpose(kt, &[0, 2, 1, 3]); // [B, H, N, K]
    let dom = [B, H, M, N, K];
    let qb = b.broadcast(q, &dom, &[0, 1, 2, 4]);
    let kb = b.broadcast(k, &dom, &[0, 1, 3, 4]);
    let prod = b.mul(qb, kb);
    let s = b.reduce_sum(prod, &[4]); // [B, H, M, N]
    let w = f(&mut b, "w", &[B, H, M, N]);
    let v = f(&mut b, "v", &[B, H, N, K]);
    // Sum over N with the domain [B, H, K, M, N]: the output [B, H, K, M] is the
    // product's transpose, stored with M contiguous.
    let dom2 = [B, H, K, M, N];
    let wb = b.broadcast(w, &dom2, &[0, 1, 3, 4]);
    let vt = b.transpose(v, &[0, 1, 3, 2]); // [B, H, K, N]
    let vb = b.broadcast(vt, &dom2, &[0, 1, 2, 4]);
    let prod2 = b.mul(vb, wb);
    let o = b.reduce_sum(prod2, &[4]); // [B, H, K, M]
    b.output("s", s);
    b.output("o", o);
    b.finish()
}

#[test]
fn attention_products_are_batched_matmuls_that_match_the_interpreter() {
    let g = attention_like();
    let (mms, loop5) = batched(&g);
    assert!(!loop5, "no product is left as a 5-D loop");
    assert_eq!(mms.len(), 2, "{mms:#?}");
    for mm in &mms {
        assert_eq!(mm.batches(), B * H);
        assert_eq!(
            (mm.out.cs, mm.out.rs),
            (1, mm.n as i64),
            "rows of the output are contiguous"
        );
    }
    // The key stored [B, N, H, K]: its batch and head strides do not nest, so two batch
    // axes; w and v are dense [B, H, ..]: batch and heads merge into one axis.
    let mut axes: Vec<usize> = mms.iter().map(|m| m.batch.len()).collect();
    axes.sort();
    assert_eq!(axes, [1, 2], "{mms:#?}");
    assert!(
        mms.iter().any(|m| m.a.transposed() || m.b.transposed()),
        "the transposed key is a strided view"
    );
    // The GEMM sums in its own order (blocked, vectorized): 1e-4 as for plain matmuls.
    let args = random_args(&g, |_| 1, 5);
    assert_matches_interp(&g, &args, 1e-4, "batched products");
}

#[test]
fn batched_matmuls_split_across_threads_and_give_the_same_bits() {
    let g = attention_like();
    let p = schedule(&g);
    let split = p
        .kernels
        .iter()
        .filter(|k| matches!(&k.body, KernelBody::MatMul(m) if !m.batch.is_empty()))
        .filter(|k| splits(k, 2))
        .count();
    assert!(split >= 1, "at least one batched matmul is split on 2 threads");
    let args = random_args(&g, |_| 1, 9);
    let one = run_jit(&g, &args, 1).unwrap();
    let two = run_jit(&g, &args, 2).unwrap();
    for ((name, a), (_, b)) in one.iter().zip(&two) {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name} differs between 1 and 2 threads");
    }
}

#[test]
fn a_shared_operand_over_an_unmergeable_axis_is_a_batch_axis_of_stride_zero() {
    // y[b, m, n] = sum_k x[m, b, k] w[k, n]: x's b and m strides do not nest (x is
    // stored [M, B, K]), so b is a batch axis that `w` does not move along.
    let mut b = Builder::new("shared");
    let x = f(&mut b, "x", &[M, B, K]);
    let w = f(&mut b, "w", &[K, N]);
    let xt = b.transpose(x, &[1, 0, 2]); // [B, M, K]
    let dom = [B, M, N, K];
    let xb = b.broadcast(xt, &dom, &[0, 1, 3]);
    let wt = b.transpose(w, &[1, 0]); // [N, K]
    let wb = b.broadcast(wt, &dom, &[2, 3]);
    let prod = b.mul(xb, wb);
    let y = b.reduce_sum(prod, &[3]);
    b.output("y", y);
    let g = b.finish();
    let (mms, _) = batched(&g);
    assert_eq!(mms.len(), 1, "{mms:#?}");
    assert_eq!(mms[0].batch.len(), 1);
    assert_eq!(mms[0].batch[0].len, B);
    assert_eq!(mms[0].batch[0].a.min(mms[0].batch[0].b), 0, "one operand is shared");
    let args = random_args(&g, |_| 1, 3);
    assert_matches_interp(&g, &args, 1e-4, "shared operand");
}

/// `sum_k x[b, m, k] y[b, k, n]` over the domain `[B, m, k, n]` (the loop keeps its
/// innermost axis n) or `[B, m, n, k]` (it reduces along k, its innermost).
fn product(b: &mut Builder, tag: &str, (m, k, n): (usize, usize, usize), k_inner: bool) -> ValueId {
    let x = f(b, &format!("x{tag}"), &[B, m, k]);
    let y = f(b, &format!("y{tag}"), &[B, k, n]);
    if k_inner {
        let yt = b.transpose(y, &[0, 2, 1]);
        let xb = b.broadcast(x, &[B, m, n, k], &[0, 1, 3]);
        let yb = b.broadcast(yt, &[B, m, n, k], &[0, 2, 3]);
        let p = b.mul(xb, yb);
        b.reduce_sum(p, &[3])
    } else {
        let xb = b.broadcast(x, &[B, m, k, n], &[0, 1, 2]);
        let yb = b.broadcast(y, &[B, m, k, n], &[0, 2, 3]);
        let p = b.mul(xb, yb);
        b.reduce_sum(p, &[2])
    }
}

#[test]
fn the_cost_rule_keeps_small_products_as_loops_and_fused_math_stays_a_loop() {
    // 6 x 5 x 30 = 900 multiply-adds per batch: a GEMM when the loop would reduce along
    // its innermost axis (scalar), a loop when it would run f32x4 along n; 3 x 4 x 5 = 60
    // is a loop either way.
    let cases = [
        ((6, 5, 30), true, true),
        ((6, 5, 30), false, false),
        ((3, 4, 5), true, false),
        ((3, 4, 5), false, false),
    ];
    for (i, &(dims, k_inner, gemm)) in cases.iter().enumerate() {
        let mut b = Builder::new("rule");
        let s = product(&mut b, "", dims, k_inner);
        b.output("s", s);
        let g = b.finish();
        let p = schedule(&g);
        let got = p.kernels.iter().any(|k| matches!(k.body, KernelBody::MatMul(_)));
        assert_eq!(got, gemm, "case {i}: {}", mpc_compiler::schedule::print_program(&p));
        let args = random_args(&g, |_| 1, 4);
        assert_matches_interp(&g, &args, 1e-4, &format!("case {i}"));
    }
    // A product scaled before the sum is not a product of two views.
    let mut b = Builder::new("fused");
    let q2 = f(&mut b, "q2", &[B, H, M, K]);
    let k2 = f(&mut b, "k2", &[B, H, N, K]);
    let dom2 = [B, H, M, N, K];
    let qb2 = b.broadcast(q2, &dom2, &[0, 1, 2, 4]);
    let kb2 = b.broadcast(k2, &dom2, &[0, 1, 3, 4]);
    let prod2 = b.mul(qb2, kb2);
    let scaled = b.scale(prod2, 0.5);
    let fused = b.reduce_sum(scaled, &[4]);
    b.output("fused", fused);
    let g = b.finish();
    let p = schedule(&g);
    assert!(
        !p.kernels.iter().any(|k| matches!(k.body, KernelBody::MatMul(_))),
        "{}",
        mpc_compiler::schedule::print_program(&p)
    );
    // Summed along the innermost axis in f32x4 lanes: reassociated, as a GEMM would.
    let args = random_args(&g, |_| 1, 4);
    assert_matches_interp(&g, &args, 1e-4, "fused");
}

#[test]
fn a_product_of_few_rows_splits_its_columns_across_threads() {
    // [32, 3072] x [3072, 130]: one row block, so four column blocks (33 columns, the
    // last 31) keep two threads busy; the same bits on 1 and 2 threads. A sum of 3072
    // products: 1e-3 relative to the largest output, as float reassociation allows.
    let mut b = Builder::new("wide");
    let x = f(&mut b, "x", &[32, 3072]);
    let w = f(&mut b, "w", &[3072, 130]);
    let y = b.matmul(x, w);
    b.output("y", y);
    let g = b.finish();
    let p = schedule(&g);
    let (kernel, mm) = p
        .kernels
        .iter()
        .find_map(|k| match &k.body {
            KernelBody::MatMul(mm) => Some((k, mm)),
            _ => None,
        })
        .expect("a matmul kernel");
    assert_eq!((mm.col_blocks(), kernel.range), (4, 4));
    assert!(splits(kernel, 2));
    let args = random_args(&g, |_| 1, 5);
    assert_matches_interp(&g, &args, 1e-3, "wide");
    let one = run_jit(&g, &args, 1).unwrap();
    let two = run_jit(&g, &args, 2).unwrap();
    assert!(one[0].1.iter().zip(&two[0].1).all(|(a, b)| a.to_bits() == b.to_bits()));
}
