"""The disclosure key and its history on chain (ledger/src/disclosure_keys.rs).

Genesis names the first key. An adopt-disclosure-key op, signed by every holder of a new
key, adopts either a refresh (same epoch, group key and threshold, fresh shares, holders
may drop out) or the first key of the next epoch (a new group key, holders and threshold).
The state keeps every epoch's latest key; payers seal to the newest. A holder number names
the same party in every kept key, so a share record's holder number names its signer.

A held key is {"key": {epoch, refresh, threshold, group_key, holders: [{holder,
share_key}]}, "parties": [party, ...]} (points as their 32 bytes), a party being
("auditor", index in genesis) or model.IM.
"""

from . import curve, hashing, model, wire

HOLDERS_MAX = 64
ADOPTION_CONTEXT = "halfveil v1 adopt disclosure key"


class Refused(Exception):
    """A key (or its adoption) breaks a rule; the message says which."""


def party_name(party):
    return "the identity manager" if party == model.IM else f"auditor {party[1]}"


def party_key(params, party):
    """A party's signing key: an auditor's key, or the IM's first validator key; None when
    genesis has no such party."""
    if party == model.IM:
        return params["validator_keys"][0]
    auditors = params["auditor_keys"]
    return auditors[party[1]] if party[1] < len(auditors) else None


def message(chain_id, held):
    """What every holder of an adopted key signs, and the record the state keeps of it: the
    hash of the chain id and the held key's encoding (its decoded "raw")."""
    return hashing.h(ADOPTION_CONTEXT, wire.string(chain_id) + held["raw"])


def threshold_min(auditor_threshold, others):
    """The smallest threshold with which any `threshold` holders include `auditor_threshold`
    auditors, when `others` holders are not auditors."""
    return auditor_threshold + others


def point(raw, what):
    """A ristretto255 point from its canonical encoding, not the identity."""
    decoded = curve.ristretto_decode(raw)
    if decoded is None:
        raise Refused(f"{what}: not a valid ristretto255 point")
    if curve.is_identity(decoded):
        raise Refused(f"{what}: the identity point is not allowed here")
    return decoded


def check_key(key):
    """A key on its own (threshold::DisclosureKey::check): 1 <= threshold <= holders <= 64,
    holder numbers non-zero and increasing, canonical points other than the identity, the
    first `threshold` shares interpolate to the group key at zero and every other share lies
    on their polynomial."""
    holders, threshold = key["holders"], key["threshold"]
    if not 1 <= threshold <= len(holders) <= HOLDERS_MAX:
        raise Refused(f"threshold {threshold} does not fit {len(holders)} holders")
    numbers, shares, previous = [], [], 0
    for holder in holders:
        if holder["holder"] <= previous:
            raise Refused("holders must be numbered non-zero and increasing")
        previous = holder["holder"]
        numbers.append(previous)
        shares.append(point(holder["share_key"], f"holder {previous}'s share key"))
    group = point(key["group_key"], "the group key")
    first, first_shares = numbers[:threshold], shares[:threshold]
    if not curve.ristretto_equal(interpolate(first, first_shares, 0), group):
        raise Refused("the holders' shares do not interpolate to the group key")
    for number, share in zip(numbers[threshold:], shares[threshold:]):
        if not curve.ristretto_equal(interpolate(first, first_shares, number), share):
            raise Refused(f"holder {number}'s share is off the others' polynomial")


def interpolate(numbers, points, at):
    """The share polynomial's value "in the exponent" at `at`, from `points` at `numbers`."""
    total = curve.IDENTITY
    for number, share in zip(numbers, points):
        weight = 1
        for other in numbers:
            if other != number:
                weight = weight * (other - at) * pow(other - number, -1, curve.L) % curve.L
        total = curve.add(total, curve.mul(weight, share))
    return total


def check_held(params, held):
    """A held key on its own (HeldKey::check): the key is sound, one party of genesis per
    holder, each once, and every opening needs the auditor threshold of auditors."""
    check_key(held["key"])
    parties = held["parties"]
    if len(parties) != len(held["key"]["holders"]):
        raise Refused("one party per holder")
    for index, party in enumerate(parties):
        if party_key(params, party) is None:
            raise Refused(f"{party_name(party)} is not in genesis")
        if party in parties[:index]:
            raise Refused(f"{party_name(party)} holds two shares")
    threshold, auditors = held["key"]["threshold"], params["auditor_threshold"]
    needed = threshold_min(auditors, parties.count(model.IM))
    if threshold < needed:
        raise Refused(
            f"threshold {threshold} could open without {auditors} auditors: it must be at least {needed}"
        )


def numbers(held):
    return [holder["holder"] for holder in held["key"]["holders"]]


class DisclosureKeys:
    """The chain's disclosure keys: each epoch's latest held key, oldest first (never empty)."""

    def __init__(self, first):
        self.epochs = [first]

    def current(self):
        """The key payers seal to now."""
        return self.epochs[-1]

    def epoch(self):
        return self.current()["key"]["epoch"]

    def numbered(self):
        """(holder number, party) of every kept key."""
        for held in self.epochs:
            yield from zip(numbers(held), held["parties"])

    def party_of(self, holder):
        """The party holder number `holder` names in any kept key, or None."""
        return next((party for number, party in self.numbered() if number == holder), None)

    def signer(self, params, holder):
        """The signing key of holder number `holder` (of any kept key), or None."""
        party = self.party_of(holder)
        return None if party is None else party_key(params, party)

    def adopt(self, held):
        """A refresh replaces its epoch's key; a new epoch's key is added."""
        if held["key"]["epoch"] == self.epoch():
            self.epochs[-1] = held
        else:
            self.epochs.append(held)

    def check_successor(self, params, held):
        """Every rule of an adoption but its signatures (DisclosureKeys::check_successor)."""
        check_held(params, held)
        self.check_numbers(held)
        self.check_succession(held["key"])

    def check_numbers(self, held):
        """Each holder keeps the number it had, and no number changes hands."""
        for holder, party in zip(numbers(held), held["parties"]):
            for number, named in self.numbered():
                if (number == holder) != (named == party):
                    raise Refused(
                        f"holder {holder} is {party_name(party)} here but holder {number} "
                        f"is {party_name(named)} on chain"
                    )

    def check_succession(self, key):
        """The next refresh of the current key, or the first key of the next epoch."""
        current = self.current()["key"]
        if key["epoch"] == current["epoch"]:
            self.check_refresh(key, current)
            return
        if key["epoch"] != current["epoch"] + 1 or key["refresh"] != 0:
            raise Refused(
                f"the key must be epoch {current['epoch']}'s next refresh "
                f"or epoch {current['epoch'] + 1} refresh 0"
            )
        if any(held["key"]["group_key"] == key["group_key"] for held in self.epochs):
            raise Refused("a new epoch needs a new group key")

    @staticmethod
    def check_refresh(key, current):
        if current["refresh"] == 2**32 - 1:
            raise Refused("no refresh after this one: start a new epoch")
        if key["refresh"] != current["refresh"] + 1:
            raise Refused(f"a refresh of epoch {key['epoch']} must be refresh {current['refresh'] + 1}")
        if key["group_key"] != current["group_key"] or key["threshold"] != current["threshold"]:
            raise Refused("a refresh keeps the group key and the threshold")
        held_now = {holder["holder"] for holder in current["holders"]}
        if any(holder["holder"] not in held_now for holder in key["holders"]):
            raise Refused("a refresh cannot add holders: start a new epoch")
