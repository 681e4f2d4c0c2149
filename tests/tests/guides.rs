//! The payer guide, then the auditor guide, run as written against a local network
//! (`tests/src/guide.rs`): every command of their `sh` blocks, in order, in the network's
//! folder, must exit as the guide says and print what its `#>` lines show. Between blocks the
//! test does what the guide leaves to others: the central bank funds Alice, a payee opens the
//! account she pays.

#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use halfveil_tests::guide::{prints, sh_blocks, GuideCommand};
use halfveil_tests::net::TestNet;
use halfveil_tests::{describe, halfveil_bin, run_bounded, verifier};

const STEP_LIMIT: Duration = Duration::from_secs(120);

fn read(doc: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(doc);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Runs one guide command with `sh -ec` in `dir`, in this environment less its `HALFVEIL_`
/// variables, plus `variables`; checks its exit code and what it prints. Returns its stdout.
fn run(dir: &Path, variables: &BTreeMap<&str, String>, command: &GuideCommand) -> String {
    eprintln!("$ {}", command.line);
    let mut shell = Command::new("sh");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HALFVEIL_") {
            shell.env_remove(name);
        }
    }
    let output = run_bounded(
        shell
            .args(["-ec", &command.line])
            .envs(variables)
            .current_dir(dir)
            .stdin(Stdio::null()),
        STEP_LIMIT,
    );
    let code = output.status.code().unwrap_or(-1);
    assert_eq!(
        code,
        command.exit,
        "`{}` exited {code}, the guide says {}\n{}",
        command.line,
        command.exit,
        describe(&output)
    );
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for line in &command.expected {
        assert!(
            prints(&printed, line),
            "`{}` did not print what the guide shows:\n  {line}\nit printed:\n{printed}",
            command.line
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The JSON a CLI command prints, run in `dir` like a guide's line.
fn json(dir: &Path, variables: &BTreeMap<&str, String>, line: &str) -> serde_json::Value {
    let command = GuideCommand {
        line: line.to_owned(),
        ..GuideCommand::default()
    };
    serde_json::from_str(&run(dir, variables, &command)).expect("JSON output")
}

#[test]
fn the_payer_and_auditor_guides_run_as_written() {
    let mut net = TestNet::start(2);
    let dir = net.dir.path().join("network");
    let bin_dir = halfveil_bin().parent().unwrap().to_path_buf();
    let mut variables: BTreeMap<&str, String> = BTreeMap::from([
        // This build's halfveil first, then the user's PATH (python3 may be a pyenv shim).
        (
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
            ),
        ),
        (
            "HALFVEIL_PASSWORD_FILE",
            net.password_file.display().to_string(),
        ),
        ("BANK", net.rpc("bank-1")),
        ("BANK_URL", net.rpc("bank-2")),
        ("IM_URL", net.rpc("im")),
    ]);
    // The auditor guide runs the second verifier from the repository.
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools");
    std::os::unix::fs::symlink(tools, dir.join("tools")).unwrap();

    let payer = sh_blocks(&read("payer-guide.md"));
    assert_eq!(
        payer.len(),
        5,
        "the payer guide's blocks: account, pay, key, backup, close"
    );
    for (index, block) in payer.iter().enumerate() {
        for command in block {
            run(&dir, &variables, command);
        }
        match index {
            0 => {
                let wallet = json(
                    &dir,
                    &variables,
                    "halfveil --output json wallet show --wallet alice.wallet",
                );
                let alice = wallet["accounts"][0]["account"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                net.issue(&alice, 1000);
                let payee = net.open_account("bank-2", "Bob Payee", "NID-2");
                variables.insert("PAYEE", payee);
            }
            1 => {
                let receipt = json(
                    &dir,
                    &variables,
                    "halfveil --output json receipt verify --genesis genesis.json r1.bin",
                );
                variables.insert("TRANSFER", receipt["transfer"].as_str().unwrap().to_owned());
            }
            _ => {}
        }
    }

    let auditor = sh_blocks(&read("auditor-guide.md"));
    let verifier_ready = verifier::available();
    let mut ran = 0;
    for command in auditor.iter().flatten() {
        if command.line.starts_with("python3 -m pip install") {
            continue; // .ci/run installs the verifier's packages before the tests
        }
        if command.line.contains("verify_chain.py") && !verifier_ready {
            eprintln!(
                "skipped (the second verifier's packages are missing): {}",
                command.line
            );
            continue;
        }
        run(&dir, &variables, command);
        ran += 1;
    }
    assert!(ran >= 12, "the auditor guide lost commands: {ran} ran");
    net.stop_all();
}
