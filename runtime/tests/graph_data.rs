//! Graph data from files: edge lists as whole inputs (passed with every batch), edge
//! indices checked against the graph's nodes with errors naming the file, the edge and
//! the value, rows that must be the graph's nodes, unlabeled nodes (-1), held-out labels
//! in `test/` with the other inputs defaulting to the training ones, no `--holdout`
//! split, and full-batch epochs in node order. Also the default graph data: the shipped
//! karate club and the seeded stochastic block model.

use mpc_compiler::ir::DType;
use mpc_compiler::seeded::SplitMix64;
use mpc_runtime::data::load::{load_eval, load_split, GraphRef, HeldOut, InputSpec};
use mpc_runtime::data::synthetic::{graph, GraphTask};
use mpc_runtime::data::{defaults, npy, Tensor};
use std::path::{Path, PathBuf};

const N: usize = 6;
const E: usize = 5;

fn spec(name: &str, dtype: DType, shape: &[usize]) -> InputSpec {
    InputSpec {
        name: name.into(),
        dtype,
        row_shape: shape.to_vec(),
        declared: format!("input '{name}' is ..."),
        vocab: None,
        classes: None,
        is_label: false,
        whole: false,
        graph: None,
        per_node: false,
    }
}

/// `graph g { nodes N, edges i32[2, E] }`, `input x: f32[N, 3]`, `label y: i32[N] classes 2`.
fn specs() -> Vec<InputSpec> {
    let mut edges = spec("g.edges", DType::I32, &[2, E]);
    edges.whole = true;
    edges.declared = format!("input 'g.edges' is i32[2, E], E = {E}");
    edges.graph = Some(GraphRef {
        name: "g".into(),
        nodes: N,
        nodes_dim: format!("N = {N}"),
        batched: false,
    });
    let mut y = spec("y", DType::I32, &[]);
    y.is_label = true;
    y.classes = Some(2);
    vec![edges, spec("x", DType::F32, &[3]), y]
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mpc-graph-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("test")).unwrap();
    dir
}

const EDGES: [i32; 2 * E] = [0, 1, 2, 3, 4, 1, 2, 3, 4, 5];

/// A valid graph directory: edges, x, y with unlabeled nodes, test/y only.
fn graph_dir(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::write(dir.join("g.edges.npy"), npy::encode_i32(&[2, E], &EDGES)).unwrap();
    let x: Vec<f32> = (0..N * 3).map(|i| i as f32).collect();
    std::fs::write(dir.join("x.npy"), npy::encode_f32(&[N, 3], &x)).unwrap();
    std::fs::write(dir.join("y.npy"), npy::encode_i32(&[N], &[0, 1, -1, -1, -1, -1])).unwrap();
    std::fs::write(dir.join("test/y.npy"), npy::encode_i32(&[N], &[-1, -1, 0, 1, 0, 1])).unwrap();
    dir
}

fn err(dir: &Path) -> String {
    load_split(dir, &specs(), HeldOut::TestDir).unwrap_err()
}

#[test]
fn graph_directory_loads_whole_edges_and_test_labels() {
    let dir = graph_dir("ok");
    let (train, test) = load_split(&dir, &specs(), HeldOut::TestDir).unwrap();
    let test = test.unwrap();
    assert!(train.full_batch && test.full_batch);
    assert_eq!((train.rows, test.rows), (N, N));
    assert_eq!(
        train.whole,
        vec![("g.edges".into(), vec![2, E], Tensor::Int(EDGES.to_vec()))]
    );
    // test/ holds only y: the edges and x are the training ones.
    assert_eq!(test.whole, train.whole);
    assert_eq!(test.column("x"), train.column("x"));
    assert_eq!(test.column("y"), Some(&Tensor::Int(vec![-1, -1, 0, 1, 0, 1])));
    // One batch per epoch, every node in order, the edges with it.
    let mut rng = SplitMix64::new(1);
    let batches = train.epoch_batches(2, &mut rng);
    assert_eq!(batches, vec![(0..N).collect::<Vec<_>>()]);
    let batch = train.batch(&batches[0]);
    assert_eq!(
        batch.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["x", "y", "g.edges"]
    );
    assert_eq!(batch[0].1, *train.column("x").unwrap());
    // mpc run evaluates the test labels the same way.
    assert_eq!(load_eval(&dir, &specs(), HeldOut::TestDir).unwrap(), test);
}

#[test]
fn edge_outside_the_graph_names_file_edge_and_value() {
    let dir = graph_dir("bad-edge");
    let mut edges = EDGES;
    edges[E + 3] = 40;
    let path = dir.join("g.edges.npy");
    std::fs::write(&path, npy::encode_i32(&[2, E], &edges)).unwrap();
    assert_eq!(
        err(&dir),
        format!(
            "{}: edge 3 (column 3): destination 40 is outside [0, 6) (nodes of graph 'g')",
            path.display()
        )
    );
    edges[E + 3] = 4;
    edges[1] = -2;
    std::fs::write(&path, npy::encode_i32(&[2, E], &edges)).unwrap();
    assert_eq!(
        err(&dir),
        format!(
            "{}: edge 1 (column 1): source -2 is outside [0, 6) (nodes of graph 'g')",
            path.display()
        )
    );
    // i64 files: the value as written, not wrapped.
    let mut wide: Vec<i64> = EDGES.iter().map(|&v| v as i64).collect();
    wide[E] = 5_000_000_000;
    let data: Vec<u8> = wide.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, npy::encode_raw("<i8", false, &[2, E], &data)).unwrap();
    assert_eq!(
        err(&dir),
        format!(
            "{}: edge 0 (column 0): destination 5000000000 is outside [0, 6) (nodes of graph 'g')",
            path.display()
        )
    );
    // [E, 2] instead of [2, E]: a hint to transpose.
    let transposed: Vec<i32> = (0..E).flat_map(|e| [EDGES[e], EDGES[E + e]]).collect();
    std::fs::write(&path, npy::encode_i32(&[E, 2], &transposed)).unwrap();
    let e = err(&dir);
    assert!(e.ends_with("found <i4 [5, 2] (input 'g.edges' is i32[2, E], E = 5; save one edge per column, row 0 sources and row 1 destinations, e.g. a.T)"), "{e}");
    assert!(e.contains("expected i32 [2, 5]"), "{e}");
}

#[test]
fn csv_edge_lists_have_one_edge_per_line() {
    let dir = graph_dir("csv");
    std::fs::remove_file(dir.join("g.edges.npy")).unwrap();
    let path = dir.join("g.edges.csv");
    std::fs::write(&path, "source,destination\n0,1\n1,2\n2,3\n3,4\n4,5\n").unwrap();
    let (train, _) = load_split(&dir, &specs(), HeldOut::TestDir).unwrap();
    assert_eq!(train.whole[0].2, Tensor::Int(EDGES.to_vec()));
    std::fs::write(&path, "source,destination\n0,1\n1,2\n2,3\n3,6\n4,5\n").unwrap();
    assert_eq!(
        err(&dir),
        format!(
            "{}: line 5, field 2: edge 3: destination 6 is outside [0, 6) (nodes of graph 'g')",
            path.display()
        )
    );
    std::fs::write(&path, "0,1\n1,2\n").unwrap();
    assert_eq!(
        err(&dir),
        format!(
            "{}: 2 lines, expected 5 edges (input 'g.edges' is i32[2, E], E = 5)",
            path.display()
        )
    );
    std::fs::write(&path, "0,1,2\n").unwrap();
    assert!(err(&dir).contains("line 1: 3 values, expected 2"), "{}", err(&dir));
}

#[test]
fn rows_must_be_the_graph_nodes() {
    let dir = graph_dir("rows");
    let x: Vec<f32> = vec![0.0; 7 * 3];
    std::fs::write(dir.join("x.npy"), npy::encode_f32(&[7, 3], &x)).unwrap();
    assert_eq!(
        err(&dir),
        format!(
            "{}: 7 rows, but graph 'g' has 6 nodes (N = 6): a graph model has one row per node (--dim sets the node count)",
            dir.join("x.npy").display()
        )
    );
}

#[test]
fn labels_are_classes_or_minus_one() {
    let dir = graph_dir("labels");
    std::fs::write(dir.join("y.npy"), npy::encode_i32(&[N], &[0, 1, -1, -2, -1, -1])).unwrap();
    assert_eq!(
        err(&dir),
        format!(
            "{}: row 3: label -2 is outside [0, 2) (classes of label 'y')",
            dir.join("y.npy").display()
        )
    );
}

#[test]
fn test_dir_needs_labels_and_no_holdout() {
    let dir = graph_dir("holdout");
    std::fs::remove_file(dir.join("test/y.npy")).unwrap();
    let e = err(&dir);
    assert!(
        e.contains("test/y.npy: not found (label 'y' needs y.npy or y.csv)"),
        "{e}"
    );
    let e = load_split(&dir, &specs(), HeldOut::Tail(0.2)).unwrap_err();
    assert!(
        e.contains("--holdout 0.2: the rows are the nodes of graph 'g' and cannot be split off"),
        "{e}"
    );
}

#[test]
fn synthetic_graph_is_seeded_and_sized() {
    let g = graph(2000, 10000, 32, 4, 7);
    assert_eq!(g, GraphTask::benchmark(7).generate());
    assert_eq!((g.nodes, g.edge_count(), g.features), (2000, 10000, 32));
    let (train, test) = defaults::mask_split(&g.labels, 7);
    let labeled = |v: &[i32]| v.iter().filter(|&&l| l >= 0).count();
    assert_eq!((labeled(&train), labeled(&test)), (1000, 1000));
    for i in 0..2000 {
        assert!((train[i] == -1) != (test[i] == -1), "node {i} is in exactly one part");
        assert_eq!(train[i].max(test[i]), g.labels[i]);
    }
}

#[test]
fn shipped_karate_club_decodes() {
    let (x, edges, y, test) = (
        npy::parse(defaults::karate::X.1).unwrap(),
        npy::parse(defaults::karate::EDGE_LIST.1).unwrap(),
        npy::parse(defaults::karate::Y.1).unwrap(),
        npy::parse(defaults::karate::TEST_Y.1).unwrap(),
    );
    assert_eq!((x.shape.clone(), edges.shape.clone()), (vec![34, 34], vec![2, 156]));
    let ints = |a: &npy::Array| (0..a.len()).map(|i| a.int(i).unwrap()).collect::<Vec<_>>();
    let (e, y, test) = (ints(&edges), ints(&y), ints(&test));
    // Undirected: every edge appears in both directions.
    let pairs: std::collections::BTreeSet<(i64, i64)> = (0..156).map(|k| (e[k], e[156 + k])).collect();
    assert_eq!(pairs.len(), 156);
    assert!(pairs.iter().all(|&(s, d)| pairs.contains(&(d, s)) && s != d));
    // 8 training labels (4 per faction), 26 held out, each node in exactly one part.
    assert_eq!(y.iter().filter(|&&l| l >= 0).count(), 8);
    assert_eq!(test.iter().filter(|&&l| l >= 0).count(), 26);
    assert!(y.iter().zip(&test).all(|(a, b)| (*a == -1) != (*b == -1)));
    // Mr. Hi (0) and the officer (33) lead the two factions.
    assert_eq!((y[0], y[33]), (0, 1));
}
