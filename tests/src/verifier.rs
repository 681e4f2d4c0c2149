//! The second verifier (`tools/verify-chain/`, Python, written from `docs/protocol.md`
//! alone) run on a chain file beside `halfveil audit replay`: both must reach the same
//! verdict, at the same block, and on a valid chain the same head and state root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::{describe, run_bounded};

/// The script, from this crate's directory.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/verify-chain/verify_chain.py")
}

/// Whether Python and the verifier's packages are here. Under CI they must be (`.ci/run`
/// installs them); elsewhere a test says it skips the comparison.
pub fn available() -> bool {
    let ready = Command::new("python3")
        .args(["-c", "import blake3, nacl, merlin_transcripts"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !ready {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the second verifier: pip install -r tools/verify-chain/requirements.txt"
        );
        eprintln!(
            "skipping the second verifier: python3 with tools/verify-chain/requirements.txt \
             is not installed"
        );
    }
    ready
}

/// Runs the second verifier on `chain`; its JSON report.
pub fn run(chain: &Path) -> (Output, serde_json::Value) {
    let mut command = Command::new("python3");
    command.arg(script()).args(["--output", "json"]).arg(chain);
    let output = run_bounded(&mut command, Duration::from_secs(600));
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("second verifier ({error}): {}", describe(&output)));
    (output, report)
}

/// Requires the second verifier to agree with `replay` (the output of `halfveil --output json
/// audit replay --file chain`): both accept (same height, head hash and state root), or
/// both refuse at the same height. Returns the second verifier's report.
pub fn assert_agrees(chain: &Path, replay: &Output, what: &str) -> serde_json::Value {
    let (output, second) = run(chain);
    let valid = replay.status.success();
    if !valid && replay.stdout.is_empty() {
        // Replay stopped before any block it could name (a chain file that cannot be read
        // past some byte): it says so on stderr with exit 3. The second verifier must refuse
        // the file too.
        assert_eq!(
            replay.status.code(),
            Some(3),
            "{what}: {}",
            describe(replay)
        );
        assert_eq!(output.status.code(), Some(1), "{what}: second: {second}");
        return second;
    }
    let ours: serde_json::Value = serde_json::from_slice(&replay.stdout)
        .unwrap_or_else(|error| panic!("{what}: replay ({error}): {}", describe(replay)));
    assert_eq!(
        output.status.code(),
        Some(if valid { 0 } else { 1 }),
        "{what}: the verifiers disagree\nreplay: {ours}\nsecond: {second}"
    );
    if valid {
        assert_eq!(second["height"], ours["blocks"], "{what}: {second}");
        assert_eq!(second["head_hash"], ours["head_hash"], "{what}: {second}");
        assert_eq!(second["state_root"], ours["state_root"], "{what}: {second}");
        assert_eq!(second["supply"], ours["supply"], "{what}: {second}");
    } else {
        assert_eq!(
            second["height"], ours["violation"]["height"],
            "{what}: refused at another block\nreplay: {ours}\nsecond: {second}"
        );
    }
    second
}
