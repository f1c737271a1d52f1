//! Never panic: thousands of mutated models (truncated, tokens deleted, duplicated or
//! swapped, bytes replaced, numbers made extreme, names swapped, invalid UTF-8) go
//! through the whole pipeline, parse to autodiff; each must compile or give errors that
//! render, and never panic. Deterministic: a fixed seed.

use mpc_compiler::diag::render;
use mpc_compiler::pipeline::compile;
use mpc_compiler::seeded::SplitMix64;
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

fn sources() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp"))
        .collect();
    files.sort();
    let mut out: Vec<(String, String)> = files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    for (i, s) in EXTRA.iter().enumerate() {
        out.push((format!("extra{i}"), s.to_string()));
    }
    out
}

/// Compiles `src` and renders its errors; returns the panic message, if any.
fn survives(src: &str) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| {
        if let Err(diags) = compile(src, &[]) {
            assert!(!diags.is_empty(), "an error result without diagnostics");
            let text = render(&diags, "m.mp", src, false);
            assert!(text.contains("error"));
            render(&diags, "m.mp", src, true);
        }
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
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
        if let Err(d) = compile(&src, &[]) {
            panic!("{name} does not compile:\n{}", render(&d, &name, &src, false));
        }
    }
}

#[test]
fn mutations_never_panic() {
    const PER_SOURCE: usize = 2000;
    let mut rng = SplitMix64::new(0x006d_7063);
    let mut failures = Vec::new();
    let start = Instant::now();
    let mut slowest = (Duration::ZERO, String::new());
    for (name, src) in sources() {
        for k in 0..PER_SOURCE {
            let m = mutate(&mut rng, &src);
            let t = Instant::now();
            if let Err(msg) = survives(&m) {
                failures.push(format!("{name} mutation {k}: {msg}\n----\n{m}\n----"));
            }
            let dt = t.elapsed();
            if dt > slowest.0 {
                slowest = (dt, m);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} panics; first:\n{}",
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
    eprintln!("{:?} in all, slowest {:?}", start.elapsed(), slowest.0);
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
