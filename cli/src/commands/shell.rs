//! `halfveil completions SHELL` and `halfveil man --dir DIR`: shell completion scripts
//! (clap_complete) and man pages (clap_mangen), generated from the same command definitions
//! as `--help`, so they never drift from the binary.

use std::path::{Path, PathBuf};

use clap::Args;
use clap_complete::Shell;
use serde::Serialize;

use crate::failure::{CommandResult, Failure};
use crate::output::{emit, print_line, OutputFormat};

/// `halfveil completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for, e.g. `halfveil completions bash >
    /// /etc/bash_completion.d/halfveil`.
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionsArgs {
    /// Prints the completion script for `command` (the whole CLI).
    pub fn execute(&self, mut command: clap::Command) -> CommandResult {
        let mut script = Vec::new();
        clap_complete::generate(self.shell, &mut command, "halfveil", &mut script);
        let text = String::from_utf8(script)
            .map_err(|_| Failure::error("the completion script is not UTF-8"))?;
        print_line(text.trim_end());
        Ok(())
    }
}

/// `halfveil man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write the pages: `halfveil.1`, and `halfveil-SUBCOMMAND.1` for every
    /// subcommand at every depth (then e.g. `man -l DIR/halfveil-pay.1`).
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct Written {
    dir: String,
    pages: Vec<String>,
}

impl ManArgs {
    /// Writes a man page per command of `command` (the whole CLI) into `--dir`.
    pub fn execute(&self, command: clap::Command, output: OutputFormat) -> CommandResult {
        std::fs::create_dir_all(&self.dir).map_err(|error| {
            Failure::error(format!("cannot create {}: {error}", self.dir.display()))
        })?;
        let mut pages = Vec::new();
        write_pages(&self.dir, command, "halfveil", &mut pages)?;
        let report = Written {
            dir: self.dir.display().to_string(),
            pages,
        };
        emit(output, &report, || {
            format!("wrote {} man pages to {}", report.pages.len(), report.dir)
        });
        Ok(())
    }
}

/// Writes `command`'s page as `DIR/NAME.1`, then its subcommands' as `NAME-SUB.1`.
fn write_pages(
    dir: &Path,
    command: clap::Command,
    name: &str,
    pages: &mut Vec<String>,
) -> CommandResult {
    let command = command.name(name.to_owned());
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .map_err(|error| Failure::error(format!("cannot render the {name} page: {error}")))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page)
        .map_err(|error| Failure::error(format!("cannot write {}: {error}", path.display())))?;
    pages.push(path.display().to_string());
    for sub in command
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
    {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(dir, sub.clone(), &sub_name, pages)?;
    }
    Ok(())
}
