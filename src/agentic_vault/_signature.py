"""From KMS's DER signature to an Ethereum signature: pure steps, no I/O.

``kms_signature_to_eth`` is the pipeline: decode the DER (strictly), apply
EIP-2 low-s, find the recovery parity by recovering the public key for parity
0 and 1 and keeping the one that is ours, then verify the final signature with
libsecp256k1 before anyone sees it. No match means the signature is wrong, and
it is refused; we never guess a parity.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._der import SECP256K1_N, decode_ecdsa_signature, encode_ecdsa_signature
from ._errors import InternalError

HALF_N = SECP256K1_N // 2


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
    """The parity (0 or 1) for which ``(r, s)`` over ``digest`` recovers ``public_key``."""
    from coincurve import PublicKey

    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    for parity in (0, 1):
        try:
            candidate = PublicKey.from_signature_and_message(
                compact + bytes([parity]), digest, hasher=None
            )
        except ValueError:
            continue
        if candidate.format(compressed=False) == public_key:
            return parity
    raise InternalError(
        f"KMS returned a signature that does not verify against the key's public key "
        f"for digest 0x{digest.hex()}; nothing was signed. Check that --key-id names "
        "the key whose address you expect, and report this if it persists."
    )


def verify_signature(digest: bytes, signature: EthSignature, public_key: bytes) -> bool:
    """libsecp256k1's own verification of a (low-s) signature."""
    from coincurve import PublicKey

    der = encode_ecdsa_signature(signature.r, signature.s)
    return bool(PublicKey(public_key).verify(der, digest, hasher=None))


def kms_signature_to_eth(der: bytes, digest: bytes, public_key: bytes) -> EthSignature:
    """Turn KMS's DER signature of ``digest`` into a verified Ethereum signature."""
    if len(digest) != 32:
        raise InternalError(f"a digest must be 32 bytes, got {len(digest)}")
    r, s, _ = normalize_s(*decode_ecdsa_signature(der))
    signature = EthSignature(r, s, recover_y_parity(digest, r, s, public_key))
    if not verify_signature(digest, signature, public_key):
        raise InternalError(
            f"the signature for digest 0x{digest.hex()} failed final verification; "
            "nothing was signed. Report this: it points at a bug, not at your setup."
        )
    return signature
