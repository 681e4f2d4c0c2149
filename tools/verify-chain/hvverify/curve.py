"""Edwards25519 arithmetic, for the two checks no library here offers.

- ZIP-215 Ed25519 verification (docs/protocol.md, "Signatures"): PyNaCl (libsodium) is
  strict, and every signature it accepts ZIP-215 accepts too, so it is tried first; this
  module decides only what libsodium refuses.
- ristretto255 (RFC 9496): decoding, encoding, the one-way map, for the disclosure key's
  points and the Chaum-Pedersen proof of an identity record's ciphertext.

Plain Python integers in extended coordinates; slow (milliseconds per scalar product) and
fine for replaying a chain of thousands of ops. Not constant time: it handles public data.
"""

import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

IDENTITY = (0, 1, 1, 0)


def inv(x):
    return pow(x, P - 2, P)


def add(a, b):
    """Adds two points in extended coordinates (X, Y, Z, T), the complete formula."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * D * t1 * t2 % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def neg(a):
    x, y, z, t = a
    return ((-x) % P, y, z, (-t) % P)


def mul(scalar, point):
    """scalar * point, for any non-negative integer scalar."""
    result = IDENTITY
    addend = point
    while scalar:
        if scalar & 1:
            result = add(result, addend)
        addend = add(addend, addend)
        scalar >>= 1
    return result


def is_identity(a):
    x, y, z, _ = a
    return x % P == 0 and (y - z) % P == 0


def equal(a, b):
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y, sign):
    """x with x^2 = (y^2 - 1) / (d y^2 + 1) and the given sign bit, or None."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P != 0:
        x = x * SQRT_M1 % P
        if (v * x * x - u) % P != 0:
            return None
    if x & 1 != sign:
        x = (-x) % P
    return x


def decompress_zip215(encoding):
    """An Edwards point from 32 bytes as ZIP-215 reads them: y need not be reduced (y >= p
    is taken mod p) and x = 0 with the sign bit set is accepted. None when not on the curve."""
    if len(encoding) != 32:
        return None
    value = int.from_bytes(encoding, "little")
    sign = value >> 255
    y = (value & ((1 << 255) - 1)) % P
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


BASE = decompress_zip215(
    bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")
)


def is_small_order(point):
    return is_identity(mul(8, point))


def verify_zip215(public_key, message, signature):
    """Ed25519 verification under ZIP-215: A and R decode leniently (above), s < L, and the
    cofactored equation [8][s]B = [8]R + [8][k]A with k = SHA-512(R | A | M) mod L over the
    bytes as given."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a = decompress_zip215(public_key)
    r = decompress_zip215(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % L
    check = add(mul(s, BASE), neg(add(r, mul(k, a))))
    return is_identity(mul(8, check))


# ristretto255 (RFC 9496, section 4).
INVSQRT_A_MINUS_D = 54469307008909316920995813868745141605393597292927456921205312896311721017578
SQRT_AD_MINUS_ONE = 25063068953384623474111414158702152701244531502492656460079210482610430750235
ONE_MINUS_D_SQ = 1159843021668779879193775521855586647937357759715417654439879720876111806838
D_MINUS_ONE_SQ = 40440834346308536858101042469323190826248399146238708352240133220865137265952


def _is_negative(x):
    return (x % P) & 1


def _abs(x):
    x %= P
    return P - x if x & 1 else x


def _sqrt_ratio_m1(u, v):
    """(was_square, r): r = sqrt(u/v) when it exists, else sqrt(i*u/v); r non-negative."""
    u %= P
    v %= P
    r = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    check = v * r * r % P
    correct = check == u
    flipped = check == (-u) % P
    flipped_i = check == (-u * SQRT_M1) % P
    if flipped or flipped_i:
        r = r * SQRT_M1 % P
    return (correct or flipped), _abs(r)


def ristretto_decode(encoding):
    """A ristretto255 element from its canonical 32 bytes, or None (RFC 9496, 4.3.1)."""
    if len(encoding) != 32:
        return None
    s = int.from_bytes(encoding, "little")
    if s >= P or _is_negative(s):
        return None
    ss = s * s % P
    u1 = (1 - ss) % P
    u2 = (1 + ss) % P
    u2_sqr = u2 * u2 % P
    v = (-(D * u1 * u1) - u2_sqr) % P
    was_square, invsqrt = _sqrt_ratio_m1(1, v * u2_sqr)
    den_x = invsqrt * u2 % P
    den_y = invsqrt * den_x * v % P
    x = _abs(2 * s * den_x)
    y = u1 * den_y % P
    t = x * y % P
    if not was_square or _is_negative(t) or y == 0:
        return None
    return (x, y, 1, t)


def ristretto_encode(point):
    """The canonical 32 bytes of a ristretto255 element (RFC 9496, 4.3.2)."""
    x0, y0, z0, t0 = point
    u1 = (z0 + y0) * (z0 - y0) % P
    u2 = x0 * y0 % P
    _, invsqrt = _sqrt_ratio_m1(1, u1 * u2 * u2)
    den1 = invsqrt * u1 % P
    den2 = invsqrt * u2 % P
    z_inv = den1 * den2 * t0 % P
    ix0 = x0 * SQRT_M1 % P
    iy0 = y0 * SQRT_M1 % P
    enchanted_denominator = den1 * INVSQRT_A_MINUS_D % P
    rotate = _is_negative(t0 * z_inv)
    if rotate:
        x, y, den_inv = iy0, ix0, enchanted_denominator
    else:
        x, y, den_inv = x0, y0, den2
    if _is_negative(x * z_inv):
        y = (-y) % P
    s = _abs(den_inv * (z0 - y))
    return s.to_bytes(32, "little")


def _map(t):
    """RFC 9496's MAP from a field element to a ristretto255 element (4.3.4)."""
    r = SQRT_M1 * t * t % P
    u = (r + 1) * ONE_MINUS_D_SQ % P
    v = (-1 - r * D) * (r + D) % P
    was_square, s = _sqrt_ratio_m1(u, v)
    s_prime = (-_abs(s * t)) % P
    if not was_square:
        s, c = s_prime, r
    else:
        c = P - 1
    n = (c * (r - 1) * D_MINUS_ONE_SQ - v) % P
    w0 = 2 * s * v % P
    w1 = n * SQRT_AD_MINUS_ONE % P
    w2 = (1 - s * s) % P
    w3 = (1 + s * s) % P
    return (w0 * w3 % P, w2 * w1 % P, w1 * w3 % P, w0 * w2 % P)


def ristretto_from_uniform(data):
    """The one-way map of 64 uniform bytes (RFC 9496, 4.3.4)."""
    mask = (1 << 255) - 1
    r0 = (int.from_bytes(data[:32], "little") & mask) % P
    r1 = (int.from_bytes(data[32:64], "little") & mask) % P
    return add(_map(r0), _map(r1))


def ristretto_equal(a, b):
    """Equality of ristretto255 elements (RFC 9496, 4.3.3)."""
    x1, y1, _, _ = a
    x2, y2, _, _ = b
    return (x1 * y2 - y1 * x2) % P == 0 or (y1 * y2 - x1 * x2) % P == 0
