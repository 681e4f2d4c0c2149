"""Genesis (docs/protocol.md, "Genesis"): its canonical JSON, every field's rule, its hash,
its signatures and the chain parameters a replay needs."""

import json
import re

from . import curve, hashing, keys, model, wire
from .sig import verify

GENESIS_VERSION = 2
NAME = re.compile(r"^[a-z0-9-]{1,32}$")
IM_HOLDER = "identity-manager"

FIELDS = {
    "genesis": ["body", "signatures"],
    "body": [
        "version",
        "chain_id",
        "genesis_time_ms",
        "identity_manager",
        "identity_manager_replicas",
        "banks",
        "auditors",
        "disclosure_key",
        "initial_accounts",
        "limits",
    ],
    "node": ["peer_id", "validator_key"],
    "bank": ["name", "peer_id", "attestation_key"],
    "auditors": ["threshold", "members"],
    "auditor": ["name", "key"],
    "disclosure_key": ["epoch", "refresh", "threshold", "group_key", "holders"],
    "holder": ["holder", "name", "share_key"],
    "account": ["tx_key", "bank", "balance"],
    "limits": [
        "block_ops_max",
        "block_bytes_max",
        "memo_bytes_max",
        "transfer_expiry_ms_max",
        "attestation_ids_max",
        "issue_amount_max",
        "block_time_ahead_ms_max",
    ],
    "signatures": ["identity_manager", "identity_manager_replicas", "banks", "auditors"],
}
OPTIONAL = {"identity_manager_replicas"}
LIMIT_RANGES = {
    "block_ops_max": (1, 65_536, 32),
    "block_bytes_max": (64 * 1024, 32 * 1024 * 1024, 32),
    "memo_bytes_max": (0, 256, 16),
    "transfer_expiry_ms_max": (1_000, 3_600_000, 64),
    "attestation_ids_max": (1, 8_192, 32),
    "issue_amount_max": (1, 2**64 - 1, 64),
    "block_time_ahead_ms_max": (1_000, 3_600_000, 64),
}


class GenesisError(Exception):
    pass


def fields(value, kind):
    """The keys of a JSON object, exactly the schema's in its order; an optional list is
    left out when empty, and present only when not."""
    if not isinstance(value, dict):
        raise GenesisError(f"{kind}: not an object")
    expected = [key for key in FIELDS[kind] if value.get(key) or key not in OPTIONAL]
    if list(value) != expected:
        raise GenesisError(f"{kind}: fields {list(value)}, expected {expected}")
    return value


def integer(value, bits, what):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise GenesisError(f"{what}: not a u{bits}")
    return value


def unhex(text, what):
    try:
        return bytes.fromhex(text)
    except (TypeError, ValueError):
        raise GenesisError(f"{what}: not hex") from None


def key(text, what):
    """An Ed25519 public key: 32 bytes of hex, on the curve, not of small order."""
    raw = unhex(text, what)
    point = curve.decompress_zip215(raw) if len(raw) == 32 else None
    if point is None or curve.is_small_order(point):
        raise GenesisError(f"{what}: not a strong Ed25519 key")
    return raw


BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def peer_id(text, what):
    """A libp2p peer id: base58btc of a multihash (varint code, varint length, digest, nothing
    after) that is SHA-256 (code 0x12) or an inlined key (identity, code 0, <= 42 bytes)."""
    if not isinstance(text, str) or not text or any(c not in BASE58 for c in text):
        raise GenesisError(f"{what}: not a libp2p peer id (base58)")
    number = 0
    for char in text:
        number = number * 58 + BASE58.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = bytes(len(text) - len(text.lstrip("1"))) + body
    try:
        reader = wire.Reader(raw)
        code, size = reader.u64(), reader.u64()
        if size > 64:
            raise wire.DecodeError("digest longer than 64 bytes")
        reader.take(size)
        reader.end()
    except wire.DecodeError as error:
        raise GenesisError(f"{what}: not a libp2p peer id ({error})") from None
    if not (code == 0x12 or (code == 0 and size <= 42)):
        raise GenesisError(f"{what}: not a libp2p peer id (multihash code {code})")
    return raw


def encode_body(body):
    """The body's canonical binary encoding, whose hash is the genesis hash."""
    node = lambda entry: wire.string(entry["peer_id"]) + wire.string(entry["validator_key"])
    seq = lambda items, each: wire.varint(len(items)) + b"".join(each(item) for item in items)
    out = bytes([body["version"]]) + wire.string(body["chain_id"])
    out += wire.varint(body["genesis_time_ms"]) + node(body["identity_manager"])
    if body.get("identity_manager_replicas"):
        out += seq(body["identity_manager_replicas"], node)
    out += seq(
        body["banks"],
        lambda b: wire.string(b["name"]) + wire.string(b["peer_id"]) + wire.string(b["attestation_key"]),
    )
    auditors = body["auditors"]
    out += wire.varint(auditors["threshold"])
    out += seq(auditors["members"], lambda a: wire.string(a["name"]) + wire.string(a["key"]))
    dk = body["disclosure_key"]
    out += wire.varint(dk["epoch"]) + wire.varint(dk["refresh"]) + wire.varint(dk["threshold"])
    out += wire.string(dk["group_key"])
    out += seq(
        dk["holders"],
        lambda h: wire.varint(h["holder"]) + wire.string(h["name"]) + wire.string(h["share_key"]),
    )
    out += seq(
        body["initial_accounts"],
        lambda a: wire.string(a["tx_key"]) + wire.string(a["bank"]) + wire.varint(a["balance"]),
    )
    out += b"".join(wire.varint(body["limits"][name]) for name in FIELDS["limits"])
    return out


def check_shape(genesis):
    fields(genesis, "genesis")
    body = fields(genesis["body"], "body")
    if integer(body["version"], 8, "version") != GENESIS_VERSION:
        raise GenesisError(f"genesis version {body['version']}, this verifier reads {GENESIS_VERSION}")
    for entry in [body["identity_manager"], *body.get("identity_manager_replicas", [])]:
        fields(entry, "node")
    for entry in body["banks"]:
        fields(entry, "bank")
    fields(body["auditors"], "auditors")
    for entry in body["auditors"]["members"]:
        fields(entry, "auditor")
    fields(body["disclosure_key"], "disclosure_key")
    for entry in body["disclosure_key"]["holders"]:
        fields(entry, "holder")
    for entry in body["initial_accounts"]:
        fields(entry, "account")
    fields(body["limits"], "limits")
    fields(genesis["signatures"], "signatures")
    return body


def canonical_text(genesis):
    return json.dumps(genesis, indent=2, ensure_ascii=False) + "\n"


def load(text):
    """The chain parameters of a genesis text, after every check."""
    try:
        genesis = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise GenesisError(f"not JSON: {error}") from None
    body = check_shape(genesis)
    if canonical_text(genesis).encode("utf-8") != text:
        raise GenesisError("not in canonical form")
    params = parameters(body)
    params["genesis_hash"] = hashing.h("halfveil v1 genesis", encode_body(body))
    check_signatures(genesis["signatures"], params)
    return params


def parameters(body):
    if not re.fullmatch(r"[a-z0-9-]{1,32}", body["chain_id"]):
        raise GenesisError("chain_id: 1 to 32 characters of a-z, 0-9 and '-'")
    time = integer(body["genesis_time_ms"], 64, "genesis_time_ms")
    if not 1_577_836_800_000 <= time < 7_258_118_400_000:
        raise GenesisError("genesis_time_ms: between 2020 and 2200 in milliseconds")
    replicas = [body["identity_manager"], *body.get("identity_manager_replicas", [])]
    if len(replicas) not in (1, 3, 5):
        raise GenesisError("an IM has 1, 3 or 5 replicas")
    validators = distinct([key(r["validator_key"], "validator_key") for r in replicas], "validator keys")
    banks = body["banks"]
    if not 1 <= len(banks) <= 1024:
        raise GenesisError("banks: between 1 and 1024")
    distinct([peer_id(node["peer_id"], "peer_id") for node in [*replicas, *banks]], "peer ids")
    names(banks, "banks")
    bank_keys = distinct([key(b["attestation_key"], "attestation_key") for b in banks], "bank keys")
    auditors = body["auditors"]
    members = auditors["members"]
    if not 1 <= len(members) <= 64:
        raise GenesisError("auditors: between 1 and 64")
    threshold = integer(auditors["threshold"], 16, "auditors.threshold")
    if not 1 <= threshold <= len(members):
        raise GenesisError("auditors.threshold: between 1 and the number of auditors")
    names(members, "auditors")
    auditor_keys = distinct([key(a["key"], "auditor key") for a in members], "auditor keys")
    params = {
        "chain_id": body["chain_id"],
        "genesis_time": time,
        "validator_keys": validators,
        "bank_keys": bank_keys,
        "auditor_keys": auditor_keys,
        "auditor_threshold": threshold,
        "limits": limits(body["limits"]),
    }
    params["disclosure_key"] = disclosure_key(body, params)
    params["initial_accounts"] = initial_accounts(body)
    return params


def distinct(keys, what):
    if len(set(keys)) != len(keys):
        raise GenesisError(f"{what}: one key used twice")
    return keys


def names(entries, what):
    seen = [entry["name"] for entry in entries]
    if any(not NAME.match(name) for name in seen) or len(set(seen)) != len(seen):
        raise GenesisError(f"{what}: names are distinct, 1 to 32 characters of a-z, 0-9 and '-'")


def limits(entry):
    out = {}
    for name, (low, high, bits) in LIMIT_RANGES.items():
        value = integer(entry[name], bits, f"limits.{name}")
        if not low <= value <= high:
            raise GenesisError(f"limits.{name}: {value} is outside {low}..={high}")
        out[name] = value
    return out


def disclosure_key(body, params):
    """The genesis key with each holder's party, checked as an adopted key is (sound, each
    holder a distinct party of genesis, every opening needs the auditor threshold)."""
    dk = body["disclosure_key"]
    auditor_names = [a["name"] for a in body["auditors"]["members"]]
    parties = [holder_party(holder["name"], auditor_names) for holder in dk["holders"]]
    held = {
        "key": {
            "epoch": integer(dk["epoch"], 32, "disclosure_key.epoch"),
            "refresh": integer(dk["refresh"], 32, "disclosure_key.refresh"),
            "threshold": integer(dk["threshold"], 16, "disclosure_key.threshold"),
            "group_key": unhex(dk["group_key"], "disclosure_key.group_key"),
            "holders": [
                {"holder": integer(h["holder"], 16, "holder"), "share_key": unhex(h["share_key"], "share_key")}
                for h in dk["holders"]
            ],
        },
        "parties": parties,
    }
    try:
        keys.check_held(params, held)
    except keys.Refused as error:
        raise GenesisError(f"disclosure_key: {error}") from None
    return held


def holder_party(name, auditor_names):
    if name == IM_HOLDER:
        return model.IM
    if name in auditor_names:
        return ("auditor", auditor_names.index(name))
    raise GenesisError(f"holder {name!r}: neither an auditor nor {IM_HOLDER}")


def initial_accounts(body):
    bank_names = [b["name"] for b in body["banks"]]
    accounts, total = [], 0
    for entry in body["initial_accounts"]:
        tx_key = key(entry["tx_key"], "initial account tx_key")
        if entry["bank"] not in bank_names:
            raise GenesisError(f"initial account: no bank named {entry['bank']!r}")
        balance = integer(entry["balance"], 64, "balance")
        total += balance
        if total >= 2**64:
            raise GenesisError("initial accounts: the supply overflows")
        accounts.append((tx_key, bank_names.index(entry["bank"]), balance))
    if len({hashing.account_id(a[0]) for a in accounts}) != len(accounts):
        raise GenesisError("initial accounts: an account listed twice")
    if len(accounts) > 100_000:
        raise GenesisError("initial accounts: at most 100,000")
    return accounts


def check_signatures(signatures, params):
    validators = params["validator_keys"]
    groups = [
        ([signatures["identity_manager"], *signatures.get("identity_manager_replicas", [])], validators),
        (signatures["banks"], params["bank_keys"]),
        (signatures["auditors"], params["auditor_keys"]),
    ]
    for texts, keys in groups:
        if len(texts) != len(keys):
            raise GenesisError(f"genesis: {len(texts)} signatures for {len(keys)} keys")
        for text, signer in zip(texts, keys):
            signature = unhex(text, "a genesis signature")
            if not verify(signer, params["genesis_hash"], signature):
                raise GenesisError(f"a genesis signature by {signer.hex()} does not verify")
