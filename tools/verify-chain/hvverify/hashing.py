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
SLOT = 32
# One 0x10000 in every 32-bit slot: (ONES - x) negates each lane of x without a borrow.
ONES = int.from_bytes(b"\x00\x00\x01\x00" * LANES, "little")


def leaf_stream(leaf):
    """A leaf's 1,024 16-bit lanes, as the first 2,048 bytes of the blake3 XOF under
    "halfveil v1 state leaf" (each lane little-endian)."""
    return blake3.blake3(leaf, derive_key_context="halfveil v1 state leaf").digest(length=2 * LANES)


def spaced(lanes):
    """2,048 bytes of lanes as one integer with each lane in a 32-bit slot of its own, so
    that lane-wise sums are integer sums (made in C, not lane by lane in Python)."""
    wide = bytearray(4 * LANES)
    wide[0::4] = lanes[0::2]
    wide[1::4] = lanes[1::2]
    return int.from_bytes(wide, "little")


def packed(value):
    """The lanes, each reduced mod 2^16, back as 2,048 bytes."""
    wide = (value & ((1 << (SLOT * LANES)) - 1)).to_bytes(4 * LANES, "little")
    lanes = bytearray(2 * LANES)
    lanes[0::2] = wide[0::4]
    lanes[1::2] = wide[1::4]
    return bytes(lanes)


class LtHash:
    """The additive state commitment: lane-wise sums modulo 2^16 of every leaf's lanes. Sums
    are kept slot-wise in one integer and reduced every 16,384 changes (a slot never reaches
    2^32) and when read."""

    def __init__(self, lanes=bytes(2 * LANES)):
        self.value = spaced(lanes)
        self.changes = 0

    def copy(self):
        return LtHash(self.lanes())

    def add(self, leaf):
        self.value += spaced(leaf_stream(leaf))
        self.tick()

    def remove(self, leaf):
        self.value += ONES - spaced(leaf_stream(leaf))
        self.tick()

    def tick(self):
        self.changes += 1
        if self.changes >= 16_384:
            self.value, self.changes = spaced(packed(self.value)), 0

    def lanes(self):
        return packed(self.value)

    def checksum(self):
        return blake3.blake3(self.lanes()).digest()


def account_leaf(account, value):
    tx_key, bank, balance, closed = value
    return b"\x00" + account + tx_key + wire.varint(bank) + wire.varint(balance) + bytes([closed])


def nonce_leaf(account, nonce, expires_at):
    return b"\x01" + account + wire.varint(nonce) + wire.varint(expires_at)


def record_leaf(key):
    return b"\x02" + key


def state_root(lthash, supply):
    return h("halfveil v1 state root", lthash.checksum() + supply.to_bytes(8, "little"))
