"""EIP-712 typed data (the ``eth_signTypedData_v4`` payload): validate, then encode.

eth-account hashes payloads a wallet must refuse (a message with extra fields,
a 31-byte ``bytes32``, a type that contains itself), so every type and value
is checked here first, with the path of the offending field in the error; the
normalized payload then goes to eth-account's ``encode_typed_data``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic_core import PydanticCustomError

from ._errors import InvalidInput
from ._fields import parse_address, parse_hex_bytes, parse_quantity

MAX_TYPED_DATA_BYTES = 256 * 1024
MAX_STRUCT_DEPTH = 32
MAX_ARRAY_DIMENSIONS = 8
MAX_FIXED_ARRAY_LENGTH = 4096

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{0,63}")
_FIELD_TYPE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]{0,63})((?:\[[0-9]*\])*)")
_ARRAY_SUFFIX = re.compile(r"\[([0-9]*)\]")
_INT_TYPE = re.compile(r"(u?)int([0-9]{1,3})")
_BYTES_TYPE = re.compile(r"bytes([0-9]{1,2})")
_TOP_LEVEL = ("types", "primaryType", "domain", "message")
# EIP-712's domain fields, in the order the domain type lists them.
DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)


@dataclass(frozen=True)
class TypedDataPayload:
    """A validated, normalized EIP-712 payload and what logs may say about it."""

    full_message: dict[str, Any]
    chain_id: int | None
    verifying_contract: str | None

    @cached_property
    def digest(self) -> bytes:
        """``keccak256(0x19 || 0x01 || domainSeparator || hashStruct(message))``."""
        from eth_account.messages import encode_typed_data

        from ._message import signable_digest

        return signable_digest(encode_typed_data(full_message=self.full_message))


def parse_typed_data(value: Any, root: str = "typed_data") -> TypedDataPayload:
    """Validate an EIP-712 payload (object or JSON string) or raise ``InvalidInput``."""
    payload = _load(value, root)
    missing = [key for key in _TOP_LEVEL if key not in payload]
    if missing:
        raise InvalidInput(
            f"{root}.{missing[0]}: is required (an EIP-712 payload has types, "
            "primaryType, domain and message)."
        )
    for key in payload:
        if key not in _TOP_LEVEL:
            raise InvalidInput(
                f"{root}.{key}: unknown field; an EIP-712 payload has only types, "
                "primaryType, domain and message."
            )
    domain = payload["domain"]
    if not isinstance(domain, dict):
        raise InvalidInput(f"{root}.domain: must be an object.")
    types = _parse_types(payload["types"], domain, f"{root}.types")
    primary = payload["primaryType"]
    if not isinstance(primary, str) or primary not in types:
        raise InvalidInput(
            f"{root}.primaryType: {primary!r} is not defined in types; "
            f"name one of: {', '.join(sorted(t for t in types if t != 'EIP712Domain'))}."
        )
    if primary == "EIP712Domain":
        raise InvalidInput(f"{root}.primaryType: must name the message's struct, not EIP712Domain.")
    _check_acyclic(types, f"{root}.types")
    checker = _ValueChecker(types)
    normalized_domain = checker.struct("EIP712Domain", domain, f"{root}.domain")
    normalized_message = checker.struct(primary, payload["message"], f"{root}.message")
    # The hash covers only the primary type and its dependencies; eth-account wants no others.
    used = _dependencies(primary, types) | {"EIP712Domain"}
    return TypedDataPayload(
        full_message={
            "types": {name: [dict(f) for f in types[name]] for name in sorted(used)},
            "primaryType": primary,
            "domain": normalized_domain,
            "message": normalized_message,
        },
        chain_id=normalized_domain.get("chainId"),
        verifying_contract=normalized_domain.get("verifyingContract"),
    )


def _load(value: Any, root: str) -> dict[str, Any]:
    try:
        if isinstance(value, str):
            if len(value.encode()) > MAX_TYPED_DATA_BYTES:
                raise InvalidInput(_too_big(root))
            value = json.loads(value)
        elif (
            isinstance(value, dict)
            and len(json.dumps(value, separators=(",", ":")).encode()) > MAX_TYPED_DATA_BYTES
        ):
            raise InvalidInput(_too_big(root))
    except RecursionError:
        raise InvalidInput(f"{root}: is nested too deeply to be an EIP-712 payload.") from None
    except ValueError as exc:
        raise InvalidInput(
            f"{root}: is a string but not valid JSON ({exc}); send the payload as an "
            "object or as a JSON string of one."
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{root}: must be an EIP-712 object (or a JSON string of one).")
    return value


def _too_big(root: str) -> str:
    return f"{root}: is larger than the {MAX_TYPED_DATA_BYTES // 1024} KiB limit for typed data."


def _parse_types(raw: Any, domain: dict[str, Any], where: str) -> dict[str, list[dict[str, str]]]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: must be an object mapping type names to field lists.")
    types: dict[str, list[dict[str, str]]] = {}
    for name, fields in raw.items():
        if not _IDENTIFIER.fullmatch(name) or _is_atomic(name):
            raise InvalidInput(
                f"{where}.{name}: is not a valid struct name (letters, digits, _ or $, "
                "not starting with a digit, not an atomic type name)."
            )
        types[name] = _parse_fields(fields, f"{where}.{name}")
    if "EIP712Domain" in types:
        _check_domain_type(types["EIP712Domain"], f"{where}.EIP712Domain")
    else:
        types["EIP712Domain"] = _derive_domain_type(domain, where)
    for name, fields in types.items():
        for i, field in enumerate(fields):
            base, _ = _split_array(field["type"])
            if base == "EIP712Domain":
                raise InvalidInput(
                    f"{where}.{name}[{i}].type: EIP712Domain describes the domain and cannot "
                    "be the type of a message field."
                )
            if not _is_atomic(base) and base not in types:
                raise InvalidInput(
                    f"{where}.{name}[{i}].type: {base!r} is neither an EIP-712 atomic type "
                    "nor defined in types; define it (or fix the spelling)."
                )
    return types


def _parse_fields(fields: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(fields, list):
        raise InvalidInput(f"{where}: must be a list of {{name, type}} objects.")
    parsed: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, field in enumerate(fields):
        here = f"{where}[{i}]"
        if not isinstance(field, dict) or set(field) != {"name", "type"}:
            raise InvalidInput(f"{here}: must be an object with exactly `name` and `type`.")
        name, type_ = field["name"], field["type"]
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise InvalidInput(f"{here}.name: {name!r} is not a valid field name.")
        if name in seen:
            raise InvalidInput(f"{here}.name: {name!r} appears twice in the struct.")
        seen.add(name)
        if not isinstance(type_, str) or not _FIELD_TYPE.fullmatch(type_):
            raise InvalidInput(
                f"{here}.type: {type_!r} is not a type; use e.g. uint256, address, "
                "bytes32, string, a struct name, or T[] / T[n]."
            )
        base, dimensions = _split_array(type_)
        if len(dimensions) > MAX_ARRAY_DIMENSIONS:
            raise InvalidInput(f"{here}.type: more than {MAX_ARRAY_DIMENSIONS} array dimensions.")
        for length in dimensions:
            if length is not None and not 0 < length <= MAX_FIXED_ARRAY_LENGTH:
                raise InvalidInput(
                    f"{here}.type: a fixed array length must be 1..{MAX_FIXED_ARRAY_LENGTH}."
                )
        if _looks_atomic(base) and not _is_atomic(base):
            raise InvalidInput(
                f"{here}.type: {base!r} is not an EIP-712 type; use uint8..uint256 or "
                "int8..int256 in steps of 8, or bytes1..bytes32."
            )
        parsed.append({"name": name, "type": type_})
    return parsed


def _derive_domain_type(domain: dict[str, Any], where: str) -> list[dict[str, str]]:
    known = dict(DOMAIN_FIELDS)
    for key in domain:
        if key not in known:
            raise InvalidInput(
                f"{where}.EIP712Domain: is absent and domain field {key!r} is not a standard "
                "EIP-712 domain field (name, version, chainId, verifyingContract, salt); "
                "declare types.EIP712Domain explicitly."
            )
    return [{"name": n, "type": t} for n, t in DOMAIN_FIELDS if n in domain]


def _check_domain_type(fields: list[dict[str, str]], where: str) -> None:
    """A declared domain type must be the standard fields, in the standard order.

    Wallets (and eth-account) hash the domain by that standard definition;
    any other declaration would make us sign a different digest than they show.
    """
    standard = [{"name": n, "type": t} for n, t in DOMAIN_FIELDS]
    names = [f["name"] for f in fields]
    if fields != [f for f in standard if f["name"] in names]:
        raise InvalidInput(
            f"{where}: must list only standard domain fields, in this order and with these "
            "types: string name, string version, uint256 chainId, address "
            "verifyingContract, bytes32 salt (omit the ones you do not use, or omit "
            "EIP712Domain to have it derived from domain)."
        )


def _dependencies(name: str, types: dict[str, list[dict[str, str]]]) -> set[str]:
    """``name`` and every struct it refers to, directly or through others."""
    found = {name}
    pending = [name]
    while pending:
        for field in types[pending.pop()]:
            base, _ = _split_array(field["type"])
            if base in types and base not in found:
                found.add(base)
                pending.append(base)
    return found


def _split_array(type_: str) -> tuple[str, list[int | None]]:
    """``'Person[2][]'`` → ``('Person', [2, None])``."""
    match = _FIELD_TYPE.fullmatch(type_)
    assert match is not None
    dims = [int(d) if d else None for d in _ARRAY_SUFFIX.findall(match.group(2))]
    return match.group(1), dims


def _looks_atomic(base: str) -> bool:
    return bool(_INT_TYPE.fullmatch(base) or _BYTES_TYPE.fullmatch(base)) or base in (
        "int",
        "uint",
    )


def _is_atomic(base: str) -> bool:
    if base in ("address", "bool", "string", "bytes"):
        return True
    if m := _INT_TYPE.fullmatch(base):
        bits = int(m.group(2))
        return 8 <= bits <= 256 and bits % 8 == 0
    if m := _BYTES_TYPE.fullmatch(base):
        return 1 <= int(m.group(1)) <= 32
    return False


def _check_acyclic(types: dict[str, list[dict[str, str]]], where: str) -> None:
    """Refuse a struct that contains itself, directly or through others; bound nesting."""
    depth: dict[str, int] = {}

    def visit(name: str, trail: tuple[str, ...]) -> int:
        if name in trail:
            cycle = " -> ".join((*trail[trail.index(name) :], name))
            raise InvalidInput(
                f"{where}.{name}: is cyclic ({cycle}); EIP-712 structs must not contain "
                "themselves. Break the cycle."
            )
        if name in depth:
            return depth[name]
        if len(trail) >= MAX_STRUCT_DEPTH:
            raise InvalidInput(f"{where}: structs nest more than {MAX_STRUCT_DEPTH} deep.")
        deepest = 0
        for field in types[name]:
            base, _ = _split_array(field["type"])
            if base in types:
                deepest = max(deepest, visit(base, (*trail, name)))
        depth[name] = deepest + 1
        return depth[name]

    for name in types:
        visit(name, ())


class _ValueChecker:
    """Checks values against their declared EIP-712 types; returns normalized copies."""

    def __init__(self, types: dict[str, list[dict[str, str]]]) -> None:
        self.types = types

    def struct(self, name: str, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidInput(f"{where}: must be an object of type {name}.")
        fields = self.types[name]
        names = {f["name"] for f in fields}
        for key in value:
            if key not in names:
                raise InvalidInput(
                    f"{where}.{key}: is not a field of {name}; remove it or add it to "
                    f"types.{name} (a signer must not hash fields the type does not declare)."
                )
        normalized: dict[str, Any] = {}
        for field in fields:
            key = field["name"]
            if key not in value:
                raise InvalidInput(f"{where}.{key}: is required by type {name}.")
            normalized[key] = self.value(field["type"], value[key], f"{where}.{key}")
        return normalized

    def value(self, type_: str, value: Any, where: str) -> Any:
        base, dims = _split_array(type_)
        if dims:
            return self._array(base, dims, value, where)
        if base in self.types:
            return self.struct(base, value, where)
        return self._atomic(base, value, where)

    def _array(self, base: str, dims: list[int | None], value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise InvalidInput(f"{where}: must be an array.")
        length = dims[-1]
        if length is not None and len(value) != length:
            raise InvalidInput(f"{where}: must have exactly {length} items, has {len(value)}.")
        inner = base + "".join(f"[{d if d is not None else ''}]" for d in dims[:-1])
        return [self.value(inner, item, f"{where}[{i}]") for i, item in enumerate(value)]

    def _atomic(self, base: str, value: Any, where: str) -> Any:
        try:
            if base == "address":
                return parse_address(value)
            if base == "bool":
                if not isinstance(value, bool):
                    raise InvalidInput(f"{where}: must be true or false (a JSON boolean).")
                return value
            if base == "string":
                if not isinstance(value, str):
                    raise InvalidInput(f"{where}: must be a string.")
                return value
            if base == "bytes":
                return parse_hex_bytes(value, MAX_TYPED_DATA_BYTES)
            if m := _BYTES_TYPE.fullmatch(base):
                return parse_hex_bytes(value, 32, exact=int(m.group(1)))
            m = _INT_TYPE.fullmatch(base)
            assert m is not None
            bits = int(m.group(2))
            if m.group(1):
                return parse_quantity(value, 2**bits - 1)
            return _parse_signed(value, bits)
        except PydanticCustomError as exc:
            raise InvalidInput(f"{where}: {exc.message()} (type {base}).") from None


def _parse_signed(value: Any, bits: int) -> int:
    """An ``intN``: a JSON integer, or a decimal/hex string with an optional leading ``-``."""
    bound = 2 ** (bits - 1)
    negative = isinstance(value, str) and value.startswith("-")
    if negative:
        value = value[1:]
    elif isinstance(value, int) and not isinstance(value, bool) and value < 0:
        negative, value = True, -value
    number = -parse_quantity(value) if negative else parse_quantity(value)
    if not -bound <= number < bound:
        raise PydanticCustomError(
            "quantity", "must be between {low} and {high}", {"low": -bound, "high": bound - 1}
        )
    return number
