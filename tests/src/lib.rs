//! Helpers for halfveil's integration tests: find the `halfveil` binary that `cargo build
//! --workspace` built (`.ci/run` builds it before testing), and run it with a bounded time. Test support: failing loudly is its
//! job, so panics are allowed here.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod flood;
pub mod guide;
pub mod net;
pub mod netns;
pub mod verifier;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `halfveil` binary beside this test executable (`target/<profile>/halfveil`).
pub fn halfveil_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join("halfveil");
    assert!(
        bin.exists(),
        "{} not found: build it first (`cargo build --workspace`; `.ci/run` does)",
        bin.display()
    );
    bin
}

/// A `halfveil` command with no inherited password.
pub fn halfveil() -> Command {
    let mut command = Command::new(halfveil_bin());
    command.env_remove("HALFVEIL_PASSWORD");
    command.stdin(Stdio::null());
    command
}

/// Runs `command`, killing it after `limit`. Its output is read while it runs, so a command
/// that prints more than a pipe holds (64 KiB) does not stall.
pub fn run_bounded(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|pipe| Box::new(pipe) as _));
    let stderr = drain(child.stderr.take().map(|pipe| Box::new(pipe) as _));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                panic!("{command:?} did not finish within {limit:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => panic!("waiting for {command:?}: {error}"),
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The text of a process' stdout and stderr, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
