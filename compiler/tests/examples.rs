//! Every example model, at every stage: the syntax tree, the forward IR, the whole
//! training step, the optimized training step with the optimizer's statistics (without
//! the time) and its kernels, as snapshots named after the file; and every graph validates.
//! New files in `examples/` are picked up without touching this test.

mod common;

use common::examples;
use mpc_compiler::internals::opt::{format_stats, optimize, Limits};
use mpc_compiler::internals::syntax::print_ast;
use mpc_compiler::ir::printer::print_graph;
use mpc_compiler::pipeline::compile;

#[test]
fn stages() {
    for (name, src) in examples() {
        let c = compile(&src, &[]).unwrap_or_else(|d| panic!("{name}: {d:?}"));
        for g in [&c.forward, &c.eval, &c.train_step] {
            assert_eq!(g.validate(), Ok(()), "{name}: graph {}", g.name);
        }
        // The training step ends with one optimizer update per parameter.
        let grad = print_graph(&c.train_step);
        for p in &c.model.params {
            assert!(
                grad.contains(&format!("param:{} = %", p.name)),
                "{name}: no update of {}",
                p.name
            );
        }
        // Deterministic limits: the snapshot must not depend on the machine's speed.
        let (opt, stats) = optimize(&c.train_step, &Limits::deterministic()).unwrap();
        assert_eq!(opt.validate(), Ok(()), "{name}: optimized graph");
        insta::with_settings!({ snapshot_suffix => name.as_str(), description => format!("examples/{name}.mp") }, {
            insta::assert_snapshot!("ast", print_ast(&c.program, &src));
            insta::assert_snapshot!("ir", print_graph(&c.forward));
            insta::assert_snapshot!("eval", print_graph(&c.eval));
            insta::assert_snapshot!("grad", grad);
            insta::assert_snapshot!("opt", print_graph(&opt));
            insta::assert_snapshot!("opt_stats", format_stats(&stats, false));
            insta::assert_snapshot!("kernels", mpc_compiler::schedule::print_program(&mpc_compiler::schedule::schedule(&opt)));
        });
    }
}
