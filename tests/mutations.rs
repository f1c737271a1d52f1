//! Never panic: thousands of mutated models (truncated, tokens deleted, duplicated or
//! swapped, bytes replaced, numbers made extreme, names swapped, invalid UTF-8) go
//! through the whole pipeline; each must compile or give errors that render, and never
//! panic. Every distinct model the front half accepts (parse to autodiff) then goes
//! through the back half (`through_backends`: e-graph optimization, scheduling, Cranelift
//! and PTX code generation), and a deterministic sample of small ones runs one JIT step
//! against the interpreter. Deterministic: a fixed seed.

mod common;

use common::jit::{random_args, run_jit};
use mpc_compiler::diag::render;
use mpc_compiler::internals::opt::{optimize, Limits};
use mpc_compiler::interp::{self, Args, Value};
use mpc_compiler::ir::printer::print_graph;
use mpc_compiler::ir::ArgKind;
use mpc_compiler::pipeline::{self, compile, Compiled};
use mpc_compiler::seeded::SplitMix64;
use mpc_compiler::signature::{Role, Signature};
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Valid models that use the constructs the examples do not.
const EXTRA: &[&str] = &[
    // node, message, rounds, concat, softmax.
    "model Fusion {
  dims { B = 16, T = 8 }
  input text: i32[B, T] vocab 1000
  input image: f32[B, 32]
  label y: i32[B] classes 4

  node t = mean(embed(text, 64), axis: 1)
  node v = linear(image, 64)
  message f(x, y) = tanh(linear(concat(x, y), 64))
  rounds 2 {
    t += f(t, v) + f(t, v)
    v = relu(f(v, t))
  }
  let p = softmax(linear(concat(t, v, axis: -1), 4), axis: 1)
  let logits = linear(p * 2.0 - 1, 4, name: head)
  loss cross_entropy(logits, y)
}
train { optimizer adamw(lr: 1e-3, weight_decay: 0.01) epochs 3 batch 16 seed 7 }
",
    // reshape, flatten, mse, sgd, reductions and activations.
    "model Regressor {
  dims { B = 8 }
  input img: f32[B, 4, 4]
  label target: f32[B, 1]
  let x = reshape(img, [B, 16])
  let y = reshape(x, [B, 2, 8])
  let f = flatten(y)
  let h = gelu(linear(f, 32)) + sigmoid(linear(f, 32)) / 2
  let s = sum(log_softmax(h), axis: 1) + max(h, axis: 1) - mean(h, axis: -1)
  let pred = linear(dropout(h, 0.1), 1) + reshape(s, [B, 1])
  loss mse(pred, target)
}
train { optimizer sgd(lr: 0.01, momentum: 0.9) epochs 2 batch B seed 1 }
",
    // Several nodes, nested messages, a label over two axes.
    "model Tagger {
  dims { B = 4, T = 6 }
  input tokens: i32[B, T] vocab 50
  label tags: i32[B, T] classes 5
  node a = embed(tokens, 16)
  node b = tanh(linear(embed(tokens, 16, name: e2), 16))
  message g(x) = relu(linear(x, 16))
  message h(x, y) = g(x) - g(y)
  rounds 3 { a += h(a, b) b = tanh(linear(concat(a, b, axis: 2), 16)) }
  loss cross_entropy(linear(a, 5), tags)
}
",
];

/// The examples and the extra models above: (name, source).
fn sources() -> Vec<(String, String)> {
    let mut out = common::examples();
    for (i, s) in EXTRA.iter().enumerate() {
        out.push((format!("extra{i}"), s.to_string()));
    }
    out
}

/// The message of a caught panic.
fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Compiles `src` and renders its errors; returns the compiled model if the front half
/// accepted it, or the panic message.
fn survives(src: &str) -> Result<Option<Compiled>, String> {
    catch_unwind(AssertUnwindSafe(|| match compile(src, &[]) {
        Ok(c) => Some(c),
        Err(diags) => {
            assert!(!diags.is_empty(), "an error result without diagnostics");
            let text = render(&diags, "m.mp", src, false);
            assert!(text.contains("error"));
            render(&diags, "m.mp", src, true);
            None
        }
    }))
    .map_err(panic_message)
}

/// Small optimizer limits, without a time limit so the result does not depend on the
/// machine.
fn limits() -> Limits {
    Limits {
        nodes: 2_000,
        iterations: 2,
        time: Duration::from_secs(3600),
    }
}

/// The back half of the pipeline on a model the front half accepted: each of its
/// training and evaluation steps through e-graph optimization, scheduling and both code
/// generators (PTX may refuse a model too large for 32-bit launches, with an error);
/// with `jit_check`, one training step on the JIT against the interpreter
/// (`jit_matches_interp`) on seeded random inputs (token ids, labels and edge ends in
/// range) and initial weights. One place to swap for the pipeline API.
fn through_backends(c: &Compiled, jit_check: bool) -> Result<(), String> {
    let mut optimized_step = None;
    for (which, graph) in [("train", &c.train_step), ("eval", &c.eval)] {
        let (optimized, _) = optimize(graph, &limits()).map_err(|e| format!("{which}: optimize: {e}"))?;
        optimized
            .validate()
            .map_err(|e| format!("{which}: optimized graph: {e}"))?;
        let program = pipeline::schedule(&optimized);
        pipeline::codegen_cpu(&program).map_err(|e| format!("{which}: cranelift: {e}"))?;
        match pipeline::codegen_ptx(&program) {
            Err(e) if !too_large_for_ptx(&optimized) => return Err(format!("{which}: ptx: {e}")),
            _ => {}
        }
        optimized_step.get_or_insert(optimized);
    }
    if jit_check {
        let step = optimized_step.expect("the training step");
        let args = first_step_args(c, &step)?;
        jit_matches_interp(&step, &c.train_step.signature, &args)
            .map_err(|e| format!("train step, JIT vs interpreter: {e}"))?;
    }
    Ok(())
}

/// Whether `graph` has a value of more than `i32::MAX` elements: the PTX backend may
/// refuse it (32-bit indices and launch sizes), with an error, never a panic.
fn too_large_for_ptx(graph: &mpc_compiler::ir::Graph) -> bool {
    graph.nodes.iter().any(|node| {
        let n = node.ty.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        n.is_none_or(|n| n > i32::MAX as usize)
    })
}

/// One run of `g` (a whole training step) on the JIT (1 thread) against the f32
/// interpreter: every output computed without an error, and the forward outputs
/// (`loss`, `predictions`) within 1e-4 relative (of the element, or 1e-3 of the output's
/// largest value), or within ten times the f32 interpreter's own distance from the f64
/// interpreter. The updated parameters and optimizer state are not compared: on a
/// mutant's random data Adam's `g / (|g| + eps)` divides gradients that cancel to near
/// `eps`, where any two summation orders (the JIT's GEMM, the interpreter's loops)
/// differ in the leading digits. `runtime/tests/jit_models.rs` compares whole steps of
/// the real models.
fn jit_matches_interp(g: &mpc_compiler::ir::Graph, sig: &Signature, args: &Args<f32>) -> Result<(), String> {
    let want = interp::run(g, args).map_err(|e| format!("interpreter: {e:?}"))?;
    let args64: Args<f64> = args
        .iter()
        .map(|(name, v)| {
            let v = match v {
                Value::Float(x) => Value::Float(x.iter().map(|&x| f64::from(x)).collect()),
                Value::Int(x) => Value::Int(x.clone()),
            };
            (name.clone(), v)
        })
        .collect();
    let exact = interp::run(g, &args64).map_err(|e| format!("interpreter (f64): {e:?}"))?;
    let got = run_jit(g, args, 1).map_err(|e| format!("jit: {e}"))?;
    for (((name, w), (_, x)), (_, v)) in want.iter().zip(&exact).zip(&got) {
        if !matches!(sig.role(name), Some(Role::Loss | Role::Predictions)) {
            continue;
        }
        let (w, x) = (w.floats(), x.floats());
        if w.len() != v.len() {
            return Err(format!("{name}: interpreter {} values, jit {}", w.len(), v.len()));
        }
        let scale = w.iter().fold(0f32, |m, a| m.max(a.abs())).max(1e-6);
        for (i, ((&a, &b), &exact)) in w.iter().zip(v).zip(x).enumerate() {
            let own_error = (f64::from(a) - exact).abs() as f32;
            let tol = 1e-4 * (a.abs().max(b.abs()) + 1e-3 * scale) + 10.0 * own_error;
            if !(a == b || (a - b).abs() <= tol || (a.is_nan() && b.is_nan())) {
                return Err(format!("{name}[{i}] interpreter {a} (f64: {exact}) vs jit {b}"));
            }
        }
    }
    Ok(())
}

/// Arguments of a first training step: seeded random inputs (ids in range), the
/// parameters as a session initializes them, zero optimizer state. (Uniform random
/// weights and state would put a mutant at a huge loss where an update such as
/// `0.9 m + 0.1 g` cancels to a hundredth of its terms, and rounding order decides the
/// digits that remain.)
fn first_step_args(c: &Compiled, step: &mpc_compiler::ir::Graph) -> Result<Args<f32>, String> {
    let mut args = random_args(step, |name| index_bound(c, name), 3);
    let params = mpc_compiler::specialize::params(&c.model, &c.dims)?;
    for (name, values) in mpc_runtime::init::initialize(&params, 5) {
        args.insert(name, Value::Float(values));
    }
    for (_, name, ty) in step.args(ArgKind::State) {
        args.insert(name.to_string(), Value::Float(vec![0.0; ty.numel()]));
    }
    Ok(args)
}

/// The exclusive upper bound of an i32 input's values: its vocabulary or classes, or
/// the node count of the graph whose edge list it is.
fn index_bound(c: &Compiled, name: &str) -> u64 {
    if let Some(g) = c.model.graphs.iter().find(|g| g.edges_input == name) {
        let nodes = mpc_compiler::specialize::concrete(std::slice::from_ref(&g.nodes), &c.dims);
        return nodes.map_or(1, |n| n[0] as u64).max(1);
    }
    let input = c.model.inputs.iter().find(|i| i.name == name);
    input.and_then(|i| i.vocab.or(i.classes)).unwrap_or(2).max(1) as u64
}

/// Elements in every value of `graph`, if that count fits in a usize.
fn elements(graph: &mpc_compiler::ir::Graph) -> Option<usize> {
    graph.nodes.iter().try_fold(0usize, |sum, node| {
        let n = node.ty.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        sum.checked_add(n)
    })
}

fn fingerprint(graph: &mpc_compiler::ir::Graph) -> u64 {
    let mut h = DefaultHasher::new();
    print_graph(graph).hash(&mut h);
    h.finish()
}

/// Tokens: runs of name characters, runs of digits/dots, single punctuation, whitespace.
fn tokens(src: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let class = |c: char| {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            0
        } else if c.is_whitespace() {
            1
        } else {
            2
        }
    };
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    for w in 1..=chars.len() {
        let split = w == chars.len() || class(chars[w].1) != class(chars[w - 1].1) || class(chars[w].1) == 2;
        if split {
            let end = if w == chars.len() { src.len() } else { chars[w].0 };
            out.push(&src[start..end]);
            start = end;
        }
    }
    out
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "99999999999999999999",
    "9223372036854775807",
    "4294967295",
    "99999999999",
    "1e308",
    "-1e308",
    "0.0",
    "1e-400",
    "3",
];

fn pick<'a, T>(rng: &mut SplitMix64, xs: &'a [T]) -> &'a T {
    &xs[rng.below(xs.len() as u64) as usize]
}

fn mutate(rng: &mut SplitMix64, src: &str) -> String {
    let toks = tokens(src);
    let n = toks.len();
    let mut t: Vec<String> = toks.iter().map(|s| s.to_string()).collect();
    let i = rng.below(n as u64) as usize;
    let j = rng.below(n as u64) as usize;
    match rng.below(9) {
        // Truncate at a random byte (on a char boundary).
        0 => {
            let mut cut = rng.below(src.len() as u64 + 1) as usize;
            while !src.is_char_boundary(cut) {
                cut -= 1;
            }
            return src[..cut].to_string();
        }
        1 => {
            t.remove(i);
        }
        2 => {
            let dup = t[i].clone();
            t.insert(i, dup);
        }
        3 => t.swap(i, j),
        // Random byte replacement, through from_utf8_lossy.
        4 => {
            let mut bytes = src.as_bytes().to_vec();
            for _ in 0..=rng.below(3) {
                let k = rng.below(bytes.len() as u64) as usize;
                bytes[k] = rng.below(256) as u8;
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        // Change a number.
        5 => {
            let nums: Vec<usize> = (0..n)
                .filter(|&k| t[k].starts_with(|c: char| c.is_ascii_digit()))
                .collect();
            if !nums.is_empty() {
                let k = *pick(rng, &nums);
                t[k] = pick(rng, NUMBERS).to_string();
            }
        }
        // Swap an identifier for another from the file.
        6 => {
            let ids: Vec<usize> = (0..n)
                .filter(|&k| t[k].starts_with(|c: char| c.is_alphabetic() || c == '_'))
                .collect();
            if !ids.is_empty() {
                let a = *pick(rng, &ids);
                let b = *pick(rng, &ids);
                t[a] = t[b].clone();
            }
        }
        // Invalid UTF-8 bytes inserted.
        7 => {
            let mut bytes = src.as_bytes().to_vec();
            let k = rng.below(bytes.len() as u64 + 1) as usize;
            const BAD: &[&[u8]] = &[&[0xff], &[0xc3], &[0xe2, 0x82], &[0x80, 0x80]];
            let bad = BAD[rng.below(BAD.len() as u64) as usize];
            bytes.splice(k..k, bad.iter().copied());
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        // Several edits at once.
        _ => {
            let mut s = src.to_string();
            for _ in 0..3 {
                s = mutate(rng, &s);
                if s.is_empty() {
                    break;
                }
            }
            return s;
        }
    }
    t.concat()
}

#[test]
fn sources_compile() {
    for (name, src) in sources() {
        match compile(&src, &[]) {
            Ok(c) => through_backends(&c, false).unwrap_or_else(|e| panic!("{name}: {e}")),
            Err(d) => panic!("{name} does not compile:\n{}", render(&d, &name, &src, false)),
        }
    }
}

/// Distinct accepted models checked on the JIT: every `JIT_EVERY`th that has at most
/// `JIT_ELEMENTS` elements in all the values of its training step.
const JIT_EVERY: usize = 2;
const JIT_ELEMENTS: usize = 20_000_000;

#[test]
fn mutations_never_panic() {
    const PER_SOURCE: usize = 2000;
    let mut rng = SplitMix64::new(0x006d_7063);
    let mut failures = Vec::new();
    let start = Instant::now();
    let mut slowest = (Duration::ZERO, String::new());
    let mut seen = HashSet::new();
    let (mut backend_checked, mut jit_checked, mut backend_time) = (0, 0, Duration::ZERO);
    for (name, src) in sources() {
        for k in 0..PER_SOURCE {
            let m = mutate(&mut rng, &src);
            let t = Instant::now();
            let compiled = match survives(&m) {
                Ok(c) => c,
                Err(msg) => {
                    failures.push(format!("{name} mutation {k}: {msg}\n----\n{m}\n----"));
                    None
                }
            };
            let dt = t.elapsed();
            if dt > slowest.0 {
                slowest = (dt, m.clone());
            }
            let Some(c) = compiled else { continue };
            if !seen.insert(fingerprint(&c.train_step)) {
                continue;
            }
            let jit_check = seen.len() % JIT_EVERY == 0 && elements(&c.train_step).is_some_and(|n| n <= JIT_ELEMENTS);
            let t = Instant::now();
            match catch_unwind(AssertUnwindSafe(|| through_backends(&c, jit_check))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{name} mutation {k}: {e}\n----\n{m}\n----")),
                Err(panic) => failures.push(format!(
                    "{name} mutation {k}: back half panicked: {}\n----\n{m}\n----",
                    panic_message(panic)
                )),
            }
            backend_time += t.elapsed();
            backend_checked += 1;
            jit_checked += usize::from(jit_check);
        }
    }
    eprintln!(
        "{:?} in all, slowest front half {:?}; {backend_checked} distinct models through the back half ({backend_time:?}), {jit_checked} on the JIT",
        start.elapsed(),
        slowest.0
    );
    for f in &failures {
        eprintln!("failed: {}", f.lines().next().unwrap_or(""));
    }
    assert!(
        failures.is_empty(),
        "{} failures; first:\n{}",
        failures.len(),
        failures[0]
    );
    // Shapes are only recorded, never allocated: no model takes long, whatever its sizes.
    assert!(
        slowest.0 < Duration::from_secs(1),
        "{:?} for:\n{}",
        slowest.0,
        slowest.1
    );
    assert!(jit_checked >= 30, "only {jit_checked} models ran on the JIT");
}

/// Inputs that once panicked, and the extreme sizes the brief worried about.
#[test]
fn regressions() {
    let base = &sources()[0].1;
    let cases: Vec<String> = vec![
        base.replace("vocab 10000", "vocab 99999999999"),
        base.replace("B = 64", "B = 1000000000"),
        base.replace("B = 64, T = 32", "B = 9223372036854775807, T = 9223372036854775807"),
        base.replace("embed(tokens, 64)", "embed(tokens, 4294967295)"),
        // Panicked: a dim polynomial overflowed in Dim::add (concat of huge widths).
        "model M { dims { B = 8 } input x: f32[B, 9223372036854775807] label y: f32[B, 9223372036854775807]
           let c = concat(x, x) loss mse(x, y) }"
            .into(),
        // Panicked: element counts overflowed (flatten, linear rows; the CLI's totals).
        "model M { dims { B = 9223372036854775807, T = 9223372036854775807 }
           input x: f32[B, T, 4] label y: f32[B, T, 4] let f = flatten(x) loss mse(x, y) }"
            .into(),
        "model M { dims { B = 8 } input x: f32[B, 4294967295] label y: i32[B] classes 4294967295
           loss cross_entropy(linear(linear(x, 4294967295), 4294967295), y) }"
            .into(),
    ];
    for src in &cases {
        let t = Instant::now();
        survives(src).unwrap_or_else(|m| panic!("{m}\n{src}"));
        assert!(t.elapsed() < Duration::from_secs(1), "slow: {src}");
    }
}
