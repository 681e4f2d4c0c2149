"""Ed25519 as the chain checks it: ZIP-215 (docs/protocol.md, "Signatures")."""

import nacl.exceptions
import nacl.signing

from . import curve


def verify(public_key, message, signature):
    """Whether `signature` is a ZIP-215-valid Ed25519 signature of `message` by
    `public_key`. libsodium (strict) decides first; what it refuses, the cofactored check
    of curve.py decides, as ZIP-215 accepts a superset of what libsodium does."""
    try:
        nacl.signing.VerifyKey(bytes(public_key)).verify(bytes(message), bytes(signature))
        return True
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return curve.verify_zip215(bytes(public_key), bytes(message), bytes(signature))


def strong_key(public_key):
    """An account key: it decodes (leniently, as ZIP-215) and is not of small order."""
    point = curve.decompress_zip215(bytes(public_key))
    return point is not None and not curve.is_small_order(point)
