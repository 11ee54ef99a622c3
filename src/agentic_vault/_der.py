"""Strict DER decoding of what KMS returns: an ECDSA signature and a public key.

The public key (once per process) is decoded with pyasn1 against an explicit
schema, then re-encoded, and the exact input bytes are required back: DER has
one encoding per value, so that single comparison rejects non-minimal lengths,
padded or non-minimal integers, indefinite lengths and any other non-canonical
form; trailing bytes are refused separately. A signature (once per signing) is
two small INTEGERs in a SEQUENCE, parsed by hand to the same rules; the tests
hold the two parsers to identical verdicts on fuzzed input.
"""

from __future__ import annotations

from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import namedtype, univ

from ._errors import KmsKeyInvalid, MalformedDer

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

ID_EC_PUBLIC_KEY = univ.ObjectIdentifier("1.2.840.10045.2.1")
ID_SECP256K1 = univ.ObjectIdentifier("1.3.132.0.10")

# Named curves and algorithms an operator may have picked by mistake, so the
# error can say which key they have.
_KNOWN_CURVES = {
    "1.2.840.10045.3.1.7": "ECC_NIST_P256",
    "1.3.132.0.34": "ECC_NIST_P384",
    "1.3.132.0.35": "ECC_NIST_P521",
    "1.2.156.10197.1.301": "SM2",
}
_KNOWN_ALGORITHMS = {
    "1.2.840.113549.1.1.1": "an RSA key",
    "1.2.840.10045.2.1": "an elliptic-curve key",
}
_WANTED = "an ECC_SECG_P256K1 key with key usage SIGN_VERIFY"


class _AlgorithmIdentifier(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("algorithm", univ.ObjectIdentifier()),
        namedtype.OptionalNamedType("parameters", univ.Any()),
    )


class _SubjectPublicKeyInfo(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("algorithm", _AlgorithmIdentifier()),
        namedtype.NamedType("subjectPublicKey", univ.BitString()),
    )


def _decode_canonical(blob: bytes, spec: univ.Sequence, what: str) -> univ.Sequence:
    """Decode ``blob`` against ``spec``; refuse anything that is not canonical DER."""
    if not isinstance(blob, bytes | bytearray) or not blob:
        raise MalformedDer(f"the {what} from KMS is empty or not bytes")
    blob = bytes(blob)
    try:
        value, rest = der_decoder.decode(blob, asn1Spec=spec)
        if rest:
            raise MalformedDer(f"the {what} from KMS has {len(rest)} trailing bytes")
        canonical = der_encoder.encode(value)
    except PyAsn1Error as exc:
        raise MalformedDer(f"the {what} from KMS is not valid DER ({exc})") from exc
    if canonical != blob:
        raise MalformedDer(f"the {what} from KMS is not in canonical DER form")
    return value


def decode_ecdsa_signature(der: bytes) -> tuple[int, int]:
    """Return ``(r, s)`` from a DER ``ECDSA-Sig-Value``; both in ``[1, n-1]``.

    Parsed by hand (it runs once per signature; pyasn1 costs a quarter of a
    millisecond here), to the same strict rules the pyasn1 path enforces, which
    the tests check byte for byte on fuzzed input: short-form lengths (a
    signature never needs the long form), minimal positive integers, nothing
    after the sequence.

    >>> decode_ecdsa_signature(bytes.fromhex("3006020101020102"))
    (1, 2)
    """
    if not isinstance(der, bytes | bytearray) or not der:
        raise MalformedDer("the signature from KMS is empty or not bytes")
    der = bytes(der)
    if len(der) < 2 or der[0] != 0x30 or der[1] >= 0x80 or der[1] != len(der) - 2:
        raise MalformedDer("the signature from KMS is not one canonical DER SEQUENCE")
    r, after_r = _der_integer(der, 2, "r")
    s, after_s = _der_integer(der, after_r, "s")
    if after_s != len(der):
        raise MalformedDer("the signature from KMS has more than two INTEGERs")
    return r, s


def _der_integer(der: bytes, at: int, name: str) -> tuple[int, int]:
    """The minimal, positive DER INTEGER at ``at`` (in ``[1, n-1]``), and where it ends."""
    if at + 2 > len(der) or der[at] != 0x02 or der[at + 1] >= 0x80:
        raise MalformedDer(f"the signature from KMS has no canonical INTEGER {name}")
    start, end = at + 2, at + 2 + der[at + 1]
    body = der[start:end]
    if not body or end > len(der):
        raise MalformedDer(f"the signature from KMS has a truncated INTEGER {name}")
    if body[0] & 0x80:
        raise MalformedDer(f"the signature from KMS has a negative {name}")
    if len(body) > 1 and body[0] == 0 and not body[1] & 0x80:
        raise MalformedDer(f"the signature from KMS has a non-minimal INTEGER {name}")
    value = int.from_bytes(body, "big")
    if not 0 < value < SECP256K1_N:
        raise MalformedDer(f"the signature from KMS has {name} outside [1, n-1] for secp256k1")
    return value, end


def encode_ecdsa_signature(r: int, s: int) -> bytes:
    """The DER ``ECDSA-Sig-Value`` of ``(r, s)``, the form libsecp256k1 verifies.

    >>> encode_ecdsa_signature(0x80, 1).hex()
    '300702020080020101'
    """
    body = _der_positive(r) + _der_positive(s)
    return bytes([0x30, len(body)]) + body


def _der_positive(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    if raw[0] & 0x80:
        raw = b"\x00" + raw
    return bytes([0x02, len(raw)]) + raw


def decode_secp256k1_public_key(spki: bytes) -> bytes:
    """Return the 65-byte uncompressed point ``04 || X || Y`` of a secp256k1 SPKI.

    Refuses any other algorithm or curve (``KmsKeyInvalid``, naming what was
    found), a malformed blob and a point that is not on the curve
    (``MalformedDer``).
    """
    value = _decode_canonical(spki, _SubjectPublicKeyInfo(), "public key")
    algorithm = value["algorithm"]["algorithm"]
    if algorithm != ID_EC_PUBLIC_KEY:
        raise _not_secp256k1(_KNOWN_ALGORITHMS.get(str(algorithm), f"algorithm {algorithm}"))
    parameters = value["algorithm"]["parameters"]
    if not parameters.isValue:
        raise MalformedDer("the public key from KMS names no elliptic curve")
    curve = _decode_canonical(bytes(parameters), univ.ObjectIdentifier(), "curve identifier")
    if curve != ID_SECP256K1:
        raise _not_secp256k1(_KNOWN_CURVES.get(str(curve), f"on curve {curve}"))
    bits = value["subjectPublicKey"]
    if len(bits) != 65 * 8:
        raise MalformedDer(
            f"the public key from KMS is {len(bits)} bits; an uncompressed secp256k1 "
            "point is 520 bits"
        )
    point = bytes(bits.asOctets())
    if point[0] != 0x04:
        raise MalformedDer("the public key from KMS is not an uncompressed point")
    _require_on_curve(point)
    return point


def _not_secp256k1(found: str) -> KmsKeyInvalid:
    return KmsKeyInvalid(
        f"the KMS key is {found}; agentic-vault needs {_WANTED} (secp256k1, the "
        "Ethereum curve). Create one with `aws kms create-key --key-spec "
        "ECC_SECG_P256K1 --key-usage SIGN_VERIFY` and point --key-id at it."
    )


def _require_on_curve(point: bytes) -> None:
    from coincurve import PublicKey

    try:
        PublicKey(point)
    except ValueError as exc:
        raise MalformedDer("the public key from KMS is not a point on secp256k1") from exc
