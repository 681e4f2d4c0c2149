"""The one TDH2 check a replay makes (docs/protocol.md, "Threshold disclosure"): an
identity record's ciphertext is well formed and bound to its account's label, by the
Chaum-Pedersen proof that log_G U = log_H Ū over a merlin transcript."""

from merlin_transcripts import MerlinTranscript

from . import curve, hashing

SECOND_GENERATOR_CONTEXT = "halfveil v1 tdh2 second generator"


def second_generator():
    """H: the one-way map of 64 bytes of blake3's XOF under its context; nobody knows
    log_G H."""
    import blake3

    uniform = blake3.blake3(b"", derive_key_context=SECOND_GENERATOR_CONTEXT).digest(length=64)
    return curve.ristretto_from_uniform(uniform)


H = second_generator()
H_BYTES = curve.ristretto_encode(H)


def record_label(chain_id, account):
    return hashing.h("halfveil v1 identity record label", chain_id.encode() + b"\x00" + account)


def credential_label(chain_id, transfer_id):
    return hashing.h("halfveil v1 identity credential label", chain_id.encode() + b"\x00" + transfer_id)


def point(raw):
    decoded = curve.ristretto_decode(raw)
    if decoded is None or curve.is_identity(decoded):
        return None
    return decoded


def check(epoch, label, capsule, body):
    """None when the ciphertext is valid under `label` at `epoch`, else the reason."""
    if capsule["epoch"] != epoch:
        return f"sealed to key epoch {capsule['epoch']}, the key is epoch {epoch}"
    u, u_bar = point(capsule["u"]), point(capsule["u_bar"])
    if u is None or u_bar is None:
        return "U or Ū is not a ristretto255 point other than the identity"
    c = int.from_bytes(capsule["proof"][:32], "little")
    s = int.from_bytes(capsule["proof"][32:], "little")
    if c >= curve.L or s >= curve.L:
        return "a proof scalar is not canonical"
    commitment_g = curve.add(curve.mul(s, curve.BASE), curve.mul((-c) % curve.L, u))
    commitment_h = curve.add(curve.mul(s, H), curve.mul((-c) % curve.L, u_bar))
    transcript = MerlinTranscript(b"halfveil v1 tdh2 ciphertext")
    transcript.append_message(b"epoch", epoch.to_bytes(4, "little"))
    transcript.append_message(b"label", label)
    transcript.append_message(b"body", body)
    transcript.append_message(b"dom-sep", b"log_eq")
    transcript.append_message(b"K", H_BYTES)
    transcript.append_message(b"[r]G", capsule["u"])
    transcript.append_message(b"[r]K", capsule["u_bar"])
    transcript.append_message(b"[x]G", curve.ristretto_encode(commitment_g))
    transcript.append_message(b"[x]K", curve.ristretto_encode(commitment_h))
    challenge = int.from_bytes(transcript.challenge_bytes(b"c", 64), "little") % curve.L
    if challenge != c:
        return "the ciphertext's proof does not verify under its label"
    return None
