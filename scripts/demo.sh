#!/usr/bin/env bash
# README's main job: `halfveil demo` starts an identity manager and two banks on 127.0.0.1,
# opens accounts at both banks, issues money, pays across banks with verified receipts,
# shows every node's balances and a frozen account refused, and stops the nodes cleanly.
# Then it checks the network's genesis and shows a tampered copy refused (exit code 3).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

cargo build --locked --workspace
halfveil="$CARGO_TARGET_DIR/debug/halfveil"
dir="${HALFVEIL_DEMO_DIR:-halfveil-demo}"

"$halfveil" demo --dir "$dir"
echo
echo "== halfveil genesis validate $dir/network/genesis.json"
"$halfveil" genesis validate "$dir/network/genesis.json"
echo "== a copy with one byte changed is refused (exit code 3)"
sed 's/"genesis_time_ms": 1/"genesis_time_ms": 2/' "$dir/network/genesis.json" > "$dir/tampered-genesis.json"
set +e
"$halfveil" genesis validate "$dir/tampered-genesis.json"
code=$?
set -e
echo "exit code $code"
[ "$code" -eq 3 ]
