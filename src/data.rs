//! Which rows `mpc train` and `mpc run` use: the model's default (seeded, synthetic)
//! data, or `--data DIR` validated against the model (`mpc_runtime::data::load`), and
//! the batch size (`--batch`, the train block's `batch`, or the batch dim's value).

use crate::load::error;
use mpc_compiler::specialize::{batch_dim_name, DimValues};
use mpc_compiler::CheckedModel;
use mpc_runtime::data::defaults::default_dataset_named;
use mpc_runtime::data::graphs::Capacity;
use mpc_runtime::data::load::{held_out_rule, input_specs, load_predict, load_split, HeldOut};
use mpc_runtime::data::Dataset;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--holdout 0.2`: a fraction strictly between 0 and 1.
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
        _ => Err(format!("'{s}' is not a fraction between 0 and 1 (exclusive)")),
    }
}

/// `--batch 32`, `--threads 2`: a positive integer.
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a positive integer")),
    }
}

/// `--lr 3e-4`: a positive finite number.
pub fn parse_lr(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("'{s}' is not a positive learning rate")),
    }
}

/// The dim value that sets the batch size: `--batch N`, else the train block's
/// `batch N` (unless `--dim` sets that dim). Empty when neither applies. A graph model
/// trains full-batch: its batch is the node count, and `--batch` is an error.
pub fn batch_override(
    model: &CheckedModel,
    batch: Option<usize>,
    dims: &[(String, usize)],
) -> Result<Vec<(String, usize)>, String> {
    let name = batch_dim_name(model);
    if let (Some(n), Some(g)) = (batch, model.graphs.iter().find(|g| g.graphs.is_none())) {
        return Err(format!(
            "--batch {n}: model '{}' is a graph model: it trains on every node of graph '{}' at once (its batch \
             is the node count {}; --dim sets it)",
            model.name, g.name, g.nodes
        ));
    }
    if model.graphs.iter().any(|g| g.graphs.is_none()) {
        return Ok(Vec::new());
    }
    match (batch, name) {
        (Some(n), Some(name)) => Ok(vec![(name.to_string(), n)]),
        (Some(n), None) => Err(format!(
            "--batch {n}: the batch axis of model '{}' is {}, not a dim; declare it in dims \
             (dims {{ B = 32 }}, label y: i32[B]) to set it",
            model.name,
            model
                .batch_dim
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "absent".into())
        )),
        (None, Some(name)) if !dims.iter().any(|(d, _)| d == name) => Ok(model
            .train
            .batch
            .map(|n| vec![(name.to_string(), n)])
            .unwrap_or_default()),
        _ => Ok(Vec::new()),
    }
}

/// Where rows come from, for messages: `4096 synthetic rows`, `900 rows of data/`.
pub struct Source {
    pub dir: Option<PathBuf>,
    pub rule: HeldOut,
    /// What the default data is (`synthetic`, `karate club`), once loaded.
    default: Cell<&'static str>,
}

impl Source {
    pub fn new(dir: Option<&Path>, holdout: Option<f64>) -> Result<Source, ExitCode> {
        let rule = match dir {
            Some(d) => held_out_rule(d, holdout).map_err(|e| error(&e))?,
            None => HeldOut::None,
        };
        Ok(Source {
            dir: dir.map(Path::to_path_buf),
            rule,
            default: Cell::new("synthetic"),
        })
    }

    /// `(training rows, held-out rows)`.
    pub fn train_split(
        &self,
        file: &Path,
        model: &CheckedModel,
        dims: &DimValues,
        seed: u64,
    ) -> Result<(Dataset, Option<Dataset>), ExitCode> {
        match &self.dir {
            None => {
                let (train, held, what) = default_data(file, model, dims, seed)?;
                self.default.set(what);
                Ok((train, Some(held)))
            }
            Some(dir) => {
                let specs = input_specs(model, dims).map_err(|e| error(&format!("{}: {e}", file.display())))?;
                load_split(dir, &specs, self.rule).map_err(|e| error(&e))
            }
        }
    }

    /// The rows `mpc run` evaluates: the held-out part, or all of a directory without one;
    /// and whether they have labels (a directory of inputs only gets placeholder labels).
    pub fn eval_rows(
        &self,
        file: &Path,
        model: &CheckedModel,
        dims: &DimValues,
        seed: u64,
    ) -> Result<(Dataset, bool), ExitCode> {
        match &self.dir {
            None => {
                let (_, held, what) = default_data(file, model, dims, seed)?;
                self.default.set(what);
                Ok((held, true))
            }
            Some(dir) => {
                let specs = input_specs(model, dims).map_err(|e| error(&format!("{}: {e}", file.display())))?;
                load_predict(dir, &specs, self.rule).map_err(|e| error(&e))
            }
        }
    }

    /// `synthetic data`, `karate-club data`, `data/`: where a graph comes from.
    pub fn name(&self) -> String {
        match &self.dir {
            None => format!("{} data", self.default.get()),
            Some(d) => d.display().to_string(),
        }
    }

    /// `synthetic rows`, `rows of data/`, `held-out rows of data/test/`.
    pub fn describe(&self, held_out: bool) -> String {
        match (&self.dir, self.rule, held_out) {
            (None, _, false) => format!("{} rows", self.default.get()),
            (None, _, true) => format!("held-out {} rows", self.default.get()),
            (Some(d), HeldOut::TestDir, true) => format!("rows of {}", d.join("test").display()),
            (Some(d), HeldOut::Tail(f), true) => format!("rows of {} (the last {f} of them)", d.display()),
            (Some(d), _, _) => format!("rows of {}", d.display()),
        }
    }
}

fn default_data(
    file: &Path,
    model: &CheckedModel,
    dims: &DimValues,
    seed: u64,
) -> Result<(Dataset, Dataset, &'static str), ExitCode> {
    default_dataset_named(model, dims, seed)
        .map_err(|e| error(&format!("{}: {e}; give it data with --data DIR", file.display())))
}

/// For a model with a batch of graphs (`graph g { .., graphs G }`): the capacity that
/// holds every batch the run assembles (`batches`, per data set, rows of it), set on
/// each data set so that every batch is padded to it, and the dims that compile the
/// step at that capacity (the graph's node and edge dims). One compiled step then serves
/// every batch. Empty for other models.
pub fn fit_graph_capacity(
    model: &CheckedModel,
    dims: &DimValues,
    sets: Vec<(&mut Dataset, Vec<Vec<usize>>)>,
) -> Result<Vec<(String, usize)>, String> {
    let Some(g) = model.graphs.iter().find(|g| g.graphs.is_some()) else {
        return Ok(Vec::new());
    };
    let Some(graphs) = &g.graphs else {
        return Ok(Vec::new());
    };
    let slots = mpc_compiler::specialize::concrete(std::slice::from_ref(graphs), dims)?[0];
    let mut cap = Capacity {
        graphs: slots,
        nodes: 1,
        edges: 1,
    };
    for (set, batches) in &sets {
        if let Some(rows) = &set.graphs {
            let c = rows.capacity_for(slots, batches.iter().map(|b| b.as_slice()));
            cap.nodes = cap.nodes.max(c.nodes);
            cap.edges = cap.edges.max(c.edges);
        }
    }
    for (set, _) in sets {
        if let Some(rows) = &mut set.graphs {
            rows.capacity = Some(cap);
        }
    }
    let mut out = Vec::new();
    for (dim, value, what) in [(&g.nodes, cap.nodes, "nodes"), (&g.edges, cap.edges, "edges")] {
        let name = dim.to_string();
        if !model.dims.iter().any(|d| d.name == name) {
            return Err(format!(
                "graph '{}' is a batch of graphs, so its {what} must be a dim (declared in dims), which the data \
                 sets; it is {name}",
                g.name
            ));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// The batches `Session::evaluate` runs on `data`: rows in order, `batch` at a time.
pub fn eval_batches(data: &Dataset, batch: usize) -> Vec<Vec<usize>> {
    let order: Vec<usize> = (0..data.rows).collect();
    order.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
}
