//! `halfveil keys dkg`: the disclosure key ceremony over a shared folder. Four holders (three
//! auditors and the IM), any three of whom open, run the steps each with its own keys; every
//! holder computes the same key, a step out of order or a forged file is refused, and the
//! shares the holders wrote open a record sealed to the key, three at a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use halfveil_genesis::file::DisclosureKeyEntry;
use halfveil_genesis::keystore;
use halfveil_ledger::threshold::{tdh2, DisclosureKey, HolderKey, Point};
use halfveil_ledger::Hash32;
use halfveil_tests::{describe, halfveil, run_bounded};
use rand_core::OsRng;
use secrecy::SecretString;

const LIMIT: Duration = Duration::from_secs(120);

fn run(args: &[&str]) -> Output {
    run_bounded(halfveil().args(args), LIMIT)
}

/// One holder: its name, signing key file and password file.
struct Holder {
    name: &'static str,
    key: PathBuf,
    password: PathBuf,
    signer: String,
}

fn holders(net: &Path) -> Vec<Holder> {
    let genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.join("genesis.json")).unwrap()).unwrap();
    let body = &genesis["body"];
    let auditors = net.join("auditors");
    let mut holders: Vec<Holder> = ["auditor-1", "auditor-2", "auditor-3"]
        .iter()
        .enumerate()
        .map(|(index, name)| Holder {
            name,
            key: auditors.join(format!("{name}.json")),
            password: auditors.join("password"),
            signer: body["auditors"]["members"][index]["key"]
                .as_str()
                .unwrap()
                .to_owned(),
        })
        .collect();
    holders.push(Holder {
        name: "identity-manager",
        key: net.join("im").join("validator_key.json"),
        password: net.join("im").join("password"),
        signer: body["identity_manager"]["validator_key"]
            .as_str()
            .unwrap()
            .to_owned(),
    });
    holders
}

fn step(step: &str, ceremony: &Path, holder: &Holder, extra: &[&str]) -> Output {
    let state = ceremony
        .parent()
        .unwrap()
        .join(format!("{}.state", holder.name));
    let mut args = vec![
        "keys",
        "dkg",
        step,
        "--dir",
        ceremony.to_str().unwrap(),
        "--name",
        holder.name,
        "--signing-key",
        holder.key.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--password-file",
        holder.password.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn key_of(entry: &DisclosureKeyEntry) -> DisclosureKey {
    let point = |text: &str| {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).unwrap();
        Point(bytes)
    };
    DisclosureKey {
        epoch: entry.epoch,
        refresh: entry.refresh,
        threshold: entry.threshold,
        group_key: point(&entry.group_key),
        holders: entry
            .holders
            .iter()
            .map(|holder| HolderKey {
                holder: holder.holder,
                share_key: point(&holder.share_key),
            })
            .collect(),
    }
}

#[test]
fn a_ceremony_over_files_gives_every_holder_a_share_of_one_key() {
    let temp = tempfile::tempdir().unwrap();
    let net = temp.path().join("net");
    let output = run(&[
        "testnet",
        "init",
        "--banks",
        "1",
        "--auditors",
        "3",
        "--threshold",
        "2",
        "--dir",
        net.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let holders = holders(&net);
    let ceremony = temp.path().join("ceremony");
    let mut init = vec![
        "keys".to_owned(),
        "dkg".to_owned(),
        "init".to_owned(),
        "--dir".to_owned(),
        ceremony.to_str().unwrap().to_owned(),
        "--chain-id".to_owned(),
        "halfveil-dkg".to_owned(),
        "--threshold".to_owned(),
        "3".to_owned(),
    ];
    for holder in &holders {
        init.push("--holder".to_owned());
        init.push(format!("{}={}", holder.name, holder.signer));
    }
    let output = run(&init.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(output.status.success(), "{}", describe(&output));

    // Round 1 for all but the IM: round 2 waits for every round-1 file.
    for holder in &holders[..3] {
        let output = step("round1", &ceremony, holder, &[]);
        assert!(
            output.status.success(),
            "{}: {}",
            holder.name,
            describe(&output)
        );
    }
    let early = step("round2", &ceremony, &holders[0], &[]);
    assert_eq!(early.status.code(), Some(5), "{}", describe(&early));
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("identity-manager has not done round 1")
    );
    // A holder's key that is not its own is refused.
    let mut impostor = holders_clone(&holders[3]);
    impostor.key = holders[0].key.clone();
    impostor.password = holders[0].password.clone();
    let refused = step("round1", &ceremony, &impostor, &[]);
    assert_ne!(refused.status.code(), Some(0), "{}", describe(&refused));
    let output = step("round1", &ceremony, &holders[3], &[]);
    assert!(output.status.success(), "{}", describe(&output));
    // Finishing before round 2 is refused: the state says round 1.
    let out = temp.path().join("early-share.json");
    let early = step(
        "finish",
        &ceremony,
        &holders[3],
        &["--out", out.to_str().unwrap()],
    );
    assert_eq!(early.status.code(), Some(2), "{}", describe(&early));

    // A forged round-1 file (another package under auditor-2's name) stops round 2.
    let file = ceremony.join("round1").join("auditor-2.json");
    let honest = std::fs::read(&file).unwrap();
    let mut forged: serde_json::Value = serde_json::from_slice(&honest).unwrap();
    forged["transport_key"] = serde_json::json!("11".repeat(32));
    std::fs::write(&file, serde_json::to_vec(&forged).unwrap()).unwrap();
    let refused = step("round2", &ceremony, &holders[0], &[]);
    assert_eq!(refused.status.code(), Some(3), "{}", describe(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not signed by auditor-2"));
    std::fs::write(&file, &honest).unwrap();

    for holder in &holders {
        let output = step("round2", &ceremony, holder, &[]);
        assert!(
            output.status.success(),
            "{}: {}",
            holder.name,
            describe(&output)
        );
    }
    let mut shares = Vec::new();
    for holder in &holders {
        let out = temp.path().join(format!("{}-share.json", holder.name));
        let output = step(
            "finish",
            &ceremony,
            holder,
            &["--out", out.to_str().unwrap()],
        );
        assert!(
            output.status.success(),
            "{}: {}",
            holder.name,
            describe(&output)
        );
        shares.push(out);
    }
    let checked = run(&[
        "--output",
        "json",
        "keys",
        "dkg",
        "check",
        "--dir",
        ceremony.to_str().unwrap(),
    ]);
    assert!(checked.status.success(), "{}", describe(&checked));
    let entry: DisclosureKeyEntry = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(entry.threshold, 3);
    let names: Vec<&str> = entry
        .holders
        .iter()
        .map(|holder| holder.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["auditor-1", "auditor-2", "auditor-3", "identity-manager"]
    );
    let key = key_of(&entry);
    key.check().unwrap();

    // Each share file holds its holder's share of that key; any three open, two do not.
    let secrets: Vec<_> = shares
        .iter()
        .zip(&holders)
        .map(|(path, holder)| {
            let password = std::fs::read_to_string(&holder.password).unwrap();
            let password = SecretString::from(password.trim().to_owned());
            keystore::read_disclosure_share(path, &password, &key).unwrap()
        })
        .collect();
    let label = Hash32([7; 32]);
    let (capsule, body) = tdh2::seal(&key, &label, b"a name", &mut OsRng).unwrap();
    let share = |index: usize| {
        tdh2::share(&key, &secrets[index], &label, &capsule, &body, &mut OsRng).unwrap()
    };
    for quorum in [[0, 1, 2], [0, 2, 3], [1, 2, 3]] {
        let shares: Vec<_> = quorum.iter().map(|&index| share(index)).collect();
        let opened = tdh2::open(&key, &label, &capsule, &body, &shares).unwrap();
        assert_eq!(&opened[..], b"a name");
    }
    assert!(tdh2::open(&key, &label, &capsule, &body, &[share(0), share(3)]).is_err());
}

fn holders_clone(holder: &Holder) -> Holder {
    Holder {
        name: holder.name,
        key: holder.key.clone(),
        password: holder.password.clone(),
        signer: holder.signer.clone(),
    }
}
