//! Human text by default, one JSON document with `--output json`: data to stdout, messages
//! to stderr.

use clap::ValueEnum;
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
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        }
        OutputFormat::Text => println!("{}", text()),
    }
}
