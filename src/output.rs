//! Writing to stdout and stderr without panicking.
//!
//! `println!` panics when stdout is a closed pipe (`mpc train ... | head -1`) or a full
//! device; `eprintln!` likewise for stderr. mpc's output goes through [`outln!`] and
//! [`errln!`] instead: a failed write to stdout is remembered and the command goes on
//! (a training run still saves its checkpoint), then [`finish`] turns it into one
//! `error:` line and exit 1, or exit 0 for a reader that closed the pipe (it asked
//! for no more). A failed write to stderr has nowhere to be reported and is dropped.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Mutex;

/// The first error writing to stdout, if any.
static STDOUT_ERROR: Mutex<Option<io::Error>> = Mutex::new(None);

/// On a rank other than 0 of a data-parallel run: the rank, and what it wrote to stderr
/// so far. Rank 0 speaks for the run: the other ranks' stdout is dropped and their stderr
/// held, shown only when theirs is the error that stops the run ([`release_held`]).
static HELD: Mutex<Option<(usize, String)>> = Mutex::new(None);

/// From now on, drop stdout and hold stderr (this process is rank `rank` > 0).
pub fn hold(rank: usize) {
    *HELD.lock().unwrap_or_else(|e| e.into_inner()) = Some((rank, String::new()));
}

/// Writes what was held on stderr, each line after `rank N: `, and holds nothing more.
pub fn release_held() {
    let held = HELD.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some((rank, text)) = held {
        for line in text.lines() {
            stderr(format_args!("rank {rank}: {line}\n"));
        }
    }
}

/// Forgets what was held on stderr (another rank reports the error).
pub fn drop_held() {
    if let Some((_, text)) = HELD.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        text.clear();
    }
}

/// Whether output is held (a rank other than 0).
pub fn holding() -> bool {
    HELD.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// Writes to stdout and flushes; remembers the first failure and writes nothing after it.
pub fn stdout(args: fmt::Arguments) {
    if holding() {
        return;
    }
    let mut failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_some() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        *failed = Some(e);
    }
}

/// Writes to stderr; a failure is dropped (there is nowhere left to say it).
pub fn stderr(args: fmt::Arguments) {
    if let Some((_, text)) = HELD.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = fmt::Write::write_fmt(text, args);
        return;
    }
    let _ = io::stderr().lock().write_fmt(args);
}

/// The exit code once the command is done: a failed stdout write is exit 1 with one
/// line on stderr, except a closed pipe, which is the reader's choice.
pub fn finish(code: ExitCode) -> ExitCode {
    let failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner()).take();
    match failed {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            stderr(format_args!("error: cannot write the output to stdout: {e}\n"));
            ExitCode::FAILURE
        }
        _ => code,
    }
}

/// `println!` that never panics (see the module doc).
macro_rules! outln {
    () => { crate::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that never panics.
macro_rules! out {
    ($($arg:tt)*) => { crate::output::stdout(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => { crate::output::stderr(format_args!($($arg)*)) };
}
