"""The rules of a block (docs/protocol.md, "A block is valid when"), applied in order from
genesis. A rule broken anywhere makes the block, and the chain from there, invalid."""

import heapq

from . import hashing, keys, model, tdh2, wire
from .sig import strong_key, verify

VERSION = 3
U64 = 2**64
OPS_MAX = 65_536
ATTESTATIONS_MAX = 4_096
IDS_MAX = 8_192
MEMO_MAX = 256
SIGNERS_MAX = 64


class Invalid(Exception):
    def __init__(self, height, op, reason):
        super().__init__(reason)
        self.height, self.op, self.reason = height, op, reason


class State:
    def __init__(self, params):
        self.height = 0
        self.head = params["genesis_hash"]
        self.time = params["genesis_time"]
        self.accounts = {}
        self.nonces = {}
        self.expiries = []  # a heap of (expires_at, account, nonce) for every nonce remembered
        self.records = set()
        self.keys = keys.DisclosureKeys(params["disclosure_key"])
        self.lthash = hashing.LtHash()
        self.supply = 0
        for tx_key, bank, balance in params["initial_accounts"]:
            account = hashing.account_id(tx_key)
            self.accounts[account] = (tx_key, bank, balance, False)
            self.lthash.add(hashing.account_leaf(account, self.accounts[account]))
            self.supply += balance

    def root(self):
        return hashing.state_root(self.lthash, self.supply)


class Block:
    """One block's run over the state before it; `commit` moves the state past it."""

    def __init__(self, params, state, block):
        self.params, self.state, self.block = params, state, block
        header = block["header"]
        self.height, self.time = header["height"], header["time"]
        self.touched = {}
        self.nonces_added = {}
        self.records = []
        self.adopted = None  # the held key this block adopts: current only after it
        self.attested = set()
        self.issued = 0
        self.op_index = None

    def fail(self, reason):
        # Named by its place in the chain (the height it should have), whatever it claims.
        raise Invalid(self.state.height + 1, self.op_index, reason)

    def require(self, condition, reason):
        if not condition:
            self.fail(reason)

    def signed(self, key, message, signature, what):
        self.require(verify(key, message, signature), f"{what}: the signature does not verify")

    # The header and the body's shape.
    def header(self):
        header, params, state = self.block["header"], self.params, self.state
        self.require(header["version"] == VERSION, f"block version {header['version']}")
        self.require(header["chain_id"] == params["chain_id"], "block of another chain")
        self.require(self.height == state.height + 1, f"height {self.height} after {state.height}")
        self.require(header["parent"] == state.head, "parent is not the head's hash")
        self.require(self.time > state.time, "block time does not increase")
        self.require(self.block["signer"] in params["validator_keys"], "signer is no IM replica key")
        self.require(header["op_count"] == len(self.block["ops"]), "op count differs from the body")
        block_hash = hashing.h("halfveil v1 block hash", header["raw"])
        self.signed(self.block["signer"], block_hash, self.block["signature"], "block")
        return block_hash

    def attestations(self):
        limits = self.params["limits"]
        self.require(len(self.block["ops"]) <= min(limits["block_ops_max"], OPS_MAX), "too many ops")
        self.require(len(self.block["attestations"]) <= ATTESTATIONS_MAX, "too many attestations")
        ids_max = min(limits["attestation_ids_max"], IDS_MAX)
        chain = wire.string(self.params["chain_id"])
        for index, att in enumerate(self.block["attestations"]):
            self.require(att["bank"] < len(self.params["bank_keys"]), f"attestation {index}: no such bank")
            self.require(len(att["ids"]) <= ids_max, f"attestation {index}: too many ids")
            kind = 0 if att["kind"] == "payer-ok" else 1
            message = hashing.h(
                "halfveil v1 batch attestation",
                chain + wire.varint(kind) + wire.varint(att["bank"]) + wire.varint(len(att["ids"])) + b"".join(att["ids"]),
            )
            self.signed(self.params["bank_keys"][att["bank"]], message, att["signature"], f"attestation {index}")
            self.attested.update((index, id_) for id_ in att["ids"])

    # Shared rules.
    def account(self, account):
        return self.touched.get(account) or self.state.accounts.get(account)

    def open_account_of(self, account):
        value = self.account(account)
        self.require(value is not None, f"unknown account {account.hex()}")
        self.require(not value[3], f"account {account.hex()} is closed")
        return value

    def expiry(self, expires_at):
        self.require(expires_at > self.time, "expired (expiry at or before the block time)")
        limit = self.params["limits"]["transfer_expiry_ms_max"]
        self.require(expires_at - self.time <= limit, "expiry further ahead than genesis allows")

    def use_nonce(self, account, nonce, expires_at):
        remembered = self.state.nonces.get((account, nonce))
        committed = remembered is not None and remembered > self.time
        self.require(not committed and (account, nonce) not in self.nonces_added, "replay of (account, nonce)")
        self.nonces_added[(account, nonce)] = expires_at

    def lifecycle_message(self, context, account, new_key, nonce, expires_at):
        option = b"\x00" if new_key is None else b"\x01" + new_key
        return hashing.h(
            context,
            wire.string(self.params["chain_id"]) + account + option + wire.varint(nonce) + wire.varint(expires_at),
        )

    def recorded(self, key):
        return key in self.state.records or key in self.records

    def check_order(self, order):
        self.require(order["version"] == VERSION, f"order version {order['version']}")
        self.require(order["chain_id"] == self.params["chain_id"], "order of another chain")
        self.require(order["expires_at"] > self.time, "order expired")
        return hashing.h("halfveil v1 disclosure order", order["raw"])

    # The ops.
    def open_account(self, op):
        account, tx_key, bank = op["account"], op["tx_key"], op["bank"]
        self.require(hashing.account_id(tx_key) == account, "account id is not its key's")
        self.require(self.account(account) is None, "account exists")
        self.require(bank < len(self.params["bank_keys"]), "no such bank")
        self.require(strong_key(tx_key), "weak or invalid key")
        record = op["identity_record"]
        label = tdh2.record_label(self.params["chain_id"], account)
        reason = tdh2.check(self.state.keys.epoch(), label, record["capsule"], record["body"])
        self.require(reason is None, f"identity record: {reason}")
        record_hash = hashing.h("halfveil v1 identity record hash", record["raw"])
        message = hashing.h(
            "halfveil v1 open account",
            wire.string(self.params["chain_id"]) + account + tx_key + wire.varint(bank) + record_hash,
        )
        self.signed(tx_key, message, op["holder_signature"], "holder")
        self.signed(self.params["bank_keys"][bank], message, op["bank_signature"], "bank")
        self.touched[account] = (tx_key, bank, 0, False)

    def issue(self, op):
        self.require(op["amount"] > 0, "zero amount")
        self.require(op["amount"] <= self.params["limits"]["issue_amount_max"], "issue above the limit")
        tx_key, bank, balance, closed = self.open_account_of(op["to"])
        self.issued += op["amount"]
        self.require(self.state.supply + self.issued < U64, "supply overflows")
        self.require(balance + op["amount"] < U64, "balance overflows")
        self.touched[op["to"]] = (tx_key, bank, balance + op["amount"], closed)

    def transfer(self, op):
        t, params = op["transfer"], self.params
        self.require(t["version"] == VERSION, f"transfer version {t['version']}")
        self.require(t["chain_id"] == params["chain_id"], "transfer of another chain")
        self.require(len(t["memo"]) <= min(params["limits"]["memo_bytes_max"], MEMO_MAX), "memo too long")
        self.require(t["amount"] > 0, "zero amount")
        self.require(t["payer"] != t["payee"], "payer is the payee")
        self.expiry(t["expires_at"])
        payer, payee = self.open_account_of(t["payer"]), self.open_account_of(t["payee"])
        credential = op["identity_credential"]
        epoch, expected = credential["capsule"]["epoch"], self.state.keys.epoch()
        self.require(epoch == expected, f"credential sealed to key epoch {epoch}, the key is epoch {expected}")
        transfer_id = hashing.h("halfveil v1 transfer id", t["raw"])
        self.attestation(op["payer_ok"], "payer-ok", payer[1], transfer_id)
        self.attestation(op["payee_ok"], "payee-ok", payee[1], transfer_id)
        self.require(payer[2] >= t["amount"], "insufficient funds")
        self.require(payee[2] + t["amount"] < U64, "balance overflows")
        self.use_nonce(t["payer"], t["nonce"], t["expires_at"])
        credential_hash = hashing.h("halfveil v1 identity credential hash", credential["raw"])
        message = hashing.h("halfveil v1 transaction credential", transfer_id + credential_hash)
        self.signed(payer[0], message, op["tx_credential"], "transaction credential")
        self.touched[t["payer"]] = (payer[0], payer[1], payer[2] - t["amount"], payer[3])
        self.touched[t["payee"]] = (payee[0], payee[1], payee[2] + t["amount"], payee[3])

    def attestation(self, index, kind, bank, transfer_id):
        attestations = self.block["attestations"]
        self.require(index < len(attestations), f"attestation {index} missing")
        self.require(attestations[index]["kind"] == kind, f"attestation {index} is not {kind}")
        self.require(attestations[index]["bank"] == bank, f"attestation {index} is not by the home bank")
        self.require((index, transfer_id) in self.attested, f"attestation {index} does not cover the transfer")

    def rotate_key(self, op):
        tx_key, bank, balance, closed = self.open_account_of(op["account"])
        self.expiry(op["expires_at"])
        self.require(strong_key(op["new_key"]), "weak or invalid new key")
        self.use_nonce(op["account"], op["nonce"], op["expires_at"])
        message = self.lifecycle_message(
            "halfveil v1 rotate key", op["account"], op["new_key"], op["nonce"], op["expires_at"]
        )
        self.signed(tx_key, message, op["old_signature"], "old key")
        self.signed(op["new_key"], message, op["new_signature"], "new key")
        self.touched[op["account"]] = (op["new_key"], bank, balance, closed)

    def close_account(self, op):
        tx_key, bank, balance, _ = self.open_account_of(op["account"])
        self.require(balance == 0, "closing an account that is not empty")
        self.expiry(op["expires_at"])
        self.use_nonce(op["account"], op["nonce"], op["expires_at"])
        message = self.lifecycle_message(
            "halfveil v1 close account", op["account"], None, op["nonce"], op["expires_at"]
        )
        self.signed(tx_key, message, op["signature"], "holder")
        self.touched[op["account"]] = (tx_key, bank, 0, True)

    def disclosure_order(self, op):
        order_hash = self.check_order(op["order"])
        self.require(not self.recorded(order_hash), "order recorded before")
        signatures = op["signatures"]
        threshold = self.params["auditor_threshold"]
        self.require(threshold <= len(signatures) <= SIGNERS_MAX, "signatures below the threshold")
        keys = self.params["auditor_keys"]
        seen = set()
        for signed in signatures:
            auditor = signed["auditor"]
            self.require(auditor < len(keys), f"no auditor {auditor}")
            self.require(auditor not in seen, f"auditor {auditor} signs twice")
            seen.add(auditor)
            self.signed(keys[auditor], order_hash, signed["signature"], f"auditor {auditor}")
        self.records.append(order_hash)

    def disclosure_share(self, op):
        order_hash = self.check_order(op["order"])
        self.require(self.recorded(order_hash), "share record of an order not recorded")
        holder = op["holder"]
        signer = self.state.keys.signer(self.params, holder)
        self.require(signer is not None, f"no holder {holder}")
        key = hashing.h("halfveil v1 disclosure share record key", order_hash + holder.to_bytes(2, "little"))
        self.require(not self.recorded(key), f"holder {holder} recorded shares of this order before")
        message = hashing.h(
            "halfveil v1 disclosure share record",
            wire.string(self.params["chain_id"]) + order_hash + wire.varint(holder) + op["sealed_hash"],
        )
        self.signed(signer, message, op["signature"], f"holder {holder}")
        self.records.append(key)

    def adopt_disclosure_key(self, op):
        self.require(self.adopted is None, "a block adopts at most one disclosure key")
        held = op["held"]
        try:
            self.state.keys.check_successor(self.params, held)
        except keys.Refused as refused:
            self.fail(f"disclosure key not adopted: {refused}")
        signatures = op["signatures"]
        self.require(len(signatures) == len(held["parties"]), "disclosure key not adopted: one signature per holder")
        message = keys.message(self.params["chain_id"], held)
        self.require(not self.recorded(message), "disclosure key not adopted: this key was adopted before")
        for number, party, signature in zip(keys.numbers(held), held["parties"], signatures):
            signer = keys.party_key(self.params, party)
            self.signed(signer, message, signature, f"holder {number}'s adoption of the disclosure key")
        self.records.append(message)
        self.adopted = held

    def run(self):
        block_hash = self.header()
        self.attestations()
        for index, op in enumerate(self.block["ops"]):
            self.op_index = index
            getattr(self, op["kind"].replace("-", "_"))(op)
        self.op_index = None
        return block_hash, self.finish()

    def finish(self):
        state = self.state
        lthash = state.lthash.copy()
        before = sum(state.accounts[a][2] for a in self.touched if a in state.accounts)
        after = sum(value[2] for value in self.touched.values())
        self.require(after == before + self.issued, "the block does not conserve the supply")
        for account, value in self.touched.items():
            if account in state.accounts:
                lthash.remove(hashing.account_leaf(account, state.accounts[account]))
            lthash.add(hashing.account_leaf(account, value))
        expired = []
        while state.expiries and state.expiries[0][0] <= self.time:
            at, account, nonce = heapq.heappop(state.expiries)
            expired.append(((account, nonce), at))
        for (account, nonce), at in expired:
            lthash.remove(hashing.nonce_leaf(account, nonce, at))
        for (account, nonce), at in self.nonces_added.items():
            lthash.add(hashing.nonce_leaf(account, nonce, at))
        for key in self.records:
            lthash.add(hashing.record_leaf(key))
        ops, atts = self.block["ops"], self.block["attestations"]
        size = sum(len(op["raw"]) for op in ops) + sum(len(att["raw"]) for att in atts)
        self.require(size <= self.params["limits"]["block_bytes_max"], "block body too large")
        header = self.block["header"]
        op_root = hashing.merkle_root([hashing.h("halfveil v1 op hash", op["raw"]) for op in ops])
        att_root = hashing.merkle_root([hashing.h("halfveil v1 attestation hash", a["raw"]) for a in atts])
        self.op_index = None
        self.require(header["op_root"] == op_root, "op root differs")
        self.require(header["attestation_root"] == att_root, "attestation root differs")
        self.require(header["state_root"] == hashing.state_root(lthash, state.supply + self.issued), "state root differs")
        return lthash, expired

    def commit(self, block_hash, lthash, expired):
        state = self.state
        state.accounts.update(self.touched)
        for key, _ in expired:
            del state.nonces[key]
        state.nonces.update(self.nonces_added)
        for (account, nonce), at in self.nonces_added.items():
            heapq.heappush(state.expiries, (at, account, nonce))
        state.records.update(self.records)
        if self.adopted is not None:
            state.keys.adopt(self.adopted)
        state.lthash, state.supply = lthash, state.supply + self.issued
        state.height, state.head, state.time = self.height, block_hash, self.time


def apply(params, state, data, height_hint):
    """Checks the block `data` on `state` and moves the state past it, or raises Invalid."""
    try:
        block = model.block(data)
    except wire.DecodeError as error:
        raise Invalid(height_hint, None, f"does not decode: {error}") from None
    run = Block(params, state, block)
    block_hash, (lthash, expired) = run.run()
    run.commit(block_hash, lthash, expired)
    return block
