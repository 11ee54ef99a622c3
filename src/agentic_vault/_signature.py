"""From KMS's DER signature to an Ethereum signature: pure steps, no I/O.

``kms_signature_to_eth`` is the pipeline: decode the DER (strictly), apply
EIP-2 low-s, find the recovery parity (one recovery against our cached key, see
``recover_y_parity``), and have libsecp256k1 verify the signature before anyone
sees it. No match means the signature is wrong, and it is refused; we never
guess a parity.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._der import SECP256K1_N, decode_ecdsa_signature, encode_ecdsa_signature
from ._errors import InternalError

HALF_N = SECP256K1_N // 2
SECP256K1_P = 2**256 - 2**32 - 977  # the field prime


@dataclass(frozen=True, slots=True)
class EthSignature:
    """An Ethereum ECDSA signature: ``r``, low ``s`` and the recovery parity."""

    r: int
    s: int
    y_parity: int

    @property
    def v(self) -> int:
        """The ``v`` of ``personal_sign`` and EIP-712 signatures (27 or 28)."""
        return 27 + self.y_parity

    def to_bytes(self) -> bytes:
        """The 65-byte ``r || s || v`` form wallets return."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big") + bytes([self.v])


def normalize_s(r: int, s: int) -> tuple[int, int, bool]:
    """Return ``(r, s', flipped)`` with ``s' <= n/2`` (EIP-2); flipping ``s`` flips the parity."""
    if s > HALF_N:
        return r, SECP256K1_N - s, True
    return r, s, False


def recover_y_parity(digest: bytes, r: int, s: int, public_key: bytes) -> int:
    """The parity (0 or 1) for which ``(r, s)`` over ``digest`` recovers ``public_key``.

    One recovery. Parity 0 gives our key, or else parity 1 does exactly when the
    signature verifies against our key: the point R behind a valid signature has
    x = r and one of the two parities, unless x = r + n, which needs r < p - n
    (a chance of 2^-127); only then is parity 1 checked by a second recovery.
    Neither: refused, never guessed.
    """
    if _recovers(digest, r, s, 0, public_key):
        return 0
    if r < SECP256K1_P - SECP256K1_N:
        if _recovers(digest, r, s, 1, public_key):
            return 1
    elif verify_signature(digest, EthSignature(r, s, 1), public_key):
        return 1
    raise InternalError(
        f"KMS returned a signature that does not verify against the key's public key "
        f"for digest 0x{digest.hex()}; nothing was signed. Check that --key-id names "
        "the key whose address you expect, and report this if it persists."
    )


def _recovers(digest: bytes, r: int, s: int, parity: int, public_key: bytes) -> bool:
    from coincurve import PublicKey

    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([parity])
    try:
        candidate = PublicKey.from_signature_and_message(compact, digest, hasher=None)
    except ValueError:
        return False
    return bool(candidate.format(compressed=False) == public_key)


def verify_signature(digest: bytes, signature: EthSignature, public_key: bytes) -> bool:
    """libsecp256k1's own verification of a (low-s) signature."""
    from coincurve import PublicKey

    der = encode_ecdsa_signature(signature.r, signature.s)
    return bool(PublicKey(public_key).verify(der, digest, hasher=None))


def kms_signature_to_eth(der: bytes, digest: bytes, public_key: bytes) -> EthSignature:
    """Turn KMS's DER signature of ``digest`` into a verified Ethereum signature.

    Every signature is verified by libsecp256k1 before anyone sees it: by the
    recovery step itself for parity 1, by ``verify_signature`` for parity 0.
    """
    if len(digest) != 32:
        raise InternalError(f"a digest must be 32 bytes, got {len(digest)}")
    r, s, _ = normalize_s(*decode_ecdsa_signature(der))
    parity = recover_y_parity(digest, r, s, public_key)
    signature = EthSignature(r, s, parity)
    if parity == 0 and not verify_signature(digest, signature, public_key):
        raise InternalError(
            f"the signature for digest 0x{digest.hex()} failed final verification; "
            "nothing was signed. Report this: it points at a bug, not at your setup."
        )
    return signature
