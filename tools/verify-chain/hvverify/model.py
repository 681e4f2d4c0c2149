"""The chain's structures as docs/protocol.md ("Byte layout") lays them out, decoded into
dicts. Each structure whose hash or signature matters keeps its exact bytes in "raw": the
encoding is canonical, so they are the bytes its hash is defined over."""

from .wire import DecodeError, Reader

BLOCK_BYTES_MAX = 32 * 1024 * 1024
CAPSULE_FIELDS = ("epoch", "u", "u_bar", "proof")
CREDENTIAL_BODY_BYTES = 65 + 16
RECORD_BODY_BYTES = 1024 + 16
OP_KINDS = (
    "open-account",
    "issue",
    "transfer",
    "rotate-key",
    "close-account",
    "disclosure-order",
    "disclosure-share",
    "adopt-disclosure-key",
)


def spanned(reader, decode):
    start = reader.at
    value = decode(reader)
    value["raw"] = reader.data[start : reader.at]
    return value


def no_limit(reader):
    return len(reader.data)


def capsule(r):
    return {"epoch": r.u32(), "u": r.take(32), "u_bar": r.take(32), "proof": r.take(64)}


def sealed(body_bytes):
    return lambda r: {"capsule": capsule(r), "body": r.take(body_bytes)}


def transfer(r):
    return {
        "version": r.u8(),
        "chain_id": r.string(no_limit(r), "chain id"),
        "payer": r.take(32),
        "payee": r.take(32),
        "amount": r.u64(),
        "nonce": r.u64(),
        "expires_at": r.u64(),
        "memo": r.byte_string(no_limit(r), "memo"),
    }


def transfer_op(r):
    return {
        "transfer": spanned(r, transfer),
        "tx_credential": r.take(64),
        "identity_credential": spanned(r, sealed(CREDENTIAL_BODY_BYTES)),
        "payer_ok": r.u16(),
        "payee_ok": r.u16(),
    }


def open_account(r):
    return {
        "account": r.take(32),
        "tx_key": r.take(32),
        "bank": r.u16(),
        "holder_signature": r.take(64),
        "bank_signature": r.take(64),
        "identity_record": spanned(r, sealed(RECORD_BODY_BYTES)),
    }


def issue(r):
    return {"to": r.take(32), "amount": r.u64(), "reference": r.u64()}


def rotate_key(r):
    return {
        "account": r.take(32),
        "new_key": r.take(32),
        "nonce": r.u64(),
        "expires_at": r.u64(),
        "old_signature": r.take(64),
        "new_signature": r.take(64),
    }


def close_account(r):
    return {
        "account": r.take(32),
        "nonce": r.u64(),
        "expires_at": r.u64(),
        "signature": r.take(64),
    }


def order(r):
    return {
        "version": r.u8(),
        "chain_id": r.string(no_limit(r), "chain id"),
        "transfer": r.take(32),
        "basis_hash": r.take(32),
        "requester_key": r.take(32),
        "expires_at": r.u64(),
    }


def order_op(r):
    return {
        "order": spanned(r, order),
        "signatures": r.seq(
            no_limit(r), "order signatures", lambda s: {"auditor": s.u16(), "signature": s.take(64)}
        ),
    }


def share_record(r):
    return {
        "order": spanned(r, order),
        "holder": r.u16(),
        "sealed_hash": r.take(32),
        "signature": r.take(64),
    }


def disclosure_key(r):
    return {
        "epoch": r.u32(),
        "refresh": r.u32(),
        "threshold": r.u16(),
        "group_key": r.take(32),
        "holders": r.seq(no_limit(r), "key holders", lambda s: {"holder": s.u16(), "share_key": s.take(32)}),
    }


IM = ("identity-manager", None)


def holder_party(r):
    """("auditor", its index in genesis) or IM."""
    return ("auditor", r.u16()) if r.variant(2, "holder party") == 0 else IM


def held_key(r):
    return {"key": disclosure_key(r), "parties": r.seq(no_limit(r), "holder parties", holder_party)}


def key_adoption(r):
    return {
        "held": spanned(r, held_key),
        "signatures": r.seq(no_limit(r), "adoption signatures", lambda s: s.take(64)),
    }


OP_DECODERS = (
    open_account,
    issue,
    transfer_op,
    rotate_key,
    close_account,
    order_op,
    share_record,
    key_adoption,
)


def op(r):
    def body(r):
        kind = r.variant(len(OP_DECODERS), "op")
        value = OP_DECODERS[kind](r)
        value["kind"] = OP_KINDS[kind]
        return value

    return spanned(r, body)


def attestation(r):
    def body(r):
        return {
            "kind": ("payer-ok", "payee-ok")[r.variant(2, "attestation kind")],
            "bank": r.u16(),
            "ids": r.seq(no_limit(r), "attestation ids", lambda s: s.take(32)),
            "signature": r.take(64),
        }

    return spanned(r, body)


def header(r):
    return {
        "version": r.u8(),
        "chain_id": r.string(no_limit(r), "chain id"),
        "height": r.u64(),
        "parent": r.take(32),
        "time": r.u64(),
        "op_root": r.take(32),
        "attestation_root": r.take(32),
        "state_root": r.take(32),
        "op_count": r.u32(),
    }


def block(data):
    """A block from its canonical bytes: within 32 MiB, nothing left over."""
    r = Reader(data, BLOCK_BYTES_MAX)
    value = {
        "header": spanned(r, header),
        "signer": r.take(32),
        "signature": r.take(64),
        "attestations": r.seq(no_limit(r), "attestations", attestation),
        "ops": r.seq(no_limit(r), "ops", op),
    }
    r.end()
    return value


MAGIC = b"HVCHAIN1"
GENESIS_BYTES_MAX = 1 << 20


def chain_file(data):
    """(genesis text, [block bytes], framing error) of a chain file (docs/protocol.md, "Chain
    file"). Records are read in order, as a replay reads them: a record that cannot be read
    (a length over its bound, a truncated record) ends the list, and the error says why;
    the block it would have been is the one after the last in the list."""
    if data[:8] != MAGIC:
        raise DecodeError("not a halfveil chain file (no HVCHAIN1 magic)")
    at, records, error = 8, [], None
    while at < len(data):
        bound = GENESIS_BYTES_MAX if not records else BLOCK_BYTES_MAX
        if at + 4 > len(data):
            error = f"truncated length at byte {at}"
            break
        length = int.from_bytes(data[at : at + 4], "little")
        if length > bound:
            error = f"record at byte {at} is {length} bytes, more than {bound}"
            break
        if at + 4 + length > len(data):
            error = f"truncated record at byte {at}"
            break
        records.append(data[at + 4 : at + 4 + length])
        at += 4 + length
    if not records:
        raise DecodeError(error or "no genesis in the chain file")
    return records[0], records[1:], error
