//! Data sets of many graphs (`graph g { .., graphs G }`): the layout's loader on the
//! fixtures of `tests/fixtures/graphs/` (the valid `tiny/` and one located error per
//! `bad_*/`), block-diagonal batches padded to a capacity, readouts equal to the
//! fixtures' hand-checked numbers, padding that changes no loss and no update, and an
//! epoch of the shipped molecules that compiles one step of each kind and matches the
//! interpreter batch by batch.

use mpc_compiler::pipeline::compile;
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::backend::Backend;
use mpc_runtime::data::graphs::Capacity;
use mpc_runtime::data::load::{input_specs, load_split, HeldOut};
use mpc_runtime::data::{defaults, Dataset, Tensor};
use mpc_runtime::session::Session;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/graphs")
}

/// A model over the fixtures' layout: node input `x: f32[N, 2]`, a target per graph,
/// `body` the lines between the declarations and the loss.
fn model(dims: &str, body: &str, loss: &str) -> String {
    format!(
        "model Batch {{
          dims {{ {dims} }}
          graph g {{ nodes N, edges i32[2, E], features f32[E, 2], graphs G }}
          input x: f32[N, 2]
          label y: f32[G]
          {body}
          loss {loss}
        }}"
    )
}

fn load(src: &str, dir: &Path) -> (Dataset, Option<Dataset>) {
    let c = compile(src, &[]).unwrap_or_else(|e| panic!("{e:?}"));
    let specs = input_specs(&c.model, &c.dims).unwrap();
    load_split(dir, &specs, HeldOut::TestDir).unwrap_or_else(|e| panic!("{e}"))
}

fn column<'a>(batch: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &batch
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .1
}

const SUM_MODEL: (&str, &str, &str) = ("G = 3, N = 10, E = 14", "", "mse(sum(readout(g, x, sum), axis: -1), y)");

#[test]
fn tiny_graphs_load_and_batch_block_diagonally_with_padding() {
    let src = model(SUM_MODEL.0, SUM_MODEL.1, SUM_MODEL.2);
    let (mut train, held) = load(&src, &fixtures().join("tiny"));
    let held = held.expect("tiny/test/");
    assert_eq!((train.rows, held.rows), (3, 2));
    // All three graphs, padded to their own size: nodes 0-2, 3-4, 5-8, then one padding
    // node (9) that padding edges would join; column 9 (graph 2, edge 3, 2 -> 1) joins
    // global nodes 7 -> 6.
    let b = train.batch(&[0, 1, 2]);
    let edges = [
        [0, 1, 1, 2, 3, 4, 5, 6, 6, 7, 7, 8, 8, 5],
        [1, 0, 2, 1, 4, 3, 6, 5, 7, 6, 8, 7, 5, 8],
    ]
    .concat();
    assert_eq!(column(&b, "g.edges"), &Tensor::Int(edges));
    assert_eq!(
        column(&b, "g.graph_of"),
        &Tensor::Int(vec![0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    );
    assert_eq!(column(&b, "y"), &Tensor::Float(vec![0.5, -1.0, 2.0]));
    assert_eq!(column(&b, "@row_mask"), &Tensor::Float(vec![1.0; 3]));
    let Tensor::Float(x) = column(&b, "x") else { panic!() };
    assert_eq!(x.len(), 20);
    assert_eq!(&x[14..20], &[7.0, 2.0, 8.0, 3.0, 0.0, 0.0]);
    // Two graphs in another order, padded to a capacity of 4 graphs, 12 nodes, 16 edges:
    // graph 2 first, padding edges join the last node, empty slots have weight 0.
    train.graphs.as_mut().unwrap().capacity = Some(Capacity {
        graphs: 4,
        nodes: 12,
        edges: 16,
    });
    let b = train.batch(&[2, 0]);
    let Tensor::Int(e) = column(&b, "g.edges") else {
        panic!()
    };
    assert_eq!(&e[..16], &[0, 1, 1, 2, 2, 3, 3, 0, 4, 5, 5, 6, 11, 11, 11, 11]);
    assert_eq!(&e[16..], &[1, 0, 2, 1, 3, 2, 0, 3, 5, 4, 6, 5, 11, 11, 11, 11]);
    assert_eq!(
        column(&b, "g.graph_of"),
        &Tensor::Int(vec![0, 0, 0, 0, 1, 1, 1, 4, 4, 4, 4, 4])
    );
    assert_eq!(column(&b, "y"), &Tensor::Float(vec![2.0, 0.5, 0.0, 0.0]));
    assert_eq!(column(&b, "@row_mask"), &Tensor::Float(vec![1.0, 1.0, 0.0, 0.0]));
    let Tensor::Float(f) = column(&b, "g.features") else {
        panic!()
    };
    assert_eq!(
        (f.len(), &f[..4], &f[24..]),
        (32, &[6.0, 1.0, 7.0, 1.0][..], &[0.0; 8][..])
    );
    // The held-out graphs: one node without edges, then a bond.
    let b = held.batch(&[0, 1]);
    assert_eq!(column(&b, "g.graph_of"), &Tensor::Int(vec![0, 1, 1, 2]));
    assert_eq!(column(&b, "g.edges"), &Tensor::Int(vec![1, 2, 2, 1]));
}

#[test]
fn bad_graph_data_gets_one_located_error_each() {
    let src = model(SUM_MODEL.0, SUM_MODEL.1, SUM_MODEL.2);
    let expected = [
        (
            "bad_edge_node",
            "bad_edge_node/edges.npy: graph 2, edge 3 (column 9): destination 40 is outside [0, 4)",
        ),
        (
            "bad_edge_negative",
            "bad_edge_negative/edges.npy: graph 0, edge 0 (column 0): source -1 is outside [0, 3)",
        ),
        (
            "bad_node_counts_sum",
            "bad_node_counts_sum/node_counts.npy: the node counts add up to 10, but x.npy has 9 rows",
        ),
        (
            "bad_edge_counts_sum",
            "bad_edge_counts_sum/edge_counts.npy: the edge counts add up to 12, but edges.npy has 14 edges",
        ),
        (
            "bad_negative_count",
            "bad_negative_count/node_counts.npy: graph 1: node count -1 is negative",
        ),
        (
            "bad_nan_feature",
            "bad_nan_feature/x.npy: row 5, column 1: NaN (f32 data must be finite)",
        ),
        (
            "bad_y_length",
            "bad_y_length/y.npy: 2 rows, but node_counts.npy has 3 graphs (one target per graph)",
        ),
        (
            "bad_edge_features_rows",
            "bad_edge_features_rows/edge_features.npy: 13 rows, but edges.npy has 14 edges (one row per edge)",
        ),
    ];
    let c = compile(&src, &[]).unwrap();
    let specs = input_specs(&c.model, &c.dims).unwrap();
    for (dir, message) in expected {
        let err = load_split(&fixtures().join(dir), &specs, HeldOut::None).unwrap_err();
        assert!(err.ends_with(message), "{dir}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// The readout of `x` summed over its two columns, per graph, for `op`: the
/// predictions of a model whose loss scores exactly that.
fn readouts(op: &str, graphs: &[usize]) -> Vec<f32> {
    let src = model(
        "G = 4, N = 12, E = 16",
        "",
        &format!("mse(sum(readout(g, x, {op}), axis: -1), y)"),
    );
    let (mut train, _) = load(&src, &fixtures().join("tiny"));
    let c = compile(&src, &[]).unwrap();
    train.graphs.as_mut().unwrap().capacity = Some(Capacity {
        graphs: 4,
        nodes: 12,
        edges: 16,
    });
    let mut session = Session::with_backend(c, 0, Backend::Interpreter).unwrap();
    session.predict_batch(&train.batch(graphs)).unwrap().unwrap()
}

#[test]
fn readouts_are_the_hand_checked_sums_means_and_maxes() {
    // Per graph (column 0 + column 1): sum [3, 3] [7, 1] [26, 6]; mean [1, 1] [3.5, 0.5]
    // [6.5, 1.5]; max [2, 2] [4, 1] [8, 3]. One empty slot: predictions of 3 graphs.
    assert_eq!(readouts("sum", &[0, 1, 2]), vec![6.0, 8.0, 32.0]);
    assert_eq!(readouts("mean", &[0, 1, 2]), vec![2.0, 4.0, 8.0]);
    assert_eq!(readouts("max", &[0, 1, 2]), vec![4.0, 5.0, 11.0]);
    // Any order of graphs, any slot.
    assert_eq!(readouts("max", &[2, 0]), vec![11.0, 4.0]);
}

/// A GNN over the fixtures with every aggregation, edge features and a readout.
fn gnn(dims: &str, readout: &str) -> String {
    model(
        dims,
        "message m1(src, dst, e) = tanh(linear(concat(src, dst, e), 4))
         message m2(src) = linear(src, 4)
         let h = relu(propagate(g, x, m1, aggregate: sum) + propagate(g, x, m2, aggregate: max)
                      + propagate(g, x, m2, aggregate: mean) + linear(x, 4))",
        &format!("mse(reshape(linear(readout(g, h, {readout}), 1), [G]), y)"),
    )
}

#[test]
fn padding_changes_no_loss_no_prediction_and_no_update() {
    for readout in ["sum", "mean", "max"] {
        // Exact: 2 slots, 7 nodes + 1, 12 edges; padded: 5 slots, 20 nodes, 30 edges.
        let run = |dims: &str, cap: Capacity| {
            let src = gnn(dims, readout);
            let (mut train, _) = load(&src, &fixtures().join("tiny"));
            train.graphs.as_mut().unwrap().capacity = Some(cap);
            let c = compile(&src, &[]).unwrap();
            let mut s = Session::with_backend(c, 3, Backend::Interpreter).unwrap();
            let batch = train.batch(&[2, 0]);
            let before = s.evaluate_batch(&batch).unwrap();
            let predictions = s.predict_batch(&batch).unwrap().unwrap();
            let trained = s.train_step(&batch).unwrap();
            let after = s.evaluate_batch(&batch).unwrap();
            (
                before.loss,
                predictions,
                trained.loss,
                after.loss,
                s.params().unwrap().clone(),
            )
        };
        let exact = run(
            "G = 2, N = 8, E = 12",
            Capacity {
                graphs: 2,
                nodes: 8,
                edges: 12,
            },
        );
        let padded = run(
            "G = 5, N = 20, E = 30",
            Capacity {
                graphs: 5,
                nodes: 20,
                edges: 30,
            },
        );
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(1.0);
        assert!(close(exact.0, padded.0), "{readout}: {} vs {}", exact.0, padded.0);
        assert_eq!(exact.1.len(), 2);
        for (a, b) in exact.1.iter().zip(&padded.1) {
            assert!(
                close(*a as f64, *b as f64),
                "{readout}: {:?} vs {:?}",
                exact.1,
                padded.1
            );
        }
        assert!(close(exact.2, padded.2) && close(exact.3, padded.3), "{readout}");
        assert!(exact.3 < exact.0, "{readout}: a step lowers the loss");
        for (name, p) in &exact.4 {
            for (a, b) in p.iter().zip(&padded.4[name]) {
                assert!(close(*a as f64, *b as f64), "{readout}: {name}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn an_epoch_of_molecules_compiles_once_and_matches_the_interpreter() {
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/molecules.mp")).unwrap();
    let c = compile(&src, &[("G".into(), 32)]).unwrap();
    let (train, _) = defaults::default_dataset(&c.model, &c.dims, 0).unwrap();
    // 6 shuffled batches of 32 molecules (the last partial): sizes vary batch to batch.
    let (mut data, _) = train.split_tail(train.rows - 170);
    let batches = data.epoch_batches(32, &mut SplitMix64::new(5));
    let rows = data.graphs.as_ref().unwrap();
    let cap = rows.capacity_for(32, batches.iter().map(|b| b.as_slice()));
    let sizes: Vec<(usize, usize)> = batches
        .iter()
        .map(|b| rows.set.size(&b.iter().map(|&r| rows.ids[r]).collect::<Vec<_>>()))
        .collect();
    assert!(sizes.windows(2).any(|w| w[0] != w[1]), "{sizes:?}");
    data.graphs.as_mut().unwrap().capacity = Some(cap);
    let dims = [("G".into(), 32), ("N".into(), cap.nodes), ("E".into(), cap.edges)];
    let compiled = || compile(&src, &dims).unwrap();
    // The JIT's kernels run over each batch's own node and edge counts (`@sizes`), the
    // interpreter over the padded capacity.
    let mut jit = Session::with_backend(compiled(), 0, Backend::Jit { threads: 2 }).unwrap();
    let mut jit1 = Session::with_backend(compiled(), 0, Backend::Jit { threads: 1 }).unwrap();
    let mut interp = Session::with_backend(compiled(), 0, Backend::Interpreter).unwrap();
    for order in &batches {
        let batch = data.batch(order);
        let one = jit1.train_step(&batch).unwrap();
        let (a, b) = (jit.train_step(&batch).unwrap(), interp.train_step(&batch).unwrap());
        assert_eq!(a.loss.to_bits(), one.loss.to_bits(), "1 and 2 threads");
        assert!(
            (a.loss - b.loss).abs() <= 1e-5 * b.loss.abs(),
            "JIT {} vs interpreter {}",
            a.loss,
            b.loss
        );
        assert_eq!(a.rows, order.len());
        let (a, b) = (
            jit.evaluate_batch(&batch).unwrap(),
            interp.evaluate_batch(&batch).unwrap(),
        );
        assert!(
            (a.loss - b.loss).abs() <= 1e-5 * b.loss.abs(),
            "JIT {} vs interpreter {}",
            a.loss,
            b.loss
        );
    }
    assert_eq!(
        jit.compiles,
        (1, 1),
        "one training and one evaluation step for every batch"
    );
}
