"""Domain-separated hashes (docs/protocol.md, "Hashes"), the Merkle root and the state
commitment."""

import blake3

from . import wire


def h(context, data):
    """blake3 in derive_key mode under `context`."""
    return blake3.blake3(data, derive_key_context=context).digest()


def account_id(tx_key):
    return h("halfveil v1 account id", tx_key)


def merkle_root(leaves):
    """RFC 6962's tree shape (split at the largest power of two below the count), with the
    leaf, node and empty-tree hashes of docs/protocol.md ("Merkle tree")."""
    if not leaves:
        return h("halfveil v1 merkle empty", b"")
    if len(leaves) == 1:
        return h("halfveil v1 merkle leaf", leaves[0])
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    left, right = merkle_root(leaves[:split]), merkle_root(leaves[split:])
    return h("halfveil v1 merkle node", left + right)


LANES = 1024


def leaf_lanes(leaf):
    """A state leaf's 1,024 16-bit lanes: the blake3 XOF of its encoding, little-endian."""
    stream = blake3.blake3(leaf, derive_key_context="halfveil v1 state leaf").digest(length=2 * LANES)
    return [stream[2 * i] | stream[2 * i + 1] << 8 for i in range(LANES)]


def account_leaf(account, value):
    tx_key, bank, balance, closed = value
    return b"\x00" + account + tx_key + wire.varint(bank) + wire.varint(balance) + bytes([closed])


def nonce_leaf(account, nonce, expires_at):
    return b"\x01" + account + wire.varint(nonce) + wire.varint(expires_at)


def record_leaf(key):
    return b"\x02" + key


class LtHash:
    """The additive state commitment: lane-wise sums modulo 2^16 of every leaf's lanes."""

    def __init__(self):
        self.lanes = [0] * LANES

    def add(self, leaf, sign=1):
        for index, lane in enumerate(leaf_lanes(leaf)):
            self.lanes[index] = (self.lanes[index] + sign * lane) & 0xFFFF

    def remove(self, leaf):
        self.add(leaf, -1)

    def checksum(self):
        return blake3.blake3(b"".join(lane.to_bytes(2, "little") for lane in self.lanes)).digest()


def state_root(lthash, supply):
    return h("halfveil v1 state root", lthash.checksum() + supply.to_bytes(8, "little"))
