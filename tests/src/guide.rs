//! Guides that run: the commands of a Markdown guide's `sh` blocks, and what the guide says
//! they print. In an `sh` block, a command may continue over lines ending in `\`; a line
//! `#> TEXT` after a command is a line it prints (`...` stands for one or more words that
//! differ from run to run), and `#> error: TEXT (exit N)` says it fails with code N; other
//! `#` lines are comments.

/// One command of a guide and what it should print.
#[derive(Clone, Debug, Default)]
pub struct GuideCommand {
    pub line: String,
    /// Lines the command prints (on stdout or stderr), with `...` wildcards.
    pub expected: Vec<String>,
    /// Its exit code: 0 unless a `#> ... (exit N)` line says otherwise.
    pub exit: i32,
}

/// The text under `heading` (a line of its own), up to the next heading of its level.
pub fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("{heading}\n"))
        .unwrap_or_else(|| panic!("the guide has no `{heading}`"));
    let level = heading.split(' ').next().unwrap_or("##");
    let rest = &text[start + heading.len()..];
    &rest[..rest.find(&format!("\n{level} ")).unwrap_or(rest.len())]
}

/// The `sh` blocks of `text`, each a list of commands.
pub fn sh_blocks(text: &str) -> Vec<Vec<GuideCommand>> {
    let mut blocks = Vec::new();
    let mut block: Option<Vec<GuideCommand>> = None;
    let mut pending = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            block = match block.take() {
                Some(done) => {
                    blocks.push(done);
                    None
                }
                None => (line.trim() == "```sh").then(Vec::new),
            };
            continue;
        }
        let Some(commands) = block.as_mut() else {
            continue;
        };
        let trimmed = line.trim();
        if let Some(printed) = trimmed.strip_prefix("#>") {
            let command = commands.last_mut().expect("a #> line follows a command");
            expect(command, printed.trim());
        } else if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        } else if let Some(start) = trimmed.strip_suffix('\\') {
            pending.push_str(start);
        } else {
            pending.push_str(trimmed);
            commands.push(GuideCommand {
                line: std::mem::take(&mut pending),
                ..GuideCommand::default()
            });
        }
    }
    assert!(block.is_none(), "an sh block is not closed");
    blocks
}

/// Records one `#>` line: a printed line, or an error with its exit code.
fn expect(command: &mut GuideCommand, printed: &str) {
    let mut printed = printed.to_owned();
    if let Some((text, code)) = printed.rsplit_once("(exit ") {
        let code = code.trim_end_matches(')').trim();
        command.exit = code.parse().expect("(exit N) names a number");
        printed = text.trim().to_owned();
    }
    command.expected.push(printed);
}

/// Whether some line of `output` reads as `expected`, word by word, where a word holding
/// `...` stands for one or more words.
pub fn prints(output: &str, expected: &str) -> bool {
    let want: Vec<&str> = expected.split_whitespace().collect();
    output.lines().any(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words_match(&want, &words)
    })
}

fn words_match(want: &[&str], words: &[&str]) -> bool {
    match want.split_first() {
        None => words.is_empty(),
        Some((first, rest)) if first.contains("...") => {
            (1..=words.len()).any(|taken| words_match(rest, &words[taken..]))
        }
        Some((first, rest)) => words.first() == Some(first) && words_match(rest, &words[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_stand_for_one_or_more_words() {
        assert!(prints(
            "committed  transfer ab12cd",
            "committed transfer 13786a...8b1d"
        ));
        assert!(prints(
            "x\n250 from hv1a to hv1b",
            "250 from hv1u9uq... to hv1alc..."
        ));
        assert!(prints("holders [1, 2, 4] may", "holders ... may"));
        assert!(!prints("holders may", "holders ... may"));
        assert!(!prints("balance 700", "balance 750"));
        assert!(!prints("balance 750 more", "balance 750"));
    }

    #[test]
    fn blocks_hold_commands_outputs_and_exit_codes() {
        let text = "intro\n```sh\n# a comment\nhalfveil a \\\n    --b c\n#> out ...\nhalfveil d\n#> error: no (exit 2)\n```\n```text\nnot run\n```\n";
        let blocks = sh_blocks(text);
        assert_eq!(blocks.len(), 1);
        let commands = &blocks[0];
        assert_eq!(commands[0].line, "halfveil a --b c");
        assert_eq!(commands[0].expected, vec!["out ...".to_owned()]);
        assert_eq!(commands[0].exit, 0);
        assert_eq!(commands[1].expected, vec!["error: no".to_owned()]);
        assert_eq!(commands[1].exit, 2);
    }
}
