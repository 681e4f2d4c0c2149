#!/usr/bin/env bash
# How much throughput the identity manager and two banks keep while a third bank, a peer
# genesis admits, floods them with invalid and oversized link frames (issue 18, item 5).
#
#   bash scripts/flood-bench.sh [RATE] [SECONDS] [ROUNDS]
#
# Writes a testnet with three banks, starts the IM, bank-1 and bank-2 (release build), and
# runs `halfveil bench --rpc ...` against them ROUNDS times without and ROUNDS times with
# `halfveil-flood` (tests/src/bin/halfveil-flood.rs, holding bank-3's node key) beside it,
# interleaved in alternating order, so drift hits both alike. Prints each run's committed rate,
# the median of each side, their ratio, and the machine's signature-check cost.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
rate="${1:-20000}"
seconds="${2:-20}"
rounds="${3:-3}"
cargo build --release --workspace --locked --bins
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"$bin/halfveil" --output json testnet init --banks 3 --auditors 3 --threshold 2 \
    --dir "$work/net" >"$work/init.json"
rpc() { python3 -c "import json,sys; print(next(n['rpc'] for n in json.load(open('$work/init.json'))['nodes'] if n['name']=='$1'))"; }
for node in im bank-1 bank-2; do
    "$bin/halfveil" start --home "$work/net/$node" >"$work/$node.log" 2>&1 &
done
for node in im bank-1 bank-2; do
    until "$bin/halfveil" chain head --rpc "$(rpc "$node")" >/dev/null 2>&1; do sleep 0.5; done
done
bench() {
    "$bin/halfveil" --output json bench --dir "$work/bench-$1" --out "$work/$1.json" \
        --rate "$rate" --duration "$seconds" --accounts 1000 --im-home "$work/net/im" \
        --rpc "$(rpc im)" --rpc "$(rpc bank-1)" --rpc "$(rpc bank-2)" >/dev/null
    python3 -c "import json; r=json.load(open('$work/$1.json')); run=r['runs'][0]; print(f\"$1: {run['committed_rate']:.0f}/s committed of {run['offered_rate']}/s offered, p99 {run['latency']['p99_ms']:.0f} ms, unanswered {run['unanswered']}, signature check {r['signature_check_us']:.1f} us\")"
}
flooded() {
    "$bin/halfveil-flood" --home "$work/net/bank-3" --seconds $((seconds + 120)) >"$work/flooder-$1.json" &
    local flooder=$!
    bench "flood-$1"
    kill "$flooder" 2>/dev/null || true
    wait "$flooder" 2>/dev/null || true
}
# Quiet first in odd rounds, flooded first in even ones: the nodes slow down as the runs
# add accounts and blocks, and alternating the order keeps that drift off the ratio.
for round in $(seq 1 "$rounds"); do
    if ((round % 2)); then
        bench "quiet-$round"
        flooded "$round"
    else
        flooded "$round"
        bench "quiet-$round"
    fi
done
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def rates(side):
    return [json.load(open(f"{work}/{side}-{r}.json"))["networks"][0]["runs"][0]["committed_rate"] for r in range(1, rounds + 1)]
quiet, flood = statistics.median(rates("quiet")), statistics.median(rates("flood"))
sig = statistics.median(json.load(open(f"{work}/quiet-{r}.json"))["signature_check_us"] for r in range(1, rounds + 1))
print(f"median committed: {quiet:.0f}/s quiet, {flood:.0f}/s beside the flood: {100 * flood / quiet:.1f} % kept (signature check {sig:.1f} us)")
PY
for node in im bank-1 bank-2; do
    printf '%s: ' "$node"
    grep -c "peer banned" "$work/$node.log" | tr -d '\n'
    echo " bans logged"
done
