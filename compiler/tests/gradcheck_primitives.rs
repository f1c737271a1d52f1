//! Every primitive's VJP rule against central finite differences (f64 interpreter).
//!
//! Each case builds `loss = sum(op(params...) * r)` with a random weighting `r`, so
//! every output element's cotangent differs and a transposed or misplaced gradient
//! shows up.

use mpc_compiler::internals::gradcheck;
use mpc_compiler::interp::{Args, Value};
use mpc_compiler::ir::{ArgKind, Builder, Type, ValueId};
use mpc_compiler::seeded::SplitMix64;

struct Case {
    b: Builder,
    args: Args<f64>,
    rng: SplitMix64,
}

impl Case {
    fn new(seed: u64) -> Self {
        Case {
            b: Builder::new("case"),
            args: Args::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// A parameter with entries uniform in `[lo, hi)`.
    fn param(&mut self, name: &str, shape: &[usize], lo: f64, hi: f64) -> ValueId {
        let data = (0..shape.iter().product()).map(|_| self.rng.range(lo, hi)).collect();
        self.args.insert(name.into(), Value::Float(data));
        self.b.arg(ArgKind::Param, name, Type::f32(shape))
    }

    fn indices(&mut self, name: &str, shape: &[usize], bound: u64) -> ValueId {
        let data = (0..shape.iter().product())
            .map(|_| self.rng.below(bound) as i32)
            .collect();
        self.args.insert(name.into(), Value::Int(data));
        self.b.arg(ArgKind::Input, name, Type::i32(shape))
    }

    /// Finishes with `loss = sum(y * r)` and asserts every gradient matches.
    fn check(mut self, y: ValueId, what: &str) {
        let shape = self.b.shape(y);
        let r_data = (0..shape.iter().product()).map(|_| self.rng.range(-1.0, 1.0)).collect();
        self.args.insert("r".into(), Value::Float(r_data));
        let r = self.b.arg(ArgKind::Input, "r", Type::f32(shape.clone()));
        let weighted = self.b.mul(y, r);
        let all: Vec<usize> = (0..shape.len()).collect();
        let loss = self.b.reduce_sum(weighted, &all);
        self.b.output("loss", loss);
        let graph = self.b.finish();
        graph.validate().unwrap();
        let report = gradcheck::check(&graph, &self.args, 64, 1);
        assert!(!report.is_empty(), "{what}: no parameters checked");
        for m in report {
            assert!(
                m.error < 1e-5,
                "{what}: d loss/d {}[{}] autodiff {} vs numeric {}",
                m.param,
                m.index,
                m.autodiff,
                m.numeric
            );
        }
    }
}

fn unary(what: &str, lo: f64, hi: f64, f: impl Fn(&mut Builder, ValueId) -> ValueId) {
    let mut c = Case::new(11);
    let x = c.param("x", &[3, 4], lo, hi);
    let y = f(&mut c.b, x);
    c.check(y, what);
}

fn binary(what: &str, f: impl Fn(&mut Builder, ValueId, ValueId) -> ValueId) {
    let mut c = Case::new(12);
    let x = c.param("x", &[3, 4], -2.0, 2.0);
    let w = c.param("w", &[3, 4], 0.5, 2.0);
    let y = f(&mut c.b, x, w);
    c.check(y, what);
}

#[test]
fn elementwise_unary() {
    unary("neg", -2.0, 2.0, |b, x| b.neg(x));
    unary("exp", -2.0, 2.0, |b, x| b.exp(x));
    unary("log", 0.5, 3.0, |b, x| b.log(x));
    unary("tanh", -2.0, 2.0, |b, x| b.tanh(x));
    unary("erf", -2.5, 2.5, |b, x| b.erf(x));
    unary("sqrt", 0.5, 3.0, |b, x| b.sqrt(x));
}

#[test]
fn elementwise_binary() {
    binary("add", |b, x, w| b.add(x, w));
    binary("sub", |b, x, w| b.sub(x, w));
    binary("mul", |b, x, w| b.mul(x, w));
    binary("div", |b, x, w| b.div(x, w));
    binary("max", |b, x, w| b.max(x, w));
    // A parameter used twice: cotangents must accumulate.
    binary("x*x + x/w", |b, x, w| {
        let xx = b.mul(x, x);
        let xw = b.div(x, w);
        b.add(xx, xw)
    });
}

#[test]
fn shape_ops() {
    unary("broadcast", -1.0, 1.0, |b, x| b.broadcast(x, &[2, 3, 5, 4], &[1, 3]));
    unary("reshape", -1.0, 1.0, |b, x| b.reshape(x, &[2, 6]));
    let mut c = Case::new(3);
    let x = c.param("x", &[2, 3, 4], -1.0, 1.0);
    let y = c.b.transpose(x, &[2, 0, 1]);
    c.check(y, "transpose");

    let mut c = Case::new(4);
    let x = c.param("x", &[2, 3], -1.0, 1.0);
    let w = c.param("w", &[2, 5], -1.0, 1.0);
    let y = c.b.concat(&[x, w, x], 1);
    c.check(y, "concat");

    for (start, end) in [(0, 2), (1, 3), (2, 5), (0, 5)] {
        let mut c = Case::new(5);
        let x = c.param("x", &[3, 5, 2], -1.0, 1.0);
        let y = c.b.slice(x, 1, start, end);
        c.check(y, &format!("slice {start}..{end}"));
    }
}

#[test]
fn reductions_and_matmul() {
    let mut c = Case::new(6);
    let x = c.param("x", &[2, 3, 4], -1.0, 1.0);
    let y = c.b.reduce_sum(x, &[0, 2]);
    c.check(y, "reduce_sum");

    let mut c = Case::new(7);
    let x = c.param("x", &[2, 5, 3], -1.0, 1.0);
    let y = c.b.reduce_max(x, &[1]);
    c.check(y, "reduce_max");

    let mut c = Case::new(8);
    let a = c.param("a", &[3, 4], -1.0, 1.0);
    let w = c.param("w", &[4, 5], -1.0, 1.0);
    let y = c.b.matmul(a, w);
    c.check(y, "matmul");
}

#[test]
fn indexing() {
    // Repeated indices: gather's cotangent must add the rows.
    let mut c = Case::new(9);
    let table = c.param("table", &[5, 3], -1.0, 1.0);
    let idx = c.indices("idx", &[4, 6], 5);
    let y = c.b.gather(table, idx);
    c.check(y, "gather");

    let mut c = Case::new(10);
    let values = c.param("values", &[7, 3], -1.0, 1.0);
    let idx = c.indices("idx", &[7], 4);
    let y = c.b.scatter_add(values, idx, 4);
    c.check(y, "scatter_add");
}

#[test]
fn scatter_max_sends_the_gradient_to_the_argmax() {
    // 9 positions into 3 rows, every row hit (the seed guarantees it): an empty row's
    // -inf is the lowering's business (`aggregate: max` masks it to 0).
    let mut c = Case::new(14);
    let values = c.param("values", &[9, 3], -1.0, 1.0);
    let idx = c.indices("idx", &[9], 3);
    let m = c.b.scatter_max(values, idx, 3);
    c.check(m, "scatter_max");
}

#[test]
fn scatter_max_ties_go_to_the_lowest_position() {
    use mpc_compiler::interp::run;
    let mut b = Builder::new("ties");
    let v = b.arg(ArgKind::Param, "v", Type::f32([4, 1]));
    let i = b.arg(ArgKind::Input, "i", Type::i32([4]));
    let am = b.scatter_argmax(v, i, 3);
    b.output("argmax", am);
    let g = b.finish();
    let mut args = Args::new();
    args.insert("v".into(), Value::Float(vec![2.0, 5.0, 5.0, 1.0]));
    args.insert("i".into(), Value::Int(vec![0, 0, 0, 1]));
    let out = run::<f64>(&g, &args).unwrap();
    assert_eq!(
        out[0].1.ints(),
        &[1, 3, -1],
        "ties to the lowest position; -1 for an empty row"
    );
}

#[test]
fn ops_without_gradients_pass_cotangents_around_them() {
    // one_hot, greater, convert and random_uniform feed a product with a parameter.
    let mut c = Case::new(13);
    let x = c.param("x", &[4, 3], -1.0, 1.0);
    let idx = c.indices("idx", &[4], 3);
    let hot = c.b.one_hot(idx, 3);
    let seed = c.indices("@seed", &[], 100);
    let step = c.indices("@step", &[], 100);
    let u = c.b.random_uniform(seed, step, 0, &[4, 3]);
    let mask = c.b.greater(u, hot);
    let fi = c.b.convert(idx);
    let fi = c.b.broadcast(fi, &[4, 3], &[0]);
    let xm = c.b.mul(x, mask);
    let xh = c.b.mul(xm, hot);
    let y = c.b.add(xh, fi);
    let y = c.b.mul(y, x);
    c.check(y, "one_hot/greater/convert/random_uniform");
}
