//! Every kernel kind on the JIT against the interpreter, on small random graphs:
//! fused elementwise chains (broadcasts, constants, converts, comparisons, every unary
//! op, erf on both sides of its branch point), reductions over inner, outer and all
//! axes, transposes, slices, reshapes and concats, matmuls with folded transposes, gathers, scatter-adds, one-hot and Philox.

mod common;

use common::jit::*;
use mpc_compiler::ir::{ArgKind, Builder, Graph, Type, ValueId};
use mpc_compiler::pipeline;
use mpc_compiler::schedule::{schedule, KernelBody, SegmentOp};

fn f(b: &mut Builder, name: &str, shape: &[usize]) -> ValueId {
    b.arg(ArgKind::Param, name, Type::f32(shape))
}
fn i(b: &mut Builder, name: &str, shape: &[usize]) -> ValueId {
    b.arg(ArgKind::Input, name, Type::i32(shape))
}

fn check(g: Graph, bound: u64, what: &str) {
    check_tol(g, bound, 1e-5, what)
}

fn check_tol(g: Graph, bound: u64, rtol: f32, what: &str) {
    g.validate().unwrap();
    let args = random_args(&g, |_| bound, 11);
    assert_matches_interp(&g, &args, rtol, what);
}

#[test]
fn elementwise_chains_with_broadcasts_constants_and_converts() {
    let mut b = Builder::new("elementwise");
    let x = f(&mut b, "x", &[5, 7]);
    let y = f(&mut b, "y", &[7]);
    let n = i(&mut b, "n", &[5]);
    let yb = b.broadcast(y, &[5, 7], &[1]);
    let nf = b.convert(n);
    let nb = b.broadcast(nf, &[5, 7], &[0]);
    let s = b.add(x, yb);
    let m = b.mul(s, nb);
    let e = b.exp(m);
    let t = b.tanh(s);
    let gt = b.greater(x, yb);
    let mx = b.max(t, gt);
    let sq = b.mul(x, x);
    let one = b.constant(1.0, &[5, 7]);
    let pos = b.add(sq, one);
    let l = b.log(pos);
    let r = b.sqrt(pos);
    let d = b.div(l, r);
    let ng = b.neg(d);
    let sub = b.sub(ng, mx);
    b.output("e", e);
    b.output("sub", sub);
    b.output("again", sub);
    b.output("x", x);
    check(b.finish(), 4, "elementwise");
}

#[test]
fn long_rows_use_the_vector_loop_and_its_tail() {
    for n in [3, 4, 8, 13, 64, 67] {
        let mut b = Builder::new("rows");
        let x = f(&mut b, "x", &[3, n]);
        let y = f(&mut b, "y", &[3, n]);
        let p = b.mul(x, y);
        let q = b.add(p, x);
        let e = b.exp(q);
        let m = b.max(e, y);
        b.output("m", m);
        check(b.finish(), 1, &format!("rows of {n}"));
    }
}

/// A loop of long math over 2^18 elements or more runs two f32x4 bodies an iteration
/// (rows of 35: four such iterations, then a scalar tail of 3): every element as the
/// interpreter has it.
#[test]
fn long_math_over_many_elements_in_two_bodies_an_iteration_and_the_tails() {
    let mut b = Builder::new("long");
    let x = f(&mut b, "x", &[7500, 35]);
    let y = f(&mut b, "y", &[35]);
    let yb = b.broadcast(y, &[7500, 35], &[1]);
    let s = b.add(x, yb);
    let t = b.tanh(s);
    let e = b.exp(t);
    let wide = b.scale(x, 3.0);
    let r = b.erf(wide);
    let m = b.mul(e, r);
    b.output("m", m);
    check(b.finish(), 1, "long math");
}

#[test]
fn erf_agrees_on_both_branches_in_vector_lanes_and_the_tail() {
    // Inputs in [-3, 3]: the Taylor branch (|x| < 0.5), Abramowitz–Stegun above, and
    // both in one f32x4 vector; 67 columns leave a scalar tail.
    let mut b = Builder::new("erf");
    let x = f(&mut b, "x", &[3, 67]);
    let wide = b.scale(x, 3.0);
    let e = b.erf(wide);
    b.output("erf", e);
    check(b.finish(), 1, "erf");
}

#[test]
fn reductions_over_inner_outer_and_all_axes() {
    let mut b = Builder::new("reduce");
    let x = f(&mut b, "x", &[4, 6, 5]);
    for (k, axes) in [vec![0], vec![1], vec![2], vec![0, 2], vec![0, 1, 2]]
        .into_iter()
        .enumerate()
    {
        let s = b.reduce_sum(x, &axes);
        let m = b.reduce_max(x, &axes);
        b.output(format!("sum{k}"), s);
        b.output(format!("max{k}"), m);
    }
    // A reduction of a fused expression, then its use.
    let e = b.exp(x);
    let s = b.reduce_sum(e, &[2]);
    let sb = b.broadcast(s, &[4, 6, 5], &[0, 1]);
    let soft = b.div(e, sb);
    b.output("softmax", soft);
    check(b.finish(), 1, "reduce");
}

/// Sums and maxima over the outermost axis of a loop with work enough to split run in
/// fixed blocks of rows (a bias gradient's column sums, fused with an elementwise loop
/// that writes its own output; a whole sum to a scalar): the interpreter's values up to
/// reassociation, and the same bits on 1 and 2 threads.
#[test]
fn outer_axis_reductions_split_in_row_blocks_do_not_depend_on_threads() {
    let mut b = Builder::new("row blocks");
    let x = f(&mut b, "x", &[3000, 40]);
    let y = b.tanh(x);
    let col_sums = b.reduce_sum(y, &[0]);
    let col_max = b.reduce_max(x, &[0]);
    let total = b.reduce_sum(x, &[0, 1]);
    b.output("y", y);
    b.output("col_sums", col_sums);
    b.output("col_max", col_max);
    b.output("total", total);
    let g = b.finish();
    let program = mpc_compiler::pipeline::schedule_cpu(&g);
    let blocked = program
        .kernels
        .iter()
        .filter(|k| matches!(&k.body, KernelBody::Loop(lk) if lk.row_blocks.is_some()))
        .count();
    assert!(
        blocked >= 1,
        "the column reductions run in row blocks:\n{}",
        mpc_compiler::schedule::print_program(&program)
    );
    let args = random_args(&g, |_| 1, 4);
    // 3000-term sums that cancel to ~2 carry ~1e-5 of rounding in either order.
    assert_matches_interp(&g, &args, 1e-4, "row blocks");
    assert_eq!(
        run_jit(&g, &args, 1).unwrap(),
        run_jit(&g, &args, 2).unwrap(),
        "1 and 2 threads"
    );
}

/// An embedding table's gradient: a serial scatter of a few rows into a large table,
/// whose zeroing a parallel fill kernel does first. Rows no token names are zero on
/// every step (not what the arena held from the last one), on 1 and 2 threads.
#[test]
fn a_scatter_into_a_large_table_is_zeroed_by_its_own_fill_kernel() {
    let mut b = Builder::new("embedding gradient");
    let rows = f(&mut b, "rows", &[64, 32]);
    let tokens = i(&mut b, "tokens", &[64]);
    let table = b.scatter_add(rows, tokens, 4000);
    b.output("table", table);
    let g = b.finish();
    let program = mpc_compiler::pipeline::schedule_cpu(&g);
    let zeroed = program
        .kernels
        .iter()
        .any(|k| matches!(&k.body, KernelBody::Loop(lk) if lk.zeroed && lk.scatter_rows.is_some()));
    assert!(zeroed, "{}", mpc_compiler::schedule::print_program(&program));
    for threads in [1, 2] {
        let code = mpc_compiler::pipeline::codegen_cpu(&program).unwrap();
        let pool = std::sync::Arc::new(mpc_runtime::backend::pool::Pool::new(threads));
        let mut exe = mpc_runtime::backend::jit::Executable::new(program.clone(), code, pool);
        for seed in [1, 2] {
            let args = random_args(&g, |_| 4000, seed);
            let want = mpc_compiler::interp::run(&g, &args).unwrap();
            exe.run(&mut |name| args.get(name).map(|v| v.view())).unwrap();
            let got = exe.output("table").unwrap().floats();
            let same = want[0]
                .1
                .floats()
                .iter()
                .zip(got)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "step {seed} on {threads} threads differs from the interpreter");
        }
    }
}

#[test]
fn views_transpose_slice_reshape_concat() {
    let mut b = Builder::new("views");
    let x = f(&mut b, "x", &[4, 6]);
    let y = f(&mut b, "y", &[4, 3]);
    let t = b.transpose(x, &[1, 0]);
    let e = b.exp(t);
    let r = b.reshape(e, &[3, 8]);
    let r2 = b.reshape(t, &[24]);
    let sl = b.slice(x, 1, 2, 5);
    let c = b.concat(&[sl, y, x], 1);
    let cn = b.neg(c);
    let t3 = b.transpose(cn, &[1, 0]);
    b.output("r", r);
    b.output("r2", r2);
    b.output("t3", t3);
    check(b.finish(), 1, "views");
}

#[test]
fn matmuls_fold_transposes() {
    let mut b = Builder::new("matmul");
    let a = f(&mut b, "a", &[70, 9]);
    let w = f(&mut b, "w", &[9, 5]);
    let c = f(&mut b, "c", &[5, 70]);
    let p = b.matmul(a, w);
    let at = b.transpose(a, &[1, 0]);
    let q = b.matmul(at, a);
    let wt = b.transpose(w, &[1, 0]);
    let ct = b.transpose(c, &[1, 0]);
    let r = b.matmul(ct, wt);
    let s = b.slice(a, 1, 2, 7);
    let u = b.matmul(s, c);
    let bias = f(&mut b, "bias", &[5]);
    let bb = b.broadcast(bias, &[70, 5], &[1]);
    let act = b.add(p, bb);
    let zero = b.constant(0.0, &[70, 5]);
    let relu = b.max(act, zero);
    b.output("relu", relu);
    b.output("q", q);
    b.output("r", r);
    b.output("u", u);
    let g = b.finish();
    let p = schedule(&g);
    let transposed = p
        .kernels
        .iter()
        .filter(|k| matches!(&k.body, KernelBody::MatMul(m) if m.a.transposed() || m.b.transposed()))
        .count();
    assert_eq!(transposed, 2, "transposes feeding matmuls are folded into strides");
    // The GEMM sums in its own order: results near zero after cancellation differ by
    // a few ulps of the terms, so this one compares at 1e-4.
    check_tol(g, 1, 1e-4, "matmul");
}

/// Kernels that differ only in their buffers (the same product of equally sized
/// operands here; equally sized parameters' Adam updates, repeated layers in models)
/// are one compiled function, and each still reads and writes its own buffers.
#[test]
fn kernels_alike_but_for_their_buffers_share_one_function() {
    let mut b = Builder::new("alike");
    let x = f(&mut b, "x", &[40, 9]);
    let y = f(&mut b, "y", &[40, 9]);
    let w = f(&mut b, "w", &[9, 5]);
    let p = b.matmul(x, w);
    let q = b.matmul(y, w);
    let w3 = f(&mut b, "w3", &[9, 3]);
    let v = b.matmul(x, w3);
    b.output("p", p);
    b.output("q", q);
    b.output("v", v);
    let g = b.finish();
    let program = pipeline::schedule_cpu(&g);
    let code = pipeline::codegen_cpu(&program).unwrap();
    assert_eq!(
        program.kernels.len(),
        3,
        "{}",
        mpc_compiler::schedule::print_program(&program)
    );
    assert_eq!(code.functions(), 2, "x w and y w are one function, x w3 another");
    check_tol(g, 1, 1e-4, "alike");
}

#[test]
fn gather_scatter_add_and_one_hot() {
    let mut b = Builder::new("indexing");
    let table = f(&mut b, "table", &[11, 6]);
    let vec1 = f(&mut b, "vec1", &[11]);
    let idx = i(&mut b, "idx", &[4, 5]);
    let g = b.gather(table, idx);
    let s = b.reduce_sum(g, &[1]);
    let g1 = b.gather(vec1, idx);
    let vals = f(&mut b, "vals", &[4, 6]);
    let vb = b.broadcast(vals, &[4, 5, 6], &[0, 2]);
    let sc = b.scatter_add(vb, idx, 11);
    let v1 = f(&mut b, "v1", &[4, 5]);
    let sc1 = b.scatter_add(v1, idx, 11);
    let oh = b.one_hot(idx, 11);
    b.output("s", s);
    b.output("g", g);
    b.output("g1", g1);
    b.output("sc", sc);
    b.output("sc1", sc1);
    b.output("oh", oh);
    check(b.finish(), 11, "indexing");
}

#[test]
fn large_scatter_add_is_split_by_rows_deterministically() {
    let mut b = Builder::new("scatter");
    let vals = f(&mut b, "vals", &[300, 64]);
    let idx = i(&mut b, "idx", &[300]);
    let sc = b.scatter_add(vals, idx, 2000);
    b.output("sc", sc);
    check(b.finish(), 7, "scatter into few rows");
}

/// A serial scatter-add whose rows are four cache lines (64 floats), fed by a gather
/// and a product, is split between threads by column chunks: every thread walks every
/// edge in order over its own columns, so 1, 2 and 3 threads give the same bits, and
/// the interpreter's sums.
#[test]
fn wide_scatters_split_by_column_chunks_do_not_depend_on_threads() {
    let mut b = Builder::new("column chunks");
    let x = f(&mut b, "x", &[500, 64]);
    let w = f(&mut b, "w", &[3000, 64]);
    let src = i(&mut b, "src", &[3000]);
    let dst = i(&mut b, "dst", &[3000]);
    let msg = b.gather(x, src);
    let msg = b.mul(msg, w);
    let agg = b.scatter_add(msg, dst, 500);
    b.output("agg", agg);
    let g = b.finish();
    let program = mpc_compiler::pipeline::schedule_cpu(&g);
    let split = program
        .kernels
        .iter()
        .any(|k| matches!(&k.body, KernelBody::Loop(lk) if lk.col_chunks.is_some() && k.parallel && k.range == 4));
    assert!(
        split,
        "the scatter runs in 4 column chunks:\n{}",
        mpc_compiler::schedule::print_program(&program)
    );
    let args = random_args(&g, |_| 500, 5);
    assert_matches_interp(&g, &args, 1e-5, "column chunks");
    let one = run_jit(&g, &args, 1).unwrap();
    assert_eq!(one, run_jit(&g, &args, 2).unwrap(), "1 and 2 threads");
    assert_eq!(one, run_jit(&g, &args, 3).unwrap(), "1 and 3 threads");
}

#[test]
fn random_uniform_is_bit_identical_to_philox() {
    let mut b = Builder::new("random");
    let seed = b.arg(ArgKind::Input, "@seed", Type::i32([]));
    let step = b.arg(ArgKind::Input, "@step", Type::i32([]));
    let u = b.random_uniform(seed, step, 5, &[7, 33]);
    let half = b.constant(0.5, &[7, 33]);
    let mask = b.greater(u, half);
    let flat = b.reshape(u, &[231]);
    // Rows of 23 (sixteen-element steps, then four, then one, from unaligned starts)
    // and a rank-1 loop whose thread parts end at multiples of 8, not 16 (on 3
    // threads, the first part is 13336 elements).
    let rows = b.random_uniform(seed, step, 6, &[5, 23]);
    let long = b.random_uniform(seed, step, 7, &[40_016]);
    b.output("u", u);
    b.output("mask", mask);
    b.output("flat", flat);
    b.output("rows", rows);
    b.output("long", long);
    let g = b.finish();
    let args = random_args(&g, |_| 1, 3);
    let want = mpc_compiler::interp::run(&g, &args).unwrap();
    for threads in [1, 2, 3] {
        let got = run_jit(&g, &args, threads).unwrap();
        for ((n, w), (_, v)) in want.iter().zip(&got) {
            assert_eq!(w.floats(), v.as_slice(), "{n}");
        }
    }
}

#[test]
fn segment_max_argmax_and_their_transpose() {
    // Values that are gathered rows (a view the scheduler must materialize), edges as
    // slices of a [2, E] edge list (contiguous views), a row with no incoming edge.
    let mut b = Builder::new("segments");
    let x = f(&mut b, "x", &[6, 5]);
    let edges = i(&mut b, "edges", &[2, 40]);
    let src = b.slice(edges, 0, 0, 1);
    let src = b.reshape(src, &[40]);
    let dst = b.slice(edges, 0, 1, 2);
    let dst = b.reshape(dst, &[40]);
    let xj = b.gather(x, src);
    let m = b.scatter_max(xj, dst, 7);
    let am = b.scatter_argmax(xj, dst, 7);
    let g = f(&mut b, "g", &[7, 5]);
    let back = b.argmax_scatter(g, am, 40);
    // Finite outputs only: the empty row 6 is -inf in `m`, masked like the lowering does.
    let floor = b.constant(-1e30, &[7, 5]);
    let m = b.max(m, floor);
    b.output("m", m);
    b.output("back", back);
    // Indices below 6 leave row 6 empty.
    check(b.finish(), 6, "segment kernels");
}

/// An `edges: i32[2, n]` argument's two rows, sources and destinations, as `[n]` views.
fn edge_ends(b: &mut Builder, n: usize) -> (ValueId, ValueId) {
    let edges = i(b, "edges", &[2, n]);
    let src = b.slice(edges, 0, 0, 1);
    let src = b.reshape(src, &[n]);
    let dst = b.slice(edges, 0, 1, 2);
    let dst = b.reshape(dst, &[n]);
    (src, dst)
}

/// The gradient of a max aggregation over many edges (an output of 16K elements or
/// more): zeroed by a fill kernel, then scattered by threads that split the nodes
/// (`Segment::zeroed`). Every element as the interpreter has it, on 1 to 3 threads,
/// a node without edges included.
#[test]
fn a_large_argmax_scatter_is_zeroed_first_and_split_by_positions() {
    let (nodes, edges_n, d) = (300, 1500, 16);
    let mut b = Builder::new("argmax_scatter");
    let x = f(&mut b, "x", &[nodes, d]);
    let (src, dst) = edge_ends(&mut b, edges_n);
    let xj = b.gather(x, src);
    let am = b.scatter_argmax(xj, dst, nodes + 1);
    let g = f(&mut b, "g", &[nodes + 1, d]);
    let back = b.argmax_scatter(g, am, edges_n);
    b.output("back", back);
    let g = b.finish();
    let program = pipeline::schedule_cpu(&g);
    let zeroed = program
        .kernels
        .iter()
        .any(|k| matches!(&k.body, KernelBody::Segment(s) if s.zeroed && k.range == nodes + 1));
    assert!(zeroed, "{}", mpc_compiler::schedule::print_program(&program));
    g.validate().unwrap();
    // Indices below `nodes` leave the last node without edges.
    let args = random_args(&g, |_| nodes as u64, 5);
    jit_vs_interp(&g, &args, 0.0, &[1, 2, 3]).unwrap();
}

/// A max aggregation whose messages feed nothing else (an evaluation step's) is one
/// scatter-max loop: no `[E, F]` message buffer, no segment kernel. Its threads own
/// output rows and gather their positions in blocks of 256 before running them: 1500
/// edges make six blocks, node 300 has no edges (`-inf`, floored like the lowering
/// does). The values are the interpreter's, and the same bits on 1 to 3 threads; an
/// edge id out of range is an error naming it.
#[test]
fn a_max_aggregation_of_messages_nobody_else_reads_is_one_scatter_kernel() {
    let (nodes, edges_n, d) = (300, 1500, 12);
    let mut b = Builder::new("max_messages");
    let x = f(&mut b, "x", &[nodes, d]);
    let (src, dst) = edge_ends(&mut b, edges_n);
    let xi = b.gather(x, src);
    let xj = b.gather(x, dst);
    let sum = b.add(xi, xj);
    let message = b.tanh(sum);
    let m = b.scatter_max(message, dst, nodes + 1);
    let floor = b.constant(-1e30, &[nodes + 1, d]);
    let m = b.max(m, floor);
    b.output("m", m);
    let g = b.finish();
    g.validate().unwrap();
    let program = pipeline::schedule_cpu(&g);
    let listing = mpc_compiler::schedule::print_program(&program);
    let segments = program
        .kernels
        .iter()
        .filter(|k| matches!(k.body, KernelBody::Segment(_)))
        .count();
    assert_eq!(segments, 0, "{listing}");
    assert!(listing.contains("max= e"), "{listing}");
    interp_bits_and_bad_edge(&g, nodes, edges_n, 7);
}

/// A graph kernel test's common checks: `g`'s outputs on random inputs (edges below
/// `nodes`, drawn with `seed`) are the interpreter's, the same bits on 1 to 3 threads,
/// and an edge id out of range (edge 700's destination) is an error naming it.
fn interp_bits_and_bad_edge(g: &Graph, nodes: usize, edges_n: usize, seed: u64) {
    let mut args = random_args(g, |_| nodes as u64, seed);
    jit_vs_interp(g, &args, 1e-6, &[1]).unwrap();
    let one = run_jit(g, &args, 1).unwrap();
    for threads in [2, 3] {
        assert_eq!(run_jit(g, &args, threads).unwrap(), one, "{threads} threads");
    }
    if let Some(mpc_compiler::interp::Value::Int(e)) = args.get_mut("edges") {
        e[edges_n + 700] = nodes as i32 + 9;
    }
    for threads in [1, 2] {
        let err = run_jit(g, &args, threads).unwrap_err();
        assert!(err.contains(&format!("index {}", nodes + 9)), "{err}");
    }
}

/// A training step's max aggregation needs the maxima and their positions: one argmax
/// kernel writes both (`share_argmax_maxima`), and no segment max is left. Node 300
/// has no edges (maxima `-inf`, positions -1); ties and NaN messages follow the max
/// kernel's rule, so the values are the interpreter's, the same bits on 1 to 3
/// threads; an edge id out of range is an error naming it.
#[test]
fn a_max_aggregation_and_its_argmax_are_one_scan() {
    let (nodes, edges_n, d) = (300, 1500, 12);
    let mut b = Builder::new("argmax_maxima");
    let x = f(&mut b, "x", &[nodes, d]);
    let (src, dst) = edge_ends(&mut b, edges_n);
    let xi = b.gather(x, src);
    let xj = b.gather(x, dst);
    let sum = b.add(xi, xj);
    // Rectified messages tie at 0 often: the first position of equal values must win.
    let zero = b.constant(0.0, &[edges_n, d]);
    let message = b.max(sum, zero);
    let m = b.scatter_max(message, dst, nodes + 1);
    let arg = b.scatter_argmax(message, dst, nodes + 1);
    // The positions, as the gradient uses them: each row's cotangent goes to its
    // argmax's message.
    let cotangent = f(&mut b, "cotangent", &[nodes + 1, d]);
    let back = b.argmax_scatter(cotangent, arg, edges_n);
    // -inf compares badly in the tolerance check: floored as the lowering does.
    let floor = b.constant(-1e30, &[nodes + 1, d]);
    let m = b.max(m, floor);
    b.output("m", m);
    b.output("back", back);
    let g = b.finish();
    g.validate().unwrap();
    let program = pipeline::schedule_cpu(&g);
    let listing = mpc_compiler::schedule::print_program(&program);
    let segments: Vec<_> = program
        .kernels
        .iter()
        .filter_map(|k| match &k.body {
            KernelBody::Segment(s) => Some(s),
            _ => None,
        })
        .collect();
    // The argmax (writing the maxima) and the gradient's argmax scatter.
    assert_eq!(segments.len(), 2, "{listing}");
    assert!(!segments.iter().any(|s| s.op == SegmentOp::Max), "{listing}");
    assert!(
        segments.iter().any(|s| s.op == SegmentOp::Argmax && s.maxima.is_some()),
        "{listing}"
    );
    interp_bits_and_bad_edge(&g, nodes, edges_n, 11);
}

#[test]
fn sums_and_maxima_along_the_innermost_axis_accumulate_in_vector_registers() {
    // A layer norm's shape of loop: a value written per element and its row sum in the
    // same kernel (k17 of the transformer's step), for row lengths that leave every
    // kind of tail, and a sum over the two inner axes (into one element per outer row).
    for n in [4, 5, 8, 13, 67, 1000] {
        let mut b = Builder::new("rowsum");
        let x = f(&mut b, "x", &[3, 7, n]);
        let y = f(&mut b, "y", &[3, 7, n]);
        let p = b.mul(x, y);
        let q = b.add(p, x);
        let rows = b.reduce_sum(q, &[2]);
        let both = b.reduce_sum(q, &[1, 2]);
        // A softmax's max-shift: the row maximum, in vector registers too.
        let row_max = b.reduce_max(q, &[2]);
        b.output("q", q);
        b.output("rows", rows);
        b.output("both", both);
        b.output("row_max", row_max);
        check_tol(b.finish(), 1, 1e-4, &format!("row sums of {n}"));
    }
}

/// Sums of gathered rows (an embedding's mean before its scale), which the CPU runs as
/// library code (`codegen/cranelift/gather_sum.rs`): widths below, at and past sixteen
/// lanes; the interpreter's values, the same bits on 1 and 2 threads, and an index
/// outside the table an error naming it.
#[test]
fn sums_of_gathered_rows_match_the_interpreter_and_check_their_indices() {
    for (rows, steps, width, vocab) in [(5, 7, 3, 11), (9, 32, 64, 300), (3, 4, 40, 6)] {
        let mut b = Builder::new("bag");
        let tokens = i(&mut b, "tokens", &[rows, steps]);
        let table = f(&mut b, "table", &[vocab, width]);
        let rows_of = b.gather(table, tokens);
        let sum = b.reduce_sum(rows_of, &[1]);
        b.output("sum", sum);
        let g = b.finish();
        let what = format!("{rows}x{steps} rows of {width}");
        let mut args = random_args(&g, |_| vocab as u64, 5);
        assert_matches_interp(&g, &args, 1e-5, &what);
        let one = run_jit(&g, &args, 1).unwrap();
        let two = run_jit(&g, &args, 2).unwrap();
        assert_eq!(one, two, "{what}: 1 and 2 threads");
        if let Some(mpc_compiler::interp::Value::Int(v)) = args.get_mut("tokens") {
            v[rows * steps - 2] = vocab as i32;
        }
        let err = run_jit(&g, &args, 2).unwrap_err();
        assert!(
            err.contains(&format!("index {vocab} is outside [0, {vocab})")),
            "{what}: {err}"
        );
    }
}
