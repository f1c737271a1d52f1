//! PTX codegen: the kernels of a [`Program`] as one PTX module of text.
//!
//! In: a scheduled kernel program (the same one the Cranelift backend compiles). Out:
//! [`PtxProgram`]: the module text (`.version 8.0`, `.target sm_80`, so that drivers from
//! CUDA 12.0 on load it and sm_80..sm_90+ GPUs run it) and, per kernel, its entry name,
//! launch shape and parameter list, which the CUDA runtime uses to launch it.
//!
//! Every kernel `kN` takes one `.u64` global pointer per buffer it touches (in `BufId`
//! order, named `bN`) and a last `err` pointer to two `u32` words (check number + 1 and the
//! offending index, as on the CPU). How each kind runs on the GPU:
//!
//! - **Loop kernels** ([`loops`]): the domain axes that every reduction keeps are flattened
//!   into one index split over threads (grid-stride); each thread walks the other
//!   (reduced) axes in row-major order, so every output element is owned by one thread
//!   and accumulated in the interpreter's order, like the CPU: no atomics, the same bits
//!   on every run and for every launch shape. A reduction whose output element is fixed
//!   for the thread accumulates in a register. When ownership cannot be proven (the
//!   store indices are not injective), the kernel runs on one thread.
//! - **Scatter-add kernels**: one thread per output row scans the whole domain in order
//!   and adds the contributions whose row index is its own: deterministic, no atomics.
//! - **Segment kernels** ([`segment`]: scatter-max, its argmax, the argmax scatter): one
//!   thread per output element scans every position in order, as the CPU library does.
//! - **Matmul** ([`matmul`]): a generated 16x16-tiled kernel (shared memory, one output
//!   element per thread, `fma` over k in order), on the strided views of the kernel IR.
//!   Generated rather than cuBLAS: no library to load at run time (only the driver), the
//!   whole step is visible in `--emit ptx` and checkable by `ptxas`, and the sum order is
//!   fixed, so results are deterministic.
//! - Gathers, one-hot and scatter rows go through `CheckIndex`: out of range the index
//!   reads as 0 and the first failing thread records the check in `err` (`atom.cas`).
//! - `add/sub/mul/div/sqrt` are IEEE round-to-nearest (`.rn`, which also stops `ptxas` from
//!   contracting a multiply and an add into an `fma` the CPU does not do); `fma` only
//!   where the kernel IR says so. `exp`, `log`, `tanh`: see [`math`]. Philox4x32-10 is
//!   inline integer code, bit-identical with `ir::philox`, whose constants it uses.
//! - Elementwise ops: one row each in [`ops`], the PTX op table.

mod loops;
pub mod math;
mod matmul;
mod ops;
mod segment;

use crate::schedule::{BufId, Expr, KernelBody, Program, Store};
use std::fmt::Write;

/// PTX ISA version and target of every module.
pub const VERSION: &str = "8.0";
pub const TARGET: &str = "sm_80";

/// How to launch one kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Entry name in the module (`k0`, `k1`, ...).
    pub name: String,
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    /// The buffers passed as the first parameters, in order; `err` follows them.
    pub params: Vec<BufId>,
}

/// A program rendered as PTX.
#[derive(Clone, Debug)]
pub struct PtxProgram {
    pub text: String,
    /// One per kernel of the program, in execution order.
    pub launches: Vec<Launch>,
}

/// Lines of one kernel body and its virtual register counters.
pub(crate) struct Body {
    lines: Vec<String>,
    nf: usize,
    nr: usize,
    nrd: usize,
    np: usize,
    labels: usize,
}

impl Body {
    fn new() -> Body {
        Body {
            lines: Vec::new(),
            nf: 0,
            nr: 0,
            nrd: 0,
            np: 0,
            labels: 0,
        }
    }
    /// A fresh f32 register.
    pub(crate) fn f(&mut self) -> String {
        self.nf += 1;
        format!("%f{}", self.nf)
    }
    /// A fresh 32-bit integer register.
    pub(crate) fn r(&mut self) -> String {
        self.nr += 1;
        format!("%r{}", self.nr)
    }
    /// A fresh 64-bit integer register.
    pub(crate) fn rd(&mut self) -> String {
        self.nrd += 1;
        format!("%rd{}", self.nrd)
    }
    /// A fresh predicate.
    pub(crate) fn p(&mut self) -> String {
        self.np += 1;
        format!("%p{}", self.np)
    }
    /// A fresh label with a readable stem.
    pub(crate) fn label(&mut self, stem: &str) -> String {
        self.labels += 1;
        format!("$L{}_{stem}", self.labels)
    }
    pub(crate) fn op(&mut self, s: String) {
        self.lines.push(format!("\t{s}"));
    }
    pub(crate) fn put_label(&mut self, l: &str) {
        self.lines.push(format!("{l}:"));
    }
    pub(crate) fn comment(&mut self, s: &str) {
        self.lines.push(format!("\t// {s}"));
    }
}

/// The buffers kernel `body` reads or writes, sorted.
pub fn kernel_buffers(body: &KernelBody) -> Vec<BufId> {
    let mut used: Vec<BufId> = match body {
        KernelBody::Loop(lk) => {
            let mut v: Vec<BufId> = lk.stores.iter().map(Store::buf).collect();
            v.extend(lk.exprs.iter().filter_map(|e| match e {
                Expr::Load { buf, .. } | Expr::LoadRow { buf, .. } => Some(*buf),
                _ => None,
            }));
            v
        }
        KernelBody::MatMul(mm) => vec![mm.a.buf, mm.b.buf, mm.out.buf],
        KernelBody::Segment(seg) => vec![seg.values.0, seg.index.0, seg.out],
        #[allow(unreachable_patterns)]
        _ => vec![],
    };
    used.sort();
    used.dedup();
    used
}

/// One line describing a buffer, for comments: `b3 (h.linear.weight, f32[8192])`.
fn describe_buf(p: &Program, b: BufId) -> String {
    let buf = &p.buffers[b];
    let what = match &buf.kind {
        crate::schedule::BufKind::Arg(n) => n.clone(),
        crate::schedule::BufKind::Output(n) => format!("out {n}"),
        crate::schedule::BufKind::Temp => format!("%{}", buf.value),
    };
    format!("b{b} ({what}, {}[{}])", buf.dtype, buf.len)
}

/// Renders every kernel of `p`. Fails (never panics) on a kernel it cannot render.
pub fn emit(p: &Program) -> Result<PtxProgram, String> {
    let mut text = String::new();
    let _ = writeln!(text, "//");
    let _ = writeln!(
        text,
        "// {}: generated by mpc from the kernel IR (mpc compile --emit ptx)",
        p.name
    );
    let _ = writeln!(text, "// one .entry per kernel, run in order on one stream");
    let _ = writeln!(text, "//");
    let _ = writeln!(text);
    let _ = writeln!(text, ".version {VERSION}");
    let _ = writeln!(text, ".target {TARGET}");
    let _ = writeln!(text, ".address_size 64");
    let mut launches = Vec::new();
    // Each kernel's register holding each buffer's global pointer (empty for buffers it
    // does not take). One table for all kernels, reset after each: a fresh one per kernel
    // made emission quadratic on deep models (thousands of kernels and buffers).
    let mut base = vec![String::new(); p.buffers.len()];
    for (k, kernel) in p.kernels.iter().enumerate() {
        let name = format!("k{k}");
        let params = kernel_buffers(&kernel.body);
        let mut b = Body::new();
        let mut shared = Vec::new();
        // Parameters -> global pointers.
        for &buf in &params {
            let r = b.rd();
            b.op(format!("ld.param.u64 {r}, [b{buf}];"));
            b.op(format!("cvta.to.global.u64 {r}, {r};"));
            base[buf] = r;
        }
        let err = b.rd();
        b.op(format!("ld.param.u64 {err}, [err];"));
        b.op(format!("cvta.to.global.u64 {err}, {err};"));
        let (grid, block, what) = match &kernel.body {
            KernelBody::Loop(lk) => {
                let (threads, what) =
                    loops::emit(&mut b, p, lk, &base, &err).map_err(|e| format!("kernel k{k}: {e}"))?;
                let block = if threads >= 256 {
                    256
                } else {
                    threads.div_ceil(32).max(1) * 32
                };
                let grid = threads.div_ceil(block).clamp(1, 8192);
                ((grid, 1, 1), (block, 1, 1), what)
            }
            KernelBody::MatMul(mm) => {
                let (gx, gy, gz) = matmul::emit(&mut b, p, mm, &base, &mut shared)?;
                let batch = if mm.batch.is_empty() {
                    String::new()
                } else {
                    format!(" x {} batches over grid z", mm.batches())
                };
                (
                    (gx, gy, gz),
                    (matmul::TILE, matmul::TILE, 1),
                    format!("matmul [m={} k={} n={}], 16x16 tiles{batch}", mm.m, mm.k, mm.n),
                )
            }
            KernelBody::Segment(seg) => {
                let threads = segment::emit(&mut b, p, seg, &base, &err).map_err(|e| format!("kernel k{k}: {e}"))?;
                let block = if threads >= 256 {
                    256
                } else {
                    threads.div_ceil(32).max(1) * 32
                };
                let grid = threads.div_ceil(block).clamp(1, 8192);
                let what = format!(
                    "segment {:?}: {} positions into {} rows of {}, one thread per output element",
                    seg.op, seg.positions, seg.rows, seg.row_len
                );
                ((grid, 1, 1), (block, 1, 1), what)
            }
            #[allow(unreachable_patterns)]
            _ => return Err(format!("kernel k{k}: this kind of kernel has no PTX rendering yet")),
        };
        let _ = writeln!(text);
        let _ = writeln!(text, "// {name}: {what}");
        for &buf in &params {
            let _ = writeln!(text, "//   {}", describe_buf(p, buf));
        }
        let _ = writeln!(text, ".visible .entry {name}(");
        for &buf in &params {
            let _ = writeln!(text, "\t.param .u64 b{buf},");
        }
        let _ = writeln!(text, "\t.param .u64 err");
        let _ = writeln!(text, ")");
        let _ = writeln!(text, "{{");
        let _ = writeln!(text, "\t.reg .pred %p<{}>;", b.np + 1);
        let _ = writeln!(text, "\t.reg .b32 %r<{}>;", b.nr + 1);
        let _ = writeln!(text, "\t.reg .f32 %f<{}>;", b.nf + 1);
        let _ = writeln!(text, "\t.reg .b64 %rd<{}>;", b.nrd + 1);
        for s in &shared {
            let _ = writeln!(text, "\t{s}");
        }
        let _ = writeln!(text);
        for line in &b.lines {
            let _ = writeln!(text, "{line}");
        }
        let _ = writeln!(text, "}}");
        for &buf in &params {
            base[buf].clear();
        }
        launches.push(Launch {
            name,
            grid,
            block,
            params,
        });
    }
    Ok(PtxProgram { text, launches })
}
