#!/usr/bin/env bash
# Fuzzes halfveil's targets (the crate in fuzz/, see fuzz/src/lib.rs) under libFuzzer.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
#   SECONDS  how long each target runs (default 3600)
#   TARGET   which targets (default: every one, `cargo fuzz list`)
#
# Examples:
#   scripts/fuzz.sh                      # every target for an hour each
#   scripts/fuzz.sh 120                  # a two-minute smoke run of every target
#   scripts/fuzz.sh 600 apply block      # ten minutes each of two targets
#   FUZZ_MERGE=1 scripts/fuzz.sh 3600 op # and keep what it found in fuzz/corpus/op
#
# What it does:
# - installs cargo-fuzz if missing; needs the nightly toolchain (`rustup toolchain install
#   nightly`), since libFuzzer's instrumentation and AddressSanitizer are nightly-only;
# - builds in $HOME/.cache/halfveil/fuzz-target (FUZZ_TARGET_DIR), apart from the stable
#   cache of scripts/env.sh: the instrumented nightly build would otherwise invalidate it.
#   The first build compiles RocksDB (halfveil-node links it) and takes a while;
# - runs each target at nice 19 (its session's autogroup too), one after the other, on
#   a working corpus in $HOME/.cache/halfveil/fuzz-corpus/TARGET (FUZZ_CORPUS_DIR), seeded
#   from the committed fuzz/corpus/TARGET, which it leaves alone unless FUZZ_MERGE=1: then
#   the inputs that add coverage are merged into fuzz/corpus/TARGET (libFuzzer -merge=1),
#   for CI to replay
#   (keep it small: `cargo +nightly fuzz cmin TARGET` shrinks it);
# - prints one summary line per target (executions, exec/s, coverage, corpus size, crashes)
#   and exits 1 if any target crashed. A crash's input is in fuzz/artifacts/TARGET/
#   (gitignored): reproduce with `cargo +nightly fuzz run --features libfuzzer TARGET FILE`
#   (same FUZZ_TARGET_DIR), shrink with `cargo +nightly fuzz tmin --features libfuzzer
#   TARGET FILE`, or on stable run `halfveil_fuzz::TARGET` on the file. Once fixed, copy
#   it into fuzz/corpus/TARGET so CI replays it.
#
# More libFuzzer flags go in FUZZ_FLAGS (e.g. FUZZ_FLAGS="-max_len=65536 -jobs=2").
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-3600}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi
shift || true

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/halfveil/fuzz-target}"
# Installs clang for RocksDB's bindings if missing; keeps the CARGO_TARGET_DIR above.
source scripts/env.sh
work="${FUZZ_CORPUS_DIR:-$HOME/.cache/halfveil/fuzz-corpus}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    nice -n 19 cargo install cargo-fuzz --locked >&2
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi

if (($# == 0)); then
    mapfile -t targets < <(cargo fuzz list)
else
    targets=("$@")
fi

# With autogroup scheduling (Linux's default on desktops and these VMs), `nice` weighs a
# process only against its own session: a fuzzer started from its own session (setsid,
# nohup) still took half the cores from builds and benchmarks in another. Lowering the
# session's autogroup weight makes nice 19 mean what it says.
if [[ -w /proc/self/autogroup ]]; then
    echo 19 >/proc/self/autogroup 2>/dev/null || true
fi

echo "building ${#targets[@]} targets in $CARGO_TARGET_DIR" >&2
nice -n 19 cargo +nightly fuzz build --features libfuzzer >&2

logs="$work/logs"
mkdir -p "$logs"
crashed=0
summary=()
for target in "${targets[@]}"; do
    corpus="$work/$target"
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    # Slow units are not findings: under a busy machine a unit may take seconds of wall
    # time (libFuzzer's clock). They are counted apart; replay one to see its real time.
    findings() { find "fuzz/artifacts/$target" -type f ! -name 'slow-unit-*' | wc -l; }
    slow_units() { find "fuzz/artifacts/$target" -type f -name 'slow-unit-*' | wc -l; }
    before=$(findings)
    slow_before=$(slow_units)
    log="$logs/$target.log"
    echo "fuzzing $target for ${seconds}s (log: $log)" >&2
    status=0
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags.
    nice -n 19 cargo +nightly fuzz run --features libfuzzer "$target" \
        "$corpus" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 ${FUZZ_FLAGS:-} >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1 || true)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || true)
    size=$(find "$corpus" -type f | wc -l)
    after=$(findings)
    crashes=$((after - before))
    slow=$(($(slow_units) - slow_before))
    if ((status != 0 && crashes == 0)); then
        crashes="failed (exit $status, see $log)"
    fi
    if [[ "$crashes" != 0 ]]; then
        crashed=1
    elif [[ "${FUZZ_MERGE:-0}" == 1 ]]; then
        nice -n 19 cargo +nightly fuzz run --features libfuzzer "$target" \
            "fuzz/corpus/$target" "$corpus" -- -merge=1 -rss_limit_mb=2048 \
            >"$logs/$target.merge.log" 2>&1
    fi
    line=$(printf '%-22s runs=%-10s exec/s=%-6s cov=%-6s ft=%-6s corpus=%-6s slow=%-3s crashes=%s' \
        "$target" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$size" "$slow" "$crashes")
    echo "$line"
    summary+=("$line")
done

echo >&2
echo "summary (${seconds}s per target):" >&2
printf '%s\n' "${summary[@]}" >&2
exit "$crashed"
