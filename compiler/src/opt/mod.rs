//! Opt: equality saturation of the whole training step with egg.
//!
//! In: an IR graph (forward + backward + optimizer update) and [`Limits`]. Out: an
//! equivalent graph of lower cost, and [`Stats`] saying what happened. The graph goes
//! into an e-graph ([`convert`]) whose analysis knows every e-class's type and constant
//! value ([`analysis`]); the rules of [`rules`] run until saturation or a limit; then
//! [`extract`] picks the cheapest DAG under the cost model of [`cost`], counting shared
//! subexpressions once. The result is never costlier than the input: if extraction does
//! not improve on it, the input is returned unchanged.
//!
//! A graph of more than [`regions::REGION_NODES`] nodes (arguments not counted) is
//! saturated one region (a contiguous run of nodes) at a time ([`regions`]), each
//! region with the same limits, so time and memory grow linearly with the model; the
//! stitched graph passes the same final check against the input's cost.

pub mod analysis;
pub mod convert;
pub mod cost;
pub mod extract;
pub mod lang;
pub mod regions;
pub mod rules;

use cost::{graph_cost, matmul_flops, Cost};
use egg::{BackoffScheduler, Runner, StopReason};
use std::time::{Duration, Instant};

use crate::ir::{dce::eliminate_dead_code, Graph, Op};

/// Bounds on saturation, for the whole graph or, for a big graph, for each region. egg
/// checks the node limit between rules, so the e-graph can overshoot it by what one
/// rule adds. Tests use node and iteration limits only, so their results do not depend
/// on the machine's speed.
#[derive(Clone, Debug)]
pub struct Limits {
    pub nodes: usize,
    pub iterations: usize,
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nodes: 20_000,
            iterations: 8,
            time: Duration::from_millis(500),
        }
    }
}

impl Limits {
    /// Deterministic limits (no time limit) for tests and snapshots.
    pub fn deterministic() -> Self {
        Limits {
            time: Duration::from_secs(3600),
            ..Limits::default()
        }
    }
}

#[derive(Clone, Debug)]
pub struct Stats {
    pub egraph_nodes: usize,
    pub egraph_classes: usize,
    pub iterations: usize,
    pub stop_reason: String,
    /// Times each rule fired (changed the e-graph), in table order; rules that never
    /// fired are listed with 0.
    pub rule_fires: Vec<(&'static str, usize)>,
    pub before: Cost,
    pub after: Cost,
    pub matmul_flops_before: f64,
    pub matmul_flops_after: f64,
    pub seconds: f64,
    /// False when extraction found nothing cheaper and the input was kept.
    pub improved: bool,
    /// Regions the graph was saturated in (1: the whole graph at once). With several,
    /// `egraph_nodes`, `egraph_classes` and `iterations` are the largest region's.
    pub regions: usize,
}

/// Optimizes `graph`; an invalid input graph is a compiler bug reported as an error.
pub fn optimize(graph: &Graph, limits: &Limits) -> Result<(Graph, Stats), String> {
    let start = Instant::now();
    graph
        .validate()
        .map_err(|e| format!("optimizer input is not a valid graph: {e}"))?;
    let body = graph.nodes.iter().filter(|n| !matches!(n.op, Op::Arg { .. })).count();
    if body <= regions::REGION_NODES {
        return optimize_whole(graph, limits, start);
    }
    // Regions are independent until stitched: a few at a time on their own threads.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let (stitched, parts) = regions::optimize_by_regions(graph, regions::REGION_NODES, limits, threads, |g, l| {
        optimize_whole(g, l, Instant::now())
    })?;
    let stitched = eliminate_dead_code(&stitched);
    let before = graph_cost(graph);
    let (result, improved) = if graph_cost(&stitched).scalar() < before.scalar() {
        (stitched, true)
    } else {
        (graph.clone(), false)
    };
    result
        .validate()
        .map_err(|e| format!("optimizer produced an invalid graph: {e}"))?;
    let mut fires: Vec<(&'static str, usize)> = rules::table().iter().map(|r| (r.name, 0)).collect();
    let mut stops: Vec<(String, usize)> = Vec::new();
    for s in &parts {
        for (f, (_, n)) in fires.iter_mut().zip(&s.rule_fires) {
            f.1 += n;
        }
        // "node limit (20016)" counts as "node limit".
        let kind = s.stop_reason.split(" (").next().unwrap_or_default().to_string();
        match stops.iter_mut().find(|(k, _)| *k == kind) {
            Some(k) => k.1 += 1,
            None => stops.push((kind, 1)),
        }
    }
    let largest = |f: fn(&Stats) -> usize| parts.iter().map(f).max().unwrap_or(0);
    let stop_reason = stops
        .iter()
        .map(|(k, n)| format!("{k} in {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let stats = Stats {
        egraph_nodes: largest(|s| s.egraph_nodes),
        egraph_classes: largest(|s| s.egraph_classes),
        iterations: largest(|s| s.iterations),
        stop_reason: format!("{} regions: {stop_reason}", parts.len()),
        rule_fires: fires,
        before,
        after: graph_cost(&result),
        matmul_flops_before: matmul_flops(graph),
        matmul_flops_after: matmul_flops(&result),
        seconds: start.elapsed().as_secs_f64(),
        improved,
        regions: parts.len(),
    };
    Ok((result, stats))
}

/// Saturates and extracts `graph` (valid) as one e-graph.
///
/// egg times itself with `quanta`, whose first clock read in a process calibrates the
/// TSC against the OS clock by busy-waiting: 10-20 ms measured here, more than the
/// whole e-graph pass, paid by every `mpc` run. egg runs under a mock clock instead
/// (its own timings read 0), and the time limit is a hook on `std::time::Instant`,
/// checked before each iteration (the node limit bounds one iteration's growth).
fn optimize_whole(graph: &Graph, limits: &Limits, start: Instant) -> Result<(Graph, Stats), String> {
    let (egg_clock, _) = quanta::Clock::mock();
    quanta::with_clock(&egg_clock, || saturate_and_extract(graph, limits, start))
}

fn saturate_and_extract(graph: &Graph, limits: &Limits, start: Instant) -> Result<(Graph, Stats), String> {
    let (egraph, ids) = convert::to_egraph(graph);
    let roots: Vec<egg::Id> = graph.outputs.iter().map(|(_, v)| ids[v.index()]).collect();
    let time_limit = limits.time;
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_node_limit(limits.nodes)
        .with_iter_limit(limits.iterations)
        .with_hook(move |_| match start.elapsed() > time_limit {
            true => Err(format!("time limit ({} s)", time_limit.as_secs_f64())),
            false => Ok(()),
        })
        .with_scheduler(BackoffScheduler::default())
        .run(&rules::rewrites(|_| true));

    let mut fires: Vec<(&'static str, usize)> = rules::table().iter().map(|r| (r.name, 0)).collect();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            if let Some(f) = fires.iter_mut().find(|(r, _)| *r == name.as_str()) {
                f.1 += n;
            }
        }
    }
    let eg = &runner.egraph;
    let roots: Vec<egg::Id> = roots.iter().map(|&r| eg.find(r)).collect();
    let choice = extract::extract(eg, &roots);
    let candidate = extract::is_acyclic(eg, &choice)
        .then(|| eliminate_dead_code(&convert::from_choice(eg, &choice, graph, &roots)));
    let before = graph_cost(graph);
    let (result, improved) = match candidate {
        Some(g) if graph_cost(&g).scalar() < before.scalar() => (g, true),
        _ => (graph.clone(), false),
    };
    result
        .validate()
        .map_err(|e| format!("optimizer produced an invalid graph: {e}"))?;
    let stop_reason = match &runner.stop_reason {
        Some(StopReason::Saturated) => "saturated".to_string(),
        Some(StopReason::IterationLimit(n)) => format!("iteration limit ({n})"),
        Some(StopReason::NodeLimit(n)) => format!("node limit ({n})"),
        Some(StopReason::TimeLimit(t)) => format!("time limit ({t} s)"),
        Some(StopReason::Other(s)) => s.clone(),
        None => "not run".to_string(),
    };
    let stats = Stats {
        egraph_nodes: eg.total_number_of_nodes(),
        egraph_classes: eg.number_of_classes(),
        iterations: runner.iterations.len(),
        stop_reason,
        rule_fires: fires,
        before,
        after: graph_cost(&result),
        matmul_flops_before: matmul_flops(graph),
        matmul_flops_after: matmul_flops(&result),
        seconds: start.elapsed().as_secs_f64(),
        improved,
        regions: 1,
    };
    Ok((result, stats))
}

/// `--stats` text; `timing: false` leaves the time out (for snapshots).
pub fn format_stats(s: &Stats, timing: bool) -> String {
    let mut out = String::new();
    if s.regions > 1 {
        out += &format!(
            "e-graph: {} regions, the largest {} e-nodes, {} e-classes\n",
            s.regions, s.egraph_nodes, s.egraph_classes
        );
    } else {
        out += &format!("e-graph: {} e-nodes, {} e-classes\n", s.egraph_nodes, s.egraph_classes);
    }
    out += &format!("iterations: {} (stopped: {})\n", s.iterations, s.stop_reason);
    let pct = |a: f64, b: f64| if b == 0.0 { 0.0 } else { 100.0 * (a - b) / b };
    out += &format!(
        "flops: {:.0} -> {:.0} ({:+.1}%)\n",
        s.before.flops,
        s.after.flops,
        pct(s.after.flops, s.before.flops)
    );
    out += &format!(
        "bytes: {:.0} -> {:.0} ({:+.1}%)\n",
        s.before.bytes,
        s.after.bytes,
        pct(s.after.bytes, s.before.bytes)
    );
    out += &format!(
        "matmul flops: {:.0} -> {:.0} ({:+.1}%)\n",
        s.matmul_flops_before,
        s.matmul_flops_after,
        pct(s.matmul_flops_after, s.matmul_flops_before)
    );
    if !s.improved {
        out += "no cheaper graph found: the input is kept\n";
    }
    out += "rules fired:\n";
    for (name, n) in &s.rule_fires {
        if *n > 0 {
            out += &format!("  {name:<26} {n}\n");
        }
    }
    let quiet: Vec<&str> = s.rule_fires.iter().filter(|(_, n)| *n == 0).map(|(r, _)| *r).collect();
    if !quiet.is_empty() {
        out += &format!("rules that did not fire: {}\n", quiet.join(", "));
    }
    if timing {
        out += &format!("time: {:.1} ms\n", s.seconds * 1e3);
    }
    out
}
