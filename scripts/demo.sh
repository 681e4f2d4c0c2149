#!/usr/bin/env bash
# README's main job. Until the network lands (payment-flow issue) it sets up a local network
# and checks it: testnet init, genesis validation, a refused tampered copy, a payer wallet.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo build --locked -p halfveil-cli
halfveil="$CARGO_TARGET_DIR/debug/halfveil"
dir="${HALFVEIL_DEMO_DIR:-halfveil-demo}"
rm -rf "$dir"

echo "== halfveil testnet init --dir $dir --banks 2 --auditors 3 --threshold 2"
"$halfveil" testnet init --dir "$dir" --banks 2 --auditors 3 --threshold 2
echo
echo "== halfveil genesis validate $dir/genesis.json"
"$halfveil" genesis validate "$dir/genesis.json"
echo
echo "== a copy with one byte changed is refused (exit code 3)"
sed 's/"genesis_time_ms": 1/"genesis_time_ms": 2/' "$dir/genesis.json" > "$dir/tampered-genesis.json"
set +e
"$halfveil" genesis validate "$dir/tampered-genesis.json"
code=$?
set -e
echo "exit code $code"
[ "$code" -eq 3 ]
echo
echo "== a payer's encrypted wallet"
head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/wallet-password"
chmod 600 "$dir/wallet-password"
"$halfveil" wallet create --wallet "$dir/wallet.json" --genesis "$dir/genesis.json" --password-file "$dir/wallet-password"
"$halfveil" wallet show --wallet "$dir/wallet.json" --password-file "$dir/wallet-password"
echo
echo "done: the network's files are in $dir/"
