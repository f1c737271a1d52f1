//! The compiler as one list of named passes. This is the only place that runs them in
//! sequence: the CLI, the runtime's `Session` and its engines all come through here.
//!
//! ```text
//! pass          in -> out                                            --emit
//! parse         source text -> ast::Program (spans)                  ast
//! check         ast::Program -> CheckedModel (symbolic shapes)       (mpc check)
//! specialize    CheckedModel + dim values -> DimValues, sizes checked (mpc inspect)
//! lower         CheckedModel + DimValues -> forward and eval Steps    ir
//! autodiff      forward Step + optimizer -> training Step             grad
//! optimize      a Step's graph -> cheaper equivalent graph (egg)      opt
//! schedule      graph -> kernel Program (fused loops, GEMMs)          kernels
//! fuse_attention  (CPU) scores, softmax and weighted sum as one kernel  kernels
//! split_reductions  (CPU) Program -> outer-axis sums in row blocks    kernels
//! zero_scatter_targets  (CPU) scatters' outputs zeroed in parallel first  kernels
//! split_scatter_columns  (CPU) zeroed scatters split by column chunks (or rows)  kernels
//! fuse_max_messages  (CPU) a max aggregation's messages computed in its scatter  kernels
//! share_argmax_maxima  (CPU) a segment max written by its argmax's scan  kernels
//! split_store_groups  (GPU) a fused loop split by the axes its stores keep  ptx
//! block_reductions  (GPU) outer-axis sums in row blocks, then combined  ptx
//! memory        steps scheduled -> bytes a run needs (Footprint)      (mpc inspect)
//! codegen_cpu   Program -> native functions (Cranelift JIT)           clif
//! codegen_ptx   Program -> PTX text and launch shapes                 ptx
//! export_onnx   eval Step + parameters -> ONNX model (opset 18)       (mpc export)
//! ```
//!
//! [`compile`] runs the front half (parse to autodiff) once per model;
//! [`steps_for_rows`] runs specialize, lower and autodiff again for a partial batch; an
//! engine takes a step to what it runs with [`for_cpu`] or [`for_ptx`] (the interpreter
//! runs the step graph as autodiff made it: it is the oracle). Errors of the front half
//! are diagnostics with source spans; later passes fail only on compiler bugs or on
//! sizes beyond the machine, as one-line messages.

use crate::autodiff;
use crate::check::{self, CheckedModel};
use crate::codegen::{cranelift, ptx};
use crate::diag::Diagnostic;
use crate::export;
use crate::ir::{printer::print_graph, Graph};
use crate::lower::{self, Mode};
use crate::memory::Footprint;
use crate::opt::{self, Limits};
use crate::schedule::{self, Program};
use crate::signature::Step;
use crate::specialize::{self, DimValues};
use crate::syntax::{self, ast};

pub use crate::autodiff::Optimizer;
pub use crate::codegen::cranelift::JitProgram;
pub use crate::codegen::ptx::{Launch, PtxProgram};
pub use crate::export::{onnx::OPSET as ONNX_OPSET, Elem as OnnxElem, OnnxModel, ValueInfo as OnnxValue};
pub use crate::opt::{format_stats, Stats};

/// What the user may change without editing the model.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Dim values overriding the defaults (`--dim B=32`, a checkpoint's dims, `--batch`).
    pub dims: Vec<(String, usize)>,
    /// The optimizer's learning rate instead of the train block's (`--lr`).
    pub lr: Option<f64>,
    /// The batch row that the steps' row 0 is: 0, or a data-parallel shard's first row
    /// of the whole batch, so that its dropout masks are those rows' (see
    /// [`lower::lower_rows_from`]).
    pub first_row: usize,
}

/// A model taken through the front half: every stage up to the training step.
pub struct Compiled {
    pub program: ast::Program,
    pub model: CheckedModel,
    pub dims: DimValues,
    /// The batch row the steps' row 0 is ([`Options::first_row`]).
    pub first_row: usize,
    /// Forward pass with dropout active: `loss` (and `predictions`).
    pub forward: Step,
    /// Forward pass without dropout.
    pub eval: Step,
    /// Forward, backward and optimizer update.
    pub train_step: Step,
}

/// The steps of one model for one set of dim values.
pub struct Steps {
    pub forward: Step,
    pub eval: Step,
    pub train_step: Step,
}

/// parse
pub fn parse(src: &str) -> Result<ast::Program, Vec<Diagnostic>> {
    syntax::parse(src).map_err(|d| vec![d])
}

/// parse, check
pub fn check(src: &str) -> Result<(ast::Program, CheckedModel), Vec<Diagnostic>> {
    let program = parse(src)?;
    let model = check::check(&program)?;
    Ok((program, model))
}

/// specialize: dim values from the defaults and `overrides`, every tensor's size checked.
pub fn specialize(
    program: &ast::Program,
    model: &CheckedModel,
    overrides: &[(String, usize)],
) -> Result<DimValues, Vec<Diagnostic>> {
    let dims = specialize::dim_values(model, overrides)?;
    specialize::check_sizes(model, &dims).map_err(|e| at_model(program, e))?;
    Ok(dims)
}

/// An error of a pass after check, shown at the model's name.
fn at_model(program: &ast::Program, message: String) -> Vec<Diagnostic> {
    vec![Diagnostic::new(message, program.model.name.span, "in this model")]
}

/// lower, autodiff: the forward, evaluation and training steps for `dims` (specialized),
/// row 0 being the batch's row `first_row` (0 but for a data-parallel shard).
pub fn steps(model: &CheckedModel, dims: &DimValues, first_row: usize) -> Result<Steps, String> {
    let forward = lower::lower_step_rows_from(model, dims, Mode::Train, first_row)?;
    let eval = lower::lower_step(model, dims, Mode::Eval)?;
    let train_step = autodiff::training_step(&forward, &model.train.optimizer);
    Ok(Steps {
        forward,
        eval,
        train_step,
    })
}

/// The front half with `dims` overriding the defaults (see [`compile_with`]).
pub fn compile(src: &str, dims: &[(String, usize)]) -> Result<Compiled, Vec<Diagnostic>> {
    let options = Options {
        dims: dims.to_vec(),
        ..Options::default()
    };
    compile_with(src, &options)
}

/// The front half: parse, check, specialize, lower, autodiff.
pub fn compile_with(src: &str, options: &Options) -> Result<Compiled, Vec<Diagnostic>> {
    let (program, mut model) = check(src)?;
    if let Some(lr) = options.lr {
        model.train.optimizer.set_lr(lr);
    }
    let dims = specialize(&program, &model, &options.dims)?;
    let Steps {
        forward,
        eval,
        train_step,
    } = steps(&model, &dims, options.first_row).map_err(|e| at_model(&program, e))?;
    Ok(Compiled {
        program,
        model,
        dims,
        first_row: options.first_row,
        forward,
        eval,
        train_step,
    })
}

/// The steps of `compiled`'s model for batches of `rows` rows (the batch dim set to it).
pub fn steps_for_rows(compiled: &Compiled, rows: usize) -> Result<Steps, String> {
    let dims = specialize::with_batch_rows(&compiled.model, &compiled.dims, rows)?;
    specialize::check_sizes(&compiled.model, &dims)?;
    steps(&compiled.model, &dims, compiled.first_row)
}

/// autodiff, first half of a data-parallel training step: forward and backward with
/// `grad:<param>` outputs (the gradients' all-reduce runs after it).
pub fn gradient_step(forward: &Step) -> Step {
    autodiff::gradient_step(forward)
}

/// autodiff, second half of a data-parallel training step: the optimizer update, which
/// takes the summed gradients as `grad:<param>` inputs.
pub fn update_step(forward: &Step, opt: &Optimizer) -> Step {
    autodiff::update_step(forward, opt)
}

/// A batch of graphs' capacities (`[N, E]` of its `graphs G` graph) and the steps of
/// `compiled`'s model at other capacities (the probe that tells `for_cpu_dynamic` which
/// kernel extents grow with them); `None` for other models.
pub fn capacity_probe(compiled: &Compiled) -> Result<Option<(Vec<usize>, Steps)>, String> {
    let Some(g) = compiled.model.graphs.iter().find(|g| g.graphs.is_some()) else {
        return Ok(None);
    };
    let mut dims = compiled.dims.clone();
    let mut capacities = Vec::new();
    for dim in [&g.nodes, &g.edges] {
        let name = dim.to_string();
        let Some(value) = dims.get_mut(&name) else {
            return Ok(None);
        };
        capacities.push(*value);
        *value += PROBE_STEP;
    }
    specialize::check_sizes(&compiled.model, &dims)?;
    Ok(Some((capacities, steps(&compiled.model, &dims, compiled.first_row)?)))
}

/// How much the probe's capacities exceed the real ones.
const PROBE_STEP: usize = 17;

/// for_cpu with sizes read at run time: `probe` is the same step at other capacities
/// (`capacity_probe`); the kernel extents that grow with `capacities` and that the
/// kernels can shrink become the batch's counts (`schedule::dynamic`).
pub fn for_cpu_dynamic(graph: &Graph, probe: &Graph, capacities: &[usize]) -> Result<(Program, JitProgram), String> {
    let (optimized, _) = optimize(graph)?;
    let (probe_optimized, _) = optimize(probe)?;
    let mut program = schedule(&optimized);
    let probe_program = schedule(&probe_optimized);
    program.dynamic =
        schedule::dynamic::dynamic_capacities(capacities, (&program, &optimized), (&probe_program, &probe_optimized));
    split_reductions(&mut program);
    zero_scatter_targets(&mut program);
    fuse_max_messages(&mut program);
    share_argmax_maxima(&mut program);
    split_long_math(&mut program);
    let code = codegen_cpu(&program)?;
    Ok((program, code))
}

/// optimize, with the default limits (what every engine runs).
pub fn optimize(graph: &Graph) -> Result<(Graph, Stats), String> {
    opt::optimize(graph, &Limits::default())
}

/// schedule
pub fn schedule(graph: &Graph) -> Program {
    schedule::schedule(graph)
}

/// fuse_attention: for the CPU, attention's chain (the scores' batched matmul, the
/// loops of their transform and softmax, the product with `V`) becomes one kernel per
/// (sequence, head) when nothing else reads the intermediates (an evaluation step's).
pub fn fuse_attention(program: &mut Program) {
    schedule::attention::fuse_attention(program)
}

/// split_reductions: for the CPU, a loop that reduces over its outermost axis (and so
/// ran on one thread) runs in fixed blocks of rows that threads share, plus a kernel
/// that adds the blocks' partial results in block order. The GPU keeps the plain program.
pub fn split_reductions(program: &mut Program) {
    schedule::row_blocks::split_reductions(program)
}

/// zero_scatter_targets: for the CPU, a scatter-add that runs on one thread (its adds
/// follow position order) gets its output zeroed by a kernel that threads split; so
/// does a large argmax scatter (a max aggregation's gradient), which then splits its
/// positions between threads.
pub fn zero_scatter_targets(program: &mut Program) {
    schedule::zero_fill::zero_scatter_targets(program)
}

/// split_scatter_columns: for the CPU, a scatter-add whose output is zeroed already
/// and whose rows are four cache lines or more is split between threads by column
/// chunks (each thread walks every position in order, over its own columns); any
/// other, by output rows (each thread gathers its rows' positions, then runs them).
pub fn split_scatter_columns(program: &mut Program) {
    schedule::scatter_columns::split_scatter_columns(program)
}

/// fuse_max_messages: for the CPU, a max aggregation (a segment max) whose messages
/// one loop computes and nothing else reads takes them from that loop directly: the
/// loop becomes a scatter-max whose threads own output rows, and the messages are
/// never stored (an evaluation step's; training keeps them for the argmax).
pub fn fuse_max_messages(program: &mut Program) {
    schedule::max_messages::fuse_max_messages(program)
}

/// share_argmax_maxima: for the CPU, a segment max over the same values and index as
/// an argmax (a training step's max aggregation and its gradient's positions) is
/// written by the argmax's scan, which keeps the running maxima anyway.
pub fn share_argmax_maxima(program: &mut Program) {
    schedule::argmax_maxima::share_argmax_maxima(program)
}

/// split_long_math: for the CPU, a large loop with `exp`, `log`, `tanh` or `erf` per
/// element computes their arguments first, then each function in a map kernel of its
/// own (AVX-512 library code where the host has it, sixteen lanes), then the rest.
pub fn split_long_math(program: &mut Program) {
    schedule::long_math::split_long_math(program)
}

/// split_store_groups (GPU): a fused loop whose stores keep different axes (a layer
/// norm's per-row values and per-column weight gradients) is one loop per group of
/// stores, so that each runs a GPU thread per element it keeps instead of one thread.
pub fn split_store_groups(program: &mut Program) {
    schedule::store_groups::split_store_groups(program)
}

/// block_reductions (GPU): a sum over a loop's outer axis (a loss, a bias gradient) in
/// row blocks that GPU threads share, then a combine kernel in block order.
pub fn block_reductions(program: &mut Program) {
    schedule::block_reductions::block_reductions(program)
}

/// schedule, split_store_groups, block_reductions: the kernels the GPU runs for an
/// optimized graph.
pub fn schedule_gpu(optimized: &Graph) -> Program {
    let mut program = schedule(optimized);
    split_store_groups(&mut program);
    block_reductions(&mut program);
    program
}

/// schedule, fuse_attention, split_reductions, zero_scatter_targets,
/// split_scatter_columns, fuse_max_messages, share_argmax_maxima, split_long_math: the
/// kernels the CPU runs for an optimized graph.
pub fn schedule_cpu(optimized: &Graph) -> Program {
    let mut program = schedule(optimized);
    fuse_attention(&mut program);
    split_reductions(&mut program);
    zero_scatter_targets(&mut program);
    split_scatter_columns(&mut program);
    fuse_max_messages(&mut program);
    share_argmax_maxima(&mut program);
    split_long_math(&mut program);
    program
}

/// codegen for the CPU: Cranelift functions, one per kernel.
pub fn codegen_cpu(program: &Program) -> Result<JitProgram, String> {
    cranelift::compile(program)
}

/// codegen for NVIDIA GPUs: PTX text, one entry per kernel.
pub fn codegen_ptx(program: &Program) -> Result<PtxProgram, String> {
    ptx::emit(program)
}

/// export_onnx: `compiled`'s evaluation step (no dropout) with `params` (a checkpoint's,
/// by name) as an ONNX model whose one output is `predictions`; its inputs are the
/// model inputs the predictions read, at `compiled`'s dims.
pub fn export_onnx(
    compiled: &Compiled,
    params: &std::collections::BTreeMap<String, Vec<f32>>,
) -> Result<OnnxModel, String> {
    if compiled.eval.output("predictions").is_none() {
        return Err("the model's loss scores no predictions, so there is no output to export".into());
    }
    export::export(&compiled.eval, params, &["predictions"])
}

/// schedule the training and evaluation steps (as autodiff made them) to size what a
/// run of `compiled` holds: variables, a batch, each step's buffers (see [`Footprint`]).
pub fn memory(compiled: &Compiled) -> Footprint {
    Footprint::new(
        compiled,
        &schedule_cpu(&compiled.train_step),
        &schedule_cpu(&compiled.eval),
    )
}

/// optimize, schedule_cpu, codegen_cpu: what the JIT engine runs for a step graph.
///
/// With `MPC_GPU_SCHEDULE` set, the CPU runs the GPU's kernel program instead
/// ([`schedule_gpu`]): how a machine without a GPU checks the GPU's own passes
/// (`tests/ptx.rs` trains every example both ways and compares the losses).
pub fn for_cpu(graph: &Graph) -> Result<(Program, JitProgram), String> {
    let (optimized, _) = optimize(graph)?;
    let program = match std::env::var_os("MPC_GPU_SCHEDULE") {
        Some(_) => schedule_gpu(&optimized),
        None => schedule_cpu(&optimized),
    };
    let code = codegen_cpu(&program)?;
    Ok((program, code))
}

/// optimize, schedule, codegen_ptx: what the CUDA engine runs for a step graph.
pub fn for_ptx(graph: &Graph) -> Result<(Program, PtxProgram), String> {
    let (optimized, _) = optimize(graph)?;
    let program = schedule_gpu(&optimized);
    let code = codegen_ptx(&program)?;
    Ok((program, code))
}

/// A point on the pass list that `mpc compile --emit` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// parse: the syntax tree.
    Ast,
    /// check: the model's message-passing structure, as Graphviz.
    Dot,
    /// lower: the forward step (or the evaluation step).
    Ir,
    /// autodiff: the training step.
    Grad,
    /// optimize: the training (or evaluation) step after e-graph rewriting.
    Opt,
    /// schedule: its fused kernels.
    Kernels,
    /// codegen_cpu: their Cranelift IR.
    Clif,
    /// codegen_ptx: their PTX.
    Ptx,
}

impl Stage {
    /// Every stage in pass order, with its `--emit` name and what it prints.
    pub const ALL: [(Stage, &'static str, &'static str); 8] = [
        (Stage::Ast, "ast", "The syntax tree"),
        (
            Stage::Dot,
            "dot",
            "The model's message-passing structure as Graphviz (inputs, embeddings, messages, rounds, propagations, head)",
        ),
        (Stage::Ir, "ir", "The forward tensor IR"),
        (
            Stage::Grad,
            "grad",
            "The whole training step: forward, backward and optimizer update",
        ),
        (
            Stage::Opt,
            "opt",
            "The training step (with --eval the evaluation step) after e-graph optimization",
        ),
        (
            Stage::Kernels,
            "kernels",
            "The training step (or with --eval the evaluation step) as the CPU's fused kernels",
        ),
        (Stage::Clif, "clif", "The Cranelift IR of those kernels"),
        (
            Stage::Ptx,
            "ptx",
            "Those kernels as PTX for NVIDIA GPUs (sm_80 and later)",
        ),
    ];

    /// The stage called `name` (as `--emit` spells it).
    pub fn named(name: &str) -> Option<Stage> {
        Stage::ALL.iter().find(|(_, n, _)| *n == name).map(|&(s, _, _)| s)
    }
}

/// The text of `stage` for `compiled` (`source` is the model's text, for the syntax
/// tree); `eval` picks the evaluation step over the training one. The optimizer's
/// statistics come with the stages after `optimize`.
pub fn emit(compiled: &Compiled, source: &str, stage: Stage, eval: bool) -> Result<(String, Option<Stats>), String> {
    let graph = if eval { &compiled.eval } else { &compiled.train_step };
    let text = match stage {
        Stage::Ast => syntax::print_ast(&compiled.program, source),
        Stage::Dot => crate::dot::model_dot(&compiled.program, source, &compiled.model),
        Stage::Ir if eval => print_graph(&compiled.eval),
        Stage::Ir => print_graph(&compiled.forward),
        Stage::Grad => print_graph(&compiled.train_step),
        Stage::Opt | Stage::Kernels | Stage::Clif | Stage::Ptx => {
            let (optimized, stats) = optimize(graph)?;
            let text = match stage {
                Stage::Opt => print_graph(&optimized),
                Stage::Kernels => schedule::print_program(&schedule_cpu(&optimized)),
                Stage::Clif => cranelift::clif_text(&schedule_cpu(&optimized))?,
                _ => codegen_ptx(&schedule_gpu(&optimized))?.text,
            };
            return Ok((text, Some(stats)));
        }
    };
    Ok((text, None))
}
