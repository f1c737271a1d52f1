//! `mpc`, the command line: check, compile (print any stage), inspect, train, run and export models.
//!
//! In: a command and a `.mp` file. Out: the requested text on stdout, diagnostics on
//! stderr; exit 0 on success, 1 when the model (or file) has errors or the arguments are
//! wrong (one `error:` line either way, as the README promises).

#[macro_use]
mod output;
mod budget;
mod data;
mod export;
mod load;
mod parallel;
mod plot;
mod resume;
mod run;
mod sample;
mod train;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use load::{fail, Loaded};
use mpc_compiler::pipeline;
use mpc_compiler::pipeline::format_stats;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "mpc", version, about = "A compiler for message-passing neural models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// The model file (.mp)
    #[arg(value_hint = clap::ValueHint::FilePath)]
    file: PathBuf,
    /// Give a dim a value, overriding its default (repeatable): --dim B=32
    #[arg(long = "dim", value_name = "NAME=SIZE", value_parser = load::parse_dim)]
    dims: Vec<(String, usize)>,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check a model; print a one-line summary or the errors
    Check(ModelArgs),
    /// Print a compiler stage
    Compile {
        #[command(flatten)]
        model: ModelArgs,
        /// The stage to print
        #[arg(long, default_value = "ir", value_parser = stage_parser())]
        emit: pipeline::Stage,
        /// With --emit ir: the evaluation graph (no dropout) instead of the training forward pass
        #[arg(long)]
        eval: bool,
        /// With --emit opt|kernels|clif|ptx: print the optimizer's statistics to stderr
        /// (e-graph size, iterations, stop reason, rules fired, FLOPs and bytes before and after, time)
        #[arg(long)]
        stats: bool,
    },
    /// List the model's parameters: name, shape, count, and the total
    Inspect(ModelArgs),
    /// Train a model on its default synthetic data or --data DIR, printing loss and accuracy per epoch
    Train {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        opts: train::TrainOpts,
    },
    /// Evaluate a checkpoint: loss and accuracy on data, predictions on request; or draw samples from it (--sample N)
    Run {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        opts: run::RunOpts,
    },
    /// Export a checkpoint's evaluation step as an ONNX model (opset 18) that maps the model's inputs to its predictions
    Export {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        opts: export::ExportOpts,
    },
    /// Draw training curves (loss, accuracy or MAE per epoch) as SVG from a saved `mpc train --json` log
    Plot(plot::PlotOpts),
    /// Print a shell completion script: `mpc completions bash > ~/.local/share/bash-completion/completions/mpc`
    Completions {
        /// The shell to complete in
        shell: clap_complete::Shell,
    },
}

/// `--emit`'s values: the pipeline's stages, with their names and help.
fn stage_parser() -> impl clap::builder::TypedValueParser<Value = pipeline::Stage> {
    let values = pipeline::Stage::ALL.map(|(_, name, help)| PossibleValue::new(name).help(help));
    PossibleValuesParser::new(values).map(|name| pipeline::Stage::named(&name).expect("a listed stage"))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let code = match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    };
    output::finish(code)
}

/// `--help` and `--version` print as clap prints them (stdout, exit 0); every other
/// parse error becomes one line and exit 1, like any other error of mpc.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        // Printing to a closed or full stdout is no reason to panic; the exit code says it.
        return match e.print() {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // Bare `mpc`: clap would print the whole help to stderr; name the commands instead.
        let cmd = <Cli as clap::CommandFactory>::command();
        let names: Vec<&str> = cmd
            .get_subcommands()
            .map(|c| c.get_name())
            .filter(|n| *n != "help")
            .collect();
        errln!(
            "error: no command given: expected one of {} (mpc --help)",
            names.join(", ")
        );
    } else {
        errln!("error: {}", one_line(&e.render().to_string()));
    }
    ExitCode::FAILURE
}

/// Clap's multi-line error text as one line: its first line without the `error: `
/// prefix, the indented items a first line ending in `:` announces (the missing
/// arguments), and a "similar argument exists" tip. Usage and "For more information"
/// are dropped: `--help` has them.
fn one_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let mut line = first.strip_prefix("error: ").unwrap_or(first).trim_end().to_string();
    let mut items = Vec::new();
    let mut tips = Vec::new();
    for l in lines {
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        let t = l.trim();
        if let Some(tip) = t.strip_prefix("tip: ") {
            // The other tips (e.g. "to pass '--x' as a value, use '-- --x'") are noise here.
            if tip.contains("similar") {
                tips.push(tip.to_string());
            }
        } else if t.starts_with("[possible values:") {
            // `--emit bogus`: the values to choose from belong on the line.
            line = format!("{line} {t}");
        } else if !t.is_empty() && l.starts_with(' ') && line.ends_with(':') {
            items.push(t.to_string());
        }
    }
    if !items.is_empty() {
        line = format!("{line} {}", items.join(", "));
    }
    for tip in tips {
        line = format!("{line} ({tip})");
    }
    line
}

fn run(cli: Cli) -> Result<(), ExitCode> {
    match cli.command {
        Command::Check(args) => {
            let loaded = Loaded::compile(&args)?;
            let footprint = pipeline::memory(&loaded.compiled);
            outln!("{}", loaded.summary(&footprint));
            budget::warn_if_over_machine(&loaded.compiled, &footprint);
        }
        Command::Compile {
            model,
            emit,
            eval,
            stats,
        } => {
            let loaded = Loaded::compile(&model)?;
            let (text, opt_stats) =
                pipeline::emit(&loaded.compiled, &loaded.source, emit, eval).map_err(|e| fail(&model.file, &e))?;
            if let (true, Some(s)) = (stats, opt_stats) {
                err!("{}", format_stats(&s, true));
            }
            out!("{text}");
        }
        Command::Inspect(args) => {
            let loaded = Loaded::compile(&args)?;
            out!("{}", loaded.parameter_table().map_err(|e| fail(&args.file, &e))?);
            out!("{}", budget::table(&loaded.compiled));
        }
        Command::Train { model, opts } => train::train(&model, &opts)?,
        Command::Run { model, opts } => run::run(&model, &opts)?,
        Command::Export { model, opts } => export::export(&model, &opts)?,
        Command::Plot(opts) => plot::plot(&opts)?,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "mpc", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
        }
    }
    Ok(())
}
