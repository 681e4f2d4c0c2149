#!/usr/bin/env bash
# Profiles the three nodes (and the load generator) under `halfveil bench` and writes a
# flamegraph: bash scripts/profile.sh [RATE] [OUT.svg]
# Needs perf (linux-perf) and inferno (`cargo install inferno`); uses the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
rate="${1:-16000}"
out="${2:-docs/flamegraph.svg}"
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || { echo "inferno is missing (cargo install inferno)" >&2; exit 1; }
cargo build --release --workspace --locked
bin="$CARGO_TARGET_DIR/release/halfveil"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Load for 20 s; the profile covers 5 s in the middle of it, after setup.
"$bin" bench --dir "$work/bench" --rate "$rate" --duration 20 --accounts 1000 >"$work/bench.log" 2>&1 &
bench=$!
until grep -q offering "$work/bench.log" 2>/dev/null; do
    kill -0 "$bench" 2>/dev/null || { cat "$work/bench.log" >&2; exit 1; }
    sleep 1
done
sleep 5
perf record -a -F 199 --call-graph dwarf,16384 -o "$work/perf.data" -- sleep 5 >/dev/null 2>&1
wait "$bench" || true
cat "$work/bench.log" | tail -3
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf --all >"$work/folded"
grep -E '^(halfveil|tokio|rocksdb|futures)' "$work/folded" >"$work/ours" || cp "$work/folded" "$work/ours"
inferno-flamegraph --minwidth 0.5 --title "halfveil bench at $rate/s offered: IM, two banks and client on $(nproc) cores" \
    "$work/ours" >"$out"
echo "wrote $out; the hottest functions (self time, all processes):"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | head -25 || true   # head closes the pipe early: not a failure
