"""What the signer returns: immutable values whose JSON is the contract's output."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ._signature import EthSignature


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, serialize_by_alias=True, validate_by_name=True)


def _hex32(number: int) -> str:
    return "0x" + number.to_bytes(32, "big").hex()


class AddressResult(_Result):
    address: str = Field(description="EIP-55 checksummed address of the KMS key")


class SignedMessage(_Result):
    """An EIP-191 signature (``personal_sign`` or EIP-712)."""

    signature: str = Field(description="0x r || s || v, 65 bytes")
    digest: str = Field(description="the 32-byte hash that was signed")
    v: Literal[27, 28]
    r: str = Field(description="32-byte hex")
    s: str = Field(description="32-byte hex, always <= n/2 (EIP-2)")

    @classmethod
    def of(cls, digest: bytes, signature: EthSignature) -> SignedMessage:
        return cls(
            signature="0x" + signature.to_bytes().hex(),
            digest="0x" + digest.hex(),
            v=27 if signature.y_parity == 0 else 28,
            r=_hex32(signature.r),
            s=_hex32(signature.s),
        )


class SignedTransaction(_Result):
    raw_transaction: str = Field(description="signed transaction, ready for eth_sendRawTransaction")
    hash: str = Field(description="transaction hash (keccak256 of raw_transaction)")
    from_: str = Field(alias="from", description="the signer's address")
    type: int = Field(description="transaction type, 0-4")
    v: int = Field(description="yParity (typed) or chainId*2+35+parity (legacy)")
    r: str
    s: str

    @classmethod
    def of(
        cls, raw: bytes, address: str, tx_type: int, v: int, signature: EthSignature
    ) -> SignedTransaction:
        from eth_utils.crypto import keccak

        return cls(
            raw_transaction="0x" + raw.hex(),
            hash="0x" + bytes(keccak(raw)).hex(),
            from_=address,
            type=tx_type,
            v=v,
            r=_hex32(signature.r),
            s=_hex32(signature.s),
        )


class PolicyInfo(_Result):
    path: str = Field(description="the policy file in force")
    sha256: str = Field(description="sha256 of the file's bytes when it was loaded")
    loaded_at: str = Field(description="when it was loaded (ISO 8601, UTC)")


class StateInfo(_Result):
    backend: Literal["sqlite", "postgresql"]
    ok: bool = Field(description="whether the store could be written just now")


class HealthReport(_Result):
    status: Literal["ok", "unhealthy"]
    address: str | None
    key_id: str
    key_arn: str | None
    region: str
    key_spec: str | None
    key_usage: str | None
    key_state: str | None
    expected_address: str | None
    credentials: str | None = Field(description="kind of credential source, never a value")
    kms_latency_ms: float | None
    problems: list[str]
    policy: PolicyInfo | None = Field(
        default=None,
        description="the policy in force; null: none, everything well formed is signed",
    )
    state: StateInfo | None = Field(default=None, description="the durable store")
