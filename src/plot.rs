//! Training curves as SVG: `mpc train --plot curves.svg` and `mpc plot run.jsonl`.
//!
//! In: one [`Epoch`] per epoch (the numbers `mpc train` prints, or the epoch objects of
//! a saved `--json` log). Out: an SVG with one panel for the loss and, when the run has
//! them, one for the accuracy (classifiers) or the mean absolute error (regressions),
//! each with the training and the held-out curve. Drawn with `plotters`' SVG backend,
//! which writes text as SVG `<text>`: no font file or system library is needed, the
//! viewer renders the letters.

use crate::load::{error, fail};
use plotters::prelude::*;
use serde_json::Value;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The numbers of one epoch (a `--json` epoch object).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Epoch {
    pub epoch: f64,
    pub loss: Option<f64>,
    pub eval_loss: Option<f64>,
    pub accuracy: Option<f64>,
    pub eval_accuracy: Option<f64>,
    pub mae: Option<f64>,
    pub eval_mae: Option<f64>,
}

impl Epoch {
    /// An epoch object of `mpc train --json`; `None` for other lines (the final one).
    pub fn from_json(v: &Value) -> Option<Epoch> {
        if v.get("final").is_some() {
            return None;
        }
        let num = |k: &str| v.get(k).and_then(Value::as_f64).filter(|x| x.is_finite());
        Some(Epoch {
            epoch: num("epoch")?,
            loss: num("loss"),
            eval_loss: num("eval_loss"),
            accuracy: num("accuracy"),
            eval_accuracy: num("eval_accuracy"),
            mae: num("mae"),
            eval_mae: num("eval_mae"),
        })
    }
}

#[derive(clap::Args)]
pub struct PlotOpts {
    /// A log of `mpc train --json` (one JSON object per line)
    #[arg(value_hint = clap::ValueHint::FilePath)]
    pub log: PathBuf,
    /// The SVG to write (default: the log's name with .svg)
    #[arg(long, short, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub out: Option<PathBuf>,
}

/// `mpc plot run.jsonl`: the log's epochs as curves.
pub fn plot(opts: &PlotOpts) -> Result<(), ExitCode> {
    let out = opts.out.clone().unwrap_or_else(|| opts.log.with_extension("svg"));
    mpc_runtime::files::check_writable(&out).map_err(|e| fail(&out, &e))?;
    let bytes =
        mpc_runtime::files::read(&opts.log, mpc_runtime::files::SOURCE_LIMIT).map_err(|e| fail(&opts.log, &e))?;
    let epochs = read_log(&bytes).map_err(|e| fail(&opts.log, &e))?;
    let title = opts
        .log
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    write(&out, &title, &epochs)?;
    outln!("wrote {} ({} epochs)", out.display(), epochs.len());
    Ok(())
}

/// The epochs of a `--json` log: `LINE: why` for a line that is not JSON, an error
/// when no line is an epoch.
pub fn read_log(bytes: &[u8]) -> Result<Vec<Epoch>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text (at byte {})", e.valid_up_to()))?;
    let mut epochs = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| {
            format!(
                "line {}: not JSON ({e}); expected the output of `mpc train --json`",
                i + 1
            )
        })?;
        epochs.extend(Epoch::from_json(&v));
    }
    if epochs.is_empty() {
        return Err(
            "no epoch objects (`{\"epoch\":1,\"loss\":..}`): write one with `mpc train FILE --json > run.jsonl`".into(),
        );
    }
    Ok(epochs)
}

/// Writes the curves of `epochs` to `path` as SVG (atomically).
pub fn write(path: &Path, title: &str, epochs: &[Epoch]) -> Result<(), ExitCode> {
    let svg = render(title, epochs).map_err(|e| fail(path, &format!("cannot draw the curves: {e}")))?;
    mpc_runtime::files::write_atomic(path, svg.as_bytes()).map_err(|e| error(&format!("{}: {e}", path.display())))
}

/// One panel: its name and the training and held-out series.
struct Panel {
    name: &'static str,
    train: Vec<(f64, f64)>,
    held_out: Vec<(f64, f64)>,
}

fn panels(epochs: &[Epoch]) -> Vec<Panel> {
    let series = |f: fn(&Epoch) -> Option<f64>| -> Vec<(f64, f64)> {
        epochs.iter().filter_map(|e| Some((e.epoch, f(e)?))).collect()
    };
    let all = [
        Panel {
            name: "loss",
            train: series(|e| e.loss),
            held_out: series(|e| e.eval_loss),
        },
        Panel {
            name: "accuracy",
            train: series(|e| e.accuracy),
            held_out: series(|e| e.eval_accuracy),
        },
        Panel {
            name: "mean absolute error",
            train: series(|e| e.mae),
            held_out: series(|e| e.eval_mae),
        },
    ];
    all.into_iter()
        .filter(|p| !p.train.is_empty() || !p.held_out.is_empty())
        .collect()
}

/// `lo..hi` padded by 5%, never empty.
fn padded(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.1
    };
    (lo - pad)..(hi + pad)
}

/// An axis label: `2000`, `0.45`, `0.005`, without trailing zeros.
fn compact(v: f64) -> String {
    let digits = if v.abs() >= 100.0 { 0 } else { 4 };
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// The SVG text of the curves.
pub fn render(title: &str, epochs: &[Epoch]) -> Result<String, String> {
    let panels = panels(epochs);
    let mut svg = String::new();
    {
        let width = 480 * panels.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| e.to_string())?;
        let last = epochs.iter().map(|e| e.epoch).fold(1.0, f64::max);
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(areas) {
            let ys = padded(panel.train.iter().chain(&panel.held_out).map(|p| p.1));
            let mut chart = ChartBuilder::on(&area)
                .caption(panel.name, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0.5..last + 0.5, ys)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(panel.name)
                .x_labels(last.min(10.0) as usize + 1)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| compact(*y))
                .draw()
                .map_err(|e| e.to_string())?;
            let blue = RGBColor(37, 99, 235);
            let orange = RGBColor(234, 88, 12);
            for (points, color, name) in [(&panel.train, blue, "training"), (&panel.held_out, orange, "held-out")] {
                if points.is_empty() {
                    continue;
                }
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}
