//! Human text by default, one JSON document with `--output json`: data to stdout, messages
//! to stderr.

use std::io::{ErrorKind, IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};

use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// Prints `value` as JSON, or `text` for a person.
pub fn emit<T: Serialize>(format: OutputFormat, value: &T, text: impl FnOnce() -> String) {
    match format {
        OutputFormat::Json => {
            // Our output types are plain structs; serializing them cannot fail.
            print_line(&serde_json::to_string_pretty(value).unwrap_or_default());
        }
        OutputFormat::Text => print_line(&text()),
    }
}

/// A progress bar over blocks, on a terminal for text output; hidden otherwise.
pub fn progress(total: u64, output: OutputFormat, what: &str) -> ProgressBar {
    progress_of(total, output, what, "blocks")
}

/// A progress bar over `total` things called `unit`, on stderr when it is a terminal and
/// the output is text; hidden otherwise (JSON output, a pipe, a test).
pub fn progress_of(total: u64, output: OutputFormat, what: &str, unit: &str) -> ProgressBar {
    if output == OutputFormat::Json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let template =
        format!("{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

static FORMAT: AtomicU8 = AtomicU8::new(0);

/// Records the command line's `--output`, for progress bars deep in long commands.
pub fn set_format(output: OutputFormat) {
    FORMAT.store(u8::from(output == OutputFormat::Json), Ordering::Relaxed);
}

/// A progress bar (see [`progress_of`]) under the command line's `--output`.
pub fn bar(total: u64, what: &str, unit: &str) -> ProgressBar {
    let output = match FORMAT.load(Ordering::Relaxed) {
        0 => OutputFormat::Text,
        _ => OutputFormat::Json,
    };
    progress_of(total, output, what, unit)
}

/// What became of standard output: still writable, closed by its reader (`| head`), or
/// failed otherwise (a full disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputState {
    Open,
    Closed,
    Failed,
}

static OUTPUT: AtomicU8 = AtomicU8::new(0);

/// Writes one line to standard output. Once the reader has gone, or a write failed, the
/// rest is dropped: the command finishes its work, and `main` decides the exit code.
pub fn print_line(line: &str) {
    if output_state() != OutputState::Open {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        let state = if error.kind() == ErrorKind::BrokenPipe {
            OutputState::Closed
        } else {
            OutputState::Failed
        };
        OUTPUT.store(state as u8, Ordering::Relaxed);
    }
}

/// Writes one line to standard error, if it is still there.
pub fn print_note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

pub fn output_state() -> OutputState {
    match OUTPUT.load(Ordering::Relaxed) {
        0 => OutputState::Open,
        1 => OutputState::Closed,
        _ => OutputState::Failed,
    }
}

/// `eprintln!` that does not panic when standard error is closed.
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::print_note(&format!($($arg)*))
    };
}
pub(crate) use note;
