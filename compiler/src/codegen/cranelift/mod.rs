//! Cranelift codegen: one JIT function per kernel of a [`Program`].
//!
//! In: a scheduled kernel program. Out: [`JitProgram`], native functions of type
//! [`KernelFn`] `(bufs, start, end, err)`: `bufs` is the kernel's table of buffer base
//! pointers ([`JitProgram::fill_tables`]: the buffers it touches, in the order its code
//! first names them), `start..end` the part of the kernel's `range` this call does
//! (threads call disjoint parts), `err` two i32 slots a failed bounds check writes
//! (check number + 1, offending index). Kernels that differ only in their buffers are
//! one function, compiled once.
//!
//! Loop kernels become loop nests; an expression is computed in the loop of the deepest
//! axis it depends on (so a gather's row index is loaded once per row). The innermost
//! loop runs in f32x4, unrolled twice, with a scalar tail, when everything that varies
//! along it is contiguous f32 arithmetic; `fma` is used when the host has AVX+FMA.
//! `exp`, `log` and `tanh` are inline f32/f32x4 polynomials ([`math`], the PTX backend's
//! algorithms, within 1e-6 of the interpreter's libm), `sqrt` and division are IEEE, so
//! the differences from the interpreter are those functions, fma contraction and the
//! GEMM's summation order. Matmuls call [`gemm`] through a
//! registered function, one GEMM call per (batch, 64-row block, column block), so that results
//! do not depend on how threads split the pairs. Segment kernels (scatter-max and its argmax) call
//! [`segment`]'s library code. A loop that only maps `exp`, `log`, `tanh` or `erf` over
//! its elements (made by the schedule's `split_long_math`) calls [`wide_math`]'s
//! AVX-512 routines, the same algorithms on sixteen lanes, where the host has them.
//! An attention kernel (the schedule's `fuse_attention`) calls [`attention`]'s library
//! code with a plan the program owns, and a sum of gathered rows (an embedding's mean)
//! [`gather_sum`]'s.
//!
//! Kernels are built one by one and compiled by several threads in batches (one shared
//! queue, largest function first), then defined
//! in kernel order, so the machine code does not depend on the thread count (deep models
//! have thousands of kernels, and compiling them is most of their compile time).
//!
//! Files: [`compile`] the functions compiled on threads, [`loops`] the loop structure (short inner axes unrolled), [`stores`] the
//! stores and output initialization, [`exprs`] each expression (scalar
//! and f32x4), [`philox`] inline Philox with `ir::philox`'s constants, [`ops`] the elementwise op
//! table (one row per op of `ir::ops`), [`owned_rows`] scatters whose threads own rows.

mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_wide;
mod block_math;
mod compile;
mod exprs;
mod gather_sum;
mod long_matmul;
mod loops;
mod math;
mod ops;
mod owned_rows;
mod philox;
mod segment;
mod small_matmul;
mod stores;
pub mod wide_math;

use crate::schedule::{BatchAxis, KernelBody, Program, MATMUL_BLOCK, MAX_BATCH_AXES};
use compile::{define_batch, BATCH, MAX_THREADS};
use cranelift_codegen::ir::function::FunctionStencil;
use cranelift_codegen::ir::{
    types, AbiParam, FuncRef, Function, InstBuilder, MemFlagsData, Signature, UserFuncName, Value,
};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use segment::{mpc_segment, op_code};
use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{Hash, Hasher};

/// A compiled kernel: `(bufs, start, end, err)`.
pub type KernelFn = unsafe extern "C" fn(*const *mut u8, i64, i64, *mut i32);

/// The JIT-compiled kernels of one program; the code lives as long as this value.
pub struct JitProgram {
    module: Option<JITModule>,
    /// Kernel k's function (alike kernels share one).
    pub fns: Vec<KernelFn>,
    /// Every kernel's table, one after the other: the buffer (by `BufId`) whose base
    /// pointer each slot holds, `Program::buffers.len()` for the run-time sizes.
    table_bufs: Vec<usize>,
    /// Where kernel k's table starts in `table_bufs`.
    table_starts: Vec<usize>,
    /// The attention kernels' plans, which their code points to (boxed: the
    /// addresses must not move).
    #[allow(clippy::vec_box)]
    _plans: Vec<Box<attention::Plan>>,
}

impl JitProgram {
    /// Every kernel's table of base pointers from the buffers' (`ptrs`, by `BufId`,
    /// then the run-time sizes' pointer), into `tables`; kernel k's table starts at
    /// [`JitProgram::table_start`].
    pub fn fill_tables(&self, ptrs: &[usize], tables: &mut Vec<usize>) {
        tables.clear();
        tables.extend(self.table_bufs.iter().map(|&b| ptrs[b]));
    }

    pub fn table_start(&self, kernel: usize) -> usize {
        self.table_starts[kernel]
    }

    /// How many functions were compiled: kernels alike but for their buffers share one.
    pub fn functions(&self) -> usize {
        let mut code: Vec<usize> = self.fns.iter().map(|&f| f as usize).collect();
        code.sort_unstable();
        code.dedup();
        code.len()
    }
}

/// A kernel's table of base pointers (the `bufs` its function receives), as the code
/// is built: the buffers it touches in the order the code first names them. Numbered
/// by the code rather than by buffer id, kernels that differ only in their buffers are
/// the same function (the Adam update of equally sized parameters, a repeated layer).
#[derive(Default)]
pub(super) struct Table {
    bufs: Vec<usize>,
}

impl Table {
    /// The byte offset of buffer `buf`'s slot (`Program::buffers.len()`: the sizes').
    pub(super) fn slot(&mut self, buf: usize) -> i32 {
        let j = self.bufs.iter().position(|&b| b == buf).unwrap_or_else(|| {
            self.bufs.push(buf);
            self.bufs.len() - 1
        });
        (j * 8) as i32
    }

    /// Buffer `buf`'s base pointer, loaded from the table `bufs`.
    pub(super) fn base(&mut self, fb: &mut FunctionBuilder, bufs: Value, buf: usize) -> Value {
        let slot = self.slot(buf);
        fb.ins().load(types::I64, MemFlagsData::trusted(), bufs, slot)
    }
}

// The module only holds finished machine code; the function pointers are plain code.
unsafe impl Send for JitProgram {}
unsafe impl Sync for JitProgram {}

impl Drop for JitProgram {
    fn drop(&mut self) {
        if let Some(m) = self.module.take() {
            // SAFETY: `fns` dies with `self`; nobody can call the code afterwards.
            unsafe { m.free_memory() };
        }
    }
}

extern "C" fn mpc_fmaf(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}
/// Fills `n` f32s at `p` with `v`.
unsafe extern "C" fn mpc_fill(p: *mut f32, n: i64, v: f32) {
    if n > 0 {
        std::slice::from_raw_parts_mut(p, n as usize).fill(v);
    }
}

/// `c = a · b` on strided views for the (batch, 64-row block, column block) triples
/// `start..end`, numbered batch-major (`blocks = ceil(m / 64)` row blocks of `cols`
/// column blocks per batch): task `p` is batch `j = p / (blocks · cols)`, row block
/// `(p / cols) % blocks`, column block `p % cols` (`ceil(n / cols)` columns), batch
/// coordinates `(j / len1, j % len1)`, each operand's base moved by `j0 * s0 + j1 * s1`
/// (`sa*`, `sb*`, `sc*`). One GEMM call per task (for a product of at most 32 columns
/// by a depth of 64, our own AVX2 code: `small_matmul`; for a long depth and a small
/// result, our own AVX-512 code: `long_matmul`), whichever thread runs it, so the
/// result does not depend on the split.
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn mpc_sgemm(
    m: i64,
    n: i64,
    k: i64,
    a: *const f32,
    ars: i64,
    acs: i64,
    b: *const f32,
    brs: i64,
    bcs: i64,
    c: *mut f32,
    crs: i64,
    ccs: i64,
    len1: i64,
    sa0: i64,
    sa1: i64,
    sb0: i64,
    sb1: i64,
    sc0: i64,
    sc1: i64,
    cols: i64,
    start: i64,
    end: i64,
) {
    let block = MATMUL_BLOCK as i64;
    let blocks = (m + block - 1) / block;
    if blocks <= 0 || n <= 0 || cols <= 0 {
        return;
    }
    let width = (n + cols - 1) / cols;
    for task in start..end {
        let (j, blk, col) = (task / (blocks * cols), (task / cols) % blocks, task % cols);
        let (j0, j1) = (j / len1, j % len1);
        let (r0, c0) = (blk * block, col * width);
        let (rows, n) = (block.min(m - r0), width.min(n - c0));
        if n <= 0 {
            continue;
        }
        let dst = c.offset((j0 * sc0 + j1 * sc1 + r0 * crs + c0 * ccs) as isize);
        if k == 0 {
            for i in 0..rows {
                for jj in 0..n {
                    *dst.offset((i * crs + jj * ccs) as isize) = 0.0;
                }
            }
            continue;
        }
        let (a, b) = (
            a.offset((j0 * sa0 + j1 * sa1 + r0 * ars) as isize),
            b.offset((j0 * sb0 + j1 * sb1 + c0 * bcs) as isize),
        );
        let (av, bv) = ((a, ars as isize, acs as isize), (b, brs as isize, bcs as isize));
        if long_matmul::fits(rows as usize, n as usize, k as usize, av, bv) {
            let c = (dst, crs as isize, ccs as isize);
            long_matmul::matmul(rows as usize, n as usize, k as usize, av, bv, c);
            continue;
        }
        if small_matmul::fits(n as usize, k as usize) {
            let (a, b) = ((a, ars as isize, acs as isize), (b, brs as isize, bcs as isize));
            small_matmul::matmul(
                rows as usize,
                n as usize,
                k as usize,
                a,
                b,
                (dst, crs as isize, ccs as isize),
            );
            continue;
        }
        gemm::gemm(
            rows as usize,
            n as usize,
            k as usize,
            dst,
            ccs as isize,
            crs as isize,
            false,
            a,
            acs as isize,
            ars as isize,
            b,
            bcs as isize,
            brs as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn host_isa() -> Result<OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
    flags.set("is_pic", "false").map_err(|e| e.to_string())?;
    // The verifier re-checks every function Cranelift is given (a tenth of the time on
    // deep models): debug builds, which every test runs, keep it.
    let verify = if cfg!(debug_assertions) { "true" } else { "false" };
    flags.set("enable_verifier", verify).map_err(|e| e.to_string())?;
    let isa = cranelift_native::builder().map_err(|e| format!("Cranelift does not support this host: {e}"))?;
    isa.finish(settings::Flags::new(flags)).map_err(|e| e.to_string())
}

/// True when `fma` compiles to a host instruction (AVX + FMA on x86-64).
pub fn host_has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Imported Rust functions, by their symbol names.
pub(crate) struct Imports {
    pub fill: FuncRef,
    pub sgemm: FuncRef,
    pub segment: FuncRef,
    pub map_math: FuncRef,
    pub attention: FuncRef,
    pub gather_sum: FuncRef,
}

struct ImportIds {
    fill: FuncId,
    sgemm: FuncId,
    segment: FuncId,
    map_math: FuncId,
    attention: FuncId,
    gather_sum: FuncId,
}

/// Extent `n` of a kernel: a constant, or for a dynamic capacity
/// (`Program::dynamic`) the batch's count, from the run-time sizes, an `i64` array whose
/// pointer is in the kernel's table as buffer `Program::buffers.len()`.
pub(super) fn extent(fb: &mut FunctionBuilder, bufs: Value, table: &mut Table, p: &Program, n: usize) -> Value {
    match p.dynamic_slot(n) {
        Some(slot) => {
            let sizes = table.base(fb, bufs, p.buffers.len());
            fb.ins()
                .load(types::I64, MemFlagsData::trusted(), sizes, (slot * 8) as i32)
        }
        None => fb.ins().iconst(types::I64, n as i64),
    }
}

fn sig(module: &JITModule, params: &[types::Type], ret: Option<types::Type>) -> Signature {
    let mut s = module.make_signature();
    s.params.extend(params.iter().map(|&t| AbiParam::new(t)));
    s.returns.extend(ret.map(AbiParam::new));
    s
}

/// Compiles every kernel of `p` to native code.
pub fn compile(p: &Program) -> Result<JitProgram, String> {
    build(p, None)
}

/// The Cranelift IR of every kernel (`mpc compile --emit clif`), before optimization.
pub fn clif_text(p: &Program) -> Result<String, String> {
    let mut text = String::new();
    build(p, Some(&mut text))?;
    Ok(text)
}

fn build(p: &Program, mut text: Option<&mut String>) -> Result<JitProgram, String> {
    let isa = host_isa()?;
    let frontend = isa.frontend_config();
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    jb.symbol("fmaf", mpc_fmaf as *const u8);
    jb.symbol("mpc_fill", mpc_fill as *const u8);
    jb.symbol("mpc_sgemm", mpc_sgemm as *const u8);
    jb.symbol("mpc_segment", mpc_segment as *const u8);
    jb.symbol("mpc_map_math", wide_math::mpc_map_math as *const u8);
    jb.symbol("mpc_attention", attention::mpc_attention as *const u8);
    jb.symbol("mpc_gather_sum", gather_sum::mpc_gather_sum as *const u8);
    let mut module = JITModule::new(jb);
    let (f32t, i64t) = (types::F32, types::I64);
    let fill_sig = sig(&module, &[i64t, i64t, f32t], None);
    let gemm_sig = sig(&module, &[i64t; 22], None);
    let segment_sig = sig(&module, &[i64t; 12], None);
    let map_sig = sig(&module, &[i64t; 4], None);
    let gather_sig = sig(&module, &[i64t; 12], None);
    let mut import = |name: &str, s: &Signature| {
        module
            .declare_function(name, Linkage::Import, s)
            .map_err(|e| e.to_string())
    };
    let ids = ImportIds {
        fill: import("mpc_fill", &fill_sig)?,
        sgemm: import("mpc_sgemm", &gemm_sig)?,
        segment: import("mpc_segment", &segment_sig)?,
        map_math: import("mpc_map_math", &map_sig)?,
        attention: import("mpc_attention", &map_sig)?,
        gather_sum: import("mpc_gather_sum", &gather_sig)?,
    };
    let mut fctx = FunctionBuilderContext::new();
    let mut func_ids = Vec::new();
    let (mut table_bufs, mut table_starts) = (Vec::new(), Vec::new());
    let mut plans = Vec::new();
    // The functions defined so far by their code's hash: kernel `k` and the function.
    let mut defined: HashMap<u64, Vec<(FunctionStencil, usize, FuncId)>> = HashMap::new();
    let mut batch: Vec<(FuncId, Function, usize)> = Vec::new();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    let fma = host_has_fma();
    for (i, kernel) in p.kernels.iter().enumerate() {
        let mut s = module.make_signature();
        s.params.extend((0..4).map(|_| AbiParam::new(i64t)));
        let mut func = Function::with_name_signature(UserFuncName::user(0, i as u32), s.clone());
        let imports = Imports {
            fill: module.declare_func_in_func(ids.fill, &mut func),
            sgemm: module.declare_func_in_func(ids.sgemm, &mut func),
            segment: module.declare_func_in_func(ids.segment, &mut func),
            map_math: module.declare_func_in_func(ids.map_math, &mut func),
            attention: module.declare_func_in_func(ids.attention, &mut func),
            gather_sum: module.declare_func_in_func(ids.gather_sum, &mut func),
        };
        let mut table = Table::default();
        {
            let mut fb = FunctionBuilder::new(&mut func, &mut fctx);
            match &kernel.body {
                KernelBody::Loop(lk) => loops::emit(&mut fb, p, lk, &imports, &mut table, fma, kernel.parallel)?,
                KernelBody::MatMul(mm) => {
                    if mm.batch.len() > MAX_BATCH_AXES {
                        return Err(format!("kernel k{i}: a matmul with {} batch axes", mm.batch.len()));
                    }
                    let entry = fb.create_block();
                    fb.append_block_params_for_function_params(entry);
                    fb.switch_to_block(entry);
                    let params = fb.block_params(entry).to_vec();
                    let (bufs, start, end) = (params[0], params[1], params[2]);
                    let mut ptr = |fb: &mut FunctionBuilder, buf: usize, offset: i64| {
                        let base = table.base(fb, bufs, buf);
                        fb.ins().iadd_imm_s(base, offset * 4)
                    };
                    let a = ptr(&mut fb, mm.a.buf, mm.a.offset);
                    let b = ptr(&mut fb, mm.b.buf, mm.b.offset);
                    let c = ptr(&mut fb, mm.out.buf, mm.out.offset);
                    // Two batch axes always: a missing one has extent 1, strides 0.
                    let axis = |i: usize| {
                        let none = BatchAxis {
                            len: 1,
                            a: 0,
                            b: 0,
                            out: 0,
                        };
                        let at = i + mm.batch.len();
                        if at >= 2 {
                            mm.batch[at - 2].clone()
                        } else {
                            none
                        }
                    };
                    let (x0, x1) = (axis(0), axis(1));
                    let k = |fb: &mut FunctionBuilder, v: i64| fb.ins().iconst(i64t, v);
                    let m = extent(&mut fb, bufs, &mut table, p, mm.m);
                    let n = extent(&mut fb, bufs, &mut table, p, mm.n);
                    let inner = extent(&mut fb, bufs, &mut table, p, mm.k);
                    let args = [
                        m,
                        n,
                        inner,
                        a,
                        k(&mut fb, mm.a.rs),
                        k(&mut fb, mm.a.cs),
                        b,
                        k(&mut fb, mm.b.rs),
                        k(&mut fb, mm.b.cs),
                        c,
                        k(&mut fb, mm.out.rs),
                        k(&mut fb, mm.out.cs),
                        k(&mut fb, x1.len as i64),
                        k(&mut fb, x0.a),
                        k(&mut fb, x1.a),
                        k(&mut fb, x0.b),
                        k(&mut fb, x1.b),
                        k(&mut fb, x0.out),
                        k(&mut fb, x1.out),
                        k(&mut fb, mm.col_blocks() as i64),
                        start,
                        end,
                    ];
                    fb.ins().call(imports.sgemm, &args);
                    fb.ins().return_(&[]);
                    fb.seal_all_blocks();
                }
                KernelBody::Segment(seg) => {
                    let entry = fb.create_block();
                    fb.append_block_params_for_function_params(entry);
                    fb.switch_to_block(entry);
                    let params = fb.block_params(entry).to_vec();
                    let (bufs, start, end, err) = (params[0], params[1], params[2], params[3]);
                    let mut ptr = |fb: &mut FunctionBuilder, (buf, offset): (usize, i64)| {
                        let base = table.base(fb, bufs, buf);
                        fb.ins().iadd_imm_s(base, offset * 4)
                    };
                    let values = ptr(&mut fb, seg.values);
                    let index = ptr(&mut fb, seg.index);
                    let out = ptr(&mut fb, (seg.out, 0));
                    let maxima = match seg.maxima {
                        Some(m) => ptr(&mut fb, (m, 0)),
                        None => fb.ins().iconst(i64t, 0),
                    };
                    let k = |fb: &mut FunctionBuilder, v: i64| fb.ins().iconst(i64t, v);
                    let args = [
                        k(&mut fb, op_code(seg.op, seg.zeroed)),
                        values,
                        index,
                        out,
                        extent(&mut fb, bufs, &mut table, p, seg.positions),
                        k(&mut fb, seg.row_len as i64),
                        k(&mut fb, seg.rows as i64),
                        k(&mut fb, seg.check as i64),
                        start,
                        end,
                        err,
                        maxima,
                    ];
                    fb.ins().call(imports.segment, &args);
                    fb.ins().return_(&[]);
                    fb.seal_all_blocks();
                }
                KernelBody::Attention(att) => attention::emit(&mut fb, att, &imports, &mut table, &mut plans),
            }
            fb.finalize(frontend);
        }
        table_starts.push(table_bufs.len());
        table_bufs.extend(table.bufs);
        let mut hasher = rustc_hash::FxHasher::default();
        func.stencil.hash(&mut hasher);
        let alike = defined.entry(hasher.finish()).or_default();
        if let Some(&(_, k, id)) = alike.iter().find(|(code, _, _)| *code == func.stencil) {
            if let Some(t) = text.as_deref_mut() {
                let _ = writeln!(t, "; kernel k{i}: the function of k{k}\n");
            }
            func_ids.push(id);
            continue;
        }
        if let Some(t) = text.as_deref_mut() {
            let _ = writeln!(t, "; kernel k{i}\n{}", func.display());
        }
        let id = module
            .declare_function(&format!("k{i}"), Linkage::Local, &s)
            .map_err(|e| e.to_string())?;
        alike.push((func.stencil.clone(), i, id));
        func_ids.push(id);
        batch.push((id, func, i));
        if batch.len() == BATCH {
            define_batch(&mut module, &mut batch, threads)?;
        }
    }
    define_batch(&mut module, &mut batch, threads)?;
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let fns = func_ids
        .iter()
        .map(|&id| {
            let ptr = module.get_finalized_function(id);
            // SAFETY: every kernel was built with the `KernelFn` signature.
            unsafe { std::mem::transmute::<*const u8, KernelFn>(ptr) }
        })
        .collect();
    Ok(JitProgram {
        module: Some(module),
        fns,
        table_bufs,
        table_starts,
        _plans: plans,
    })
}
