//! Training curves: `mpc train --plot` and `mpc plot run.jsonl` write well-formed SVG
//! whose curves are the run's numbers (one point per epoch, higher values drawn higher),
//! the same from the log as from the run; a broken log is one located error line.

mod common;

use common::{json_lines, mpc, ok, s, scratch};
use serde_json::Value;

const TRAIN: &str = "#2563EB";
const HELD_OUT: &str = "#EA580C";

/// The (color, points) of every curve of more than two points (legend samples have
/// two), in drawing order: per panel, training then held-out.
fn curves(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| [TRAIN, HELD_OUT].contains(&n.attribute("stroke").unwrap_or("")))
        .map(|n| {
            let points = n
                .attribute("points")
                .unwrap()
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect::<Vec<(f64, f64)>>();
            (n.attribute("stroke").unwrap().to_string(), points)
        })
        .filter(|(_, p)| p.len() > 2)
        .collect()
}

/// Higher values are drawn higher (smaller y): the pixel order is the value order.
fn assert_drawn(values: &[f64], points: &[(f64, f64)]) {
    assert_eq!(values.len(), points.len());
    for i in 0..values.len() {
        for j in 0..values.len() {
            if values[i] > values[j] + 1e-9 * values[j].abs().max(1.0) {
                assert!(points[i].1 <= points[j].1, "{values:?} drawn as {points:?}");
            }
        }
        if i > 0 {
            assert!(points[i].0 > points[i - 1].0, "epochs run left to right: {points:?}");
        }
    }
}

#[test]
fn train_plots_its_epochs_and_plot_redraws_them_from_the_log() {
    let dir = scratch("plot", "classifier");
    let (svg_path, log_path) = (dir.join("curves.svg"), dir.join("run.jsonl"));
    let out = ok(&[
        "train",
        "examples/text_classifier.mp",
        "--epochs",
        "4",
        "--json",
        "--plot",
        s(&svg_path),
    ]);
    std::fs::write(&log_path, &out).unwrap();
    let epochs: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|l| l.get("epoch").is_some())
        .collect();
    let column = |key: &str| epochs.iter().map(|e| e[key].as_f64().unwrap()).collect::<Vec<f64>>();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let drawn = curves(&svg);
    // Loss, then accuracy; training and held-out in each.
    let colors: Vec<&str> = drawn.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(colors, [TRAIN, HELD_OUT, TRAIN, HELD_OUT]);
    for ((_, points), key) in drawn.iter().zip(["loss", "eval_loss", "accuracy", "eval_accuracy"]) {
        assert_drawn(&column(key), points);
    }
    assert!(
        svg.contains(">\nloss\n<") && svg.contains(">\naccuracy\n<"),
        "panel captions"
    );

    // The same curves from the saved log.
    let redrawn = dir.join("again.svg");
    let said = ok(&["plot", s(&log_path), "--out", s(&redrawn)]);
    assert_eq!(said.trim(), format!("wrote {} (4 epochs)", redrawn.display()));
    assert_eq!(curves(&std::fs::read_to_string(&redrawn).unwrap()), drawn);
}

#[test]
fn a_regression_plots_its_mean_absolute_error() {
    let dir = scratch("plot", "regression");
    let log = dir.join("molecules.jsonl");
    let lines = [
        r#"{"epoch":1,"loss":1954.9,"accuracy":null,"eval_loss":1320.8,"mae":32.4,"eval_mae":26.1}"#,
        r#"{"epoch":2,"loss":790.2,"accuracy":null,"eval_loss":420.1,"mae":20.3,"eval_mae":13.3}"#,
        r#"{"epoch":3,"loss":190.7,"accuracy":null,"eval_loss":102.7,"mae":10.1,"eval_mae":7.0}"#,
        r#"{"final":true,"epochs":3,"steps":189}"#,
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    ok(&["plot", s(&log)]);
    // Default output: the log's name with .svg.
    let svg = std::fs::read_to_string(dir.join("molecules.svg")).unwrap();
    assert!(svg.contains("mean absolute error") && !svg.contains(">\naccuracy\n<"));
    let drawn = curves(&svg);
    assert_eq!(drawn.len(), 4);
    assert_drawn(&[32.4, 20.3, 10.1], &drawn[2].1);
}

#[test]
fn a_broken_log_is_one_located_line() {
    let dir = scratch("plot", "broken");
    let fails = |name: &str, text: &str, expected: &str| {
        let log = dir.join(name);
        std::fs::write(&log, text).unwrap();
        let o = mpc(&["plot", s(&log)]);
        assert_eq!(o.status.code(), Some(1));
        let err = common::stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("{}: {expected}", log.display())), "{err}");
        assert!(!log.with_extension("svg").exists());
    };
    fails(
        "cut.jsonl",
        "{\"epoch\":1,\"loss\":0.5}\n{\"epoch\":2,\"lo",
        "line 2: not JSON (EOF while parsing",
    );
    fails("empty.jsonl", "", "no epoch objects");
    fails("final.jsonl", "{\"final\":true}\n", "no epoch objects");
    let o = mpc(&["plot", s(&dir.join("absent.jsonl"))]);
    assert_eq!(o.status.code(), Some(1));
}
