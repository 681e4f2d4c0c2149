#!/usr/bin/env python3
"""The second verifier against docs/vectors/*.json (computed by the Rust code, see
ledger/tests/golden.rs) and against the public vectors of the primitives it builds on.

    python3 -m unittest discover -s tools/verify-chain -p 'test_*.py'
"""

import json
import pathlib
import unittest

from hvverify import curve, genesis, hashing, keys, model, replay, tdh2, wire
from hvverify.sig import strong_key, verify
from nacl.signing import SigningKey

VECTORS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "vectors"


def load(group):
    return json.loads((VECTORS / f"{group}.json").read_text())


def unhex(text):
    return bytes.fromhex(text)


def decode(decoder, text):
    reader = wire.Reader(unhex(text))
    value = decoder(reader)
    reader.end()
    return value


def encode_held(held):
    """A held key's encoding (serde's field order), written apart from the decoder so that
    re-encoding a decoded key checks the decoder lost nothing."""
    key = held["key"]
    out = wire.varint(key["epoch"]) + wire.varint(key["refresh"]) + wire.varint(key["threshold"])
    out += key["group_key"] + wire.varint(len(key["holders"]))
    out += b"".join(wire.varint(h["holder"]) + h["share_key"] for h in key["holders"])
    party = lambda p: b"\x01" if p == model.IM else b"\x00" + wire.varint(p[1])
    return out + wire.varint(len(held["parties"])) + b"".join(party(p) for p in held["parties"])


def encode_adoption_op(op):
    tag = wire.varint(model.OP_KINDS.index("adopt-disclosure-key"))
    return tag + encode_held(op["held"]) + wire.varint(len(op["signatures"])) + b"".join(op["signatures"])


def times_base(scalar):
    return curve.mul(scalar % curve.L, curve.BASE)


def fresh_key(epoch, threshold, numbers, seed):
    """A new epoch's key: the shares of the polynomial with coefficients seed, seed + 1, ..."""
    f = lambda x: sum((seed + i) * x**i for i in range(threshold))
    encode = lambda x: curve.ristretto_encode(times_base(f(x)))
    holders = [{"holder": n, "share_key": encode(n)} for n in numbers]
    return {"epoch": epoch, "refresh": 0, "threshold": threshold, "group_key": encode(0), "holders": holders}


def refreshed(key, numbers, seed):
    """The next refresh of `key` (public shares only), held by `numbers`: each holder's
    share (interpolated where it has none) plus g(n)B, for a polynomial g with g(0) = 0."""
    threshold, first = key["threshold"], key["holders"][: key["threshold"]]
    xs = [h["holder"] for h in first]
    points = [curve.ristretto_decode(h["share_key"]) for h in first]
    g = lambda x: sum((seed + i) * x**i for i in range(1, threshold))
    share = lambda n: curve.ristretto_encode(curve.add(keys.interpolate(xs, points, n), times_base(g(n))))
    holders = [{"holder": n, "share_key": share(n)} for n in numbers]
    return dict(key, refresh=key["refresh"] + 1, holders=holders)


class Primitives(unittest.TestCase):
    def test_ristretto255_rfc9496(self):
        multiples = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76",
            "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919",
            "94741f5d5d52755ece4f23f044ee27d5d1ea1e2bd196b462166b16152a9d0259",
        ]
        for index, expected in enumerate(multiples):
            self.assertEqual(curve.ristretto_encode(curve.mul(index, curve.BASE)).hex(), expected)
            self.assertIsNotNone(curve.ristretto_decode(unhex(expected)))
        # Non-canonical and negative encodings are refused (RFC 9496, appendix A.2).
        for bad in [
            "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "0100000000000000000000000000000000000000000000000000000000000000",
        ]:
            self.assertIsNone(curve.ristretto_decode(unhex(bad)))
        mapped = curve.ristretto_from_uniform(
            unhex(
                "5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c1"
                "4d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6"
            )
        )
        self.assertEqual(
            curve.ristretto_encode(mapped).hex(),
            "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46",
        )

    def test_merlin_transcript(self):
        from merlin_transcripts import MerlinTranscript

        transcript = MerlinTranscript(b"test protocol")
        transcript.append_message(b"some label", b"some data")
        self.assertEqual(
            transcript.challenge_bytes(b"challenge", 32).hex(),
            "d5a21972d0d5fe320c0d263fac7fffb8145aa640af6e9bca177c03c7efcf0615",
        )

    def test_varints_are_strict(self):
        self.assertEqual(wire.Reader(b"\xac\x02").u64(), 300)
        for bad, bits in [(b"\x80\x00", 64), (b"\xff\xff\x04", 16), (b"\x80", 32)]:
            with self.assertRaises(wire.DecodeError):
                wire.Reader(bad).varint(bits)
        with self.assertRaises(wire.DecodeError):
            wire.Reader(b"\x02").flag()


class Vectors(unittest.TestCase):
    def test_hashes(self):
        for context, expected in load("hashes").items():
            self.assertEqual(hashing.h(context, b"halfveil").hex(), expected, context)

    def test_merkle(self):
        vectors = load("merkle")
        leaves = [hashing.h("halfveil v1 op hash", i.to_bytes(8, "little")) for i in range(7)]
        for count in (0, 1, 2, 3, 5, 7):
            name = f"root of {count} leaves" if count != 1 else "root of 1 leaf"
            self.assertEqual(hashing.merkle_root(leaves[:count]).hex(), vectors[name])

    def test_signatures(self):
        vectors = load("signatures")
        for case in ("valid", "zip215_only", "s_not_canonical", "other_message"):
            found = verify(
                unhex(vectors[f"{case} key"]),
                unhex(vectors[f"{case} message"]),
                unhex(vectors[f"{case} signature"]),
            )
            self.assertEqual(found, vectors[f"{case} valid"] == "true", case)
        self.assertFalse(strong_key(unhex(vectors["zip215_only key"])))
        self.assertTrue(strong_key(unhex(vectors["valid key"])))

    def test_encodings_ids_and_messages(self):
        v = load("encodings")
        chain = "halfveil-golden"
        self.assertEqual(wire.string(chain).hex(), v["chain id"])
        self.assertEqual(hashing.account_id(unhex(v["payer public key"])).hex(), v["payer account hex"])
        transfer = decode(lambda r: model.spanned(r, model.transfer), v["transfer"])
        transfer_id = hashing.h("halfveil v1 transfer id", transfer["raw"])
        self.assertEqual(transfer_id.hex(), v["transfer id"])
        credential = decode(lambda r: model.spanned(r, model.sealed(81)), v["identity credential"])
        credential_hash = hashing.h("halfveil v1 identity credential hash", credential["raw"])
        self.assertEqual(credential_hash.hex(), v["identity credential hash"])
        message = hashing.h("halfveil v1 transaction credential", transfer_id + credential_hash)
        self.assertEqual(message.hex(), v["tx credential message"])
        self.assertEqual(tdh2.credential_label(chain, transfer_id).hex(), v["credential label"])
        self.assertEqual(tdh2.record_label(chain, unhex(v["payer account hex"])).hex(), v["record label"])
        op = decode(model.op, v["transfer op"])
        self.assertEqual(op["kind"], "transfer")
        self.assertEqual(hashing.h("halfveil v1 op hash", op["raw"]).hex(), v["transfer op hash"])
        self.assertTrue(verify(unhex(v["payer public key"]), message, op["tx_credential"]))
        for name in ("open account op", "issue op", "rotate key op", "close account op",
                     "disclosure order op", "share record op"):
            decode(model.op, v[name])
        self.assertEqual(
            hashing.h("halfveil v1 op hash", unhex(v["open account op"])).hex(), v["open account op hash"]
        )
        self.assertEqual(hashing.h("halfveil v1 op hash", unhex(v["issue op"])).hex(), v["issue op hash"])

    def test_lifecycle_and_disclosure_messages(self):
        v = load("encodings")
        chain = wire.string("halfveil-golden")
        opened = decode(model.op, v["open account op"])
        record_hash = hashing.h("halfveil v1 identity record hash", opened["identity_record"]["raw"])
        self.assertEqual(record_hash.hex(), v["identity record hash"])
        message = hashing.h(
            "halfveil v1 open account",
            chain + opened["account"] + opened["tx_key"] + wire.varint(opened["bank"]) + record_hash,
        )
        self.assertEqual(message.hex(), v["open account message"])
        self.assertTrue(verify(opened["tx_key"], message, opened["holder_signature"]))
        rotate = decode(model.op, v["rotate key op"])
        rotate_message = hashing.h(
            "halfveil v1 rotate key",
            chain + rotate["account"] + b"\x01" + rotate["new_key"]
            + wire.varint(rotate["nonce"]) + wire.varint(rotate["expires_at"]),
        )
        self.assertEqual(rotate_message.hex(), v["rotate key message"])
        close = decode(model.op, v["close account op"])
        close_message = hashing.h(
            "halfveil v1 close account",
            chain + close["account"] + b"\x00" + wire.varint(close["nonce"]) + wire.varint(close["expires_at"]),
        )
        self.assertEqual(close_message.hex(), v["close account message"])
        order = decode(model.op, v["disclosure order op"])
        order_hash = hashing.h("halfveil v1 disclosure order", order["order"]["raw"])
        self.assertEqual(order_hash.hex(), v["disclosure order hash"])
        share = decode(model.op, v["share record op"])
        share_message = hashing.h(
            "halfveil v1 disclosure share record",
            chain + order_hash + wire.varint(share["holder"]) + share["sealed_hash"],
        )
        self.assertEqual(share_message.hex(), v["share record message"])
        key = hashing.h("halfveil v1 disclosure share record key", order_hash + share["holder"].to_bytes(2, "little"))
        self.assertEqual(key.hex(), v["share record state key"])
        attestation = decode(model.attestation, v["attestation"])
        attestation_message = hashing.h(
            "halfveil v1 batch attestation",
            chain + b"\x00" + wire.varint(attestation["bank"]) + wire.varint(len(attestation["ids"]))
            + b"".join(attestation["ids"]),
        )
        self.assertEqual(attestation_message.hex(), v["attestation message"])
        header = decode(lambda r: model.spanned(r, model.header), v["header"])
        self.assertEqual(hashing.h("halfveil v1 block hash", header["raw"]).hex(), v["header hash"])

    def test_threshold_ciphertexts_verify_under_their_labels_only(self):
        v, e = load("threshold"), load("encodings")
        r = wire.Reader(unhex(v["disclosure key"]))
        epoch, _refresh, _threshold, group = r.u32(), r.u32(), r.u16(), r.take(32)
        self.assertIsNotNone(tdh2.point(group))
        credential = decode(model.sealed(81), v["identity credential"])
        label = unhex(e["credential label"])
        self.assertIsNone(tdh2.check(epoch, label, credential["capsule"], credential["body"]))
        self.assertIsNotNone(tdh2.check(epoch, unhex(e["record label"]), credential["capsule"], credential["body"]))
        self.assertIsNotNone(tdh2.check(epoch + 1, label, credential["capsule"], credential["body"]))
        record = decode(lambda r: model.spanned(r, model.sealed(1040)), v["identity record"])
        record_label = tdh2.record_label("halfveil-golden", unhex(v["identity record account"]))
        self.assertIsNone(tdh2.check(epoch, record_label, record["capsule"], record["body"]))
        self.assertEqual(hashing.h("halfveil v1 identity record hash", record["raw"]).hex(), v["identity record hash"])
        tampered = bytearray(record["body"])
        tampered[100] ^= 1
        self.assertIsNotNone(tdh2.check(epoch, record_label, record["capsule"], bytes(tampered)))

    def test_block_and_receipt(self):
        v = load("block")
        block = model.block(unhex(v["block"]))
        block_hash = hashing.h("halfveil v1 block hash", block["header"]["raw"])
        self.assertEqual(block_hash.hex(), v["block hash"])
        self.assertTrue(verify(unhex(v["validator key"]), block_hash, block["signature"]))
        ops = [hashing.h("halfveil v1 op hash", op["raw"]) for op in block["ops"]]
        self.assertEqual(hashing.merkle_root(ops), block["header"]["op_root"])
        r = wire.Reader(unhex(v["receipt"]))
        version, transfer_id, op = r.u8(), r.take(32), model.op(r)
        signed = {"header": model.spanned(r, model.header), "signer": r.take(32), "signature": r.take(64)}
        index, leaf_count = r.u32(), r.u32()
        siblings = r.seq(32, "siblings", lambda s: s.take(32))
        r.end()
        self.assertEqual((version, index, leaf_count, siblings), (3, 0, 1, []))
        self.assertEqual(hashing.h("halfveil v1 transfer id", op["transfer"]["raw"]), transfer_id)
        self.assertEqual(signed["header"]["raw"], block["header"]["raw"])

    def test_state_root(self):
        v = load("state")
        lthash = hashing.LtHash()
        account = unhex(v["account"])
        lthash.add(hashing.account_leaf(account, (unhex(v["tx key"]), int(v["bank"]), int(v["balance"]), False)))
        lthash.add(hashing.nonce_leaf(account, int(v["nonce"]), int(v["nonce expires at"])))
        lthash.add(hashing.record_leaf(unhex(v["record"])))
        self.assertEqual(lthash.checksum().hex(), v["lthash checksum"])
        self.assertEqual(hashing.state_root(lthash, int(v["supply"])).hex(), v["state root"])

    def test_genesis_body_encoding_round_trip(self):
        body = {
            "version": 2, "chain_id": "x", "genesis_time_ms": 1,
            "identity_manager": {"peer_id": "p", "validator_key": "k"},
            "banks": [], "auditors": {"threshold": 1, "members": []},
            "disclosure_key": {"epoch": 1, "refresh": 0, "threshold": 1, "group_key": "g", "holders": []},
            "initial_accounts": [], "limits": dict.fromkeys(genesis.FIELDS["limits"], 1),
        }
        encoded = genesis.encode_body(body)
        self.assertEqual(encoded[:3], b"\x02\x01x")
        body["identity_manager_replicas"] = [{"peer_id": "q", "validator_key": "l"}]
        self.assertEqual(len(genesis.encode_body(body)), len(encoded) + 5)

    def test_chain_file(self):
        """docs/vectors/chain.hv, exported from a real run, replays to the recorded head;
        with one block's signature altered it does not."""
        import verify_chain

        data = (VECTORS / "chain.hv").read_bytes()
        expected = json.loads((VECTORS / "chain-file.json").read_text())
        summary = verify_chain.verify(data)
        for field in ("height", "head_hash", "state_root", "supply"):
            self.assertEqual(summary[field], expected[field], field)
        for kind in model.OP_KINDS:
            # The chain predates the adoption of disclosure keys (see the KeyAdoption tests).
            if kind != "adopt-disclosure-key":
                self.assertGreaterEqual(summary["ops"][kind], 1, kind)
        genesis_text, blocks, framing = model.chain_file(data)
        self.assertIsNone(framing)
        at = 8 + 4 + len(genesis_text) + 4 + len(blocks[0]) + 4
        header_length = len(model.block(blocks[1])["header"]["raw"])
        altered = bytearray(data)
        altered[at + header_length + 32 + 5] ^= 1
        with self.assertRaises(replay.Invalid) as refused:
            verify_chain.verify(bytes(altered))
        self.assertEqual(refused.exception.height, 2)
        # A length that runs past the end: the file is read up to it, and the block it
        # would have been is named, as a replay reading record by record names it.
        cut = bytearray(data[: at - 4 + 100])
        with self.assertRaises(replay.Invalid) as refused:
            verify_chain.verify(bytes(cut))
        self.assertEqual(refused.exception.height, 2)
        self.assertIn("truncated record", refused.exception.reason)


class Genesis(unittest.TestCase):
    """The genesis of docs/vectors/chain.hv, and copies of it that genesis rules refuse."""

    def setUp(self):
        self.text, _, _ = model.chain_file((VECTORS / "chain.hv").read_bytes())

    def refused(self, text):
        with self.assertRaises(genesis.GenesisError):
            genesis.load(text)

    def test_the_real_genesis_loads(self):
        params = genesis.load(self.text)
        self.assertEqual(params["chain_id"], "halfveil-testnet")
        self.assertEqual(len(params["validator_keys"]), 1)

    def test_altered_copies_are_refused(self):
        value = json.loads(self.text)
        self.refused(self.text.replace(b'\n  "signatures"', b'\n    "signatures"'))  # not canonical
        for change in (
            lambda g: g["body"].__setitem__("chain_id", "another-chain"),  # signatures break
            lambda g: g["signatures"].__setitem__("banks", g["signatures"]["banks"][:-1]),
            lambda g: g["body"]["banks"][0].__setitem__("peer_id", "12D3KooW"),
            lambda g: g["body"]["disclosure_key"].__setitem__("threshold", 1),
            lambda g: g["body"]["disclosure_key"]["holders"][-1].__setitem__(
                "share_key", g["body"]["disclosure_key"]["holders"][0]["share_key"]
            ),
            # An empty optional list is left out, never written as [] (in its place).
            lambda g: g.__setitem__("body", {
                k2: v2 for k, v in g["body"].items()
                for k2, v2 in ([(k, v), ("identity_manager_replicas", [])] if k == "identity_manager" else [(k, v)])
            }),
            lambda g: g["body"]["limits"].__setitem__("memo_bytes_max", 257),
        ):
            copy = json.loads(json.dumps(value))
            change(copy)
            self.refused(genesis.canonical_text(copy).encode())

    def test_peer_ids(self):
        self.assertEqual(
            genesis.peer_id("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "p")[:2], b"\x12\x20"
        )
        for bad in ("", "0OIl", "1111", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5"):
            with self.assertRaises(genesis.GenesisError):
                genesis.peer_id(bad, "p")


class KeyAdoption(unittest.TestCase):
    """The adopt-disclosure-key op: its vector, and its rules on the genesis of
    docs/vectors/chain.hv (auditors 0-2 hold shares 1-3 and the IM share 4, any 3 open, 2
    auditors must agree), with its auditor and IM keys replaced by keys this test signs with."""

    def setUp(self):
        text, _, _ = model.chain_file((VECTORS / "chain.hv").read_bytes())
        self.params = params = genesis.load(text)
        self.signers = {("auditor", i): SigningKey(bytes([i + 1]) * 32) for i in range(3)}
        self.signers[model.IM] = SigningKey(bytes([4]) * 32)
        params["auditor_keys"] = [bytes(self.signers[("auditor", i)].verify_key) for i in range(3)]
        params["validator_keys"] = [bytes(self.signers[model.IM].verify_key)]
        self.state = replay.State(params)
        self.parties = params["disclosure_key"]["parties"]
        self.genesis_key = params["disclosure_key"]["key"]

    def held(self, key, parties=None):
        value = {"key": key, "parties": self.parties if parties is None else parties}
        return decode(lambda r: model.spanned(r, model.held_key), encode_held(value).hex())

    def adoption(self, held, signers=None):
        message = keys.message(self.params["chain_id"], held)
        signers = held["parties"] if signers is None else signers
        op = {"held": held, "signatures": [self.signers[party].sign(message).signature for party in signers]}
        return decode(model.op, encode_adoption_op(op).hex())

    def refused(self, held, reason):
        with self.assertRaises(keys.Refused) as refused:
            self.state.keys.check_successor(self.params, held)
        self.assertIn(reason, str(refused.exception))

    def block(self):
        """A block's run after the state (ops are called on it one by one)."""
        header = {"height": self.state.height + 1, "time": self.state.time + 1_000}
        return replay.Block(self.params, self.state, {"header": header, "attestations": [], "ops": []})

    def invalid(self, call, reason):
        with self.assertRaises(replay.Invalid) as refused:
            call()
        self.assertIn(reason, refused.exception.reason)

    def test_vector(self):
        v = load("adoption")
        op = decode(model.op, v["adopt key op"])
        self.assertEqual(op["kind"], "adopt-disclosure-key")
        self.assertEqual(encode_adoption_op(op).hex(), v["adopt key op"])
        self.assertEqual(op["held"]["raw"].hex(), v["held key"])
        self.assertEqual(encode_held(op["held"]).hex(), v["held key"])
        self.assertEqual(op["held"]["parties"], [("auditor", 0), ("auditor", 2), model.IM])
        self.assertEqual(keys.numbers(op["held"]), [1, 2, 3])
        message = keys.message("halfveil-golden", op["held"])
        self.assertEqual(message.hex(), v["adoption message"])
        self.assertEqual(hashing.h("halfveil v1 op hash", op["raw"]).hex(), v["adopt key op hash"])
        # golden.rs signs with bank_key(), the Ed25519 seed [9; 32] (signing is deterministic).
        signer = SigningKey(bytes([9]) * 32)
        self.assertEqual(op["signatures"], [signer.sign(message).signature] * 3)
        self.assertTrue(verify(bytes(signer.verify_key), message, op["signatures"][0]))
        with self.assertRaises(wire.DecodeError):  # a holder party is variant 0 or 1
            decode(model.holder_party, "02")

    def test_genesis_key_and_its_parties(self):
        self.assertEqual(self.parties, [("auditor", 0), ("auditor", 1), ("auditor", 2), model.IM])
        self.assertEqual(self.state.keys.epoch(), 0)
        self.assertEqual(self.state.keys.signer(self.params, 4), self.params["validator_keys"][0])
        self.assertEqual(self.state.keys.signer(self.params, 2), self.params["auditor_keys"][1])
        self.assertIsNone(self.state.keys.signer(self.params, 5))

    def test_refreshes_and_epochs_kept(self):
        chain = self.state.keys
        dropped = self.held(refreshed(self.genesis_key, [1, 2, 4], 5), [self.parties[i] for i in (0, 1, 3)])
        chain.check_successor(self.params, dropped)
        chain.check_successor(self.params, self.held(fresh_key(1, 3, [1, 2, 3, 4], 11)))
        chain.adopt(dropped)
        self.assertEqual(len(chain.epochs), 1, "a refresh replaces its epoch's key")
        self.assertIsNone(chain.party_of(3), "auditor 2 holds no share of a kept key now")
        self.refused(self.held(refreshed(dropped["key"], [1, 2, 3, 4], 6)), "a refresh cannot add holders")
        # No kept key uses number 3 any more: auditor 2 may come back under another number.
        parties = [self.parties[i] for i in (0, 1, 3)] + [("auditor", 2)]
        renumbered = self.held(fresh_key(1, 3, [1, 2, 4, 5], 12), parties)
        chain.check_successor(self.params, renumbered)
        chain.adopt(renumbered)
        self.assertEqual((len(chain.epochs), chain.epoch()), (2, 1))
        self.assertEqual(chain.epochs[0], dropped, "epoch 0's latest key is kept")
        self.assertEqual(chain.signer(self.params, 5), self.params["auditor_keys"][2])
        self.refused(self.held(fresh_key(1, 3, [1, 2, 3, 4], 13), self.parties), "holder 3 is auditor 2 here")
        # A new epoch's group key is new to every kept key, not only the current one.
        again = refreshed(dropped["key"], [1, 2, 4], 7) | {"epoch": 2, "refresh": 0}
        self.refused(self.held(again, dropped["parties"]), "a new epoch needs a new group key")

    def test_successors_refused(self):
        key, parties = self.genesis_key, self.parties
        im_last = [("auditor", 0), ("auditor", 1), ("auditor", 2), model.IM]
        swapped = [("auditor", 1), ("auditor", 0), ("auditor", 2), model.IM]
        fresh = fresh_key(1, 3, [1, 2, 3, 4], 11)
        cases = [
            (refreshed(key, [1, 2, 3, 4], 5) | {"refresh": 2}, parties, "must be refresh 1"),
            (refreshed(key, [1, 2, 3, 4], 5) | {"threshold": 4}, parties, "keeps the group key and the threshold"),
            (refreshed(key, [1, 2, 3, 4], 5) | {"epoch": 1, "refresh": 0}, parties, "needs a new group key"),
            (fresh_key(2, 3, [1, 2, 3, 4], 11), parties, "epoch 0's next refresh or epoch 1 refresh 0"),
            (fresh | {"refresh": 1}, parties, "epoch 0's next refresh or epoch 1 refresh 0"),
            (fresh, swapped, "holder 1 is auditor 1 here but holder 1 is auditor 0 on chain"),
            (fresh_key(1, 2, [1, 2, 3, 4], 11), im_last, "it must be at least 3"),
            (fresh_key(1, 3, [1, 2, 3, 5], 11), im_last[:3] + [("auditor", 3)], "auditor 3 is not in genesis"),
            (fresh_key(1, 3, [1, 2, 3, 5], 11), im_last[:3] + [("auditor", 0)], "auditor 0 holds two shares"),
            (fresh, im_last[:3], "one party per holder"),
            (fresh | {"threshold": 5}, parties, "threshold 5 does not fit 4 holders"),
            (fresh | {"holders": fresh["holders"][1::-1] + fresh["holders"][2:]}, parties, "numbered"),
            (fresh | {"group_key": key["group_key"]}, parties, "do not interpolate to the group key"),
            (fresh | {"group_key": bytes(32)}, parties, "the identity point"),
            (fresh | {"group_key": b"\xff" * 32}, parties, "not a valid ristretto255 point"),
        ]
        for new, holders, reason in cases:
            with self.subTest(reason):
                self.refused(self.held(new, holders), reason)
        # Without the IM, any 2 of the auditors may open: the auditor threshold is met.
        self.state.keys.check_successor(self.params, self.held(fresh_key(1, 2, [1, 2, 3], 11), im_last[:3]))

    def test_the_op_and_when_its_key_becomes_current(self):
        held = self.held(fresh_key(1, 3, [1, 2, 3, 4], 11))
        message = keys.message(self.params["chain_id"], held)
        run = self.block()
        self.invalid(lambda: run.adopt_disclosure_key(self.adoption(held, self.parties[:3])), "one signature per holder")
        swapped = [self.parties[i] for i in (1, 0, 2, 3)]
        self.invalid(lambda: run.adopt_disclosure_key(self.adoption(held, swapped)), "holder 1's adoption")
        self.state.records.add(message)
        self.invalid(lambda: run.adopt_disclosure_key(self.adoption(held)), "adopted before")
        self.state.records.clear()
        run.adopt_disclosure_key(self.adoption(held))
        self.assertEqual(run.records, [message])
        refresh = self.held(refreshed(held["key"], [1, 2, 3, 4], 5))
        self.invalid(lambda: run.adopt_disclosure_key(self.adoption(refresh)), "at most one disclosure key")
        # The block's own ops still use the old key.
        self.assertEqual(self.state.keys.epoch(), 0)
        self.invalid(lambda: run.transfer(self.transfer(run, epoch=1)), "sealed to key epoch 1, the key is epoch 0")
        self.invalid(lambda: run.transfer(self.transfer(run, epoch=0)), "attestation 0 missing")

    def test_a_block_adopting_a_key(self):
        held = self.held(fresh_key(1, 3, [1, 2, 3, 4], 11))
        self.apply_block([self.adoption(held)], records=[keys.message(self.params["chain_id"], held)])
        self.assertEqual(self.state.keys.epoch(), 1)
        self.assertEqual(self.state.keys.current(), held)
        self.assertEqual(len(self.state.keys.epochs), 2)
        run = self.block()
        self.invalid(lambda: run.transfer(self.transfer(run, epoch=0)), "sealed to key epoch 0, the key is epoch 1")
        self.invalid(lambda: run.transfer(self.transfer(run, epoch=1)), "attestation 0 missing")
        # An identity record (of another chain, sealed to epoch 1): now refused by its proof
        # only, where before the adoption its epoch was wrong.
        opened = decode(model.op, load("encodings")["open account op"])
        opened["identity_record"] = decode(model.sealed(model.RECORD_BODY_BYTES), load("threshold")["identity record"])
        self.invalid(lambda: run.open_account(opened), "proof does not verify")
        self.state = replay.State(self.params)
        self.invalid(lambda: self.block().open_account(opened), "sealed to key epoch 1, the key is epoch 0")

    def transfer(self, run, epoch):
        """A transfer between two accounts put in the state, its credential sealed to `epoch`
        (the rules after the epoch's need attestations: it stops at them)."""
        payer, payee = bytes([1]) * 32, bytes([2]) * 32
        for account in (payer, payee):
            self.state.accounts[account] = (bytes(32), 0, 10, False)
        transfer = {
            "version": replay.VERSION, "chain_id": self.params["chain_id"], "payer": payer, "payee": payee,
            "amount": 1, "nonce": 0, "expires_at": run.time + 1_000, "memo": b"", "raw": b"",
        }
        credential = {"capsule": {"epoch": epoch}, "raw": b""}
        return {"transfer": transfer, "identity_credential": credential, "payer_ok": 0, "payee_ok": 1}

    def apply_block(self, ops, records):
        """Makes, signs (as the IM) and applies the next block of `ops`, which add `records`."""
        state, params = self.state, self.params
        lthash = state.lthash.copy()
        for record in records:
            lthash.add(hashing.record_leaf(record))
        header = (
            bytes([replay.VERSION]) + wire.string(params["chain_id"]) + wire.varint(state.height + 1)
            + state.head + wire.varint(state.time + 1_000)
            + hashing.merkle_root([hashing.h("halfveil v1 op hash", op["raw"]) for op in ops])
            + hashing.merkle_root([]) + hashing.state_root(lthash, state.supply) + wire.varint(len(ops))
        )
        signer = self.signers[model.IM]
        signature = signer.sign(hashing.h("halfveil v1 block hash", header)).signature
        body = wire.varint(0) + wire.varint(len(ops)) + b"".join(op["raw"] for op in ops)
        replay.apply(params, state, header + bytes(signer.verify_key) + signature + body, state.height + 1)


if __name__ == "__main__":
    unittest.main()
