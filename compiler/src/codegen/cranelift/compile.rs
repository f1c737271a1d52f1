//! Compiling built kernel functions to machine code on several threads.
//!
//! In: functions built by `build` (Cranelift IR), in batches. Out: their machine code,
//! defined in the JIT module in kernel order, so the code does not depend on the
//! thread count.

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::Context;
use cranelift_jit::JITModule;
use cranelift_module::{FuncId, Module, ModuleReloc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Kernels compiled together: built one after the other (cheap), compiled by up to
/// [`MAX_THREADS`] threads at once, defined in order. A batch bounds the memory that
/// built but not yet compiled functions hold (a whole example step is one batch).
pub(super) const BATCH: usize = 128;
pub(super) const MAX_THREADS: usize = 8;

/// Compiles the functions of `batch` on `threads` threads and defines them in `module`
/// in kernel order, so the code does not depend on the thread count. Deep models have
/// thousands of kernels: compiling them is most of their compile time.
///
/// The threads share one queue, largest function first (by instruction count): one
/// kernel can take a fifth of a step's compile time (the transformer's three dropout
/// streams), and fixed halves left one thread idle for a third of the batch.
pub(super) fn define_batch(
    module: &mut JITModule,
    batch: &mut Vec<(FuncId, Function, usize)>,
    threads: usize,
) -> Result<(), String> {
    let isa = module.isa();
    let compiled: Vec<Result<Compiled, String>> = if threads <= 1 || batch.len() <= 1 {
        let mut ctx = Context::new();
        batch
            .iter_mut()
            .map(|(id, f, i)| compile_one(isa, &mut ctx, *id, f, *i))
            .collect()
    } else {
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&j| std::cmp::Reverse(batch[j].1.dfg.num_insts()));
        let jobs: Vec<Mutex<&mut (FuncId, Function, usize)>> = batch.iter_mut().map(Mutex::new).collect();
        let next = AtomicUsize::new(0);
        let done: Vec<Mutex<Option<Result<Compiled, String>>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..threads.min(jobs.len()) {
                scope.spawn(|| {
                    let mut ctx = Context::new();
                    while let Some(&j) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let mut job = jobs[j].lock().expect("each job is taken once");
                        let (id, f, i) = &mut **job;
                        let c = compile_one(isa, &mut ctx, *id, f, *i);
                        *done[j].lock().expect("each result is written once") = Some(c);
                    }
                });
            }
        });
        done.into_iter()
            .map(|c| c.into_inner().ok().flatten().expect("a Cranelift thread panicked"))
            .collect()
    };
    for ((id, _, _), c) in batch.drain(..).zip(compiled) {
        let c = c?;
        module
            .define_function_bytes(id, c.alignment, &c.bytes, &c.relocs)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One function's machine code, ready for the module.
struct Compiled {
    alignment: u64,
    bytes: Vec<u8>,
    relocs: Vec<ModuleReloc>,
}

/// What `JITModule::define_function` does before it touches the module, so that it can
/// run on another thread. `ctx` is the thread's: its register allocator's and analyses'
/// memory is reused from one function to the next (fresh contexts spent a tenth of
/// the compile time in malloc and free).
fn compile_one(
    isa: &dyn TargetIsa,
    ctx: &mut Context,
    id: FuncId,
    func: &mut Function,
    kernel: usize,
) -> Result<Compiled, String> {
    ctx.clear();
    ctx.func = std::mem::replace(func, Function::new());
    let alignment = ctx
        .compile(isa, &mut ControlPlane::default())
        .map_err(|e| format!("Cranelift rejected kernel k{kernel}: {:?}", e.inner))?
        .buffer
        .alignment as u64;
    let code = ctx.compiled_code().expect("just compiled");
    // For profiling: `MPC_DUMP_CODE=DIR` writes each function's machine code to
    // `DIR/k<kernel>-<bytes>.bin` (`objdump -D -b binary -mi386:x86-64` reads it).
    if let Ok(dir) = std::env::var("MPC_DUMP_CODE") {
        let _ = std::fs::write(
            format!("{dir}/k{kernel}-{}.bin", code.code_buffer().len()),
            code.code_buffer(),
        );
    }
    Ok(Compiled {
        alignment,
        bytes: code.code_buffer().to_vec(),
        relocs: code
            .buffer
            .relocs()
            .iter()
            .map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id))
            .collect(),
    })
}
