# Sourced by the project's scripts: installs what a fresh machine lacks and points cargo at a
# target directory outside the clone, so repeated runs (and CI on the same machine) reuse it.
set -euo pipefail

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || need+=(libclang-dev)
# The operator guide's walk-through (tests/tests/deployment.rs runs it): jq reads JSON
# output, iproute2 makes the hosts' network namespaces, procps's pkill stops the nodes.
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v pkill >/dev/null 2>&1 || need+=(procps)
if ((${#need[@]})); then
    echo "installing ${need[*]} (RocksDB is compiled from source; the tests use the rest)" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/halfveil/target}"
mkdir -p "$CARGO_TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
