//! Every rewrite rule preserves values: for each rule of the table, an instance of its
//! left side on random small shapes and inputs is rewritten by that rule alone, the
//! rewritten term (preferring e-nodes the rule added) is extracted, and the reference
//! interpreter evaluates both to within 1e-5 relative. A rule without an instance here
//! fails the test, so new rules cannot skip it.

use egg::{CostFunction, Id, Language, Runner};
use mpc_compiler::internals::opt::analysis::TensorGraph;
use mpc_compiler::internals::opt::convert::{from_choice, to_egraph};
use mpc_compiler::internals::opt::lang::TensorLang;
use mpc_compiler::internals::opt::rules::{rewrites, table};
use mpc_compiler::interp::{run, Args, Value};
use mpc_compiler::ir::printer::print_graph;
use mpc_compiler::ir::{ArgKind, Binary, Builder, Graph, Op, Type, ValueId};
use mpc_compiler::seeded::SplitMix64;
use std::collections::{HashMap, HashSet};

struct Instance {
    b: Builder,
    args: Args<f64>,
    rng: SplitMix64,
    params: usize,
}

impl Instance {
    fn tensor(&mut self, shape: &[usize]) -> ValueId {
        let name = format!("p{}", self.params);
        self.params += 1;
        let data = (0..shape.iter().product()).map(|_| self.rng.range(-2.0, 2.0)).collect();
        self.args.insert(name.clone(), Value::Float(data));
        self.b.arg(ArgKind::Param, name, Type::f32(shape))
    }
    fn indices(&mut self, shape: &[usize], bound: u64) -> ValueId {
        let name = format!("i{}", self.params);
        self.params += 1;
        let data = (0..shape.iter().product())
            .map(|_| self.rng.below(bound) as i32)
            .collect();
        self.args.insert(name.clone(), Value::Int(data));
        self.b.arg(ArgKind::Input, name, Type::i32(shape))
    }
    fn size(&mut self) -> usize {
        2 + self.rng.below(4) as usize
    }
    fn c(&mut self, v: f64, shape: &[usize]) -> ValueId {
        self.b.constant(v, shape)
    }
}

/// Builds an instance of the named rule's left side; returns its value.
fn instance(rule: &str, t: &mut Instance) -> ValueId {
    let (m, k, n) = (t.size(), t.size(), t.size());
    let s = [m, n];
    match rule {
        "add-commute" | "mul-commute" | "broadcast-add" | "broadcast-mul" => {
            let (x, y) = if rule.starts_with("broadcast") {
                let (x, y) = (t.tensor(&[n]), t.tensor(&[n]));
                (t.b.broadcast(x, &[m, n], &[1]), t.b.broadcast(y, &[m, n], &[1]))
            } else {
                (t.tensor(&s), t.tensor(&s))
            };
            if rule.ends_with("mul") || rule == "mul-commute" {
                t.b.mul(x, y)
            } else {
                t.b.add(x, y)
            }
        }
        "add-zero" | "sub-zero" | "mul-one" | "div-one" | "mul-zero" => {
            let x = t.tensor(&s);
            let v = if rule.contains("zero") { 0.0 } else { 1.0 };
            let c = t.c(v, &s);
            let op = match rule {
                "add-zero" => Binary::Add,
                "sub-zero" => Binary::Sub,
                "div-one" => Binary::Div,
                _ => Binary::Mul,
            };
            t.b.binary(op, x, c)
        }
        "neg-neg" => {
            let x = t.tensor(&s);
            let y = t.b.neg(x);
            t.b.neg(y)
        }
        "sub-neg" | "add-neg" => {
            let (x, y) = (t.tensor(&s), t.tensor(&s));
            let ny = t.b.neg(y);
            if rule == "sub-neg" {
                t.b.sub(x, ny)
            } else {
                t.b.add(x, ny)
            }
        }
        "neg-sub" => {
            let (x, y) = (t.tensor(&s), t.tensor(&s));
            let d = t.b.sub(x, y);
            t.b.neg(d)
        }
        "neg-scale" => {
            let x = t.tensor(&s);
            let c = t.c(0.25, &s);
            let y = t.b.mul(x, c);
            t.b.neg(y)
        }
        "log-exp" => {
            let x = t.tensor(&s);
            let e = t.b.exp(x);
            t.b.log(e)
        }
        "scale-scale" => {
            let x = t.tensor(&s);
            let (a, c) = (t.c(2.5, &s), t.c(-0.75, &s));
            let xa = t.b.mul(x, a);
            t.b.mul(xa, c)
        }
        "factor-scale" => {
            let (a, b, c) = (t.tensor(&s), t.tensor(&s), t.tensor(&s));
            let (ac, bc) = (t.b.mul(a, c), t.b.mul(b, c));
            t.b.add(ac, bc)
        }
        "broadcast-broadcast" => {
            let x = t.tensor(&[n]);
            let y = t.b.broadcast(x, &[m, n], &[1]);
            t.b.broadcast(y, &[k, m, n], &[1, 2])
        }
        "sum-of-broadcast" => {
            let x = t.tensor(&[n]);
            let y = t.b.broadcast(x, &[m, n, k], &[1]);
            t.b.reduce_sum(y, &[0, 2])
        }
        "sum-sum" => {
            let x = t.tensor(&[m, n, k, 2]);
            let y = t.b.reduce_sum(x, &[1]);
            t.b.reduce_sum(y, &[0, 2])
        }
        "sum-of-scaled" => {
            let x = t.tensor(&[m, n, k]);
            let c = t.c(2.5, &[m, n, k]);
            let y = t.b.mul(x, c);
            t.b.reduce_sum(y, &[1])
        }
        "transpose-transpose" => {
            let x = t.tensor(&[m, n, k]);
            let y = t.b.transpose(x, &[1, 2, 0]);
            t.b.transpose(y, &[1, 0, 2])
        }
        "transpose-identity" => {
            let x = t.tensor(&s);
            t.b.transpose(x, &[0, 1])
        }
        "reshape-reshape" => {
            let x = t.tensor(&[m, n, 2]);
            let y = t.b.reshape(x, &[m * 2, n]);
            t.b.reshape(y, &[m * n * 2])
        }
        "reshape-identity" => {
            let x = t.tensor(&s);
            t.b.push(Op::Reshape { shape: s.to_vec() }, &[x])
        }
        "matmul-transposed-left" => {
            let (a, b) = (t.tensor(&[k, m]), t.tensor(&[k, n]));
            let at = t.b.transpose(a, &[1, 0]);
            t.b.matmul(at, b)
        }
        "matmul-transposed-right" => {
            let (a, b) = (t.tensor(&[m, k]), t.tensor(&[n, k]));
            let bt = t.b.transpose(b, &[1, 0]);
            t.b.matmul(a, bt)
        }
        "transpose-of-matmul" => {
            let (a, b) = (t.tensor(&[m, k]), t.tensor(&[k, n]));
            let p = t.b.matmul(a, b);
            t.b.transpose(p, &[1, 0])
        }
        "matmul-assoc-right" | "matmul-assoc-left" => {
            let l = t.size();
            let (a, b, c) = (t.tensor(&[m, k]), t.tensor(&[k, n]), t.tensor(&[n, l]));
            if rule.ends_with("right") {
                let ab = t.b.matmul(a, b);
                t.b.matmul(ab, c)
            } else {
                let bc = t.b.matmul(b, c);
                t.b.matmul(a, bc)
            }
        }
        "matmul-factor-left" => {
            let (a, b, c) = (t.tensor(&[m, k]), t.tensor(&[k, n]), t.tensor(&[k, n]));
            let (ab, ac) = (t.b.matmul(a, b), t.b.matmul(a, c));
            t.b.add(ab, ac)
        }
        "matmul-factor-right" => {
            let (a, b, c) = (t.tensor(&[m, k]), t.tensor(&[m, k]), t.tensor(&[k, n]));
            let (ac, bc) = (t.b.matmul(a, c), t.b.matmul(b, c));
            t.b.add(ac, bc)
        }
        "concat-matmul-split" => {
            let (x, y, w) = (t.tensor(&[m, k]), t.tensor(&[m, 3]), t.tensor(&[k + 3, n]));
            let xy = t.b.concat(&[x, y], 1);
            t.b.matmul(xy, w)
        }
        "matmul-of-gather" => {
            let (x, w) = (t.tensor(&[m, k]), t.tensor(&[k, n]));
            let i = t.indices(&[m + 3], m as u64);
            let xi = t.b.gather(x, i);
            t.b.matmul(xi, w)
        }
        "scatter-of-matmul" => {
            let (a, b) = (t.tensor(&[m + 3, k]), t.tensor(&[k, n]));
            let i = t.indices(&[m + 3], m as u64);
            let p = t.b.matmul(a, b);
            t.b.scatter_add(p, i, m)
        }
        "gathered-weight-gradient" => {
            let (x, g) = (t.tensor(&[m, k]), t.tensor(&[m + 3, n]));
            let i = t.indices(&[m + 3], m as u64);
            let xi = t.b.gather(x, i);
            let xt = t.b.transpose(xi, &[1, 0]);
            t.b.matmul(xt, g)
        }
        "scatter-of-reshape" => {
            let x = t.tensor(&[m + 3, 2, 3]);
            let i = t.indices(&[m + 3], m as u64);
            let r = t.b.reshape(x, &[m + 3, 6]);
            t.b.scatter_add(r, i, m)
        }
        "scatter-of-broadcast" => {
            let x = t.tensor(&[m + 3, 2]);
            let i = t.indices(&[m + 3], m as u64);
            let b = t.b.broadcast(x, &[m + 3, 2, 3], &[0, 1]);
            t.b.scatter_add(b, i, m)
        }
        "scatter-of-scaled" => {
            let (x, c) = (t.tensor(&[m + 3, 2, 3]), t.tensor(&[2, 3]));
            let i = t.indices(&[m + 3], m as u64);
            let c = t.b.broadcast(c, &[m + 3, 2, 3], &[1, 2]);
            let xc = t.b.mul(x, c);
            t.b.scatter_add(xc, i, m)
        }
        "scatter-of-biased" => {
            let (x, c) = (t.tensor(&[m + 3, 2, 3]), t.tensor(&[3]));
            let i = t.indices(&[m + 3], m as u64);
            let c = t.b.broadcast(c, &[m + 3, 2, 3], &[2]);
            let xc = t.b.add(x, c);
            t.b.scatter_add(xc, i, m)
        }
        "weight-gradient-of-aggregate" => {
            let (x, g) = (t.tensor(&[m, k]), t.tensor(&[m + 2, k + 2]));
            let (i, j) = (
                t.indices(&[2 * m + 5], m as u64),
                t.indices(&[2 * m + 5], (m + 2) as u64),
            );
            let gj = t.b.gather(g, j);
            let aggregated = t.b.scatter_add(gj, i, m);
            let xt = t.b.transpose(x, &[1, 0]);
            t.b.matmul(xt, aggregated)
        }
        "sum-of-gather" => {
            let x = t.tensor(&[m, k]);
            let i = t.indices(&[4 * m + 3], m as u64);
            let xi = t.b.gather(x, i);
            t.b.reduce_sum(xi, &[0])
        }
        "reshape-of-gather" => {
            let x = t.tensor(&[m, 2 * k]);
            let i = t.indices(&[m + 3], m as u64);
            let xi = t.b.gather(x, i);
            t.b.reshape(xi, &[m + 3, 2, k])
        }
        "gathered-times-invariant" => {
            let (x, c) = (t.tensor(&[m, 2, k]), t.tensor(&[k]));
            let i = t.indices(&[2 * m], m as u64);
            let xi = t.b.gather(x, i);
            let c = t.b.broadcast(c, &[2 * m, 2, k], &[2]);
            t.b.mul(xi, c)
        }
        "sum-of-gathered-rows" => {
            let x = t.tensor(&[m, 2, k]);
            let i = t.indices(&[2 * m], m as u64);
            let xi = t.b.gather(x, i);
            t.b.reduce_sum(xi, &[2])
        }
        "sum-of-gathered-product" => {
            let (x, y) = (t.tensor(&[m, 2, k]), t.tensor(&[2 * m, 2]));
            let i = t.indices(&[2 * m], m as u64);
            let xi = t.b.gather(x, i);
            let y = t.b.broadcast(y, &[2 * m, 2, k], &[0, 1]);
            let xy = t.b.mul(xi, y);
            t.b.reduce_sum(xy, &[0, 2])
        }
        "concat-weight-gradient" => {
            let (x, y, g) = (t.tensor(&[m, k]), t.tensor(&[m + 3, 2]), t.tensor(&[m + 3, n]));
            let i = t.indices(&[m + 3], m as u64);
            let xi = t.b.gather(x, i);
            let xy = t.b.concat(&[xi, y], 1);
            let xyt = t.b.transpose(xy, &[1, 0]);
            t.b.matmul(xyt, g)
        }
        "concat3-split" => {
            let (x, y, z) = (t.tensor(&[m, k]), t.tensor(&[m, 3]), t.tensor(&[m, n]));
            t.b.concat(&[x, y, z], 1)
        }
        "slice-of-matmul" => {
            let (a, b) = (t.tensor(&[m, k]), t.tensor(&[k, n + 2]));
            let p = t.b.matmul(a, b);
            t.b.slice(p, 1, 1, n + 1)
        }
        "slice-of-transpose" => {
            let x = t.tensor(&[m + 2, n]);
            let y = t.b.transpose(x, &[1, 0]);
            t.b.slice(y, 1, 1, m + 1)
        }
        "slice-of-concat" => {
            let (x, y) = (t.tensor(&[m, k]), t.tensor(&[m, n]));
            let xy = t.b.concat(&[x, y], 1);
            t.b.slice(xy, 1, k, k + n)
        }
        other => panic!("rule '{other}' has no test instance: add one to tests/opt_rules.rs"),
    }
}

/// Prefers e-nodes that were not in the original e-graph, then smaller terms.
struct PreferNew(HashSet<TensorLang>);

impl CostFunction<TensorLang> for PreferNew {
    type Cost = f64;
    fn cost<C: FnMut(Id) -> f64>(&mut self, enode: &TensorLang, mut costs: C) -> f64 {
        let own = match enode {
            TensorLang::Attr(_) | TensorLang::Arg(_) => 0.0,
            _ if self.0.contains(enode) => 1000.0,
            _ => 1.0,
        };
        enode.fold(own, |sum, id| sum + costs(id))
    }
}

fn canonical(eg: &TensorGraph, node: &TensorLang) -> TensorLang {
    node.clone().map_children(|c| eg.find(c))
}

fn rewritten(rule: &str, graph: &Graph) -> (Graph, usize) {
    let (eg, ids) = to_egraph(graph);
    let original: HashSet<TensorLang> = eg
        .classes()
        .flat_map(|c| c.nodes.iter().map(|n| canonical(&eg, n)))
        .collect();
    let root = ids[graph.outputs[0].1.index()];
    let runner = Runner::default()
        .with_egraph(eg)
        .with_iter_limit(2)
        .with_node_limit(10_000)
        .run(&rewrites(|r| r.name == rule));
    let fired: usize = runner
        .iterations
        .iter()
        .map(|it| it.applied.values().sum::<usize>())
        .sum();
    let eg = &runner.egraph;
    let original: HashSet<TensorLang> = original.iter().map(|n| canonical(eg, n)).collect();
    let extractor = egg::Extractor::new(eg, PreferNew(original));
    let mut choice = HashMap::new();
    for class in eg.classes() {
        if class.data.ty.is_some() {
            choice.insert(class.id, extractor.find_best_node(class.id).clone());
        }
    }
    (from_choice(eg, &choice, graph, &[eg.find(root)]), fired)
}

#[test]
fn every_rule_preserves_values_on_random_instances() {
    for rule in table() {
        for seed in 0..3 {
            let mut t = Instance {
                b: Builder::new(rule.name),
                args: Args::new(),
                rng: SplitMix64::new(seed),
                params: 0,
            };
            let y = instance(rule.name, &mut t);
            t.b.output("y", y);
            let graph = t.b.finish();
            graph.validate().unwrap();
            let (after, fired) = rewritten(rule.name, &graph);
            after.validate().unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            assert!(
                fired > 0,
                "rule {} did not fire on its instance:\n{}",
                rule.name,
                print_graph(&graph)
            );
            // matmul_tn / matmul_nt convert back to the very IR they came from.
            let egraph_only = rule.name.starts_with("matmul-transposed");
            if !egraph_only {
                assert_ne!(
                    print_graph(&after),
                    print_graph(&graph),
                    "rule {}: nothing was rewritten",
                    rule.name
                );
            }
            let want = run(&graph, &t.args).unwrap();
            let got = run(&after, &t.args).unwrap();
            for (x, y) in want[0].1.floats().iter().zip(got[0].1.floats()) {
                assert!(
                    (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                    "rule {}: {x} vs {y}\nbefore:\n{}after:\n{}",
                    rule.name,
                    print_graph(&graph),
                    print_graph(&after)
                );
            }
        }
    }
}
