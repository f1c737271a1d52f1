//! Long math out of the loops that use it (the pass `split_long_math`, for the CPU,
//! after scheduling).
//!
//! In: a scheduled [`Program`]. Out: the same program in which a large loop that
//! applies `exp`, `log`, `tanh` or `erf` to each of its elements runs as three kernels:
//! the loop computing those functions' arguments into temporaries (its *arguments*
//! kernel, left out where an argument is already a buffer read in row-major order), a
//! *map* kernel per function (`t[i] = exp(t[i])`, in place), and the loop itself,
//! which reads the results. The code generator runs a map as one call of its routine
//! ([`crate::codegen::cranelift::wide_math`]), sixteen lanes (AVX-512) or eight (AVX2)
//! where Cranelift code has four; on other hosts a map is an ordinary vector loop.
//!
//! Why: such loops were compute-bound (the transformer's GELU and softmax `exp`, a
//! third of its inference), and the two extra passes over a temporary cost a fraction
//! of the math they move (the temporaries are the loop's size and stay in cache).
//!
//! Values do not change: a map computes the same function of the same argument bits
//! (the routines perform the inline code's operations), and the arguments kernel the
//! argument's own expressions. A function of another's result (`log(1 + exp(x))`)
//! moves in a second round, from the loop that now reads the first one's result.
//!
//! Scatters whose threads own output rows keep their math ([`math_in_owned_blocks`];
//! `MPC_NO_BLOCK_MATH=1` splits them like any loop, for `mpc-bench --compare`).

use super::analysis::{expr_levels, live_exprs};
use super::fuse::finish;
use super::{Affine, BufId, BufKind, Buffer, Expr, ExprId, Kernel, KernelBody, LoopKernel, Program, Store};
use crate::ir::{DType, Unary};

/// Loops of fewer elements keep their math inline: below this, the two kernel
/// launches that a split adds cost about what sixteen lanes save.
const MIN_ELEMENTS: usize = 4096;

/// Scatters keep their math only up to this row width (a position's arrays, one row
/// per function, live on the code's stack).
pub const MAX_BLOCK_MATH_WIDTH: usize = 1024;

/// At most this many rounds per loop (functions of functions of functions ...).
const MAX_ROUNDS: usize = 4;

/// Splits `p`'s large loops with long math (see the module doc).
pub fn split_long_math(p: &mut Program) {
    if std::env::var_os("MPC_INLINE_MATH").is_some() {
        return;
    }
    let kernels = std::mem::take(&mut p.kernels);
    for kernel in kernels {
        let mut rest = kernel;
        for _ in 0..MAX_ROUNDS {
            match split(p, &rest) {
                Some((before, after)) => {
                    p.kernels.extend(before);
                    rest = after;
                }
                None => break,
            }
        }
        // A loop whose only store was a moved function's result has nothing left to do.
        if !matches!(&rest.body, KernelBody::Loop(lk) if lk.stores.is_empty()) {
            p.kernels.push(rest);
        }
    }
}

fn is_long(op: Unary) -> bool {
    matches!(op, Unary::Exp | Unary::Log | Unary::Tanh | Unary::Erf)
}

/// Whether `kernel`'s long math stays in it, for the code generator to run in chunks of
/// each block of owned positions (`codegen::cranelift::block_math`): a scatter whose
/// threads own output rows, whose row is known one axis outside the innermost, an
/// innermost axis of a fixed extent in whole vectors, no Philox and no sums along that
/// axis. Split out, the arguments, the map and the scatter would each pass over a
/// `[positions, row]` temporary, and a thread's scatter would read its rows' values
/// from wherever another thread had computed them (gnn-nonlinear's max aggregation of
/// `tanh` messages: three passes over 1.9 MB, a third of its evaluation step).
pub fn math_in_owned_blocks(p: &Program, kernel: &Kernel) -> bool {
    let KernelBody::Loop(lk) = &kernel.body else {
        return false;
    };
    if std::env::var_os("MPC_NO_BLOCK_MATH").is_some() {
        return false;
    }
    lk.threads_own_rows(p, kernel.parallel) && owned_blocks_fit(p, lk)
}

/// The shape [`math_in_owned_blocks`] asks of a loop besides its threads owning rows
/// (the code generator checks the same before it plans the blocks).
pub fn owned_blocks_fit(p: &Program, lk: &LoopKernel) -> bool {
    let r = lk.domain.len();
    if r < 2 {
        return false;
    }
    let inner = r - 1;
    let width = lk.domain[inner];
    let level = expr_levels(lk, &(1..=r).collect::<Vec<_>>());
    let row_known = lk.stores.iter().all(|s| match s {
        Store::Scatter { row, .. } => level[*row] == inner,
        Store::Reduce { at, .. } => at.coef[inner] != 0,
        Store::Write { .. } => true,
    });
    let philox = lk.exprs.iter().any(|e| matches!(e, Expr::Philox { .. }));
    let fixed = p.dynamic_slot(width).is_none() && width <= MAX_BLOCK_MATH_WIDTH;
    width.is_multiple_of(4) && fixed && row_known && !philox
}

/// The long math that moves in one round: `exp`, `log`, `tanh` or `erf` of arguments
/// that use no long math, live, per element (at the innermost level `r`; math at an
/// outer level runs once per row already), with its function.
pub fn first_round_math(lk: &LoopKernel, live: &[bool], level: &[usize]) -> Vec<(ExprId, Unary)> {
    let r = lk.domain.len();
    let mut has_math = vec![false; lk.exprs.len()];
    let mut moved = Vec::new();
    for (e, x) in lk.exprs.iter().enumerate() {
        let uses = x.operands().iter().any(|&o| has_math[o]);
        let long = match x {
            Expr::Unary(op, _) if is_long(*op) => Some(*op),
            _ => None,
        };
        has_math[e] = uses || long.is_some();
        if let (Some(op), false, true, true) = (long, uses, live[e], level[e] == r) {
            moved.push((e, op));
        }
    }
    moved
}

/// Whether `lk` is a map kernel: `dst[i] = f(src[i])` in row-major order.
fn is_map(lk: &LoopKernel) -> bool {
    let flat = Affine::row_major(&lk.domain);
    matches!(
        (lk.exprs.as_slice(), lk.stores.as_slice()),
        ([Expr::Load { at, .. }, Expr::Unary(..)], [Store::Write { at: to, value: 1, .. }]) if *at == flat && *to == flat
    )
}

/// The kernels to run before `kernel` and what it becomes, if it has long math to move.
fn split(p: &mut Program, kernel: &Kernel) -> Option<(Vec<Kernel>, Kernel)> {
    let KernelBody::Loop(lk) = &kernel.body else {
        return None;
    };
    let r = lk.domain.len();
    let elements: usize = lk.domain.iter().product();
    if r == 0 || elements < MIN_ELEMENTS || is_map(lk) || reads_what_it_writes(lk) || math_in_owned_blocks(p, kernel) {
        return None;
    }
    let live = live_exprs(lk).ok()?;
    let level = expr_levels(lk, &(1..=r).collect::<Vec<_>>());
    // Only functions of math-free arguments move in this round.
    let moved: Vec<ExprId> = first_round_math(lk, &live, &level)
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    if moved.is_empty() {
        return None;
    }
    let flat = Affine::row_major(&lk.domain);
    let mut arguments = Vec::new();
    let mut maps = Vec::new();
    let mut results = Vec::new();
    for &e in &moved {
        let Expr::Unary(op, a) = lk.exprs[e] else {
            unreachable!("a moved expression is a unary op")
        };
        // Where the loop stores the result itself in row-major order, the map writes
        // it there and the loop's store goes (the softmax's `exp`: no copy).
        let result = stored_in_order(p, lk, e, &flat).unwrap_or_else(|| temporary(p, lk, elements, e));
        let source = match &lk.exprs[a] {
            Expr::Load { buf, at } if *at == flat && p.buffers[*buf].dtype == DType::F32 => *buf,
            _ => {
                arguments.push(Store::Write {
                    buf: result,
                    at: flat.clone(),
                    value: a,
                });
                result
            }
        };
        maps.push(loop_kernel(
            lk.domain.clone(),
            vec![
                Expr::Load {
                    buf: source,
                    at: flat.clone(),
                },
                Expr::Unary(op, 0),
            ],
            vec![Store::Write {
                buf: result,
                at: flat.clone(),
                value: 1,
            }],
        ));
        results.push((e, result));
    }
    let mut before = Vec::new();
    if !arguments.is_empty() {
        before.push(loop_kernel(lk.domain.clone(), lk.exprs.clone(), arguments));
    }
    before.extend(maps);
    let mut after = lk.clone();
    for (e, buf) in results {
        after.exprs[e] = Expr::Load { buf, at: flat.clone() };
        after
            .stores
            .retain(|s| !matches!(s, Store::Write { buf: b, value, .. } if *b == buf && *value == e));
    }
    let mut rest = kernel.clone();
    rest.body = KernelBody::Loop(compacted(after));
    let before = before
        .into_iter()
        .map(|k| finish(KernelBody::Loop(compacted(k))))
        .collect();
    Some((before, rest))
}

/// A loop that reads a buffer it writes (an update in place) stays whole: its
/// arguments kernel would read the buffer as it was, which only an elementwise
/// update would allow, and that is not worth proving here.
fn reads_what_it_writes(lk: &LoopKernel) -> bool {
    lk.stores.iter().any(|s| {
        lk.exprs
            .iter()
            .any(|e| matches!(e, Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } if *buf == s.buf()))
    })
}

/// The buffer that `lk` writes expression `e` to in row-major order and writes
/// nothing else to, if any.
fn stored_in_order(p: &Program, lk: &LoopKernel, e: ExprId, flat: &Affine) -> Option<BufId> {
    let buf = lk.stores.iter().find_map(|s| match s {
        Store::Write { buf, at, value } if *value == e && at == flat => Some(*buf),
        _ => None,
    })?;
    let alone = lk.stores.iter().filter(|s| s.buf() == buf).count() == 1;
    (alone && p.buffers[buf].dtype == DType::F32).then_some(buf)
}

/// A temporary of `elements` f32s for expression `e`'s values, named after the
/// buffer of `lk`'s first store (for listings).
fn temporary(p: &mut Program, lk: &LoopKernel, elements: usize, e: ExprId) -> BufId {
    let value = lk.stores.first().map_or(e as u32, |s| p.buffers[s.buf()].value);
    p.buffers.push(Buffer {
        kind: BufKind::Temp,
        dtype: DType::F32,
        len: elements,
        value,
    });
    p.buffers.len() - 1
}

fn loop_kernel(domain: Vec<usize>, exprs: Vec<Expr>, stores: Vec<Store>) -> LoopKernel {
    LoopKernel {
        domain,
        exprs,
        stores,
        scatter_rows: None,
        row_blocks: None,
        zeroed: false,
        col_chunks: None,
    }
}

/// `lk` with only the expressions its stores need, renumbered in order.
fn compacted(mut lk: LoopKernel) -> LoopKernel {
    let live = live_exprs(&lk).expect("a scheduled kernel is well formed");
    let mut map = vec![usize::MAX; lk.exprs.len()];
    let mut exprs = Vec::new();
    for (e, x) in lk.exprs.iter().enumerate() {
        if live[e] {
            map[e] = exprs.len();
            exprs.push(x.remapped(&map));
        }
    }
    lk.exprs = exprs;
    lk.stores = lk.stores.into_iter().map(|s| s.remapped(&map)).collect();
    lk
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(kernel: LoopKernel, buffers: usize) -> Program {
        let buffers = (0..buffers)
            .map(|i| Buffer {
                kind: BufKind::Temp,
                dtype: DType::F32,
                len: 64 * 128,
                value: i as u32,
            })
            .collect();
        Program {
            name: "t".into(),
            buffers,
            kernels: vec![finish(KernelBody::Loop(kernel))],
            outputs: vec![],
            checks: vec![],
            dynamic: vec![],
        }
    }

    fn load(buf: BufId, coef: Vec<i64>) -> Expr {
        Expr::Load {
            buf,
            at: Affine { coef, offset: 0 },
        }
    }

    /// GELU's shape: `y = x * (1 + erf(x * c))` with a bias broadcast along rows.
    #[test]
    fn gelu_splits_into_arguments_map_and_rest() {
        let lk = loop_kernel(
            vec![64, 128],
            vec![
                load(0, vec![128, 1]),
                load(1, vec![0, 1]),
                Expr::Binary(crate::ir::Binary::Add, 0, 1),
                Expr::Const(0.5f32.to_bits()),
                Expr::Binary(crate::ir::Binary::Mul, 2, 3),
                Expr::Unary(Unary::Erf, 4),
                Expr::Binary(crate::ir::Binary::Mul, 2, 5),
            ],
            vec![Store::Write {
                buf: 2,
                at: Affine::row_major(&[64, 128]),
                value: 6,
            }],
        );
        let mut p = program(lk, 3);
        split_long_math(&mut p);
        let text = crate::schedule::print_program(&p);
        assert_eq!(p.kernels.len(), 3, "{text}");
        let bodies: Vec<&LoopKernel> = p
            .kernels
            .iter()
            .map(|k| match &k.body {
                KernelBody::Loop(lk) => lk,
                _ => panic!("{text}"),
            })
            .collect();
        // The arguments: x + b, times c, into the temporary; no erf.
        assert!(!bodies[0].exprs.iter().any(|e| matches!(e, Expr::Unary(..))), "{text}");
        assert!(matches!(bodies[0].stores[..], [Store::Write { buf: 3, .. }]), "{text}");
        // The map: erf in place on the temporary.
        assert!(is_map(bodies[1]), "{text}");
        assert!(matches!(bodies[1].exprs[1], Expr::Unary(Unary::Erf, 0)), "{text}");
        // The rest reads the result and still computes x + b itself.
        assert!(bodies[2].exprs.contains(&load(3, vec![128, 1])), "{text}");
        assert!(!bodies[2].exprs.iter().any(|e| matches!(e, Expr::Unary(..))), "{text}");
        assert!(p.kernels.iter().all(|k| k.parallel), "{text}");
    }

    /// `exp` of a buffer read in row-major order needs no arguments kernel, and a
    /// function of its result moves in a second round.
    #[test]
    fn a_chain_of_functions_moves_round_by_round() {
        let lk = loop_kernel(
            vec![64, 128],
            vec![
                load(0, vec![128, 1]),
                Expr::Unary(Unary::Exp, 0),
                Expr::Const(1f32.to_bits()),
                Expr::Binary(crate::ir::Binary::Add, 1, 2),
                Expr::Unary(Unary::Log, 3),
            ],
            vec![Store::Write {
                buf: 1,
                at: Affine::row_major(&[64, 128]),
                value: 4,
            }],
        );
        let mut p = program(lk, 2);
        split_long_math(&mut p);
        let text = crate::schedule::print_program(&p);
        let maps: Vec<Unary> = p
            .kernels
            .iter()
            .filter_map(|k| match &k.body {
                KernelBody::Loop(lk) if is_map(lk) => match lk.exprs[1] {
                    Expr::Unary(op, _) => Some(op),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(maps, [Unary::Exp, Unary::Log], "{text}");
        // exp's map reads the input itself; log's argument (1 + exp) gets a kernel that
        // writes it to the output, where log's map leaves the result: nothing is left
        // of the loop.
        assert_eq!(p.kernels.len(), 3, "{text}");
        assert!(
            matches!(&p.kernels[2].body, KernelBody::Loop(lk) if matches!(lk.stores[..], [Store::Write { buf: 1, .. }])),
            "{text}"
        );
    }

    /// Small loops and math per row (not per element) keep their math.
    #[test]
    fn small_loops_and_row_math_stay() {
        let row_math = loop_kernel(
            vec![64, 128],
            vec![
                load(0, vec![1, 0]),
                Expr::Unary(Unary::Exp, 0),
                load(0, vec![128, 1]),
                Expr::Binary(crate::ir::Binary::Mul, 1, 2),
            ],
            vec![Store::Write {
                buf: 1,
                at: Affine::row_major(&[64, 128]),
                value: 3,
            }],
        );
        let small = loop_kernel(
            vec![16, 16],
            vec![load(0, vec![16, 1]), Expr::Unary(Unary::Tanh, 0)],
            vec![Store::Write {
                buf: 1,
                at: Affine {
                    coef: vec![1, 16],
                    offset: 0,
                },
                value: 1,
            }],
        );
        for lk in [row_math, small] {
            let mut p = program(lk.clone(), 2);
            split_long_math(&mut p);
            assert_eq!(p.kernels.len(), 1, "{}", crate::schedule::print_program(&p));
        }
    }
}
