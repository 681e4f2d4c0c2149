//! `halfveil testnet init` writes a network whose genesis `halfveil genesis validate`
//! accepts, and a copy with any one byte changed is refused with exit code 3 and a reason;
//! a node whose port is taken exits saying so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use halfveil_tests::{describe, halfveil, run_bounded};

const LIMIT: Duration = Duration::from_secs(120);

fn init(dir: &std::path::Path) {
    let output = run_bounded(
        halfveil()
            .args([
                "testnet",
                "init",
                "--banks",
                "2",
                "--auditors",
                "3",
                "--threshold",
                "2",
                "--dir",
            ])
            .arg(dir),
        LIMIT,
    );
    assert!(output.status.success(), "{}", describe(&output));
}

#[test]
fn testnet_init_output_validates_and_a_changed_byte_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("net");
    init(&dir);
    for home in ["im", "bank-1", "bank-2"] {
        for file in [
            "config.toml",
            "genesis.json",
            "node_key.json",
            "admin_token",
        ] {
            assert!(dir.join(home).join(file).exists(), "{home}/{file} missing");
        }
    }
    assert!(dir.join("im/validator_key.json").exists());
    assert!(dir.join("im/disclosure_share.json").exists());
    assert!(
        !dir.join("bank-1/disclosure_share.json").exists(),
        "a bank must never hold a disclosure key share"
    );
    assert!(dir.join("auditors/auditor-3.json").exists());
    assert!(dir.join("auditors/auditor-3-share.json").exists());
    // Four holders (three auditors and the IM), any three of whom open: never fewer than
    // the two auditors the order needs.
    let genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("genesis.json")).unwrap()).unwrap();
    let key = &genesis["body"]["disclosure_key"];
    assert_eq!(key["threshold"], 3);
    let names: Vec<&str> = key["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|holder| holder["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["auditor-1", "auditor-2", "auditor-3", "identity-manager"]
    );

    let genesis = dir.join("genesis.json");
    let output = run_bounded(
        halfveil()
            .args(["--output", "json", "genesis", "validate"])
            .arg(&genesis),
        LIMIT,
    );
    assert!(output.status.success(), "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["im_replicas"], 1);
    assert_eq!(report["banks"].as_array().unwrap().len(), 2);
    let hash = run_bounded(halfveil().args(["genesis", "hash"]).arg(&genesis), LIMIT);
    assert_eq!(
        String::from_utf8_lossy(&hash.stdout).trim(),
        report["hash"].as_str().unwrap()
    );

    let text = std::fs::read(&genesis).unwrap();
    // A byte inside a key, inside a name, in the layout, and in a signature.
    let positions = [
        text.windows(12)
            .position(|window| window == b"\"chain_id\": ")
            .unwrap()
            + 14,
        text.windows(7)
            .position(|window| window == b"bank-2\"")
            .unwrap()
            + 5,
        text.iter().position(|&byte| byte == b'\n').unwrap(),
        text.len() - 20,
    ];
    for position in positions {
        let mut changed = text.clone();
        changed[position] = if changed[position] == b'1' {
            b'2'
        } else {
            b'1'
        };
        let copy = temp.path().join("changed.json");
        std::fs::write(&copy, &changed).unwrap();
        let output = run_bounded(halfveil().args(["genesis", "validate"]).arg(&copy), LIMIT);
        assert_eq!(
            output.status.code(),
            Some(3),
            "byte {position}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("is not a valid genesis:"), "{stderr}");
    }
}

/// `--im-replicas 3` writes three IM homes, each with its own node and validator key and the
/// IM's disclosure key share, in a genesis that lists them all; 2 replicas is a usage error.
#[test]
fn testnet_init_writes_a_replicated_identity_manager() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("net");
    let output = run_bounded(
        halfveil()
            .args(["--output", "json", "testnet", "init", "--im-replicas", "3"])
            .arg("--dir")
            .arg(&dir),
        LIMIT,
    );
    assert!(output.status.success(), "{}", describe(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["im-1", "im-2", "im-3", "bank-1", "bank-2"]);
    let json = |path: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let genesis = json(dir.join("genesis.json"));
    let body = &genesis["body"];
    let replicas = body["identity_manager_replicas"].as_array().unwrap();
    let genesis_keys: Vec<&serde_json::Value> = std::iter::once(&body["identity_manager"])
        .chain(replicas)
        .map(|replica| &replica["validator_key"])
        .collect();
    for (index, home) in ["im-1", "im-2", "im-3"].iter().enumerate() {
        for file in [
            "validator_key.json",
            "disclosure_share.json",
            "node_key.json",
        ] {
            assert!(dir.join(home).join(file).exists(), "{home}/{file} missing");
        }
        // Each replica holds its own validator key, the one genesis lists at its place.
        let key_file = json(dir.join(home).join("validator_key.json"));
        assert_eq!(
            &key_file["header"]["public_key"], genesis_keys[index],
            "{home}"
        );
        let config = std::fs::read_to_string(dir.join(home).join("config.toml")).unwrap();
        // Each replica dials the other replicas and both banks.
        assert_eq!(config.matches("/p2p/").count(), 4, "{config}");
    }
    assert!(genesis_keys[0] != genesis_keys[1] && genesis_keys[1] != genesis_keys[2]);
    assert!(!dir.join("im").exists());

    let output = run_bounded(
        halfveil()
            .args(["--output", "json", "genesis", "validate"])
            .arg(dir.join("genesis.json")),
        LIMIT,
    );
    assert!(output.status.success(), "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["im_replicas"], 3);

    let two = run_bounded(
        halfveil()
            .args(["testnet", "init", "--im-replicas", "2", "--dir"])
            .arg(temp.path().join("two")),
        LIMIT,
    );
    assert_eq!(two.status.code(), Some(2), "{}", describe(&two));
}

#[test]
fn init_refuses_to_overwrite_and_bad_arguments_are_usage_errors() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("net");
    init(&dir);
    let again = run_bounded(
        halfveil().args(["testnet", "init", "--dir"]).arg(&dir),
        LIMIT,
    );
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));
    let threshold = run_bounded(
        halfveil()
            .args([
                "testnet",
                "init",
                "--auditors",
                "2",
                "--threshold",
                "3",
                "--dir",
            ])
            .arg(temp.path().join("other")),
        LIMIT,
    );
    assert_eq!(threshold.status.code(), Some(2), "{}", describe(&threshold));
    let missing = run_bounded(
        halfveil().args(["genesis", "validate", "/nonexistent/genesis.json"]),
        LIMIT,
    );
    assert_eq!(missing.status.code(), Some(1), "{}", describe(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/genesis.json"));
}

#[test]
fn a_wallet_is_created_encrypted_and_opens_only_with_its_password() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("net");
    init(&dir);
    let wallet = temp.path().join("wallet.json");
    let password = temp.path().join("password");
    std::fs::write(&password, "s3cret pass\n").unwrap();
    let created = run_bounded(
        halfveil()
            .args(["wallet", "create", "--wallet"])
            .arg(&wallet)
            .arg("--genesis")
            .arg(dir.join("genesis.json"))
            .arg("--password-file")
            .arg(&password),
        LIMIT,
    );
    assert!(created.status.success(), "{}", describe(&created));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&wallet).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let shown = run_bounded(
        halfveil()
            .args(["--output", "json", "wallet", "show", "--wallet"])
            .arg(&wallet)
            .env("HALFVEIL_PASSWORD", "s3cret pass"),
        LIMIT,
    );
    assert!(shown.status.success(), "{}", describe(&shown));
    let wrong = run_bounded(
        halfveil()
            .args(["wallet", "show", "--wallet"])
            .arg(&wallet)
            .env("HALFVEIL_PASSWORD", "wrong"),
        LIMIT,
    );
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("wrong password"),
        "{}",
        describe(&wrong)
    );
    let no_password = run_bounded(
        halfveil().args(["wallet", "show", "--wallet"]).arg(&wallet),
        LIMIT,
    );
    assert_eq!(
        no_password.status.code(),
        Some(2),
        "{}",
        describe(&no_password)
    );

    // A backup under its own password, restored under a third one; neither overwrites.
    let backup = temp.path().join("backup.json");
    let backup_password = temp.path().join("backup-password");
    std::fs::write(&backup_password, "backup pass\n").unwrap();
    let export = |out: &std::path::Path| {
        run_bounded(
            halfveil()
                .args(["wallet", "export", "--wallet"])
                .arg(&wallet)
                .arg("--out")
                .arg(out)
                .arg("--password-file")
                .arg(&password)
                .arg("--backup-password-file")
                .arg(&backup_password),
            LIMIT,
        )
    };
    let exported = export(&backup);
    assert!(exported.status.success(), "{}", describe(&exported));
    assert_ne!(
        export(&backup).status.code(),
        Some(0),
        "a backup is never overwritten"
    );
    let restored = temp.path().join("restored.json");
    let new_password = temp.path().join("new-password");
    std::fs::write(&new_password, "new pass\n").unwrap();
    let imported = run_bounded(
        halfveil()
            .args(["--output", "json", "wallet", "import", "--backup"])
            .arg(&backup)
            .arg("--wallet")
            .arg(&restored)
            .arg("--backup-password-file")
            .arg(&backup_password)
            .arg("--password-file")
            .arg(&new_password),
        LIMIT,
    );
    assert!(imported.status.success(), "{}", describe(&imported));
    let shown_restored = run_bounded(
        halfveil()
            .args(["--output", "json", "wallet", "show", "--wallet"])
            .arg(&restored)
            .env("HALFVEIL_PASSWORD", "new pass"),
        LIMIT,
    );
    assert!(
        shown_restored.status.success(),
        "{}",
        describe(&shown_restored)
    );
    assert_eq!(
        shown_restored.stdout, shown.stdout,
        "the restored wallet is the wallet"
    );
    let wrong_backup = run_bounded(
        halfveil()
            .args(["wallet", "show", "--wallet"])
            .arg(&backup)
            .env("HALFVEIL_PASSWORD", "s3cret pass"),
        LIMIT,
    );
    assert_eq!(
        wrong_backup.status.code(),
        Some(1),
        "{}",
        describe(&wrong_backup)
    );
}

/// A node whose config has an unknown key does not start, exits 3 (restarting it would
/// not help: a supervisor can tell) and names the key.
#[test]
fn a_node_with_an_invalid_config_exits_3_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let network = dir.path().join("network");
    let output = run_bounded(
        halfveil()
            .args(["testnet", "init", "--banks", "1", "--dir"])
            .arg(&network),
        LIMIT,
    );
    assert!(output.status.success(), "{}", describe(&output));
    let config = network.join("bank-1").join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.insert_str(0, "moniker_typo = \"x\"\n");
    std::fs::write(&config, text).unwrap();
    let output = run_bounded(
        halfveil()
            .args(["start", "--home"])
            .arg(network.join("bank-1")),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("moniker_typo"),
        "{}",
        describe(&output)
    );
}

#[test]
fn a_node_whose_peer_port_is_taken_exits_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let network = dir.path().join("network");
    let output = run_bounded(
        halfveil()
            .args([
                "--output", "json", "testnet", "init", "--banks", "1", "--dir",
            ])
            .arg(&network),
        LIMIT,
    );
    assert!(output.status.success(), "{}", describe(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let im = &summary["nodes"][0];
    let p2p = im["p2p"].as_str().unwrap();
    let port: u16 = p2p
        .split("/tcp/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no tcp port in {p2p}"));
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();

    let output = run_bounded(
        halfveil()
            .args(["start", "--home"])
            .arg(im["home"].as_str().unwrap())
            .env_remove("HALFVEIL_PASSWORD"),
        LIMIT,
    );
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {p2p}"))
            && stderr.contains("Address already in use"),
        "{}",
        describe(&output)
    );
}

/// Runs `command` with its standard output (and, if `stderr_too`, its standard error) a
/// pipe whose reader has already gone, as `halfveil ... | head -0` does.
fn run_into_closed_pipe(command: &mut std::process::Command, stderr_too: bool) -> Option<i32> {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command.stdout(writer.try_clone().unwrap());
    if stderr_too {
        command.stderr(writer);
    } else {
        command.stderr(std::process::Stdio::null());
        drop(writer);
    }
    let mut child = command.spawn().unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("{command:?} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A signal (SIGPIPE) leaves no code: `None` fails the comparisons below.
    child.wait().unwrap().code()
}

/// Every command prints through one function that stops writing once the reader has gone:
/// the command ends with its own exit code, not a panic (101) or a signal.
#[test]
fn commands_exit_cleanly_when_their_output_pipe_is_closed() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("net");
    init(&dir);
    let genesis = dir.join("genesis.json");
    for format in ["text", "json"] {
        let mut validate = halfveil();
        validate
            .args(["--output", format, "genesis", "validate"])
            .arg(&genesis);
        assert_eq!(
            run_into_closed_pipe(&mut validate, false),
            Some(0),
            "{format}"
        );
        let mut again = halfveil();
        again
            .args(["--output", format, "testnet", "init", "--dir"])
            .arg(temp.path().join(format!("net-{format}")));
        assert_eq!(run_into_closed_pipe(&mut again, true), Some(0), "{format}");
    }
    let mut help = halfveil();
    help.arg("--help");
    assert_eq!(run_into_closed_pipe(&mut help, false), Some(0));
    // A failing command keeps its code even when it cannot say why.
    let mut refused = halfveil();
    refused
        .args(["genesis", "validate"])
        .arg(temp.path().join("missing.json"));
    assert_ne!(run_into_closed_pipe(&mut refused, true), Some(101));
    assert_ne!(run_into_closed_pipe(&mut refused, true), Some(0));
}

/// `halfveil completions SHELL` prints a script for that shell naming the subcommands, even
/// into a closed pipe; `halfveil man --dir` writes a page per command at every depth.
#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    for (shell, marker) in [
        ("bash", "_halfveil()"),
        ("zsh", "#compdef halfveil"),
        ("fish", "complete -c halfveil"),
    ] {
        let output = run_bounded(halfveil().args(["completions", shell]), LIMIT);
        assert!(output.status.success(), "{}", describe(&output));
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(
            script.contains("testnet") && script.contains("im-replicas"),
            "{shell}"
        );
        let code = run_into_closed_pipe(halfveil().args(["completions", shell]), true);
        assert_eq!(code, Some(0), "{shell} into a closed pipe");
    }
    let unknown = run_bounded(halfveil().args(["completions", "tcsh"]), LIMIT);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));

    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("man");
    let output = run_bounded(
        halfveil()
            .args(["--output", "json", "man", "--dir"])
            .arg(&dir),
        LIMIT,
    );
    assert!(output.status.success(), "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["pages"].as_array().unwrap().len() > 20, "{report}");
    for page in [
        "halfveil.1",
        "halfveil-pay.1",
        "halfveil-testnet-init.1",
        "halfveil-audit.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text:.200}"
        );
    }
    let testnet_init = std::fs::read_to_string(dir.join("halfveil-testnet-init.1")).unwrap();
    assert!(
        testnet_init.contains("im\\-replicas"),
        "{testnet_init:.400}"
    );
}

/// `halfveil config show` prints the configuration a node would run with and where each
/// value came from: the file, a `HALFVEIL_*` variable or a default; `config validate`
/// refuses a variable of no section with exit 3.
#[test]
fn config_show_names_each_value_and_its_source() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("net");
    init(&dir);
    let home = dir.join("bank-1");
    let output = run_bounded(
        halfveil()
            .args(["--output", "json", "config", "show", "--home"])
            .arg(&home)
            .env("HALFVEIL_RPC__CONNECTIONS_MAX", "77"),
        LIMIT,
    );
    assert!(output.status.success(), "{}", describe(&output));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let values = &shown["values"];
    assert_eq!(values["rpc.connections_max"]["value"], 77);
    assert_eq!(
        values["rpc.connections_max"]["source"]["env"],
        "HALFVEIL_RPC__CONNECTIONS_MAX"
    );
    assert_eq!(values["moniker"]["value"], "bank-1");
    assert_eq!(values["moniker"]["source"], "file");

    let text = run_bounded(
        halfveil().args(["config", "show", "--home"]).arg(&home),
        LIMIT,
    );
    assert!(text.status.success(), "{}", describe(&text));
    assert!(String::from_utf8_lossy(&text.stdout).contains("# config.toml"));

    let valid = run_bounded(
        halfveil().args(["config", "validate", "--home"]).arg(&home),
        LIMIT,
    );
    assert!(valid.status.success(), "{}", describe(&valid));
    let typo = run_bounded(
        halfveil()
            .args(["config", "validate", "--home"])
            .arg(&home)
            .env("HALFVEIL_RCP__LISTEN", "127.0.0.1:1"),
        LIMIT,
    );
    assert_eq!(typo.status.code(), Some(3), "{}", describe(&typo));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("HALFVEIL_RCP__LISTEN"));
}
