//! A graph compiled to native code, ready to run.
//!
//! In: an IR graph and a thread pool. Out: [`Executable::run`], which takes the graph's
//! arguments by name (borrowed, never copied) and leaves the outputs in buffers the
//! executable owns (allocated once; the session swaps parameter and state outputs with
//! its own vectors, so a training step copies and allocates nothing).

use super::pool::Pool;
use mpc_compiler::codegen::cranelift::{self, JitProgram};
use mpc_compiler::ir::{DType, Graph};
use mpc_compiler::schedule::{self, plan, BufKind, Program};
use std::sync::Arc;

/// A borrowed argument.
#[derive(Clone, Copy, Debug)]
pub enum ArgRef<'a> {
    F32(&'a [f32]),
    I32(&'a [i32]),
}

/// An output buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum OutBuf {
    F32(Vec<f32>),
    I32(Vec<i32>),
}

impl OutBuf {
    fn ptr(&mut self) -> *mut u8 {
        match self {
            OutBuf::F32(v) => v.as_mut_ptr() as *mut u8,
            OutBuf::I32(v) => v.as_mut_ptr() as *mut u8,
        }
    }
    pub fn floats(&self) -> &[f32] {
        match self {
            OutBuf::F32(v) => v,
            OutBuf::I32(_) => &[],
        }
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// Kernels with less work than this run on one thread.
const PARALLEL_WORK: usize = 128 * 1024;

/// Whether the executor splits `kernel` across `threads` threads (the profilers in
/// `runtime/examples` use the same rule).
pub fn splits(kernel: &mpc_compiler::schedule::Kernel, threads: usize) -> bool {
    kernel.parallel && threads > 1 && kernel.work >= PARALLEL_WORK && kernel.range >= 2
}

pub struct Executable {
    pub program: Program,
    jit: JitProgram,
    arena: Vec<Line>,
    offsets: Vec<Option<usize>>,
    /// Output buffers, in `program.outputs` order.
    outputs: Vec<OutBuf>,
    ptrs: Vec<usize>,
    /// For each buffer, its index in `outputs`.
    output_of: Vec<Option<usize>>,
    pool: Arc<Pool>,
    errors: Vec<[i32; 2]>,
}

struct SendPtr(*mut [i32; 2]);
unsafe impl Sync for SendPtr {}

impl Executable {
    pub fn new(graph: &Graph, pool: Arc<Pool>) -> Result<Executable, String> {
        let program = schedule::schedule(graph);
        let jit = cranelift::compile(&program)?;
        let plan = plan::plan(&program);
        let outputs = program
            .outputs
            .iter()
            .map(|&(_, b)| {
                let buf = &program.buffers[b];
                match buf.dtype {
                    DType::F32 => OutBuf::F32(vec![0.0; buf.len]),
                    DType::I32 => OutBuf::I32(vec![0; buf.len]),
                }
            })
            .collect();
        let mut output_of = vec![None; program.buffers.len()];
        for (i, &(_, b)) in program.outputs.iter().enumerate() {
            output_of[b] = Some(i);
        }
        let threads = pool.threads();
        Ok(Executable {
            output_of,
            arena: vec![Line([0; 64]); plan.arena_bytes.div_ceil(64)],
            offsets: plan.offsets,
            ptrs: vec![0; program.buffers.len()],
            outputs,
            program,
            jit,
            pool,
            errors: vec![[0; 2]; threads],
        })
    }

    /// Bytes of temporaries (the arena).
    pub fn arena_bytes(&self) -> usize {
        self.arena.len() * 64
    }

    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&OutBuf> {
        let i = self.program.outputs.iter().position(|(n, _)| n == name)?;
        Some(&self.outputs[i])
    }

    pub fn output_mut(&mut self, name: &str) -> Option<&mut OutBuf> {
        let i = self.program.outputs.iter().position(|(n, _)| n == name)?;
        Some(&mut self.outputs[i])
    }

    /// Output names in order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.program.outputs.iter().map(|(n, _)| n.as_str())
    }

    /// Runs every kernel. `arg(name)` supplies each graph argument; its dtype and length
    /// are checked. A failed bounds check (a token id or label out of range) stops the
    /// run with an error naming the node.
    pub fn run<'a>(&mut self, arg: &mut dyn FnMut(&str) -> Option<ArgRef<'a>>) -> Result<(), String> {
        let arena = self.arena.as_mut_ptr() as *mut u8;
        for (b, buf) in self.program.buffers.iter().enumerate() {
            self.ptrs[b] = match &buf.kind {
                BufKind::Temp => match self.offsets[b] {
                    // SAFETY: the plan keeps every offset + size inside the arena.
                    Some(o) => unsafe { arena.add(o) as usize },
                    None => 0,
                },
                BufKind::Output(_) => {
                    let i = self.output_of[b].expect("output buffer");
                    let o = &mut self.outputs[i];
                    let len = match o {
                        OutBuf::F32(v) => v.len(),
                        OutBuf::I32(v) => v.len(),
                    };
                    if len != buf.len {
                        let name = &self.program.outputs[i].0;
                        return Err(format!("output '{name}' has {len} elements, expected {}", buf.len));
                    }
                    o.ptr() as usize
                }
                BufKind::Arg(name) => {
                    let (ptr, dtype, len) = match arg(name) {
                        Some(ArgRef::F32(s)) => (s.as_ptr() as usize, DType::F32, s.len()),
                        Some(ArgRef::I32(s)) => (s.as_ptr() as usize, DType::I32, s.len()),
                        None => return Err(format!("missing argument '{name}'")),
                    };
                    if dtype != buf.dtype || len != buf.len {
                        return Err(format!(
                            "argument '{name}': expected {}[{}], found {dtype} with {len} elements",
                            buf.dtype, buf.len
                        ));
                    }
                    ptr
                }
            };
        }
        let threads = self.pool.threads();
        let bufs = self.ptrs.as_ptr() as *const *mut u8;
        for (k, kernel) in self.program.kernels.iter().enumerate() {
            let f = self.jit.fns[k];
            let range = kernel.range as i64;
            if splits(kernel, threads) {
                let errors = SendPtr(self.errors.as_mut_ptr());
                let bufs = bufs as usize;
                let job = move |t: usize| {
                    let lo = range * t as i64 / threads as i64;
                    let hi = range * (t as i64 + 1) / threads as i64;
                    if lo < hi {
                        let errors = &errors;
                        // SAFETY: every pointer in `bufs` is valid for its buffer's length
                        // (checked above), threads touch disjoint parts of the outputs,
                        // and each thread has its own error slot.
                        unsafe { f(bufs as *const *mut u8, lo, hi, errors.0.add(t) as *mut i32) };
                    }
                };
                self.pool.run(&job);
            } else {
                // SAFETY: as above, on one thread.
                unsafe { f(bufs, 0, range, self.errors.as_mut_ptr() as *mut i32) };
            }
            if let Some(e) = self.errors.iter().find(|e| e[0] != 0).copied() {
                for slot in &mut self.errors {
                    *slot = [0; 2];
                }
                let check = &self.program.checks[e[0] as usize - 1];
                return Err(format!(
                    "%{} ({}): index {} is outside [0, {})",
                    check.node, check.op, e[1], check.bound
                ));
            }
        }
        Ok(())
    }
}
