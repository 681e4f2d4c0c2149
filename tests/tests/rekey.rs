//! The disclosure key changes on a running chain (`halfveil keys dkg init --rpc`, the
//! ceremony's steps on each holder's keys, `keys dkg adopt`): a refresh that drops a holder
//! and a new epoch. Payments go on through both; a payment sealed to epoch 0 and one
//! sealed to epoch 1 by a payer whose account was opened in epoch 0 are both disclosed by a
//! quorum of the holders' current shares; the dropped holder's old share opens nothing; the
//! key survives a restart; and both verifiers replay the chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Output;

use halfveil_tests::net::TestNet;
use halfveil_tests::{describe, verifier};

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", describe(output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {}", describe(output)))
}

/// One holder's files in the testnet: signing key, password, and its share of each key.
struct Holder {
    name: &'static str,
    signing_key: PathBuf,
    password: PathBuf,
    /// The holder's share of the key adopted last (the testnet's to begin with).
    share: PathBuf,
    signer: String,
}

struct Rekey {
    net: TestNet,
    holders: Vec<Holder>,
}

impl Rekey {
    fn start() -> Rekey {
        let net = TestNet::start(2);
        let network = net.dir.path().join("network");
        let body = &net.genesis.genesis.body;
        let mut holders: Vec<Holder> = ["auditor-1", "auditor-2", "auditor-3"]
            .iter()
            .enumerate()
            .map(|(index, name)| Holder {
                name,
                signing_key: network.join("auditors").join(format!("{name}.json")),
                password: network.join("auditors").join("password"),
                share: network.join("auditors").join(format!("{name}-share.json")),
                signer: body.auditors.members[index].key.clone(),
            })
            .collect();
        holders.push(Holder {
            name: "identity-manager",
            signing_key: network.join("im").join("validator_key.json"),
            password: network.join("im").join("password"),
            share: network.join("im").join("disclosure_share.json"),
            signer: body.identity_manager.validator_key.clone(),
        });
        Rekey { net, holders }
    }

    fn holder(&self, name: &str) -> &Holder {
        self.holders
            .iter()
            .find(|holder| holder.name == name)
            .unwrap()
    }

    /// Runs a whole ceremony for the chain's next key among `names` (a refresh, or a new
    /// epoch with `threshold`), adopts it, and points each holder at its new share.
    fn ceremony(
        &mut self,
        label: &str,
        names: &[&str],
        threshold: Option<u16>,
    ) -> serde_json::Value {
        let dir = self.net.dir.path().join(label);
        let mut init: Vec<String> = [
            "--output",
            "json",
            "keys",
            "dkg",
            "init",
            "--dir",
            &path(&dir),
        ]
        .map(str::to_owned)
        .to_vec();
        init.extend(["--rpc".to_owned(), self.net.rpc("im")]);
        match threshold {
            Some(threshold) => init.extend(["--threshold".to_owned(), threshold.to_string()]),
            None => init.push("--refresh".to_owned()),
        }
        for name in names {
            init.extend([
                "--holder".to_owned(),
                format!("{name}={}", self.holder(name).signer),
            ]);
        }
        json(
            &self
                .net
                .run(&init.iter().map(String::as_str).collect::<Vec<_>>()),
        );
        for step in ["round1", "round2", "finish"] {
            for name in names {
                let out = dir.join(format!("{name}-share.json"));
                let current = self.holder(name).share.clone();
                let mut extra = vec![];
                if step == "finish" {
                    extra.extend(["--out".to_owned(), out.to_str().unwrap().to_owned()]);
                    if threshold.is_none() {
                        extra.extend(["--current-share".to_owned(), path(&current)]);
                    }
                }
                let output = self.step(step, &dir, self.holder(name), &extra);
                json(&output);
            }
        }
        let adopted = json(&self.net.run(&[
            "--output",
            "json",
            "keys",
            "dkg",
            "adopt",
            "--dir",
            dir.to_str().unwrap(),
            "--rpc",
            &self.net.rpc("im"),
        ]));
        for holder in &mut self.holders {
            if names.contains(&holder.name) {
                holder.share = dir.join(format!("{}-share.json", holder.name));
            }
        }
        adopted
    }

    fn step(&self, step: &str, dir: &Path, holder: &Holder, extra: &[String]) -> Output {
        let state = dir.join(format!("{}.state", holder.name));
        let mut args = vec![
            "--output".to_owned(),
            "json".to_owned(),
            "keys".to_owned(),
            "dkg".to_owned(),
            step.to_owned(),
            "--dir".to_owned(),
            path(dir),
            "--name".to_owned(),
            holder.name.to_owned(),
            "--signing-key".to_owned(),
            path(&holder.signing_key),
            "--state".to_owned(),
            path(&state),
            "--password-file".to_owned(),
            path(&holder.password),
        ];
        args.extend(extra.iter().cloned());
        self.net
            .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A recorded order for `transfer` signed by auditors 1 and 2, and the requester key.
    fn order(&self, label: &str, transfer: &str) -> (PathBuf, PathBuf) {
        let dir = self.net.dir.path();
        let requester = dir.join(format!("{label}-requester.json"));
        let order = dir.join(format!("{label}-order.json"));
        json(&self.net.run(&[
            "--output",
            "json",
            "audit",
            "requester-key",
            "--out",
            &path(&requester),
        ]));
        let genesis = dir.join("network").join("genesis.json");
        let new = self.net.run(&[
            "audit",
            "order",
            "new",
            "--transfer",
            transfer,
            "--basis",
            "court order 2026/311",
            "--requester-key",
            &path(&requester),
            "--genesis",
            &path(&genesis),
            "--out",
            &path(&order),
        ]);
        assert!(new.status.success(), "{}", describe(&new));
        for auditor in ["auditor-1", "auditor-2"] {
            let holder = self.holder(auditor);
            let signed = self.net.run(&[
                "audit",
                "order",
                "sign",
                "--key",
                &path(&holder.signing_key),
                "--password-file",
                &path(&holder.password),
                &path(&order),
            ]);
            assert!(signed.status.success(), "{}", describe(&signed));
        }
        json(&self.net.run(&[
            "--output",
            "json",
            "audit",
            "order",
            "record",
            "--rpc",
            &self.net.rpc("im"),
            &path(&order),
        ]));
        (order, requester)
    }

    /// Holder `name` releases its shares of `order` with the share files `shares`.
    fn share(&self, order: &Path, name: &str, shares: &[&Path], out: &Path) -> Output {
        let holder = self.holder(name);
        let mut args = vec![
            "--output".to_owned(),
            "json".to_owned(),
            "audit".to_owned(),
            "share".to_owned(),
            "--rpc".to_owned(),
            self.net.rpc("im"),
            "--order".to_owned(),
            path(order),
            "--signing-key".to_owned(),
            path(&holder.signing_key),
            "--password-file".to_owned(),
            path(&holder.password),
            "--out".to_owned(),
            path(out),
        ];
        for share in shares {
            args.extend(["--share".to_owned(), path(share)]);
        }
        self.net
            .run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Holders `names` share `order` (each with the files `shares_of` names), and the
    /// requester opens it: the disclosed identity.
    fn disclose(
        &self,
        label: &str,
        transfer: &str,
        names: &[&str],
        shares_of: impl Fn(&Holder) -> Vec<PathBuf>,
    ) -> serde_json::Value {
        let (order, requester) = self.order(label, transfer);
        let mut released = Vec::new();
        for name in names {
            let out = self
                .net
                .dir
                .path()
                .join(format!("{label}-{name}-released.json"));
            let files = shares_of(self.holder(name));
            let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
            json(&self.share(&order, name, &files, &out));
            released.push(path(&out));
        }
        let mut args = vec![
            "--output".to_owned(),
            "json".to_owned(),
            "audit".to_owned(),
            "disclose".to_owned(),
            "--rpc".to_owned(),
            self.net.rpc("bank-1"),
            "--order".to_owned(),
            path(&order),
            "--key".to_owned(),
            path(&requester),
            "--shares".to_owned(),
        ];
        args.extend(released);
        json(
            &self
                .net
                .run(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        )
    }

    fn pay(&self, holder: &str, to: &str) -> String {
        let paid = json(&self.net.pay(holder, to, 10));
        paid["transfer"].as_str().unwrap().to_owned()
    }
}

fn path(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_disclosure_key_is_refreshed_and_replaced_on_a_running_chain() {
    let mut rekey = Rekey::start();
    let alice = rekey
        .net
        .open_account("bank-1", "Alice Rekeyed", "NID-REKEY-1");
    let bob = rekey
        .net
        .open_account("bank-2", "Bob Rekeyed", "NID-REKEY-2");
    rekey.net.issue(&alice, 1_000);
    let paid_in_epoch_0 = rekey.pay("Alice Rekeyed", &bob);
    let genesis_share_of_auditor_3 = rekey.holder("auditor-3").share.clone();

    // A refresh without auditor-3: same epoch and group key, fresh shares.
    let refreshed = rekey.ceremony(
        "refresh",
        &["auditor-1", "auditor-2", "identity-manager"],
        None,
    );
    assert_eq!(
        (refreshed["epoch"].as_u64(), refreshed["refresh"].as_u64()),
        (Some(0), Some(1))
    );
    rekey.pay("Alice Rekeyed", &bob);

    // A new epoch held by all four again, any three of whom open.
    let all = ["auditor-1", "auditor-2", "auditor-3", "identity-manager"];
    let replaced = rekey.ceremony("epoch-1", &all, Some(3));
    assert_eq!(
        (replaced["epoch"].as_u64(), replaced["refresh"].as_u64()),
        (Some(1), Some(0))
    );
    let paid_in_epoch_1 = rekey.pay("Alice Rekeyed", &bob);
    let carol = rekey
        .net
        .open_account("bank-2", "Carol Rekeyed", "NID-REKEY-3");
    rekey.net.issue(&carol, 100);
    rekey.pay("Carol Rekeyed", &alice);

    // The key is the node's state: it survives a restart of the IM and of a bank.
    for node in ["im", "bank-1"] {
        rekey.net.stop_node(node);
        rekey.net.start_node(node);
    }
    rekey.net.wait_connected();
    rekey.pay("Alice Rekeyed", &bob);

    // Epoch 0's payment opens with the refreshed shares; auditor-3's genesis share is dead.
    let (order, _) = rekey.order("dead", &paid_in_epoch_0);
    let out = rekey.net.dir.path().join("dead-released.json");
    let dead = rekey.share(&order, "auditor-3", &[&genesis_share_of_auditor_3], &out);
    assert!(!dead.status.success());
    assert!(
        String::from_utf8_lossy(&dead.stderr).contains("epoch 0 refresh 1"),
        "{}",
        describe(&dead)
    );
    let refreshed_share = |holder: &Holder| {
        vec![rekey
            .net
            .dir
            .path()
            .join("refresh")
            .join(format!("{}-share.json", holder.name))]
    };
    let holders = ["auditor-1", "auditor-2", "identity-manager"];
    let opened = rekey.disclose("epoch-0", &paid_in_epoch_0, &holders, refreshed_share);
    assert_eq!(opened["name"], "Alice Rekeyed");
    assert_eq!(opened["credential_verified"], true);

    // Epoch 1's payment by an account opened in epoch 0: each holder gives both shares.
    let both = |holder: &Holder| {
        let mut files = refreshed_share(holder);
        files.push(holder.share.clone());
        files
    };
    let opened = rekey.disclose("epoch-1", &paid_in_epoch_1, &holders, both);
    assert_eq!(opened["name"], "Alice Rekeyed");
    assert_eq!(opened["national_id"], "NID-REKEY-1");
    assert_eq!(opened["possession_verified"], true);

    // Both verifiers replay the chain with its two adoptions.
    rekey.net.wait_same_head();
    let chain = rekey.net.dir.path().join("chain.hv");
    json(&rekey.net.run(&[
        "--output",
        "json",
        "chain",
        "export",
        "--rpc",
        &rekey.net.rpc("bank-2"),
        "--out",
        &path(&chain),
    ]));
    let replay = rekey.net.run(&[
        "--output",
        "json",
        "audit",
        "replay",
        "--file",
        &path(&chain),
    ]);
    let summary = json(&replay);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["key_epoch"], 1);
    assert_eq!(summary["keys_adopted"].as_array().unwrap().len(), 2);
    assert_eq!(summary["disclosures"].as_array().unwrap().len(), 3);
    if verifier::available() {
        verifier::assert_agrees(&chain, &replay, "a chain with two key adoptions");
    }
    rekey.net.stop_all();
}
