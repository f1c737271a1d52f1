//! The rewrite rules, as a table: name, group, left side, right side, condition.
//!
//! In: nothing (definitions). Out: egg rewrites. One row per rule; a right side is a
//! pattern, or a named function below the table when it must compute attributes
//! (composed permutations, split points). Conditions are named functions too; they read
//! the e-class analysis (types, constants, attributes). Every rule keeps
//! the value and the type of what it rewrites; `tests/opt_rules.rs` checks each one on
//! random inputs against the reference interpreter.
//!
//! Assumptions stated once: `x * 0 = 0` assumes `x` is finite (the training step has no
//! infinities unless it has already diverged); floating-point reassociation (matmul
//! chains, distributivity) changes rounding within the 1e-5 tolerance the tests use.

use super::analysis::TensorGraph;
use super::lang::{Attr, TensorLang};
use crate::ir::Binary;
use egg::{Applier, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    Algebra,
    BroadcastReduce,
    Layout,
    MatMul,
    MessagePassing,
}

/// Looks up a pattern variable (`"?x"`) of the current match.
pub type Vars<'a> = dyn Fn(&str) -> Id + 'a;
pub type CondFn = fn(&TensorGraph, &Vars) -> bool;
pub type ApplyFn = fn(&mut TensorGraph, &Vars) -> Option<Id>;

pub enum Rhs {
    Pattern(&'static str),
    Apply(ApplyFn),
}

pub struct Rule {
    pub name: &'static str,
    pub group: Group,
    pub lhs: &'static str,
    pub rhs: Rhs,
    pub when: Option<CondFn>,
}

// ---- helpers for conditions and appliers ---------------------------------------------

fn constant(eg: &TensorGraph, id: Id) -> Option<f64> {
    eg[id].data.constant
}
fn is_const(eg: &TensorGraph, id: Id, v: f64) -> bool {
    constant(eg, id) == Some(v)
}
fn list(eg: &TensorGraph, id: Id) -> Vec<usize> {
    eg[id]
        .data
        .attr
        .as_ref()
        .and_then(|a| a.as_list().map(<[usize]>::to_vec))
        .unwrap_or_default()
}
fn int(eg: &TensorGraph, id: Id) -> Option<usize> {
    eg[id]
        .data
        .attr
        .as_ref()
        .and_then(Attr::as_int)
        .and_then(|i| usize::try_from(i).ok())
}
fn shape(eg: &TensorGraph, id: Id) -> Vec<usize> {
    eg[id].data.ty.as_ref().map(|t| t.shape.clone()).unwrap_or_default()
}
fn attr(eg: &mut TensorGraph, a: Attr) -> Id {
    eg.add(TensorLang::Attr(a))
}
fn constant_node(eg: &mut TensorGraph, value: f64, shape: &[usize]) -> Id {
    let v = attr(eg, Attr::float(value));
    let s = attr(eg, Attr::List(shape.to_vec()));
    eg.add(TensorLang::Const([v, s]))
}
const SWAP: [usize; 2] = [1, 0];

// ---- the table -------------------------------------------------------------------------

use Group::*;

/// A rule whose right side is a pattern.
const fn pat(name: &'static str, group: Group, lhs: &'static str, rhs: &'static str, when: Option<CondFn>) -> Rule {
    Rule {
        name,
        group,
        lhs,
        rhs: Rhs::Pattern(rhs),
        when,
    }
}

/// A rule whose right side a function builds.
const fn app(name: &'static str, group: Group, lhs: &'static str, rhs: ApplyFn, when: Option<CondFn>) -> Rule {
    Rule {
        name,
        group,
        lhs,
        rhs: Rhs::Apply(rhs),
        when,
    }
}

/// Every rule, in the order egg runs them.
#[rustfmt::skip]
pub fn table() -> Vec<Rule> {
    vec![
        // Algebra.
        pat("add-commute",              Algebra,         "(add ?a ?b)",                                  "(add ?b ?a)",                             None),
        pat("mul-commute",              Algebra,         "(mul ?a ?b)",                                  "(mul ?b ?a)",                             None),
        pat("add-zero",                 Algebra,         "(add ?x ?z)",                                  "?x",                                      Some(z_is_zero)),
        pat("sub-zero",                 Algebra,         "(sub ?x ?z)",                                  "?x",                                      Some(z_is_zero)),
        pat("mul-one",                  Algebra,         "(mul ?x ?o)",                                  "?x",                                      Some(o_is_one)),
        pat("div-one",                  Algebra,         "(div ?x ?o)",                                  "?x",                                      Some(o_is_one)),
        pat("mul-zero",                 Algebra,         "(mul ?x ?z)",                                  "?z",                                      Some(z_is_zero)),
        pat("neg-neg",                  Algebra,         "(neg (neg ?x))",                               "?x",                                      None),
        pat("sub-neg",                  Algebra,         "(sub ?x (neg ?y))",                            "(add ?x ?y)",                             None),
        pat("add-neg",                  Algebra,         "(add ?x (neg ?y))",                            "(sub ?x ?y)",                             None),
        pat("neg-sub",                  Algebra,         "(neg (sub ?x ?y))",                            "(sub ?y ?x)",                             None),
        pat("log-exp",                  Algebra,         "(log (exp ?x))",                               "?x",                                      None),
        pat("neg-scale",                Algebra,         "(neg (mul ?x ?c))",                            "(mul ?x (neg ?c))",                       Some(c_is_constant)),
        pat("scale-scale",              Algebra,         "(mul (mul ?x ?a) ?b)",                         "(mul ?x (mul ?a ?b))",                    Some(a_and_b_are_constants)),
        pat("factor-scale",             Algebra,         "(add (mul ?a ?c) (mul ?b ?c))",                "(mul (add ?a ?b) ?c)",                    None),
        // Broadcasts and reductions.
        app("broadcast-broadcast",      BroadcastReduce, "(broadcast ?s2 ?d2 (broadcast ?s1 ?d1 ?x))",   compose_broadcasts,                        None),
        app("sum-of-broadcast",         BroadcastReduce, "(reduce_sum ?axes (broadcast ?s ?d ?x))",      sum_of_broadcast,                          None),
        app("sum-sum",                  BroadcastReduce, "(reduce_sum ?a2 (reduce_sum ?a1 ?x))",         merge_sums,                                None),
        app("sum-of-scaled",            BroadcastReduce, "(reduce_sum ?axes (mul ?x ?k))",               scale_after_sum,                           Some(k_is_constant)),
        pat("broadcast-add",            BroadcastReduce, "(add (broadcast ?s ?d ?x) (broadcast ?s ?d ?y))", "(broadcast ?s ?d (add ?x ?y))",        None),
        pat("broadcast-mul",            BroadcastReduce, "(mul (broadcast ?s ?d ?x) (broadcast ?s ?d ?y))", "(broadcast ?s ?d (mul ?x ?y))",        None),
        // Layout: transposes and reshapes.
        app("transpose-transpose",      Layout,          "(transpose ?p2 (transpose ?p1 ?x))",           compose_transposes,                        None),
        pat("transpose-identity",       Layout,          "(transpose ?p ?x)",                            "?x",                                      Some(p_is_identity)),
        pat("reshape-reshape",          Layout,          "(reshape ?s2 (reshape ?s1 ?x))",               "(reshape ?s2 ?x)",                        None),
        pat("reshape-identity",         Layout,          "(reshape ?s ?x)",                              "?x",                                      Some(s_is_x_shape)),
        pat("matmul-transposed-left",   Layout,          "(matmul (transpose ?p ?a) ?b)",                "(matmul_tn ?a ?b)",                       Some(p_swaps)),
        pat("matmul-transposed-right",  Layout,          "(matmul ?a (transpose ?p ?b))",                "(matmul_nt ?a ?b)",                       Some(p_swaps)),
        app("transpose-of-matmul",      Layout,          "(transpose ?p (matmul ?a ?b))",                swapped_matmul,                            Some(p_swaps)),
        // Matmul chains.
        pat("matmul-assoc-right",       MatMul,          "(matmul (matmul ?a ?b) ?c)",                   "(matmul ?a (matmul ?b ?c))",              None),
        pat("matmul-assoc-left",        MatMul,          "(matmul ?a (matmul ?b ?c))",                   "(matmul (matmul ?a ?b) ?c)",              None),
        pat("matmul-factor-left",       MatMul,          "(add (matmul ?a ?b) (matmul ?a ?c))",          "(matmul ?a (add ?b ?c))",                 None),
        pat("matmul-factor-right",      MatMul,          "(add (matmul ?a ?c) (matmul ?b ?c))",          "(matmul (add ?a ?b) ?c)",                 None),
        // Message passing: concat(x, y) W = x W[:dx] + y W[dx:], so that x W[:dx] can be
        // shared by every message that reads x. Linear maps commute with reading and
        // aggregating rows: a message `linear(x_j)` computed per edge is `linear` per node,
        // read per edge (E rows of work -> N).
        app("concat-matmul-split",      MessagePassing,  "(matmul (concat ?axis ?x ?y) ?w)",             split_concat_matmul,                       Some(axis_is_1)),
        pat("matmul-of-gather",         MessagePassing,  "(matmul (gather ?x ?i) ?w)",                   "(gather (matmul ?x ?w) ?i)",              Some(x_matrix_i_vector)),
        pat("scatter-of-matmul",        MessagePassing,  "(scatter_add ?rows (matmul ?a ?b) ?i)",        "(matmul (scatter_add ?rows ?a ?i) ?b)",   Some(i_vector)),
        app("gathered-weight-gradient", MessagePassing,  "(matmul (transpose ?p (gather ?x ?i)) ?g)",    scatter_then_matmul,                       Some(p_swaps_x_matrix_i_vector)),
        app("sum-of-gather",            MessagePassing,  "(reduce_sum ?axes (gather ?x ?i))",             counted_sum,                               Some(axes_0_x_matrix_i_vector_4_per_row)),
        // Scatter-adds are linear: what is the same along a row's positions comes out.
        app("scatter-of-reshape",       MessagePassing,  "(scatter_add ?rows (reshape ?s ?v) ?i)",       reshape_after_scatter,                     Some(reshape_keeps_positions)),
        app("scatter-of-broadcast",     MessagePassing,  "(scatter_add ?rows (broadcast ?s ?d ?x) ?i)",  broadcast_after_scatter,                   Some(broadcast_keeps_positions)),
        app("scatter-of-scaled",        MessagePassing,  "(scatter_add ?rows (mul ?x (broadcast ?s ?d ?c)) ?i)", scale_after_scatter,               Some(c_same_at_every_position)),
        app("scatter-of-biased",        MessagePassing,  "(scatter_add ?rows (add ?x (broadcast ?s ?d ?c)) ?i)", bias_after_scatter,                Some(c_same_at_every_position)),
        // x^T (S g) for an aggregation S (gather by j, scatter-add by i) is (S^T x)^T g:
        // a weight gradient of messages `linear(src)` then reads the aggregate of the
        // layer's input that the forward pass computes (after `scatter-of-matmul` moved
        // the linear map behind the aggregation), instead of scattering the cotangent.
        app("weight-gradient-of-aggregate", MessagePassing, "(matmul (transpose ?p ?x) (scatter_add ?rows (gather ?g ?j) ?i))", aggregate_then_matmul, Some(p_swaps_x_narrower_than_g_i_j_vectors)),
        // A gather reads rows: what is done to every row the same way, or summed within
        // each row, can be done to the N rows before E positions read them (GAT's
        // per-head scores `sum(z_j * a, -1)` per node, then read per edge), and a sum
        // over the positions of gathered rows times a cotangent sums the cotangent per
        // row first when it is broadcast within each position (the attention vectors'
        // gradients: one cotangent per head, repeated over the head's channels).
        app("reshape-of-gather",        MessagePassing,  "(reshape ?s (gather ?x ?i))",                  gather_reshaped_rows,                      Some(reshape_keeps_rows)),
        app("gathered-times-invariant", MessagePassing,  "(mul (gather ?x ?i) (broadcast ?s ?d ?c))",    scale_before_gather,                       Some(c_same_at_every_position_i_reads_rows_again)),
        pat("sum-of-gathered-rows",     MessagePassing,  "(reduce_sum ?axes (gather ?x ?i))",             "(gather (reduce_sum ?axes ?x) ?i)",       Some(axes_within_rows_i_reads_rows_again)),
        app("sum-of-gathered-product",  MessagePassing,  "(reduce_sum ?axes (mul (gather ?x ?i) (broadcast ?s ?d ?y)))", scatter_then_sum,           Some(axes_0_y_smaller_i_reads_rows_again)),
        app("concat-weight-gradient",   MessagePassing,  "(matmul (transpose ?p (concat ?axis ?x ?y)) ?g)", stacked_matmuls,                     Some(p_swaps_axis_is_1_a_part_gathered)),
        pat("concat3-split",            MessagePassing,  "(concat ?axis ?x ?y ?z)",                      "(concat ?axis (concat ?axis ?x ?y) ?z)",  None),
        app("slice-of-matmul",          MessagePassing,  "(slice ?axis ?s ?e (matmul ?a ?b))",          slice_matmul_operand,                      None),
        app("slice-of-transpose",       MessagePassing,  "(slice ?axis ?s ?e (transpose ?p ?x))",        slice_before_transpose,                    Some(p_swaps)),
        app("slice-of-concat",          MessagePassing,  "(slice ?axis ?s ?e (concat ?axis ?x ?y))",     concat_part,                               None),
    ]
}

// ---- conditions ------------------------------------------------------------------------

fn z_is_zero(eg: &TensorGraph, v: &Vars) -> bool {
    is_const(eg, v("?z"), 0.0)
}
fn o_is_one(eg: &TensorGraph, v: &Vars) -> bool {
    is_const(eg, v("?o"), 1.0)
}
fn c_is_constant(eg: &TensorGraph, v: &Vars) -> bool {
    constant(eg, v("?c")).is_some()
}
fn k_is_constant(eg: &TensorGraph, v: &Vars) -> bool {
    constant(eg, v("?k")).is_some()
}
fn a_and_b_are_constants(eg: &TensorGraph, v: &Vars) -> bool {
    constant(eg, v("?a")).is_some() && constant(eg, v("?b")).is_some()
}
fn p_is_identity(eg: &TensorGraph, v: &Vars) -> bool {
    list(eg, v("?p")).iter().enumerate().all(|(i, &p)| i == p)
}
fn s_is_x_shape(eg: &TensorGraph, v: &Vars) -> bool {
    list(eg, v("?s")) == shape(eg, v("?x"))
}
/// `?p` swaps the two axes of a matrix.
fn p_swaps(eg: &TensorGraph, v: &Vars) -> bool {
    list(eg, v("?p")) == SWAP
}
fn axis_is_1(eg: &TensorGraph, v: &Vars) -> bool {
    int(eg, v("?axis")) == Some(1)
}
fn i_vector(eg: &TensorGraph, v: &Vars) -> bool {
    shape(eg, v("?i")).len() == 1
}
fn x_matrix_i_vector(eg: &TensorGraph, v: &Vars) -> bool {
    shape(eg, v("?x")).len() == 2 && i_vector(eg, v)
}
fn p_swaps_x_matrix_i_vector(eg: &TensorGraph, v: &Vars) -> bool {
    p_swaps(eg, v) && x_matrix_i_vector(eg, v)
}
/// Also: at least 4 indices per row. Near the cost model's break-even (a few per row)
/// the extracted form would flip between a batch of graphs' capacities and its probe
/// (`pipeline::capacity_probe`, 17 more of each), whose programs must match for the
/// counts to be read at run time (`schedule::dynamic`); far from it, it does not.
fn axes_0_x_matrix_i_vector_4_per_row(eg: &TensorGraph, v: &Vars) -> bool {
    let (rows, indices) = (shape(eg, v("?x")), shape(eg, v("?i")));
    list(eg, v("?axes")) == [0] && x_matrix_i_vector(eg, v) && indices[0] >= 4 * rows[0]
}
/// How many positions read each row of `?x` through `?i` (a vector), on average.
fn indices_per_row(eg: &TensorGraph, v: &Vars) -> f64 {
    let (rows, indices) = (shape(eg, v("?x")), shape(eg, v("?i")));
    match (rows.first(), &indices[..]) {
        (Some(&r), &[e]) if r > 0 => e as f64 / r as f64,
        _ => 0.0,
    }
}
/// At least 1.5 positions per row: work moved from positions to rows then pays (it
/// breaks even at 1 to 1.2), and the choice cannot flip between a batch of graphs'
/// capacities and its probe near 2 per row, the ratio of molecules and trees (see
/// `axes_0_x_matrix_i_vector_4_per_row`).
fn i_reads_rows_again(eg: &TensorGraph, v: &Vars) -> bool {
    indices_per_row(eg, v) >= 1.5
}
/// A reshape of gathered rows that keeps the position axis and regroups only within
/// each row (`[E, H*C] -> [E, H, C]`).
fn reshape_keeps_rows(eg: &TensorGraph, v: &Vars) -> bool {
    let (x, s) = (shape(eg, v("?x")), list(eg, v("?s")));
    let i = shape(eg, v("?i"));
    i.len() == 1
        && !x.is_empty()
        && s.first() == i.first()
        && x[1..].iter().product::<usize>() == s[1..].iter().product()
}
fn c_same_at_every_position_i_reads_rows_again(eg: &TensorGraph, v: &Vars) -> bool {
    c_same_at_every_position(eg, v) && i_reads_rows_again(eg, v)
}
fn axes_within_rows_i_reads_rows_again(eg: &TensorGraph, v: &Vars) -> bool {
    !list(eg, v("?axes")).contains(&0) && i_reads_rows_again(eg, v)
}
/// A sum over the positions (axis 0, maybe more) of gathered rows times a factor
/// broadcast within each position from fewer values (`[E, H] -> [E, H, C]`): the scatter
/// of those is cheaper than the product it replaces. (A full `[E, C]` factor would make
/// the scatter as costly as the product; measured slower on gnn-nonlinear's gradients,
/// where the product is fused into the loop that computes the factor.)
fn axes_0_y_smaller_i_reads_rows_again(eg: &TensorGraph, v: &Vars) -> bool {
    let (y, s, d) = (shape(eg, v("?y")), list(eg, v("?s")), list(eg, v("?d")));
    let per_position = |t: &[usize]| t[1..].iter().product::<usize>();
    list(eg, v("?axes")).contains(&0)
        && d.first() == Some(&0)
        && y.first() == s.first()
        && per_position(&y) < per_position(&s)
        && i_reads_rows_again(eg, v)
}
/// A reshape that keeps the position axis (`[E, H, C] -> [E, H*C]`).
fn reshape_keeps_positions(eg: &TensorGraph, v: &Vars) -> bool {
    let (inner, outer) = (shape(eg, v("?v")), list(eg, v("?s")));
    i_vector(eg, v) && inner.len() >= 2 && outer.len() >= 2 && inner[0] == outer[0]
}
/// A broadcast whose operand has the position axis as its own first axis.
fn broadcast_keeps_positions(eg: &TensorGraph, v: &Vars) -> bool {
    let d = list(eg, v("?d"));
    i_vector(eg, v) && d.first() == Some(&0) && shape(eg, v("?x")).first() == shape(eg, v("?i")).first()
}
/// A factor broadcast along the position axis: the same at every position.
fn c_same_at_every_position(eg: &TensorGraph, v: &Vars) -> bool {
    i_vector(eg, v) && !list(eg, v("?d")).contains(&0)
}
/// Also: `x` narrower than `g`, so that the new aggregate moves fewer columns (at equal
/// widths the two forms cost the same, and extraction, which counts a shared aggregate
/// once per use, could pick either).
fn p_swaps_x_narrower_than_g_i_j_vectors(eg: &TensorGraph, v: &Vars) -> bool {
    let (x, g) = (shape(eg, v("?x")), shape(eg, v("?g")));
    let vector = |i: &str| shape(eg, v(i)).len() == 1;
    p_swaps(eg, v) && x.len() == 2 && g.len() == 2 && x[1] < g[1] && vector("?i") && vector("?j")
}
/// Also: a part is a gather, so that splitting leaves it to `gathered-weight-gradient`
/// (split for nothing, it measured slower: more GEMM calls, the same flops).
fn p_swaps_axis_is_1_a_part_gathered(eg: &TensorGraph, v: &Vars) -> bool {
    let gathered = |x: Id| eg[x].nodes.iter().any(|n| matches!(n, TensorLang::Gather(_)));
    p_swaps(eg, v) && axis_is_1(eg, v) && (gathered(v("?x")) || gathered(v("?y")))
}

// ---- appliers --------------------------------------------------------------------------

/// One broadcast: input axis `i` goes to `d2[d1[i]]`.
fn compose_broadcasts(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let (d1, d2) = (list(eg, v("?d1")), list(eg, v("?d2")));
    let dims: Vec<usize> = d1.iter().map(|&i| d2[i]).collect();
    let d = attr(eg, Attr::List(dims));
    Some(eg.add(TensorLang::Broadcast([v("?s2"), d, v("?x")])))
}

/// Summing exactly the broadcast's new axes multiplies `x` by their size.
fn sum_of_broadcast(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let (axes, dims, s) = (list(eg, v("?axes")), list(eg, v("?d")), list(eg, v("?s")));
    let new_axes: Vec<usize> = (0..s.len()).filter(|a| !dims.contains(a)).collect();
    if axes != new_axes {
        return None;
    }
    let n: usize = new_axes.iter().map(|&a| s[a]).product();
    let x_shape = shape(eg, v("?x"));
    let k = constant_node(eg, n as f64, &x_shape);
    Some(eg.add(TensorLang::Binary(Binary::Mul, [v("?x"), k])))
}

/// Two sums as one over the union of their axes (numbered in `x`).
fn merge_sums(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let (a1, a2) = (list(eg, v("?a1")), list(eg, v("?a2")));
    let rank = shape(eg, v("?x")).len();
    let kept: Vec<usize> = (0..rank).filter(|a| !a1.contains(a)).collect();
    let mut axes: Vec<usize> = a1.iter().copied().chain(a2.iter().map(|&a| kept[a])).collect();
    axes.sort_unstable();
    let a = attr(eg, Attr::List(axes));
    Some(eg.add(TensorLang::ReduceSum([a, v("?x")])))
}

/// `sum(x * k) = sum(x) * k` for a constant `k`.
fn scale_after_sum(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let k = constant(eg, v("?k"))?;
    let axes = v("?axes");
    let sum = eg.add(TensorLang::ReduceSum([axes, v("?x")]));
    let out = shape(eg, sum);
    let kk = constant_node(eg, k, &out);
    Some(eg.add(TensorLang::Binary(Binary::Mul, [sum, kk])))
}

/// One transpose by the composed permutation, or none when it is the identity.
fn compose_transposes(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let (p1, p2) = (list(eg, v("?p1")), list(eg, v("?p2")));
    let perm: Vec<usize> = p2.iter().map(|&i| p1[i]).collect();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Some(v("?x"));
    }
    let p = attr(eg, Attr::List(perm));
    Some(eg.add(TensorLang::Transpose([p, v("?x")])))
}

/// `(A B)^T = B^T A^T`.
fn swapped_matmul(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let p = attr(eg, Attr::List(SWAP.to_vec()));
    let bt = eg.add(TensorLang::Transpose([p, v("?b")]));
    let at = eg.add(TensorLang::Transpose([p, v("?a")]));
    Some(eg.add(TensorLang::MatMul([bt, at])))
}

/// `concat(x, y) W = x W[:dx] + y W[dx:]`.
fn split_concat_matmul(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let (dx, dy) = (shape(eg, v("?x"))[1], shape(eg, v("?y"))[1]);
    let zero = attr(eg, Attr::Int(0));
    let mid = attr(eg, Attr::Int(dx as i64));
    let end = attr(eg, Attr::Int((dx + dy) as i64));
    let wx = eg.add(TensorLang::Slice([zero, zero, mid, v("?w")]));
    let wy = eg.add(TensorLang::Slice([zero, mid, end, v("?w")]));
    let px = eg.add(TensorLang::MatMul([v("?x"), wx]));
    let py = eg.add(TensorLang::MatMul([v("?y"), wy]));
    Some(eg.add(TensorLang::Binary(Binary::Add, [px, py])))
}

/// `gather(x, i)^T g = x^T scatter_add(g, i)`: the weight gradient of per-edge messages
/// sums the edges' cotangents per node first.
fn scatter_then_matmul(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let rows = attr(eg, Attr::Int(shape(eg, v("?x"))[0] as i64));
    let summed = eg.add(TensorLang::ScatterAdd([rows, v("?g"), v("?i")]));
    let xt = eg.add(TensorLang::Transpose([v("?p"), v("?x")]));
    Some(eg.add(TensorLang::MatMul([xt, summed])))
}

/// `reshape(gather(x, i)) = gather(reshape(x), i)` for a reshape within rows.
fn gather_reshaped_rows(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let rows = shape(eg, v("?x"))[0];
    let s = list(eg, v("?s"));
    let s = attr(
        eg,
        Attr::List(std::iter::once(rows).chain(s[1..].iter().copied()).collect()),
    );
    let x = eg.add(TensorLang::Reshape([s, v("?x")]));
    Some(eg.add(TensorLang::Gather([x, v("?i")])))
}

/// `gather(x, i) * c = gather(x * c, i)` for a factor `c` the same at every position.
fn scale_before_gather(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let x_shape = shape(eg, v("?x"));
    let s = attr(eg, Attr::List(x_shape));
    let c = eg.add(TensorLang::Broadcast([s, v("?d"), v("?c")]));
    let scaled = eg.add(TensorLang::Binary(Binary::Mul, [v("?x"), c]));
    Some(eg.add(TensorLang::Gather([scaled, v("?i")])))
}

/// `sum_e x[i[e]] * broadcast(y)[e] = sum_n x[n] * broadcast(scatter_add(y, i))[n]`.
fn scatter_then_sum(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let x_shape = shape(eg, v("?x"));
    let rows = attr(eg, Attr::Int(x_shape[0] as i64));
    let summed = eg.add(TensorLang::ScatterAdd([rows, v("?y"), v("?i")]));
    let s = attr(eg, Attr::List(x_shape));
    let summed = eg.add(TensorLang::Broadcast([s, v("?d"), summed]));
    let product = eg.add(TensorLang::Binary(Binary::Mul, [v("?x"), summed]));
    Some(eg.add(TensorLang::ReduceSum([v("?axes"), product])))
}

/// `[rows] + shape[1..]`: a scatter-add's output shape for values of `shape`.
fn scattered(eg: &mut TensorGraph, rows: Id, shape: &[usize]) -> Option<Id> {
    let rows = int(eg, rows)?;
    Some(attr(
        eg,
        Attr::List(std::iter::once(rows).chain(shape[1..].iter().copied()).collect()),
    ))
}

/// `scatter_add(reshape(v)) = reshape(scatter_add(v))` when each position's row is
/// only flattened.
fn reshape_after_scatter(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let s = scattered(eg, v("?rows"), &list(eg, v("?s")))?;
    let summed = eg.add(TensorLang::ScatterAdd([v("?rows"), v("?v"), v("?i")]));
    Some(eg.add(TensorLang::Reshape([s, summed])))
}

/// `scatter_add(broadcast(x)) = broadcast(scatter_add(x))` when the broadcast adds
/// only axes after the position axis: GAT's per-head weights repeated per channel are
/// summed per node before they are repeated.
fn broadcast_after_scatter(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let s = scattered(eg, v("?rows"), &list(eg, v("?s")))?;
    let summed = eg.add(TensorLang::ScatterAdd([v("?rows"), v("?x"), v("?i")]));
    Some(eg.add(TensorLang::Broadcast([s, v("?d"), summed])))
}

/// `scatter_add(x * c) = scatter_add(x) * c` for a factor `c` the same at every
/// position (GAT's attention vectors).
fn scale_after_scatter(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let s = scattered(eg, v("?rows"), &list(eg, v("?s")))?;
    let summed = eg.add(TensorLang::ScatterAdd([v("?rows"), v("?x"), v("?i")]));
    let c = eg.add(TensorLang::Broadcast([s, v("?d"), v("?c")]));
    Some(eg.add(TensorLang::Binary(Binary::Mul, [summed, c])))
}

/// `scatter_add(x + c) = scatter_add(x) + count * c` for a term `c` the same at every
/// position, `count = scatter_add(1, i)` (each row's number of positions): a message
/// `linear(src)`'s bias comes out of the aggregation, so that `scatter-of-matmul` can
/// move its weight behind it (the aggregate of `[E, F]` inputs, not of `[E, H]` outputs).
fn bias_after_scatter(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let out_shape = list(eg, v("?s"));
    let s = scattered(eg, v("?rows"), &out_shape)?;
    let summed = eg.add(TensorLang::ScatterAdd([v("?rows"), v("?x"), v("?i")]));
    let ones = constant_node(eg, 1.0, &shape(eg, v("?i")));
    let counts = eg.add(TensorLang::ScatterAdd([v("?rows"), ones, v("?i")]));
    let rows_axis = attr(eg, Attr::List(vec![0]));
    let counts = eg.add(TensorLang::Broadcast([s, rows_axis, counts]));
    let c = eg.add(TensorLang::Broadcast([s, v("?d"), v("?c")]));
    let bias = eg.add(TensorLang::Binary(Binary::Mul, [counts, c]));
    Some(eg.add(TensorLang::Binary(Binary::Add, [summed, bias])))
}

/// `x^T scatter_add(gather(g, j), i) = scatter_add(gather(x, i), j)^T g` (both are
/// `sum_e x[i[e]]^T g[j[e]]`); the new scatter has `g`'s rows.
fn aggregate_then_matmul(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let rows = attr(eg, Attr::Int(*shape(eg, v("?g")).first()? as i64));
    let read = eg.add(TensorLang::Gather([v("?x"), v("?i")]));
    let summed = eg.add(TensorLang::ScatterAdd([rows, read, v("?j")]));
    let st = eg.add(TensorLang::Transpose([v("?p"), summed]));
    Some(eg.add(TensorLang::MatMul([st, v("?g")])))
}

/// `sum_e x[i[e]] = sum_n count(n) x[n]` with `count = scatter_add(1, i)`: a bias
/// gradient of per-edge messages (`x` the nodes' cotangent read per edge) sums N rows
/// instead of E; the count is the in-degree that mean aggregation already computes.
fn counted_sum(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let (x_shape, i_shape) = (shape(eg, v("?x")), shape(eg, v("?i")));
    let ones = constant_node(eg, 1.0, &i_shape);
    let rows = attr(eg, Attr::Int(x_shape[0] as i64));
    let counts = eg.add(TensorLang::ScatterAdd([rows, ones, v("?i")]));
    let (s, d) = (attr(eg, Attr::List(x_shape)), attr(eg, Attr::List(vec![0])));
    let counts = eg.add(TensorLang::Broadcast([s, d, counts]));
    let weighted = eg.add(TensorLang::Binary(Binary::Mul, [v("?x"), counts]));
    Some(eg.add(TensorLang::ReduceSum([v("?axes"), weighted])))
}

/// `concat(x, y)^T g = concat(x^T g, y^T g)` (stacked rows): the weight gradient of
/// `linear(concat(src, dst))`, so that each part can be summed per node first
/// (`gathered-weight-gradient`) instead of multiplying `[E, dx + dy]` by `[E, n]`.
fn stacked_matmuls(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let xt = eg.add(TensorLang::Transpose([v("?p"), v("?x")]));
    let yt = eg.add(TensorLang::Transpose([v("?p"), v("?y")]));
    let px = eg.add(TensorLang::MatMul([xt, v("?g")]));
    let py = eg.add(TensorLang::MatMul([yt, v("?g")]));
    let rows = attr(eg, Attr::Int(0));
    Some(eg.add(TensorLang::Concat(vec![rows, px, py].into_boxed_slice())))
}

/// Rows of a product are a product of rows; columns, of columns.
fn slice_matmul_operand(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let axis = int(eg, v("?axis"))?;
    let (s, e) = (v("?s"), v("?e"));
    Some(if axis == 0 {
        let a = eg.add(TensorLang::Slice([v("?axis"), s, e, v("?a")]));
        eg.add(TensorLang::MatMul([a, v("?b")]))
    } else {
        let b = eg.add(TensorLang::Slice([v("?axis"), s, e, v("?b")]));
        eg.add(TensorLang::MatMul([v("?a"), b]))
    })
}

/// A slice of a matrix transpose is the transpose of the other axis' slice.
fn slice_before_transpose(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let axis = int(eg, v("?axis"))?;
    let other = attr(eg, Attr::Int(1 - axis as i64));
    let sliced = eg.add(TensorLang::Slice([other, v("?s"), v("?e"), v("?x")]));
    Some(eg.add(TensorLang::Transpose([v("?p"), sliced])))
}

/// A slice that is exactly one part of a concat is that part.
fn concat_part(eg: &mut TensorGraph, v: &Vars) -> Option<Id> {
    let axis = int(eg, v("?axis"))?;
    let (s, e) = (int(eg, v("?s"))?, int(eg, v("?e"))?);
    let dx = shape(eg, v("?x"))[axis];
    let dy = shape(eg, v("?y"))[axis];
    match (s, e) {
        (0, e) if e == dx => Some(v("?x")),
        (s, e) if s == dx && e == dx + dy => Some(v("?y")),
        _ => None,
    }
}

// ---- glue to egg -----------------------------------------------------------------------

/// Applies a table row: checks the condition, then instantiates the right side.
struct TableApplier {
    rhs: RhsImpl,
    when: Option<CondFn>,
}

enum RhsImpl {
    Pattern(Pattern<TensorLang>),
    Apply(ApplyFn),
}

impl Applier<TensorLang, super::analysis::TensorAnalysis> for TableApplier {
    fn apply_one(
        &self,
        eg: &mut TensorGraph,
        eclass: Id,
        subst: &Subst,
        ast: Option<&PatternAst<TensorLang>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let var = |name: &str| subst[name.parse::<Var>().expect("pattern variable")];
        if let Some(when) = self.when {
            if !when(eg, &var) {
                return vec![];
            }
        }
        match &self.rhs {
            RhsImpl::Pattern(p) => p.apply_one(eg, eclass, subst, ast, rule),
            RhsImpl::Apply(f) => match f(eg, &var) {
                Some(id) if eg.union(eclass, id) => vec![id],
                _ => vec![],
            },
        }
    }
}

/// The table as egg rewrites (all of them, or those `keep` selects).
pub fn rewrites(keep: impl Fn(&Rule) -> bool) -> Vec<Rewrite<TensorLang, super::analysis::TensorAnalysis>> {
    table()
        .into_iter()
        .filter(|r| keep(r))
        .map(|r| {
            let lhs: Pattern<TensorLang> = r.lhs.parse().unwrap_or_else(|e| panic!("rule {}: {e}", r.name));
            let rhs = match r.rhs {
                Rhs::Pattern(p) => RhsImpl::Pattern(p.parse().unwrap_or_else(|e| panic!("rule {}: {e}", r.name))),
                Rhs::Apply(f) => RhsImpl::Apply(f),
            };
            Rewrite::new(r.name, lhs, TableApplier { rhs, when: r.when })
                .unwrap_or_else(|e| panic!("rule {}: {e}", r.name))
        })
        .collect()
}
