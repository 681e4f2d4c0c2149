#!/usr/bin/env python3
"""CPU seconds per node and per kind of thread during a `halfveil bench` run.

usage: python3 scripts/thread-cpu.py BINARY [RATE] [SECONDS]

Runs `BINARY bench --rate RATE --duration SECONDS --accounts 1000` in a temporary
directory, reads /proc/<pid>/task/*/stat of the three nodes when the load starts and a
second before it ends, and prints each node's CPU by thread: RocksDB's flush and
compaction threads, the writer, the IM's admission thread, the tokio runtime (workers and
blocking pool) and the rest. On a shared VM a node's total varies by 4-10 % between runs
of one build; a change confined to one kind of thread shows there first
(docs/perf-log/round-09.md).
"""

import collections
import json
import os
import subprocess
import sys
import tempfile
import time


def nodes():
    """pid -> node name, for every `halfveil start --home DIR` process."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                args = file.read().split(b"\0")
        except OSError:
            continue
        if len(args) > 3 and args[1] == b"start" and args[2] == b"--home":
            found[int(pid)] = os.path.basename(args[3].decode().rstrip("/"))
    return found


def kind(thread):
    if thread.startswith("rocksdb:high"):
        return "flush"
    if thread.startswith("rocksdb:low"):
        return "compaction"
    if "writer" in thread:
        return "writer"
    if "admiss" in thread:
        return "admission"
    if thread.startswith("halfveil") or thread.startswith("tokio"):
        return "runtime"
    return "other"


def snapshot(pids):
    """(node, kind) -> CPU seconds so far."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = collections.Counter()
    for pid, node in pids.items():
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/stat") as file:
                    stat = file.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            seconds[(node, kind(name))] += (int(fields[11]) + int(fields[12])) / tick
    return seconds


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    rate = sys.argv[2] if len(sys.argv) > 2 else "20000"
    duration = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    with tempfile.TemporaryDirectory() as work:
        log_path = os.path.join(work, "bench.log")
        report = os.path.join(work, "report.json")
        with open(log_path, "w") as log:
            bench = subprocess.Popen(
                [binary, "bench", "--dir", os.path.join(work, "bench"), "--rate", rate,
                 "--duration", str(duration), "--accounts", "1000", "--out", report],
                stdout=log, stderr=log)
        deadline = time.monotonic() + 600
        while True:
            with open(log_path) as log:
                if "offering" in log.read():
                    break
            if bench.poll() is not None or time.monotonic() > deadline:
                bench.kill()
                with open(log_path) as log:
                    sys.exit("the bench did not start its load:\n" + log.read())
            time.sleep(0.2)
        pids = nodes()
        start = snapshot(pids)
        time.sleep(max(1, duration - 1))
        end = snapshot(pids)
        if bench.wait(timeout=600) != 0:
            with open(log_path) as log:
                sys.exit("the bench failed:\n" + log.read())
        with open(report) as file:
            run = json.load(file)["networks"][0]["runs"][0]
    latency = run["latency"]
    print(f"{rate}/s offered, {run['committed_rate']:.0f}/s committed, "
          f"p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms, "
          f"{run['blocks_per_s']:.0f} blocks/s; CPU seconds over {max(1, duration - 1)} s of load:")
    for node in sorted(set(pids.values())):
        parts = {k: end[(n, k)] - start.get((n, k), 0) for (n, k) in end if n == node}
        shown = " ".join(f"{k}={v:.2f}" for k, v in sorted(parts.items()) if v >= 0.005)
        print(f"  {node:8} total={sum(parts.values()):.2f}  {shown}")


if __name__ == "__main__":
    main()
