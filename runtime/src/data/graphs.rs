//! Data sets of many graphs, for a model with a batch of graphs (`graph g { nodes N,
//! edges i32[2, E], graphs G }`): the layout of "Graph data sets" in
//! `examples/data/README.md`, its checks, and the assembly of mini-batches.
//!
//! In: a directory with `x.npy` (or any node input, one row per node of every graph in
//! order), `edges.npy` (`[2, E]`, node ids local to their graph), `node_counts.npy`,
//! `edge_counts.npy`, optionally `edge_features.npy` (`[E, F]`, read when the graph
//! declares `features`) and one row per graph of each label and graph-level input.
//! Out: a [`Dataset`] whose rows are the graphs, with the structure in a [`GraphSet`];
//! or ONE line naming the file and the place: `edges.npy: graph 2, edge 3 (column 9):
//! destination 40 is outside [0, 4)`.
//!
//! A mini-batch of graphs is one block-diagonal graph padded to a [`Capacity`], so that
//! one compiled step serves every batch: node ids are shifted by each graph's offset in
//! the batch; after the real nodes come padding nodes (zero features) that belong to
//! graph `G` (`g.graph_of`), which readouts cut off; padding edges join the last node to
//! itself; empty graph slots of a partial batch have label -1 (ignored by
//! cross-entropy) and weight 0 in `@row_mask` (ignored by a per-graph `mse`). No real
//! node or graph ever reads a padding one, so a padded batch's loss is the unpadded one.
//! `@sizes` holds the real node and edge counts: the JIT's kernels run over those only
//! (`schedule::dynamic`), so a batch costs its own size, not the capacity's.

use super::column::{column_from_npy, load_column};
use super::defaults::Shipped;
use super::load::at;
use super::spec::InputSpec;
use super::{npy, Dataset, Tensor};
use mpc_compiler::ir::DType;
use mpc_compiler::signature::{graph_of, ROW_MASK, SIZES};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The graph structure of a data set of graphs, and its per-node and per-edge inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphSet {
    /// The model's graph (`g`): batches fill `g.edges`, `g.features`, `g.graph_of`.
    pub graph: String,
    /// `node_offsets[i]..node_offsets[i + 1]` are graph `i`'s rows of the node inputs.
    node_offsets: Vec<usize>,
    /// `edge_offsets[i]..edge_offsets[i + 1]` are graph `i`'s edges.
    edge_offsets: Vec<usize>,
    /// Sources then destinations (`[2, E]` row-major), ids local to the graph.
    edges: Vec<i32>,
    /// Per-node inputs: (name, values per node, values).
    nodes: Vec<(String, usize, Tensor)>,
    /// `g.features`: (values per edge, values).
    edge_features: Option<(usize, Tensor)>,
    /// Names of the labels among the per-graph columns (padded with -1, not 0).
    labels: Vec<String>,
}

/// The sizes a batch of graphs is padded to: the compiled step's `G`, `N` and `E`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub graphs: usize,
    pub nodes: usize,
    pub edges: usize,
}

/// The graphs of a [`Dataset`]: its row `r` is graph `ids[r]` of `set`.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphRows {
    pub set: Arc<GraphSet>,
    pub ids: Vec<usize>,
    /// What batches are padded to; `None` pads each batch to its own size.
    pub capacity: Option<Capacity>,
}

impl GraphSet {
    pub fn len(&self) -> usize {
        self.node_offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn nodes_of(&self, g: usize) -> Range<usize> {
        self.node_offsets[g]..self.node_offsets[g + 1]
    }

    fn edges_of(&self, g: usize) -> Range<usize> {
        self.edge_offsets[g]..self.edge_offsets[g + 1]
    }

    /// (nodes, edges) of graphs `ids` together.
    pub fn size(&self, ids: &[usize]) -> (usize, usize) {
        ids.iter().fold((0, 0), |(n, e), &g| {
            (n + self.nodes_of(g).len(), e + self.edges_of(g).len())
        })
    }

    /// The node and edge inputs of graphs `ids` as one block-diagonal graph padded to
    /// `cap` (see the module doc), plus `g.graph_of`.
    fn assemble(&self, ids: &[usize], cap: Capacity) -> Vec<(String, Tensor)> {
        let total_edges: usize = self.edges.len() / 2;
        let pad = cap.nodes as i32 - 1;
        let mut src = Vec::with_capacity(cap.edges);
        let mut dst = Vec::with_capacity(cap.edges);
        let mut owner = Vec::with_capacity(cap.nodes);
        let mut offset = 0i32;
        for (slot, &g) in ids.iter().enumerate() {
            for e in self.edges_of(g) {
                src.push(self.edges[e] + offset);
                dst.push(self.edges[total_edges + e] + offset);
            }
            let n = self.nodes_of(g).len();
            owner.extend(std::iter::repeat_n(slot as i32, n));
            offset += n as i32;
        }
        src.resize(cap.edges, pad);
        dst.resize(cap.edges, pad);
        owner.resize(cap.nodes, cap.graphs as i32);
        let mut out = Vec::new();
        for (name, width, column) in &self.nodes {
            let rows = ids.iter().map(|&g| self.nodes_of(g));
            out.push((name.clone(), gather_rows(column, *width, rows, cap.nodes)));
        }
        src.extend(dst);
        out.push((format!("{}.edges", self.graph), Tensor::Int(src)));
        if let Some((width, values)) = &self.edge_features {
            let rows = ids.iter().map(|&g| self.edges_of(g));
            let column = gather_rows(values, *width, rows, cap.edges);
            out.push((format!("{}.features", self.graph), column));
        }
        out.push((graph_of(&self.graph), Tensor::Int(owner)));
        out
    }
}

/// The rows `ranges` of `column` (rows of `width` values) one after the other, then
/// zero rows up to `rows` rows.
fn gather_rows(column: &Tensor, width: usize, ranges: impl Iterator<Item = Range<usize>>, rows: usize) -> Tensor {
    let span = |r: Range<usize>| r.start * width..r.end * width;
    match column {
        Tensor::Float(v) => {
            let mut out: Vec<f32> = ranges.flat_map(|r| v[span(r)].iter().copied()).collect();
            out.resize(rows * width, 0.0);
            Tensor::Float(out)
        }
        Tensor::Int(v) => {
            let mut out: Vec<i32> = ranges.flat_map(|r| v[span(r)].iter().copied()).collect();
            out.resize(rows * width, 0);
            Tensor::Int(out)
        }
    }
}

impl GraphRows {
    /// Graphs `order` (rows of the data set) as one padded batch: the node and edge
    /// inputs, `g.graph_of`, the per-graph columns `columns` padded to the capacity's
    /// graphs, and `@row_mask`.
    pub(super) fn batch(&self, order: &[usize], columns: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
        let ids: Vec<usize> = order.iter().map(|&r| self.ids[r]).collect();
        let (nodes, edges) = self.set.size(&ids);
        let cap = self.capacity.unwrap_or(Capacity {
            graphs: ids.len(),
            nodes: nodes + 1,
            edges,
        });
        let real = ids.len();
        let mut out: Vec<(String, Tensor)> = columns
            .into_iter()
            .map(|(name, column)| {
                let width = column.len() / real.max(1);
                let padded = match column {
                    Tensor::Float(mut v) => {
                        v.resize(cap.graphs * width, 0.0);
                        Tensor::Float(v)
                    }
                    Tensor::Int(mut v) => {
                        let fill = if self.set.labels.contains(&name) { -1 } else { 0 };
                        v.resize(cap.graphs * width, fill);
                        Tensor::Int(v)
                    }
                };
                (name, padded)
            })
            .collect();
        out.extend(self.set.assemble(&ids, cap));
        let mut mask = vec![1.0f32; real];
        mask.resize(cap.graphs, 0.0);
        out.push((ROW_MASK.to_string(), Tensor::Float(mask)));
        out.push((SIZES.to_string(), Tensor::Int(vec![nodes as i32, edges as i32])));
        out
    }

    /// The capacity that holds every batch of `batches` (rows of the data set) with
    /// `graphs` graph slots: the most nodes (plus one padding node, which padding edges
    /// join) and edges of any of them.
    pub fn capacity_for<'a>(&self, graphs: usize, batches: impl IntoIterator<Item = &'a [usize]>) -> Capacity {
        let mut cap = Capacity {
            graphs,
            nodes: 1,
            edges: 1,
        };
        for order in batches {
            let ids: Vec<usize> = order.iter().map(|&r| self.ids[r]).collect();
            let (n, e) = self.set.size(&ids);
            cap.nodes = cap.nodes.max(n + 1);
            cap.edges = cap.edges.max(e);
        }
        cap
    }
}

/// Where the files of a data set of graphs come from.
#[derive(Clone, Copy)]
pub enum Files<'a> {
    /// `--data DIR` (or its `test/`): `name.npy`, else `name.csv`.
    Dir(&'a Path),
    /// The shipped copy of a data set (`examples/data/<dir>/`, in the binary).
    Shipped(&'a str, &'a [Shipped]),
}

impl Files<'_> {
    /// The path of file `name` (`x.npy`), for messages.
    fn path(&self, name: &str) -> PathBuf {
        match self {
            Files::Dir(dir) => {
                let npy = dir.join(format!("{name}.npy"));
                match npy.exists() || !dir.join(format!("{name}.csv")).exists() {
                    true => npy,
                    false => dir.join(format!("{name}.csv")),
                }
            }
            Files::Shipped(dir, _) => Path::new("examples/data").join(dir).join(format!("{name}.npy")),
        }
    }

    /// File `name`'s bytes and path.
    fn bytes(&self, name: &str) -> Result<(PathBuf, Vec<u8>), String> {
        let path = self.path(name);
        match self {
            Files::Dir(_) => {
                let bytes = crate::files::read(&path, crate::files::DATA_LIMIT).map_err(|e| at(&path, e))?;
                Ok((path, bytes))
            }
            Files::Shipped(dir, files) => {
                let want = format!("{dir}/{name}.npy");
                match files.iter().find(|(p, _)| *p == want) {
                    Some((_, bytes)) => Ok((path, bytes.to_vec())),
                    None => Err(at(&path, "not found (not shipped)")),
                }
            }
        }
    }

    /// File `name` read as the column `spec`: (path, rows, values).
    fn column(&self, name: &str, spec: &InputSpec) -> Result<(PathBuf, usize, Tensor), String> {
        match self {
            Files::Dir(_) => {
                let path = self.path(name);
                let (rows, column) = load_column(&path, spec)?;
                Ok((path, rows, column))
            }
            Files::Shipped(..) => {
                let (path, bytes) = self.bytes(name)?;
                let (rows, column) = column_from_npy(&bytes, spec).map_err(|e| at(&path, e))?;
                Ok((path, rows, column))
            }
        }
    }
}

/// A count file (`node_counts.npy`): one non-negative count per graph.
fn counts(files: Files, name: &str, what: &str) -> Result<Vec<usize>, String> {
    let spec = InputSpec {
        name: name.into(),
        dtype: DType::I32,
        row_shape: vec![],
        declared: format!("{name} holds the {what} count of each graph"),
        vocab: None,
        classes: None,
        is_label: false,
        whole: false,
        graph: None,
        per_node: false,
    };
    let (path, _, column) = files.column(name, &spec)?;
    let Tensor::Int(values) = column else {
        unreachable!("an i32 spec reads integers")
    };
    values
        .iter()
        .enumerate()
        .map(|(g, &c)| usize::try_from(c).map_err(|_| at(&path, format!("graph {g}: {what} count {c} is negative"))))
        .collect()
}

fn offsets(counts: &[usize]) -> Vec<usize> {
    std::iter::once(0)
        .chain(counts.iter().scan(0, |sum, c| {
            *sum += c;
            Some(*sum)
        }))
        .collect()
}

/// `edges.npy`: an integer `[2, E]` array whose edges of graph `g` lie in
/// `[0, node_counts[g])`.
fn edge_list(files: Files, nodes: &[usize], edge_offsets: &[usize]) -> Result<Vec<i32>, String> {
    let (path, bytes) = files.bytes("edges")?;
    let a = npy::parse(&bytes).map_err(|e| at(&path, e))?;
    if a.shape.len() != 2 || a.shape[0] != 2 || !matches!(a.kind, npy::Kind::Int | npy::Kind::Uint) {
        return Err(at(
            &path,
            format!(
                "expected integers [2, edges] (row 0 sources, row 1 destinations), found {}",
                npy::describe(&a.descr, &a.shape)
            ),
        ));
    }
    let total = a.shape[1];
    let expected = *edge_offsets.last().unwrap_or(&0);
    if total != expected {
        return Err(at(
            &files.path("edge_counts"),
            format!("the edge counts add up to {expected}, but edges.npy has {total} edges"),
        ));
    }
    let mut values = Vec::with_capacity(2 * total);
    for end in 0..2 {
        for (g, range) in edge_offsets.windows(2).enumerate() {
            for column in range[0]..range[1] {
                let v = a.int(end * total + column).unwrap_or(i64::MAX);
                if v < 0 || v >= nodes[g] as i64 {
                    let which = if end == 0 { "source" } else { "destination" };
                    return Err(at(
                        &path,
                        format!(
                            "graph {g}, edge {} (column {column}): {which} {v} is outside [0, {})",
                            column - range[0],
                            nodes[g]
                        ),
                    ));
                }
                values.push(v as i32);
            }
        }
    }
    Ok(values)
}

/// The data set of graphs in `dir` for the model's `specs` (graph `graph`).
pub fn load_graphs(files: Files, specs: &[InputSpec], graph: &str) -> Result<Dataset, String> {
    let node_counts = counts(files, "node_counts", "node")?;
    let edge_counts = counts(files, "edge_counts", "edge")?;
    let count_path = files.path("node_counts");
    if edge_counts.len() != node_counts.len() {
        return Err(at(
            &files.path("edge_counts"),
            format!(
                "{} graphs, but node_counts.npy has {}",
                edge_counts.len(),
                node_counts.len()
            ),
        ));
    }
    let graphs = node_counts.len();
    if graphs == 0 {
        return Err(at(&count_path, "no graphs"));
    }
    let (node_offsets, edge_offsets) = (offsets(&node_counts), offsets(&edge_counts));
    let total_nodes = node_offsets[graphs];
    let mut set = GraphSet {
        graph: graph.to_string(),
        node_offsets,
        edge_offsets,
        edges: Vec::new(),
        nodes: Vec::new(),
        edge_features: None,
        labels: specs.iter().filter(|s| s.is_label).map(|s| s.name.clone()).collect(),
    };
    let mut data = Dataset {
        rows: graphs,
        ..Dataset::default()
    };
    let features = format!("{graph}.features");
    let file_of = |spec: &InputSpec| {
        if spec.name == features {
            "edge_features".to_string()
        } else {
            spec.name.clone()
        }
    };
    // The node rows first, then the edges (their ranges need consistent node counts),
    // then what is per edge and per graph.
    for spec in specs.iter().filter(|s| s.per_node) {
        let (path, rows, column) = files.column(&file_of(spec), spec)?;
        if rows != total_nodes {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().to_string())
                .unwrap_or_default();
            return Err(at(
                &count_path,
                format!("the node counts add up to {total_nodes}, but {file} has {rows} rows"),
            ));
        }
        set.nodes.push((spec.name.clone(), spec.width(), column));
    }
    set.edges = edge_list(files, &node_counts, &set.edge_offsets)?;
    for spec in specs.iter().filter(|s| !s.per_node && s.graph.is_none()) {
        let (path, rows, column) = files.column(&file_of(spec), spec)?;
        if spec.whole {
            data.whole.push((spec.name.clone(), spec.row_shape.clone(), column));
        } else if spec.name == features {
            let edges = set.edge_offsets[graphs];
            if rows != edges {
                return Err(at(
                    &path,
                    format!("{rows} rows, but edges.npy has {edges} edges (one row per edge)"),
                ));
            }
            set.edge_features = Some((spec.width(), column));
        } else {
            if rows != graphs {
                return Err(at(
                    &path,
                    format!(
                        "{rows} rows, but node_counts.npy has {graphs} graphs (one {} per graph)",
                        if spec.is_label { "target" } else { "row" }
                    ),
                ));
            }
            data.columns.push((spec.name.clone(), spec.row_shape.clone(), column));
        }
    }
    data.graphs = Some(GraphRows {
        set: Arc::new(set),
        ids: (0..graphs).collect(),
        capacity: None,
    });
    Ok(data)
}
