"""Ethereum transactions (types 0-4): the request model and its encoding.

The request is the ``eth_signTransaction`` JSON-RPC object (or a JSON string
of one, which agents often send; a repeated key in it is refused). We validate
it strictly (eth-account is lenient; pydantic's lax mode would take ``true`` or
``2.0`` for a type) and settle its type. The encoding is done once: the RLP of
the unsigned fields (pyrlp encodes each item) is kept, hashed for the signing
digest, and reused for the signed form, which only appends v, r and s. The
per-type field order is the EIPs' (2718 and 155, 2930, 1559, 4844, 7702); the
differential tests check every type against eth-account's own serializer.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ._errors import InvalidInput
from ._fields import (
    UINT64_MAX,
    Address,
    Bytes32,
    HexBytesField,
    Quantity,
    QuantityField,
    StrictModel,
    field_error,
    parse_quantity,
    validate_model,
)
from ._json import DuplicateKey, InvalidJson, TooDeep, format_path, loads
from ._signature import HALF_N, EthSignature

MAX_DATA_BYTES = 128 * 1024
MAX_ACCESS_LIST_ENTRIES = 1024
MAX_STORAGE_KEYS_PER_ENTRY = 1024
MAX_AUTHORIZATIONS = 256
MAX_BLOB_HASHES = 16
# EIP-2681 caps a nonce below 2**64 - 1; chain ids and gas are uint64 in every client.
NONCE_MAX = 2**64 - 2
CHAIN_ID_MAX = UINT64_MAX

TransactionType = Literal[0, 1, 2, 3, 4]
_TYPE_NAMES = {
    0: "type 0 (legacy)",
    1: "type 1 (EIP-2930)",
    2: "type 2 (EIP-1559)",
    3: "type 3 (EIP-4844)",
    4: "type 4 (EIP-7702)",
}
_FEE_1559 = ("maxFeePerGas", "maxPriorityFeePerGas")
# Fields each type requires, and fields it may carry beyond the common ones.
_REQUIRED: dict[int, tuple[str, ...]] = {
    0: ("gasPrice",),
    1: ("gasPrice",),
    2: _FEE_1559,
    3: (*_FEE_1559, "to", "maxFeePerBlobGas", "blobVersionedHashes"),
    4: (*_FEE_1559, "to", "authorizationList"),
}
_ALLOWED: dict[int, frozenset[str]] = {
    0: frozenset({"gasPrice"}),
    1: frozenset({"gasPrice", "accessList"}),
    2: frozenset({*_FEE_1559, "accessList"}),
    3: frozenset({*_FEE_1559, "accessList", "maxFeePerBlobGas", "blobVersionedHashes"}),
    4: frozenset({*_FEE_1559, "accessList", "authorizationList"}),
}
_TYPE_SPECIFIC: frozenset[str] = frozenset().union(*_ALLOWED.values())

ChainId = Annotated[
    int, QuantityField(CHAIN_ID_MAX, minimum=1, description="EIP-155 chain id, e.g. 1 or '0x1'")
]
Nonce = Annotated[int, QuantityField(NONCE_MAX, description="account nonce")]
Gas = Annotated[int, QuantityField(UINT64_MAX, description="gas limit")]
Wei = Annotated[int, QuantityField(description="amount in wei")]
TxData = Annotated[
    bytes, HexBytesField(MAX_DATA_BYTES, description="call data, 0x hex, at most 128 KiB")
]


class AccessListEntry(StrictModel):
    address: Address
    storage_keys: list[Bytes32] = Field(alias="storageKeys", max_length=MAX_STORAGE_KEYS_PER_ENTRY)


class SignedAuthorization(StrictModel):
    """An EIP-7702 authorization tuple, already signed by the delegating account."""

    chain_id: Quantity = Field(alias="chainId", description="0 means any chain")
    address: Address
    nonce: Nonce
    y_parity: Literal[0, 1] = Field(alias="yParity")
    r: Quantity
    s: Quantity

    @field_validator("y_parity", mode="before")
    @classmethod
    def _y_parity_as_quantity(cls, value: Any) -> int:
        # 0/1, "0x0"/"0x1" or "0"/"1", like every quantity; never true or 1.0.
        return parse_quantity(value)

    @model_validator(mode="after")
    def _low_s(self) -> SignedAuthorization:
        if self.s > HALF_N:
            raise field_error("s", "is above secp256k1n/2, which EIP-7702 forbids; re-sign it")
        return self


class TransactionRequest(StrictModel):
    """The ``eth_signTransaction`` object. Quantities: integer, decimal or 0x hex string."""

    type: TransactionType | None = Field(
        default=None,
        description="0 legacy, 1 EIP-2930, 2 EIP-1559, 3 EIP-4844, 4 EIP-7702; "
        "inferred from the fee fields when absent",
    )
    chain_id: ChainId = Field(alias="chainId")
    nonce: Nonce
    gas: Gas
    gas_price: Wei | None = Field(default=None, alias="gasPrice", description="types 0 and 1, wei")
    max_fee_per_gas: Wei | None = Field(
        default=None, alias="maxFeePerGas", description="types 2-4, wei per gas"
    )
    max_priority_fee_per_gas: Wei | None = Field(
        default=None, alias="maxPriorityFeePerGas", description="types 2-4, wei per gas"
    )
    to: Address | None = Field(default=None, description="absent or null: contract creation")
    value: Wei = Field(default=0, description="wei to send")
    data: TxData = Field(default=b"", description="call data; `input` is accepted as an alias")
    access_list: list[AccessListEntry] | None = Field(
        default=None, alias="accessList", max_length=MAX_ACCESS_LIST_ENTRIES
    )
    max_fee_per_blob_gas: Wei | None = Field(default=None, alias="maxFeePerBlobGas")
    blob_versioned_hashes: list[Bytes32] | None = Field(
        default=None, alias="blobVersionedHashes", max_length=MAX_BLOB_HASHES
    )
    authorization_list: list[SignedAuthorization] | None = Field(
        default=None, alias="authorizationList", max_length=MAX_AUTHORIZATIONS
    )
    from_: Address | None = Field(
        default=None, alias="from", description="optional; must be the signer's address"
    )

    extra_wire_names = ("input",)

    @field_validator("type", mode="before")
    @classmethod
    def _type_as_quantity(cls, value: Any) -> Any:
        # 2, "2", "0x2" like every quantity; not true or 2.0 (pydantic's lax Literal would).
        return None if value is None else parse_quantity(value)

    @model_validator(mode="before")
    @classmethod
    def _json_text_and_input_alias(cls, data: Any) -> Any:
        if isinstance(data, str | bytes):
            data = _object_from_json(data)
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "input" in data:
            if "data" in data and data["data"] != data["input"]:
                raise ValueError("`data` and its alias `input` are both set and differ; send one")
            data["data"] = data.pop("input")
        return data

    @classmethod
    def parse(cls, data: Any, root: str = "transaction") -> TransactionRequest:
        """Validate ``data`` (an object or a JSON string of one) or raise ``InvalidInput``."""
        if not isinstance(data, dict | str):
            raise InvalidInput(f"{root}: {_NOT_AN_OBJECT}")
        return validate_model(cls, data, root)

    @property
    def tx_type(self) -> int:
        """The declared type, else the one the fee fields imply (as eth_signTransaction does)."""
        if self.type is not None:
            return self.type
        given = self._given()
        if "authorizationList" in given:
            return 4
        if given & {"maxFeePerBlobGas", "blobVersionedHashes"}:
            return 3
        if given & set(_FEE_1559):
            return 2
        if "accessList" in given:
            return 1
        return 0

    def _given(self) -> set[str]:
        """The wire names of the optional fields the caller set to a value."""
        names = set()
        for name in self.model_fields_set:
            field = type(self).model_fields[name]
            if getattr(self, name) is not None:
                names.add(field.alias or name)
        return names

    @model_validator(mode="after")
    def _type_rules(self) -> TransactionRequest:
        tx_type = self.tx_type
        label = _TYPE_NAMES[tx_type]
        given = self._given()
        for name in sorted((given & _TYPE_SPECIFIC) - _ALLOWED[tx_type]):
            hint = (
                "use maxFeePerGas and maxPriorityFeePerGas"
                if name == "gasPrice"
                else "remove it or set the matching `type`"
            )
            raise field_error(name, f"is not used by a {label} transaction; {hint}")
        for name in _REQUIRED[tx_type]:
            if name not in given:
                what = "the recipient" if name == "to" else "this field"
                raise field_error(name, f"is required for a {label} transaction (add {what})")
        fee_cap, tip = self.max_fee_per_gas, self.max_priority_fee_per_gas
        if fee_cap is not None and tip is not None and tip > fee_cap:
            raise field_error(
                "maxPriorityFeePerGas",
                f"({tip}) exceeds maxFeePerGas ({fee_cap}); no block would include it. "
                "Lower the tip or raise the fee cap",
            )
        if tx_type == 3 and not self.blob_versioned_hashes:
            raise field_error("blobVersionedHashes", "needs at least one hash")
        for i, versioned in enumerate(self.blob_versioned_hashes or ()):
            if versioned[0] != 0x01:
                raise field_error(
                    f"blobVersionedHashes[{i}]", "must start with version byte 0x01 (KZG)"
                )
        if tx_type == 4 and not self.authorization_list:
            raise field_error("authorizationList", "needs at least one authorization")
        return self

    def rlp_fields(self) -> list[Any]:
        """The unsigned transaction's fields in its type's RLP order (v, r, s not included).

        A legacy transaction's signing payload appends chainId, 0, 0 (EIP-155).
        """
        tx_type = self.tx_type
        to = bytes.fromhex(self.to[2:]) if self.to is not None else b""
        if tx_type == 0:
            return [self.nonce, self.gas_price, self.gas, to, self.value, self.data]
        access_list = [
            [bytes.fromhex(entry.address[2:]), list(entry.storage_keys)]
            for entry in self.access_list or ()
        ]
        if tx_type == 1:
            return [
                self.chain_id, self.nonce, self.gas_price, self.gas, to, self.value, self.data,
                access_list,
            ]  # fmt: skip
        fields: list[Any] = [
            self.chain_id, self.nonce, self.max_priority_fee_per_gas, self.max_fee_per_gas,
            self.gas, to, self.value, self.data, access_list,
        ]  # fmt: skip
        if tx_type == 3:
            fields += [self.max_fee_per_blob_gas, list(self.blob_versioned_hashes or ())]
        if tx_type == 4:
            fields.append(
                [
                    [a.chain_id, bytes.fromhex(a.address[2:]), a.nonce, a.y_parity, a.r, a.s]
                    for a in self.authorization_list or ()
                ]
            )
        return fields


_NOT_AN_OBJECT = (
    "must be an eth_signTransaction object such as "
    '{"chainId": 1, "nonce": 0, "gas": 21000, ...}, or a JSON string of one'
)


def _object_from_json(text: str | bytes) -> Any:
    """The object a transaction JSON string spells; refusals as pydantic errors of the field."""
    try:
        data = loads(text)
    except DuplicateKey as exc:
        message = (
            f"has the key {json.dumps(exc.key)} twice; a JSON object must not repeat a key "
            "(parsers disagree on which value counts), send it once"
        )
        relative = format_path(exc.path, "")
        raise (field_error(relative, message) if relative else _json_error(message)) from None
    except TooDeep:
        raise _json_error("is nested too deeply to be a transaction") from None
    except InvalidJson as exc:
        looks_raw = isinstance(text, str) and text.startswith("0x")
        hint = " (it looks like a raw signed transaction; send its fields)" if looks_raw else ""
        raise _json_error(f"is a string but not JSON ({exc}){hint}; {_NOT_AN_OBJECT}") from None
    if not isinstance(data, dict):
        raise _json_error(_NOT_AN_OBJECT)
    return data


def _json_error(message: str) -> PydanticCustomError:
    # The text goes in as context: a template would read braces in the caller's JSON.
    return PydanticCustomError("json", "{message}", {"message": message})


class UnsignedTransaction:
    """A validated transaction, its signing digest, and how to encode it once signed."""

    def __init__(self, request: TransactionRequest) -> None:
        import rlp
        from eth_utils.crypto import keccak

        self.request = request
        self.tx_type = request.tx_type
        # Each field's RLP, concatenated: the body of the list, before v, r and s.
        self._body = b"".join(rlp.encode(field) for field in request.rlp_fields())
        unsigned = self._body
        if self.tx_type == 0:  # EIP-155: the chain id and two zeros stand in for v, r, s
            unsigned += rlp.encode(request.chain_id) + rlp.encode(0) + rlp.encode(0)
        self.digest: bytes = bytes(keccak(self._envelope(unsigned)))

    def _envelope(self, body: bytes) -> bytes:
        """The RLP list of ``body``, after the type byte for typed transactions (EIP-2718)."""
        from rlp.codec import length_prefix

        listed = bytes(length_prefix(len(body), 0xC0)) + body
        return listed if self.tx_type == 0 else bytes([self.tx_type]) + listed

    def v_for(self, signature: EthSignature) -> int:
        """yParity for typed transactions; ``chainId*2 + 35 + parity`` (EIP-155) for legacy."""
        if self.tx_type == 0:
            return self.request.chain_id * 2 + 35 + signature.y_parity
        return signature.y_parity

    def encode(self, signature: EthSignature) -> bytes:
        """The signed raw transaction (the ``eth_sendRawTransaction`` payload)."""
        import rlp

        vrs = rlp.encode(self.v_for(signature)) + rlp.encode(signature.r) + rlp.encode(signature.s)
        return self._envelope(self._body + vrs)
