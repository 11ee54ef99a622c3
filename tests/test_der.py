"""Strict DER: signatures round-trip with cryptography's encoder; anything else is refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import namedtype, univ

from agentic_vault import KmsKeyInvalid, MalformedDer, VaultError
from agentic_vault._der import (
    SECP256K1_N,
    decode_ecdsa_signature,
    decode_secp256k1_public_key,
    encode_ecdsa_signature,
)

scalars = st.one_of(
    st.integers(min_value=1, max_value=SECP256K1_N - 1),
    st.integers(min_value=1, max_value=2**64),  # short values
    st.integers(min_value=2**255, max_value=SECP256K1_N - 1),  # top bit set: leading 0x00
    st.sampled_from([1, 0x7F, 0x80, 0xFF, 0x100, 2**255 - 1, 2**255, SECP256K1_N - 1]),
)


@settings(max_examples=500)
@given(r=scalars, s=scalars)
def test_signatures_round_trip_with_cryptography(r: int, s: int) -> None:
    der = encode_dss_signature(r, s)
    assert decode_ecdsa_signature(der) == (r, s)
    assert encode_ecdsa_signature(r, s) == der


def test_leading_zero_is_kept_exactly_when_the_top_bit_is_set() -> None:
    der = encode_dss_signature(0x80, 0x7F)
    assert der == bytes.fromhex("3007020200800201" + "7f")
    assert decode_ecdsa_signature(der) == (0x80, 0x7F)


@pytest.mark.parametrize(
    ("name", "blob"),
    [
        ("trailing byte", bytes.fromhex("300602010102010200")),
        ("long-form length that fits short form", bytes.fromhex("30810602010102010" + "2")),
        ("integer with a redundant leading zero", bytes.fromhex("300702020001020102")),
        ("negative r", bytes.fromhex("30060201ff020102")),
        ("zero r", bytes.fromhex("3006020100020102")),
        ("zero s", bytes.fromhex("3006020101020100")),
        ("indefinite length", bytes.fromhex("30800201010201020000")),
        ("three integers", bytes.fromhex("3009020101020102020103")),
        ("one integer", bytes.fromhex("3003020101")),
        ("wrong outer tag", bytes.fromhex("3106020101020102")),
        ("octet string inside", bytes.fromhex("3006040101020102")),
        ("empty", b""),
        ("truncated", bytes.fromhex("30060201010201")),
    ],
)
def test_malformed_signatures_are_refused(name: str, blob: bytes) -> None:
    with pytest.raises(MalformedDer):
        decode_ecdsa_signature(blob)


@pytest.mark.parametrize("value", [SECP256K1_N, SECP256K1_N + 1, 2**256 - 1])
def test_scalars_at_or_above_the_group_order_are_refused(value: int) -> None:
    with pytest.raises(MalformedDer):
        decode_ecdsa_signature(encode_dss_signature(value, 1))
    with pytest.raises(MalformedDer):
        decode_ecdsa_signature(encode_dss_signature(1, value))


@settings(max_examples=3000)
@given(blob=st.binary(max_size=160))
@example(blob=b"\x30\x84\xff\xff\xff\xff")
@example(blob=b"\x30" + b"\x80" * 100)
def test_arbitrary_bytes_raise_only_our_error(blob: bytes) -> None:
    try:
        r, s = decode_ecdsa_signature(blob)
    except MalformedDer:
        return
    assert encode_dss_signature(r, s) == blob  # accepted only when canonical


@settings(max_examples=2000)
@given(r=scalars, s=scalars, data=st.data())
def test_mutated_signatures_are_canonical_or_refused(r: int, s: int, data: st.DataObject) -> None:
    blob = bytearray(encode_dss_signature(r, s))
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] = data.draw(st.integers(0, 255))
    try:
        r2, s2 = decode_ecdsa_signature(bytes(blob))
    except MalformedDer:
        return
    assert encode_dss_signature(r2, s2) == bytes(blob)


def _spki(private_key: object) -> bytes:
    public = private_key.public_key()  # type: ignore[attr-defined]
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def test_secp256k1_public_key_is_the_uncompressed_point() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    numbers = key.public_key().public_numbers()
    point = decode_secp256k1_public_key(_spki(key))
    assert point == b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ECC_NIST_P256"),
        (ec.generate_private_key(ec.SECP384R1()), "ECC_NIST_P384"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA"),
        (ed25519.Ed25519PrivateKey.generate(), "algorithm 1.3.101.112"),
    ],
    ids=["p256", "p384", "rsa", "ed25519"],
)
def test_other_keys_are_refused_naming_what_they_are(key: object, named: str) -> None:
    with pytest.raises(KmsKeyInvalid) as caught:
        decode_secp256k1_public_key(_spki(key))
    assert named in str(caught.value)
    assert "ECC_SECG_P256K1" in str(caught.value)


def _good_spki() -> bytes:
    return _spki(ec.generate_private_key(ec.SECP256K1()))


def test_truncated_blob_is_refused() -> None:
    spki = _good_spki()
    for cut in (1, 2, 10, len(spki) - 1):
        with pytest.raises(MalformedDer):
            decode_secp256k1_public_key(spki[:-cut])


def test_padded_blob_is_refused() -> None:
    with pytest.raises(MalformedDer):
        decode_secp256k1_public_key(_good_spki() + b"\x00")


def test_off_curve_point_is_refused() -> None:
    spki = bytearray(_good_spki())
    spki[-1] ^= 0x01  # y no longer matches x
    with pytest.raises(MalformedDer, match="not a point on secp256k1"):
        decode_secp256k1_public_key(bytes(spki))


def test_compressed_point_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    compressed = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    # The SPKI header for a 33-byte point: same prefix, shorter BIT STRING.
    header = bytes.fromhex("3036301006072a8648ce3d020106052b8104000a032200")
    with pytest.raises(MalformedDer):
        decode_secp256k1_public_key(header + compressed)


@settings(max_examples=2000)
@given(blob=st.binary(max_size=120))
def test_arbitrary_public_key_bytes_raise_only_our_errors(blob: bytes) -> None:
    try:
        decode_secp256k1_public_key(blob)
    except VaultError:
        return
    pytest.fail("random bytes parsed as a secp256k1 public key")


@settings(max_examples=1000)
@given(data=st.data())
def test_mutated_public_keys_raise_only_our_errors(data: st.DataObject) -> None:
    blob = bytearray(_GOOD)
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] = data.draw(st.integers(0, 255))
    try:
        point = decode_secp256k1_public_key(bytes(blob))
    except VaultError:
        return
    assert point == decode_secp256k1_public_key(_GOOD)  # only a no-op mutation may pass


_GOOD = _good_spki()


# -- the hand-written signature parser against pyasn1 -----------------------------------


class _SigValue(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("r", univ.Integer()), namedtype.NamedType("s", univ.Integer())
    )


def _pyasn1_verdict(blob: bytes) -> tuple[int, int] | None:
    """What a strict pyasn1 decode makes of ``blob``: (r, s) in range, or None (refused)."""
    try:
        value, rest = der_decoder.decode(blob, asn1Spec=_SigValue())
        if rest or der_encoder.encode(value) != blob:
            return None
    except PyAsn1Error:
        return None
    r, s = int(value["r"]), int(value["s"])
    return (r, s) if 0 < r < SECP256K1_N and 0 < s < SECP256K1_N else None


def _ours(blob: bytes) -> tuple[int, int] | None:
    try:
        return decode_ecdsa_signature(blob)
    except MalformedDer:
        return None


def _mutations(der: bytes) -> st.SearchStrategy[bytes]:
    """Valid signatures with one byte changed, inserted or removed, or cut short."""
    positions = st.integers(min_value=0, max_value=len(der) - 1)
    return st.one_of(
        st.tuples(positions, st.integers(0, 255)).map(
            lambda pv: der[: pv[0]] + bytes([pv[1]]) + der[pv[0] + 1 :]
        ),
        st.tuples(positions, st.integers(0, 255)).map(
            lambda pv: der[: pv[0]] + bytes([pv[1]]) + der[pv[0] :]
        ),
        positions.map(lambda p: der[:p] + der[p + 1 :]),
        positions.map(lambda p: der[:p]),
    )


@settings(max_examples=3000)
@given(
    blob=st.one_of(
        st.binary(max_size=80),
        st.tuples(scalars, scalars).flatmap(lambda rs: _mutations(encode_dss_signature(*rs))),
        st.tuples(scalars, scalars).map(lambda rs: encode_dss_signature(*rs)),
    )
)
@example(blob=bytes.fromhex("30810602010102010" + "2"))
@example(blob=bytes.fromhex("300702020001020102"))
def test_the_hand_written_parser_agrees_with_pyasn1(blob: bytes) -> None:
    assert _ours(blob) == _pyasn1_verdict(blob)


@settings(max_examples=500)
@given(r=scalars, s=scalars)
def test_the_hand_written_encoder_agrees_with_pyasn1(r: int, s: int) -> None:
    value = _SigValue()
    value["r"], value["s"] = r, s
    assert encode_ecdsa_signature(r, s) == bytes(der_encoder.encode(value))
