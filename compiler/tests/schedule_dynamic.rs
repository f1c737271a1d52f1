//! Sizes read at run time (`schedule::dynamic`): which capacities of a batch of graphs
//! the CPU program lets each batch replace with its own counts, and when it keeps all
//! of them (a layout the kernels cannot shrink).

use mpc_compiler::pipeline::{capacity_probe, compile, for_cpu_dynamic};

fn dynamic(src: &str, dims: &[(&str, usize)]) -> Vec<usize> {
    let dims: Vec<(String, usize)> = dims.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    let c = compile(src, &dims).unwrap_or_else(|e| panic!("{e:?}"));
    let (capacities, probe) = capacity_probe(&c).unwrap().expect("a batch of graphs");
    let train = for_cpu_dynamic(&c.train_step.graph, &probe.train_step.graph, &capacities)
        .unwrap()
        .0;
    let eval = for_cpu_dynamic(&c.eval.graph, &probe.eval.graph, &capacities)
        .unwrap()
        .0;
    assert_eq!(train.dynamic, eval.dynamic);
    train.dynamic
}

#[test]
fn the_molecule_step_reads_its_node_and_edge_counts_at_run_time() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/molecules.mp")).unwrap();
    assert_eq!(dynamic(&src, &[("N", 1336), ("E", 2782)]), vec![1336, 2782]);
}

fn batched(graph_entries: &str, body: &str) -> String {
    format!(
        "model M {{
          dims {{ G = 8, N = 200, E = 400, F = 6 }}
          graph g {{ nodes N, edges i32[2, E]{graph_entries}, graphs G }}
          input x: f32[N, F]
          label y: f32[G]
          {body}
        }}"
    )
}

#[test]
fn layouts_the_kernels_cannot_shrink_keep_the_capacities() {
    // Self-loops append N loops after the E edges: the messages' rows are no prefix.
    let src = batched(
        ", self_loops",
        "message m(src) = linear(src, 8)
         loss mse(reshape(linear(readout(g, propagate(g, x, m, aggregate: sum), sum), 1), [G]), y)",
    );
    assert_eq!(dynamic(&src, &[]), vec![0, 0]);
    // Without them, the same model shrinks with each batch.
    let src = src.replace(", self_loops", "");
    assert_eq!(dynamic(&src, &[]), vec![200, 400]);
    // A static size equal to a capacity cannot be told apart from it.
    let src = batched(
        "",
        "message m(src) = linear(src, 200)
         loss mse(reshape(linear(readout(g, propagate(g, x, m, aggregate: max), mean), 1), [G]), y)",
    );
    assert_eq!(dynamic(&src, &[]), vec![0, 0]);
}
