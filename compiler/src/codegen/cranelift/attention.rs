//! Attention kernels ([`Attention`], made by the CPU pass `fuse_attention`) as library
//! code: the kernel's function is one call of [`mpc_attention`] with its [`Plan`].
//!
//! In: an attention kernel. Out: its function body (the call) and the plan, which the
//! [`super::JitProgram`] owns for as long as the code lives. The plan names each
//! operand by its slot in the kernel's table of base pointers, so the library reads the
//! run's buffers through the same table every kernel gets.
//!
//! Per batch item (threads split the items) and block of up to [`QUERY_BLOCK`] queries,
//! everything lives in a thread's scratch tiles laid out key-major with the queries as
//! lanes: the scores (each one fma chain over the depth in order), the transform's
//! steps one tile each, the maximum over the keys, `exp` (the models' bits: sixteen
//! lanes where the host has AVX-512, `wide_math`), the sum over the keys in key order
//! and its reciprocal, then each output row one fma chain over the keys in order times
//! that reciprocal (PyTorch's CPU softmax also multiplies by the reciprocal; here it
//! moves to the output: one division per query instead of one per score). The body is
//! plain Rust compiled for AVX2 + FMA and the baseline, picked by the host's features
//! (`mul_add` is always a fused multiply-add, so both give the same bits), and the
//! sixteen-lane body of [`attention_wide`] where the host has AVX-512.

#[cfg(target_arch = "x86_64")]
use super::attention_wide;
use super::{wide_math, Imports, Table};
use crate::codegen::ptx::math::exp_model;
use crate::ir::{Binary, Unary};
use crate::schedule::attention::{Attention, ScoreOp, Strided};
use cranelift_codegen::ir::{types, InstBuilder};
use cranelift_frontend::FunctionBuilder;

/// The most queries a tile holds as lanes (fewer when the keys are many, so that a
/// tile stays within [`TILE_FLOATS`]).
const QUERY_BLOCK: usize = 64;
const TILE_FLOATS: usize = 16384;

/// What [`mpc_attention`] needs: the kernel and the table slot of each buffer it reads
/// or writes.
pub(crate) struct Plan {
    pub(super) att: Attention,
    q: usize,
    k: usize,
    v: usize,
    out: usize,
    /// The slots of `q`, `k` and `v`'s addends (`Strided::plus`), where they have one.
    plus: [Option<usize>; 3],
    /// Per score step: the slot of a load's buffer (0 for other steps).
    loads: Vec<usize>,
}

/// The kernel's body: one call of [`mpc_attention`] on the items `start..end`. The plan
/// goes into `plans`; the code holds its address.
#[allow(clippy::vec_box)] // the code holds each plan's address: a box does not move
pub(super) fn emit(
    fb: &mut FunctionBuilder,
    att: &Attention,
    im: &Imports,
    table: &mut Table,
    plans: &mut Vec<Box<Plan>>,
) {
    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let params = fb.block_params(entry).to_vec();
    let (bufs, start, end) = (params[0], params[1], params[2]);
    let mut slot = |buf: usize| table.slot(buf) as usize / 8;
    let plan = Box::new(Plan {
        q: slot(att.q.buf),
        k: slot(att.k.buf),
        v: slot(att.v.buf),
        out: slot(att.out.buf),
        plus: [&att.q, &att.k, &att.v].map(|x| x.plus.as_ref().map(|p| slot(p.buf))),
        loads: att
            .scores
            .iter()
            .map(|op| match op {
                ScoreOp::Load(s) => slot(s.buf),
                _ => 0,
            })
            .collect(),
        att: att.clone(),
    });
    let address = fb.ins().iconst(types::I64, &*plan as *const Plan as i64);
    plans.push(plan);
    fb.ins().call(im.attention, &[address, bufs, start, end]);
    fb.ins().return_(&[]);
    fb.seal_all_blocks();
}

/// Runs batch items `start..end` of the plan's kernel.
///
/// # Safety
/// `plan` is a live [`Plan`]; `bufs` is its kernel's table, every slot the base of a
/// buffer that holds every element the kernel's operands address.
pub(super) unsafe extern "C" fn mpc_attention(plan: *const Plan, bufs: *const *mut f32, start: i64, end: i64) {
    // SAFETY: the caller's contract.
    let plan = unsafe { &*plan };
    let (start, end) = (start.max(0) as usize, end.max(0) as usize);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: each variant runs only where the host has its features.
        unsafe {
            if wide_math::available() && attention_wide::fits(plan) {
                return attention_wide::items(plan, bufs, start, end);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return items_avx2(plan, bufs, start, end);
            }
        }
    }
    // SAFETY: the caller's contract.
    unsafe { items(plan, bufs, start, end) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn items_avx2(plan: &Plan, bufs: *const *mut f32, start: usize, end: usize) {
    // SAFETY: the caller's contract.
    unsafe { items(plan, bufs, start, end) }
}

/// One batch item's operands: where element (0, 0) of each is.
pub(super) struct Item {
    pub q: *mut f32,
    pub k: *mut f32,
    pub v: *mut f32,
    pub out: *mut f32,
    /// `q`, `k` and `v`'s addends (null where they have none).
    pub plus: [*mut f32; 3],
    /// Per score step, a load's tensor (null for other steps).
    pub loads: Vec<*mut f32>,
}

impl Item {
    /// An item of `plan` not yet located ([`Item::locate`]).
    pub(super) fn new(plan: &Plan) -> Item {
        let null = std::ptr::null_mut();
        Item {
            q: null,
            k: null,
            v: null,
            out: null,
            plus: [null; 3],
            loads: vec![null; plan.att.scores.len()],
        }
    }

    /// Points at item `j` (row-major over the batch axes).
    ///
    /// # Safety
    /// `bufs` is the plan's kernel's table.
    pub(super) unsafe fn locate(&mut self, plan: &Plan, bufs: *const *mut f32, j: usize) {
        let att = &plan.att;
        let mut coords = [0usize; 4];
        let mut rest = j;
        for (c, &n) in coords.iter_mut().zip(&att.batch).rev() {
            *c = rest % n;
            rest /= n;
        }
        // SAFETY: the caller's table; the offsets stay within the buffers the
        // scheduler sized for every item.
        let at = |slot: usize, op: &Strided| unsafe {
            let batch: i64 = op.batch.iter().zip(&coords).map(|(&c, &x)| c * x as i64).sum();
            (*bufs.add(slot)).offset((op.offset + batch) as isize)
        };
        for ((load, op), &slot) in self.loads.iter_mut().zip(&att.scores).zip(&plan.loads) {
            if let ScoreOp::Load(s) = op {
                *load = at(slot, s);
            }
        }
        self.q = at(plan.q, &att.q);
        self.k = at(plan.k, &att.k);
        self.v = at(plan.v, &att.v);
        self.out = at(plan.out, &att.out);
        for ((p, x), slot) in self.plus.iter_mut().zip([&att.q, &att.k, &att.v]).zip(plan.plus) {
            if let (Some(plus), Some(slot)) = (&x.plus, slot) {
                *p = at(slot, plus);
            }
        }
    }

    /// Rows `r0..r0 + rows` of operand `x` (`main` its item's base, `plus` its
    /// addend's or null) packed: `dst[r * cols + c]`, the addend added.
    ///
    /// # Safety
    /// The rows are in the item's operand (and addend).
    #[inline(always)]
    pub(super) unsafe fn pack(
        x: &Strided,
        (main, plus): (*const f32, *const f32),
        r0: usize,
        rows: usize,
        cols: usize,
        dst: &mut [f32],
    ) {
        let row_of =
            |base: *const f32, s: &Strided, r: usize| unsafe { base.offset((r0 + r) as isize * s.rs as isize) };
        for (r, d) in dst[..rows * cols].chunks_exact_mut(cols).enumerate() {
            let from = row_of(main, x, r);
            // Element by element: `copy_from_slice` would call `memcpy` per short row.
            for (c, d) in d.iter_mut().enumerate() {
                *d = unsafe { *from.offset(c as isize * x.cs as isize) };
            }
            let Some(p) = &x.plus else { continue };
            let from = row_of(plus, p, r);
            if p.cs == 1 {
                for (d, &a) in d.iter_mut().zip(unsafe { std::slice::from_raw_parts(from, cols) }) {
                    *d += a;
                }
            } else {
                for (c, d) in d.iter_mut().enumerate() {
                    *d += unsafe { *from.offset(c as isize * p.cs as isize) };
                }
            }
        }
    }

    /// `q`, `k` or `v` (`which` 0, 1, 2) as base and addend pointers.
    pub(super) fn operand(&self, which: usize) -> (*const f32, *const f32) {
        let main = [self.q, self.k, self.v][which];
        (main as *const f32, self.plus[which] as *const f32)
    }
}

/// A thread's tiles (see the module doc).
struct Scratch {
    /// Queries by depth, transposed: `qt[d * lanes + i]`.
    qt: Vec<f32>,
    /// One `[keys, lanes]` tile per score step.
    tiles: Vec<f32>,
    /// K and V packed: `kp[key * depth + d]`, `vt[key * width + w]`.
    kp: Vec<f32>,
    vt: Vec<f32>,
    /// A block's queries packed: `qrows[i * depth + d]`.
    qrows: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f32>,
    row: Vec<f32>,
}

/// The portable body (see the module doc).
#[inline(always)]
pub(super) unsafe fn items(plan: &Plan, bufs: *const *mut f32, start: usize, end: usize) {
    let att = &plan.att;
    let lanes = att.queries.min(QUERY_BLOCK).min((TILE_FLOATS / att.keys).max(8));
    let tile = att.keys * lanes;
    let mut s = Scratch {
        qt: vec![0.0; att.depth * lanes],
        tiles: vec![0.0; att.scores.len() * tile],
        kp: vec![0.0; att.keys * att.depth],
        vt: vec![0.0; att.keys * att.width],
        qrows: vec![0.0; lanes * att.depth],
        max: vec![0.0; lanes],
        sum: vec![0.0; lanes],
        row: vec![0.0; att.width],
    };
    let mut item = Item::new(plan);
    for j in start..end {
        // SAFETY: the caller's table and buffers.
        unsafe { item.locate(plan, bufs, j) };
        unsafe { Item::pack(&att.k, item.operand(1), 0, att.keys, att.depth, &mut s.kp) };
        unsafe { Item::pack(&att.v, item.operand(2), 0, att.keys, att.width, &mut s.vt) };
        let mut q0 = 0;
        while q0 < att.queries {
            let n = lanes.min(att.queries - q0);
            unsafe { block(att, &mut s, &item, q0, n) };
            q0 += n;
        }
    }
}

/// Queries `q0..q0 + n` of one item: scores, transform, softmax, output rows.
#[inline(always)]
unsafe fn block(att: &Attention, s: &mut Scratch, item: &Item, q0: usize, n: usize) {
    let out = item.out;
    let (keys, tile, depth) = (att.keys, att.keys * n, att.depth);
    unsafe { Item::pack(&att.q, item.operand(0), q0, n, depth, &mut s.qrows) };
    for d in 0..depth {
        for i in 0..n {
            s.qt[d * n + i] = s.qrows[i * depth + d];
        }
    }
    for (step, op) in att.scores.iter().enumerate() {
        let (done, rest) = s.tiles.split_at_mut(step * tile);
        let cur = &mut rest[..tile];
        let operand = |x: usize| &done[x * tile..(x + 1) * tile];
        match op {
            ScoreOp::Product => {
                for key in 0..keys {
                    let row = &mut cur[key * n..(key + 1) * n];
                    row.fill(0.0);
                    for d in 0..depth {
                        let kd = s.kp[key * depth + d];
                        for (r, &qd) in row.iter_mut().zip(&s.qt[d * n..(d + 1) * n]) {
                            *r = kd.mul_add(qd, *r);
                        }
                    }
                }
            }
            ScoreOp::Load(from) => {
                let src = item.loads[step];
                for key in 0..keys {
                    let row = &mut cur[key * n..(key + 1) * n];
                    let first = unsafe { src.offset(q0 as isize * from.rs as isize + key as isize * from.cs as isize) };
                    match from.rs {
                        0 => row.fill(unsafe { *first }),
                        1 => row.copy_from_slice(unsafe { std::slice::from_raw_parts(first, n) }),
                        rs => {
                            for (i, r) in row.iter_mut().enumerate() {
                                *r = unsafe { *first.offset(i as isize * rs as isize) };
                            }
                        }
                    }
                }
            }
            ScoreOp::Const(c) => cur.fill(*c),
            ScoreOp::Unary(op, a) => {
                let a = operand(*a);
                match op {
                    Unary::Neg => each(cur, a, |x| -x),
                    _ => cur.copy_from_slice(a),
                }
            }
            ScoreOp::Binary(op, a, b) => {
                let (a, b) = (operand(*a), operand(*b));
                match op {
                    Binary::Add => both(cur, a, b, |x, y| x + y),
                    Binary::Sub => both(cur, a, b, |x, y| x - y),
                    Binary::Mul => both(cur, a, b, |x, y| x * y),
                    Binary::Div => both(cur, a, b, |x, y| x / y),
                    Binary::Max => both(cur, a, b, |x, y| Binary::Max.eval(x, y)),
                    Binary::Greater => both(cur, a, b, |x, y| Binary::Greater.eval(x, y)),
                }
            }
            ScoreOp::Fma(a, b, c) => {
                let (a, b, c) = (operand(*a), operand(*b), operand(*c));
                for (((r, &x), &y), &z) in cur.iter_mut().zip(a).zip(b).zip(c) {
                    *r = x.mul_add(y, z);
                }
            }
        }
    }
    let last = att.scores.len() - 1;
    let x = &mut s.tiles[last * tile..(last + 1) * tile];
    let (max, sum) = (&mut s.max[..n], &mut s.sum[..n]);
    max.copy_from_slice(&x[..n]);
    for key in 1..keys {
        for (m, &v) in max.iter_mut().zip(&x[key * n..(key + 1) * n]) {
            *m = Binary::Max.eval(*m, v);
        }
    }
    for key in 0..keys {
        for (v, &m) in x[key * n..(key + 1) * n].iter_mut().zip(max.iter()) {
            *v -= m;
        }
    }
    exp_in_place(x);
    sum.fill(0.0);
    for key in 0..keys {
        for (z, &v) in sum.iter_mut().zip(&x[key * n..(key + 1) * n]) {
            *z += v;
        }
    }
    // The normalization goes to the output rows: one division per query, not per key.
    for z in sum.iter_mut() {
        *z = 1.0 / *z;
    }
    let width = att.width;
    for i in 0..n {
        let row = &mut s.row[..];
        row.fill(0.0);
        for key in 0..keys {
            let p = x[key * n + i];
            for (r, &vw) in row.iter_mut().zip(&s.vt[key * width..(key + 1) * width]) {
                *r = p.mul_add(vw, *r);
            }
        }
        let dst = unsafe { out.offset((q0 + i) as isize * att.out.rs as isize) };
        for (w, &r) in row.iter().enumerate() {
            unsafe { *dst.offset(w as isize * att.out.cs as isize) = r * sum[i] };
        }
    }
}

#[inline(always)]
fn each(out: &mut [f32], a: &[f32], f: impl Fn(f32) -> f32) {
    for (r, &x) in out.iter_mut().zip(a) {
        *r = f(x);
    }
}

#[inline(always)]
fn both(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((r, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *r = f(x, y);
    }
}

/// `x = exp(x)` with the models' bits.
fn exp_in_place(x: &mut [f32]) {
    if wide_math::maps() {
        // SAFETY: `x` holds `x.len()` f32s, mapped in place.
        unsafe { wide_math::mpc_map_math(0, x.as_ptr(), x.as_mut_ptr(), x.len() as i64) };
    } else {
        for v in x.iter_mut() {
            *v = exp_model(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded::SplitMix64;

    fn strided(buf: usize, batch: [i64; 2], rs: i64, cs: i64) -> Strided {
        Strided {
            buf,
            offset: 0,
            batch: batch.to_vec(),
            rs,
            cs,
            plus: None,
        }
    }

    fn plus(mut x: Strided, p: Strided) -> Strided {
        x.plus = Some(Box::new(p));
        x
    }

    /// 2 x 3 items of 21 queries (a block of 16 lanes and one of 5), 19 keys, depth 5,
    /// width 18 (16 columns and 2): the key and output operands transposed, addends to
    /// Q (per query), K (per head and depth) and V (every other element of a row), a
    /// bias over the keys (a broadcast), one over the pairs (a gather), every op kind.
    fn plan() -> (Plan, Vec<Vec<f32>>) {
        let (b, h, tq, tk, d, w) = (2usize, 3usize, 21usize, 19usize, 5usize, 18usize);
        let per = |rows: usize, cols: usize| [(h * rows * cols) as i64, (rows * cols) as i64];
        let scores = vec![
            ScoreOp::Product,
            ScoreOp::Const(0.3),
            ScoreOp::Load(strided(4, [tk as i64, 0], 0, 1)),
            ScoreOp::Fma(0, 1, 2),
            ScoreOp::Load(strided(5, [0, 0], tk as i64, 1)),
            ScoreOp::Binary(Binary::Add, 3, 4),
            ScoreOp::Unary(Unary::Neg, 5),
            ScoreOp::Binary(Binary::Max, 6, 5),
            ScoreOp::Binary(Binary::Greater, 5, 1),
            ScoreOp::Binary(Binary::Mul, 8, 1),
            ScoreOp::Binary(Binary::Sub, 7, 9),
            ScoreOp::Binary(Binary::Div, 10, 1),
        ];
        let att = Attention {
            batch: vec![b, h],
            queries: tq,
            keys: tk,
            depth: d,
            width: w,
            q: plus(strided(0, per(tq, d), d as i64, 1), strided(8, [0, 0], 1, 0)),
            k: plus(strided(1, per(tk, d), 1, tk as i64), strided(6, [0, d as i64], 0, 1)),
            v: plus(strided(2, per(tk, w), w as i64, 1), strided(7, [2 * w as i64, 0], 0, 2)),
            out: strided(3, per(tq, w), 1, tq as i64),
            scores,
        };
        let mut rng = SplitMix64::new(3);
        let mut random = |n: usize| (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect::<Vec<f32>>();
        let bufs = vec![
            random(b * h * tq * d),
            random(b * h * tk * d),
            random(b * h * tk * w),
            vec![0.0; b * h * tq * w],
            random(b * tk),
            random(tq * tk),
            random(h * d),
            random(b * 2 * w),
            random(tq),
        ];
        let loads = (0..att.scores.len())
            .map(|i| match i {
                2 => 4,
                4 => 5,
                _ => 0,
            })
            .collect();
        let plan = Plan {
            att,
            q: 0,
            k: 1,
            v: 2,
            out: 3,
            plus: [Some(8), Some(6), Some(7)],
            loads,
        };
        (plan, bufs)
    }

    fn run(plan: &Plan, bufs: &mut [Vec<f32>], wide: bool) -> Vec<f32> {
        let table: Vec<*mut f32> = bufs.iter_mut().map(|b| b.as_mut_ptr()).collect();
        let items = plan.att.items();
        // SAFETY: the table's buffers hold every element the plan addresses.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            if wide {
                // Two calls, as two threads would split the items.
                attention_wide::items(plan, table.as_ptr(), 0, 2);
                attention_wide::items(plan, table.as_ptr(), 2, items);
                return bufs[3].clone();
            }
            let _ = wide;
            super::items(plan, table.as_ptr(), 0, items);
        }
        bufs[3].clone()
    }

    #[test]
    fn sixteen_lanes_give_the_portable_bodys_bits() {
        let (plan, mut bufs) = plan();
        let portable = run(&plan, &mut bufs, false);
        let nonzero = portable.iter().filter(|x| **x != 0.0).count();
        assert!(portable.iter().all(|x| x.is_finite()) && nonzero > portable.len() / 2);
        if !(wide_math::available() && attention_wide::fits(&plan)) {
            eprintln!("no AVX-512 on this host: the sixteen-lane body is not used, nothing to compare");
            return;
        }
        bufs[3].fill(0.0);
        let wide = run(&plan, &mut bufs, true);
        for (i, (a, b)) in portable.iter().zip(&wide).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "element {i}: portable {a}, sixteen lanes {b}");
        }
    }
}
