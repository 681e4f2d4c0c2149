#!/usr/bin/env python3
"""Replays a halfveil chain file from genesis and checks every rule of docs/protocol.md.

    python3 tools/verify-chain/verify_chain.py CHAIN_FILE [--output json]

Exit status: 0 the chain is valid, 1 it is not (the first broken rule is printed),
2 the file cannot be read or the arguments are wrong.
"""

import argparse
import json
import sys
import time

from hvverify import genesis, model, replay, wire


def verify(data):
    """The summary of a valid chain; raises replay.Invalid or genesis.GenesisError."""
    try:
        genesis_text, blocks, framing = model.chain_file(data)
    except wire.DecodeError as error:
        raise replay.Invalid(0, None, f"chain file: {error}") from None
    params = genesis.load(genesis_text)
    state = replay.State(params)
    counts = {kind: 0 for kind in model.OP_KINDS}
    for index, block_bytes in enumerate(blocks):
        block = replay.apply(params, state, block_bytes, index + 1)
        for op in block["ops"]:
            counts[op["kind"]] += 1
    if framing is not None:
        raise replay.Invalid(len(blocks) + 1, None, f"chain file: {framing}")
    return {
        "valid": True,
        "chain_id": params["chain_id"],
        "genesis_hash": params["genesis_hash"].hex(),
        "height": state.height,
        "head_hash": state.head.hex(),
        "state_root": state.root().hex(),
        "supply": state.supply,
        "accounts": len(state.accounts),
        "ops": counts,
    }


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chain_file")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    try:
        with open(args.chain_file, "rb") as file:
            data = file.read()
    except OSError as error:
        print(f"error: cannot read {args.chain_file}: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        summary = verify(data)
    except genesis.GenesisError as error:
        summary = {"valid": False, "height": 0, "op": None, "reason": f"genesis: {error}"}
    except replay.Invalid as error:
        summary = {"valid": False, "height": error.height, "op": error.op, "reason": error.reason}
    summary["seconds"] = round(time.monotonic() - started, 3)
    if args.output == "json":
        print(json.dumps(summary, indent=2))
    elif summary["valid"]:
        print(
            f"valid: {summary['chain_id']} to height {summary['height']}, head {summary['head_hash']}, "
            f"state root {summary['state_root']}, supply {summary['supply']}, "
            f"{summary['accounts']} accounts ({summary['seconds']} s)"
        )
    else:
        where = f"block {summary['height']}" + ("" if summary["op"] is None else f", op {summary['op']}")
        print(f"invalid: {where}: {summary['reason']}")
    return 0 if summary["valid"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
