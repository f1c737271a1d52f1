//! The Cranelift JIT engine: steps compiled to native code, run on a thread pool.
//!
//! In: steps (taken through `pipeline::for_cpu`: optimize, schedule, Cranelift) and a
//! thread count. Out: [`Executable::run`] takes a compiled step's arguments by name
//! (borrowed, never copied) and leaves the outputs in buffers the executable owns
//! (allocated once). [`Jit`] swaps the parameter and state outputs with the session's
//! vectors, so a training step copies and allocates nothing.

use super::arena::Arena;
use super::pool::Pool;
use super::{lookup, read_outputs, Engine, Job, Outputs, StepKey, Variables};
use mpc_compiler::ir::DType;
use mpc_compiler::pipeline;
use mpc_compiler::pipeline::JitProgram;
use mpc_compiler::schedule::{plan, BufKind, Kernel, KernelBody, Program};
use mpc_compiler::signature::{Step, SIZES};
use mpc_compiler::tensor::{Tensor, TensorRef};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// The JIT engine: compiled steps by key, one thread pool for all of them.
pub struct Jit {
    pool: Arc<Pool>,
    steps: HashMap<StepKey, (Executable, Step)>,
}

impl Jit {
    pub fn new(threads: usize) -> Jit {
        Jit {
            pool: Arc::new(Pool::new(threads)),
            steps: HashMap::new(),
        }
    }
}

/// Optimizes, schedules and compiles one job's step.
fn build(job: &Job) -> Result<(Program, JitProgram), String> {
    match &job.dynamic {
        Some((probe, capacities)) => pipeline::for_cpu_dynamic(&job.step, probe, capacities),
        None => pipeline::for_cpu(&job.step),
    }
}

impl Engine for Jit {
    fn prepare(&mut self, key: StepKey, step: &Step) -> Result<(), String> {
        self.prepare_all(&[Job {
            key,
            step: Cow::Borrowed(step),
            dynamic: None,
        }])
    }

    fn prepare_dynamic(&mut self, key: StepKey, step: &Step, probe: &Step, capacities: &[usize]) -> Result<(), String> {
        self.prepare_all(&[Job {
            key,
            step: Cow::Borrowed(step),
            dynamic: Some((Cow::Borrowed(probe), capacities)),
        }])
    }

    /// Each job on a thread of its own: a step's e-graph optimization and scheduling
    /// run on one core, so the training step's keep one core busy while the other
    /// compiles the evaluation step (Cranelift then shares both between them).
    fn prepare_all(&mut self, jobs: &[Job]) -> Result<(), String> {
        let todo: Vec<&Job> = jobs.iter().filter(|j| !self.steps.contains_key(&j.key)).collect();
        let built: Vec<Result<(Program, JitProgram), String>> = match todo.len() {
            0 | 1 => todo.iter().map(|j| build(j)).collect(),
            _ => std::thread::scope(|scope| {
                let handles: Vec<_> = todo.iter().map(|j| scope.spawn(move || build(j))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a compiling thread panicked"))
                    .collect()
            }),
        };
        for (job, b) in todo.into_iter().zip(built) {
            let (program, code) = b?;
            let exe = Executable::new(program, code, self.pool.clone());
            self.steps.insert(job.key, (exe, job.step.clone().into_owned()));
        }
        Ok(())
    }

    fn run(&mut self, key: StepKey, inputs: &[(&str, TensorRef)], vars: &mut Variables) -> Result<Outputs, String> {
        let (exe, step) = self.steps.get_mut(&key).ok_or("the step was not prepared")?;
        exe.run(&mut |name| lookup(inputs, vars, name))?;
        for (name, role) in &step.signature.outputs {
            // The new values become the session's; the old vector is the output buffer
            // of the next step.
            if let (Some(target), Some(Tensor::Float(out))) = (vars.target(role), exe.output_mut(name)) {
                std::mem::swap(target, out);
            }
        }
        Ok(read_outputs(step, |n| exe.output(n)))
    }
}

/// Clears the upper halves of the AVX registers before JIT code runs. Cranelift's
/// code mixes VEX and legacy SSE encodings (its register moves and spills), and after
/// AVX code that ended without `vzeroupper` every legacy instruction pays a state
/// transition: gnn-nonlinear's tanh scatter ran 80x slower (43 ms instead of 0.55 ms,
/// bench/README.md, 2026-12-03) from a C harness that left one `ymm` register dirty.
/// Compiled Rust and C code clean up after themselves; this guards the kernels against
/// any caller or library that does not, for a cycle per kernel.
#[inline]
fn clean_upper_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: `vzeroupper` exists with AVX; it zeroes bits 128 and up of the vector
        // registers, which the C ABI lets a call clobber, as declared.
        unsafe { std::arch::asm!("vzeroupper", clobber_abi("C"), options(nomem, nostack, preserves_flags)) };
    }
}

/// Kernels with less work than this run on one thread. Measured on 2 threads with the
/// workers spinning between kernels (bench/README.md, 2026-12-03): 16K split kernels of
/// 10-40 us (GAT's per-edge loops, the transformer's layer norms) and made steps 5-10%
/// faster than 128K did; a split costs about a microsecond.
const PARALLEL_WORK: usize = 16 * 1024;

/// Whether the executor splits `kernel` across `threads` threads (the profiler in
/// `bench/` uses the same rule).
pub fn splits(kernel: &mpc_compiler::schedule::Kernel, threads: usize) -> bool {
    kernel.parallel && threads > 1 && kernel.work >= PARALLEL_WORK && kernel.range >= 2
}

pub struct Executable {
    pub program: Program,
    jit: JitProgram,
    arena: Arena,
    offsets: Vec<Option<usize>>,
    /// Output buffers, in `program.outputs` order.
    outputs: Vec<Tensor>,
    ptrs: Vec<usize>,
    /// The kernels' tables of base pointers, made from `ptrs` (`JitProgram::fill_tables`).
    tables: Vec<usize>,
    /// For each buffer, its index in `outputs`.
    output_of: Vec<Option<usize>>,
    pool: Arc<Pool>,
    errors: Vec<[i32; 2]>,
    /// This batch's count for each dynamic capacity (`Program::dynamic`).
    sizes: Vec<i64>,
}

struct SendPtr(*mut [i32; 2]);
unsafe impl Sync for SendPtr {}

impl Executable {
    /// A scheduled program and its Cranelift code, ready to run on `pool`.
    pub fn new(program: Program, jit: JitProgram, pool: Arc<Pool>) -> Executable {
        let plan = plan::plan(&program);
        let outputs = program
            .outputs
            .iter()
            .map(|&(_, b)| {
                let buf = &program.buffers[b];
                match buf.dtype {
                    DType::F32 => Tensor::Float(vec![0.0; buf.len]),
                    DType::I32 => Tensor::Int(vec![0; buf.len]),
                }
            })
            .collect();
        let mut output_of = vec![None; program.buffers.len()];
        for (i, &(_, b)) in program.outputs.iter().enumerate() {
            output_of[b] = Some(i);
        }
        let threads = pool.threads();
        Executable {
            output_of,
            arena: Arena::zeroed(plan.arena_bytes),
            offsets: plan.offsets,
            // The buffers, then the run-time sizes (Program::dynamic).
            ptrs: vec![0; program.buffers.len() + 1],
            tables: Vec::new(),
            sizes: program.dynamic.iter().map(|&c| c as i64).collect(),
            outputs,
            program,
            jit,
            pool,
            errors: vec![[0; 2]; threads],
        }
    }

    /// This batch's counts from the input `@sizes` for the dynamic capacities, each at
    /// most its capacity (no input: the capacities).
    fn read_sizes<'a>(&mut self, arg: &mut dyn FnMut(&str) -> Option<TensorRef<'a>>) -> Result<(), String> {
        if self.program.dynamic.iter().all(|&c| c == 0) {
            return Ok(());
        }
        let counts = match arg(SIZES) {
            Some(TensorRef::Int(v)) if v.len() == self.sizes.len() => v.to_vec(),
            Some(_) => return Err(format!("'{SIZES}' must be i32[{}]", self.sizes.len())),
            None => self.program.dynamic.iter().map(|&c| c as i32).collect(),
        };
        for ((size, &cap), &count) in self.sizes.iter_mut().zip(&self.program.dynamic).zip(&counts) {
            if count < 0 || count as usize > cap {
                return Err(format!("'{SIZES}': count {count} is outside [0, {cap}]"));
            }
            *size = if cap == 0 { 0 } else { count as i64 };
        }
        Ok(())
    }

    /// What threads split of `kernel` on this batch: its range, with a dynamic capacity
    /// replaced by this batch's count.
    fn range(&self, kernel: &Kernel) -> usize {
        let size = |extent: usize| match self.program.dynamic_slot(extent) {
            Some(slot) => self.sizes[slot] as usize,
            None => extent,
        };
        match &kernel.body {
            KernelBody::Loop(lk) => match (lk.scatter_rows, lk.domain.first()) {
                // Row blocks and column chunks are fixed at compile time (never over a
                // dynamic count).
                _ if lk.row_blocks.is_some() || lk.col_chunks.is_some() => kernel.range,
                (Some(rows), _) => size(rows),
                (None, Some(&first)) => size(first),
                (None, None) => kernel.range,
            },
            KernelBody::MatMul(mm) => mm.tasks(size(mm.m)),
            // An argmax scatter into a zeroed output splits its positions (`Segment::zeroed`).
            KernelBody::Segment(seg) if seg.zeroed => size(seg.positions),
            KernelBody::Segment(seg) => size(seg.rows),
            KernelBody::Attention(_) => kernel.range,
        }
    }

    /// Bytes of temporaries (the arena).
    pub fn arena_bytes(&self) -> usize {
        self.arena.len()
    }

    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&Tensor> {
        let i = self.program.outputs.iter().position(|(n, _)| n == name)?;
        Some(&self.outputs[i])
    }

    pub fn output_mut(&mut self, name: &str) -> Option<&mut Tensor> {
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
    pub fn run<'a>(&mut self, arg: &mut dyn FnMut(&str) -> Option<TensorRef<'a>>) -> Result<(), String> {
        let arena = self.arena.as_mut_ptr();
        for (b, buf) in self.program.buffers.iter().enumerate() {
            self.ptrs[b] = match &buf.kind {
                BufKind::Temp => match self.offsets[b] {
                    // SAFETY: the plan keeps every offset + size inside the arena.
                    Some(o) => unsafe { arena.add(o) as usize },
                    None => 0,
                },
                BufKind::Output(_) => {
                    let i = self.output_of[b].expect("output buffer");
                    let ptr = match &mut self.outputs[i] {
                        Tensor::Float(v) if v.len() == buf.len => v.as_mut_ptr() as usize,
                        Tensor::Int(v) if v.len() == buf.len => v.as_mut_ptr() as usize,
                        o => {
                            let (name, len) = (&self.program.outputs[i].0, o.len());
                            return Err(format!("output '{name}' has {len} elements, expected {}", buf.len));
                        }
                    };
                    ptr
                }
                BufKind::Arg(name) => {
                    let (ptr, dtype, len) = match arg(name) {
                        Some(TensorRef::Float(s)) => (s.as_ptr() as usize, DType::F32, s.len()),
                        Some(TensorRef::Int(s)) => (s.as_ptr() as usize, DType::I32, s.len()),
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
        self.read_sizes(arg)?;
        let n = self.program.buffers.len();
        self.ptrs[n] = self.sizes.as_ptr() as usize;
        self.jit.fill_tables(&self.ptrs, &mut self.tables);
        let threads = self.pool.threads();
        let pool = self.pool.clone();
        let _awake = pool.hold();
        for (k, kernel) in self.program.kernels.iter().enumerate() {
            let f = self.jit.fns[k];
            // SAFETY: the kernel's table lies inside `tables`.
            let bufs = unsafe { self.tables.as_ptr().add(self.jit.table_start(k)) } as *const *mut u8;
            let range = self.range(kernel) as i64;
            if splits(kernel, threads) {
                let errors = SendPtr(self.errors.as_mut_ptr());
                let bufs = bufs as usize;
                let job = move |t: usize| {
                    let (lo, hi) = kernel.part(range as usize, t, threads);
                    let (lo, hi) = (lo as i64, hi as i64);
                    if lo < hi {
                        clean_upper_state();
                        let errors = &errors;
                        // SAFETY: every pointer in `bufs` is valid for its buffer's length
                        // (checked above), threads touch disjoint parts of the outputs,
                        // and each thread has its own error slot.
                        unsafe { f(bufs as *const *mut u8, lo, hi, errors.0.add(t) as *mut i32) };
                    }
                };
                self.pool.run(&job);
            } else {
                clean_upper_state();
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
