"""Field types shared by every input model, and how their errors are reported.

Quantities follow Ethereum JSON-RPC tooling: a JSON integer, a decimal string
or a ``0x`` hex string. Byte strings are ``0x`` hex of even length. Addresses
are 20 bytes; a mixed-case address must carry a valid EIP-55 checksum (it is
the only typo detector an address has). Every refusal names the field, and an
unknown field gets a hint: the name other tools use for it (``gasLimit`` →
``gas``) or the closest known name (a typo).
"""

from __future__ import annotations

import difflib
import functools
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from ._errors import InvalidInput
from ._json import format_path

M = TypeVar("M", bound=BaseModel)

UINT256_MAX = 2**256 - 1
UINT64_MAX = 2**64 - 1

_DECIMAL = re.compile(r"[0-9]{1,80}")
_HEX_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,80}")
_HEX_BYTES = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class StrictModel(BaseModel):
    """Refuses unknown fields; validates by the wire (camelCase) names."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_alias=True)
    # Wire names a model accepts besides its fields' (a before-validator renames them).
    extra_wire_names: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # A ValidationError names only its model (``title``); this finds the class again.
        _STRICT_MODELS[cls.model_config.get("title") or cls.__name__] = cls

    @model_validator(mode="before")
    @classmethod
    def _keys_are_text(cls, data: Any) -> Any:
        # pydantic cannot read a key with a lone surrogate, and would blame the whole object.
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and not key.isascii() and not _has_utf8_form(key):
                    raise field_error(
                        format_path((key,), ""),
                        "unknown field (its name holds an unpaired UTF-16 surrogate); remove it",
                    )
        return data

    @classmethod
    def wire_names(cls) -> list[str]:
        """The field names a caller may send, in declaration order."""
        names = [field.alias or name for name, field in cls.model_fields.items()]
        return names + list(cls.extra_wire_names)


_STRICT_MODELS: dict[str, type[StrictModel]] = {}


def _has_utf8_form(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Names other tools and libraries use for our fields (web3.py, ethers, viem, RPC nodes...).
FIELD_ALIASES = {
    "gasLimit": "gas",
    "gas_limit": "gas",
    "gaslimit": "gas",
    "chainID": "chainId",
    "chain_id": "chainId",
    "gas_price": "gasPrice",
    "maxFee": "maxFeePerGas",
    "max_fee": "maxFeePerGas",
    "maxPriorityFee": "maxPriorityFeePerGas",
    "max_priority_fee": "maxPriorityFeePerGas",
    "priorityFee": "maxPriorityFeePerGas",
    "priorityFeePerGas": "maxPriorityFeePerGas",
    "tip": "maxPriorityFeePerGas",
    "maxBlobFee": "maxFeePerBlobGas",
    "blobGasPrice": "maxFeePerBlobGas",
    "blobHashes": "blobVersionedHashes",
    "blob_hashes": "blobVersionedHashes",
    "authorizations": "authorizationList",
    "calldata": "data",
    "callData": "data",
    "recipient": "to",
    "amount": "value",
    "sender": "from",
    "txType": "type",
    "tx_type": "type",
    "transactionType": "type",
    "storageSlots": "storageKeys",
    "slots": "storageKeys",
    "keys": "storageKeys",
    "v": "yParity",
    "contractAddress": "address",
    "typedData": "typed_data",
    "typedDataJson": "typed_data",
    "tx": "transaction",
    "text": "message",
    "data": "message",
}


def suggest_field(unknown: str, known: Sequence[str]) -> str | None:
    """The known field ``unknown`` most likely meant: an alias, another spelling, a typo."""
    alias = FIELD_ALIASES.get(unknown)
    if alias in known:
        return alias
    folded = {name.lower().replace("_", ""): name for name in known}
    same = folded.get(unknown.lower().replace("_", "").replace("-", ""))
    if same is not None:
        return same
    close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_field_message(unknown: str, known: Sequence[str]) -> str:
    """``unknown field; did you mean `gas`?`` or the list of the fields there are."""
    suggestion = suggest_field(unknown, known)
    if suggestion is not None:
        return f"unknown field; did you mean `{suggestion}`?"
    if not known:
        return "unknown field; remove it (none are taken here)"
    return f"unknown field; remove it (the fields are: {', '.join(known)})"


def parse_quantity(value: Any, maximum: int = UINT256_MAX, minimum: int = 0) -> int:
    """An integer from a JSON integer, a decimal string or a ``0x`` hex string."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PydanticCustomError(
            "quantity",
            "must be an integer, a decimal string or a 0x hex string, not {kind}",
            {"kind": _json_kind(value)},
        )
    number: int
    if isinstance(value, int):
        number = value
    elif _HEX_QUANTITY.fullmatch(value):
        number = int(value, 16)
    elif _DECIMAL.fullmatch(value):
        number = int(value, 10)
    elif value.startswith("-"):
        raise PydanticCustomError("quantity", "must not be negative")
    else:
        raise PydanticCustomError(
            "quantity",
            "must be a decimal string like '21000' or a 0x hex string like '0x5208' "
            "(at most 80 digits)",
        )
    if number < minimum:
        raise PydanticCustomError("quantity", "must be at least {minimum}", {"minimum": minimum})
    if number > maximum:
        raise PydanticCustomError(
            "quantity", "must be at most {maximum}", {"maximum": _readable(maximum)}
        )
    return number


def _readable(bound: int) -> str:
    """``2**256 - 1`` rather than 78 digits."""
    for offset in (1, 2):
        bits = (bound + offset).bit_length() - 1
        if bits > 32 and bound + offset == 2**bits:
            return f"2^{bits} - {offset}"
    return str(bound)


def parse_hex_bytes(value: Any, max_bytes: int, exact: int | None = None) -> bytes:
    """Bytes from a ``0x``-prefixed, even-length hex string."""
    if not isinstance(value, str):
        raise PydanticCustomError(
            "hex", "must be a 0x-prefixed hex string, not {kind}", {"kind": _json_kind(value)}
        )
    if len(value) > 2 + 2 * max_bytes:
        raise PydanticCustomError(
            "too_long", "is longer than the limit of {limit} bytes", {"limit": max_bytes}
        )
    if not _HEX_BYTES.fullmatch(value):
        raise PydanticCustomError(
            "hex",
            "must be 0x followed by an even number of hex digits (two per byte)",
        )
    raw = bytes.fromhex(value[2:])
    if exact is not None and len(raw) != exact:
        raise PydanticCustomError(
            "hex", "must be exactly {exact} bytes, got {got}", {"exact": exact, "got": len(raw)}
        )
    return raw


@functools.lru_cache(maxsize=4096)
def _checksummed(lower_hex: str) -> str:
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address(lower_hex))


def checksum_address(address: str) -> str:
    """The EIP-55 form of a ``0x`` + 40 hex digit address; each address is hashed once.

    A keccak per address per request was half of argument validation; the cache
    holds the few thousand addresses a signer sees (its own, recipients, tokens).
    """
    return _checksummed(address.lower())


def parse_address(value: Any) -> str:
    """The EIP-55 checksummed form of a 20-byte hex address."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise PydanticCustomError("address", "must be a 0x-prefixed 20-byte (40 hex digit) address")
    checksummed = checksum_address(value)
    body = value[2:]
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise PydanticCustomError(
            "address",
            "has an invalid EIP-55 checksum (mixed case that does not match); "
            "check the address for typos, or send it all lower case",
        )
    return checksummed


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error a model validator reports against one of the model's fields (by wire name)."""
    return PydanticCustomError(
        "field_rule", "{field}: {message}", {"field": field, "message": message}
    )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _WireField:
    """A field whose wire form one of our parsers turns into its Python value first."""

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.parse, handler(source))


@dataclass(frozen=True)
class QuantityField(_WireField):
    """Marks an ``int`` field as a quantity: three spellings in, bounds checked."""

    maximum: int = UINT256_MAX
    minimum: int = 0
    description: str = ""

    def parse(self, value: Any) -> int:
        return parse_quantity(value, self.maximum, self.minimum)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        spelled: JsonSchemaValue = {
            "anyOf": [
                {"type": "integer", "minimum": self.minimum, "maximum": self.maximum},
                {"type": "string", "pattern": "^(0x[0-9a-fA-F]{1,80}|[0-9]{1,80})$"},
            ]
        }
        if self.description:
            spelled["description"] = self.description
        return spelled


@dataclass(frozen=True)
class HexBytesField(_WireField):
    """Marks a ``bytes`` field as ``0x`` hex: at most ``max_bytes``, or exactly ``exact``."""

    max_bytes: int
    exact: int | None = None
    description: str = ""

    def parse(self, value: Any) -> bytes:
        return parse_hex_bytes(value, self.max_bytes, self.exact)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        spelled: JsonSchemaValue = {"type": "string"}
        if self.exact is not None:
            spelled["pattern"] = f"^0x[0-9a-fA-F]{{{2 * self.exact}}}$"
        else:
            spelled["pattern"] = "^0x([0-9a-fA-F]{2})*$"
            spelled["maxLength"] = 2 + 2 * self.max_bytes
        if self.description:
            spelled["description"] = self.description
        return spelled


Address = Annotated[
    str,
    BeforeValidator(parse_address),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^0x[0-9a-fA-F]{40}$",
            "description": "20-byte address; mixed case must be a valid EIP-55 checksum",
        }
    ),
]
Bytes32 = Annotated[bytes, HexBytesField(32, exact=32)]
Quantity = Annotated[int, QuantityField()]


def location(loc: tuple[int | str, ...], root: str) -> str:
    """A pydantic error location as a path: ``transaction.accessList[0].address``.

    A key that is not a plain name is shown JSON-quoted: ``transaction["\\ud800"]``.
    """
    return format_path(loc, root)


def join_path(where: str, relative: str) -> str:
    """``transaction`` + ``accessList[0]`` → ``transaction.accessList[0]``."""
    if not where or not relative:
        return where or relative
    return where + relative if relative.startswith("[") else f"{where}.{relative}"


def _nested_model(annotation: Any) -> type[StrictModel] | None:
    """The strict model an annotation holds (``list[Entry] | None`` → ``Entry``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, StrictModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _nested_model(argument)
        if found is not None:
            return found
    return None


def _known_fields_at(
    model: type[StrictModel] | None, path: tuple[int | str, ...]
) -> list[str] | None:
    """The wire names of the model found by following ``path`` from ``model`` (if any)."""
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        field = fields.get(part)
        model = _nested_model(field.annotation) if field is not None else None
    return model.wire_names() if model is not None else None


def invalid_input_from(
    error: ValidationError,
    root: str,
    max_items: int = 5,
    model: type[StrictModel] | None = None,
) -> InvalidInput:
    """One ``invalid_input`` naming every offending field (up to ``max_items``).

    ``model`` (by default the strict model the error names) lets an unknown field
    get a hint: the field meant, or the fields there are.
    """
    model = model or _STRICT_MODELS.get(error.title)
    problems: list[str] = []
    for item in error.errors(include_url=False, include_input=False):
        loc = tuple(item["loc"])
        kind = item["type"]
        context = item.get("ctx") or {}
        if kind == "field_rule":
            problems.append(
                f"{join_path(location(loc, root), context['field'])}: {context['message']}"
            )
            continue
        where = location(loc, root) or "arguments"
        if kind == "extra_forbidden":
            known = _known_fields_at(model, loc[:-1])
            unknown = loc[-1]
            if isinstance(unknown, str) and known is not None:
                problems.append(f"{where}: {unknown_field_message(unknown, known)}")
            else:
                problems.append(f"{where}: unknown field; remove it (check the spelling)")
        elif kind == "missing":
            problems.append(f"{where}: is required")
        elif kind == "too_long" and "max_length" in context:
            problems.append(
                f"{where}: has {context.get('actual_length')} items; "
                f"the limit is {context['max_length']}"
            )
        else:
            message = item["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            if message.startswith("Input should be "):
                message = "must be " + message[len("Input should be ") :]
            problems.append(f"{where}: {message}")
    shown = problems[:max_items]
    more = len(problems) - len(shown)
    text = "; ".join(shown) + (f"; and {more} more problems" if more > 0 else "")
    return InvalidInput(text if text.endswith("?") else text + ".")


def validate_model(model: type[M], data: Any, root: str) -> M:
    """``model.model_validate(data)``, with failures as ``InvalidInput`` naming fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        strict = model if issubclass(model, StrictModel) else None
        raise invalid_input_from(exc, root, model=strict) from None
