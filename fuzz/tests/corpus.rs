//! Replays every target's saved corpus (`fuzz/corpus/NAME/`) on stable: each input that a
//! fuzzing run found interesting, each crash once fixed, and the seeds. CI runs it with
//! the workspace's tests; `scripts/fuzz.sh` runs the same targets under libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn files(folder: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(folder)
        .unwrap_or_else(|error| panic!("corpus folder {} is missing: {error}", folder.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Every input of every target's corpus runs without a panic (a panic is a bug the target
/// found), and no target's corpus is missing or empty.
#[test]
fn every_target_replays_its_corpus() {
    let mut failures = Vec::new();
    for (name, target) in halfveil_fuzz::TARGETS {
        let folder = corpus().join(name);
        let inputs = files(&folder);
        assert!(!inputs.is_empty(), "the corpus of {name} is empty");
        for path in inputs {
            let bytes = std::fs::read(&path).unwrap();
            if catch_unwind(AssertUnwindSafe(|| target(&bytes))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that fail: {failures:#?}");
}

/// Every corpus folder belongs to a target, and every target has its libFuzzer binary.
#[test]
fn corpus_folders_and_binaries_match_the_targets() {
    let names: Vec<&str> = halfveil_fuzz::TARGETS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        let folder = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            names.contains(&folder.as_str()),
            "corpus/{folder} is no target's"
        );
    }
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for name in names {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz_targets")
            .join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|_| panic!("{} is missing", source.display()));
        assert!(
            text.contains(&format!("halfveil_fuzz::{name}(data)")),
            "{name}"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "no [[bin]] {name}"
        );
    }
}
