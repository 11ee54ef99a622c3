"""EIP-712 typed data (the ``eth_signTypedData_v4`` payload): validate, then encode.

eth-account hashes payloads a wallet must refuse (a message with extra fields,
a 31-byte ``bytes32``, a type that contains itself), so every type and value
is checked here first, with the path of the offending field in the error. The
normalized payload is then hashed by ``_eip712``, whose cost is linear in the
payload (eth-account's is not: issue #8).

What a payload may hold is bounded, so that the worst one within the bounds
is still hashed in well under a second (``scripts/stress.py typed-data``):
256 KiB of JSON, ``MAX_TYPES`` struct types of at most ``MAX_FIELDS_PER_STRUCT``
fields, ``MAX_STRUCT_VALUES`` struct values and ``MAX_VALUES`` values in all
(every struct, array and atomic value in the domain and the message counts one).
A JSON string with a repeated key, a lone UTF-16 surrogate in any text, and a
struct named like an atomic type (``uint``, ``bytes33``...) are refused too: each
is read or hashed differently by different wallets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic_core import PydanticCustomError

from ._errors import InvalidInput
from ._fields import (
    parse_address,
    parse_hex_bytes,
    parse_quantity,
    suggest_field,
    unknown_field_message,
)
from ._json import DuplicateKey, InvalidJson, TooDeep, format_path, loads

MAX_TYPED_DATA_BYTES = 256 * 1024
MAX_TYPES = 32
MAX_FIELDS_PER_STRUCT = 128
MAX_STRUCT_VALUES = 4096
MAX_VALUES = 8192
MAX_STRUCT_DEPTH = 32
MAX_ARRAY_DIMENSIONS = 8
MAX_FIXED_ARRAY_LENGTH = 4096

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{0,63}")
_FIELD_TYPE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]{0,63})((?:\[[0-9]*\])*)")
_ARRAY_SUFFIX = re.compile(r"\[([0-9]*)\]")
_INT_TYPE = re.compile(r"(u?)int([1-9][0-9]{0,2})")
_BYTES_TYPE = re.compile(r"bytes([1-9][0-9]?)")
# Names an atomic type has, or looks like it might have (uint, int0, bytes33, uint08...).
_ATOMIC_NAME = re.compile(r"(?:u?int|bytes)[0-9]*|address|bool|string")
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
        from ._eip712 import typed_data_digest

        message = self.full_message
        return typed_data_digest(
            message["types"], message["primaryType"], message["domain"], message["message"]
        )


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
            problem = unknown_field_message(key, _TOP_LEVEL)
            ending = "" if problem.endswith("?") else "."
            raise InvalidInput(f"{format_path((key,), root)}: {problem}{ending}")
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
    if isinstance(value, str):
        value = _from_json_text(value, root)
    elif isinstance(value, dict) and _json_size(value, root) > MAX_TYPED_DATA_BYTES:
        raise InvalidInput(_too_big(root))
    if not isinstance(value, dict):
        raise InvalidInput(f"{root}: must be an EIP-712 object (or a JSON string of one).")
    return value


def _from_json_text(text: str, root: str) -> Any:
    # surrogatepass: a lone surrogate is refused where it sits, with its field's name.
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TYPED_DATA_BYTES:
        raise InvalidInput(_too_big(root))
    try:
        return loads(text)
    except DuplicateKey as exc:
        raise InvalidInput(
            f"{format_path(exc.path, root)}: has the key {json.dumps(exc.key)} twice; a JSON "
            "object must not repeat a key (wallets disagree on which value counts). Send it once."
        ) from None
    except TooDeep:
        raise InvalidInput(f"{root}: is nested too deeply to be an EIP-712 payload.") from None
    except InvalidJson as exc:
        raise InvalidInput(
            f"{root}: is a string but not valid JSON ({exc}); send the payload as an "
            "object or as a JSON string of one."
        ) from None


def _json_size(value: dict[str, Any], root: str) -> int:
    """The size of ``value`` as compact UTF-8 JSON (what the limit is stated in)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:
        raise InvalidInput(f"{root}: is nested too deeply to be an EIP-712 payload.") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{root}: is not JSON data ({exc}).") from None
    return len(text.encode("utf-8", "surrogatepass"))


def _too_big(root: str) -> str:
    return f"{root}: is larger than the {MAX_TYPED_DATA_BYTES // 1024} KiB limit for typed data."


def _parse_types(raw: Any, domain: dict[str, Any], where: str) -> dict[str, list[dict[str, str]]]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: must be an object mapping type names to field lists.")
    if len(raw) > MAX_TYPES:
        raise InvalidInput(
            f"{where}: declares {len(raw)} types; the limit is {MAX_TYPES} struct types."
        )
    types: dict[str, list[dict[str, str]]] = {}
    for name, fields in raw.items():
        here = format_path((name,), where)
        if not _IDENTIFIER.fullmatch(name):
            raise InvalidInput(
                f"{here}: is not a valid struct name (letters, digits, _ or $, "
                "not starting with a digit, at most 64 characters)."
            )
        if _ATOMIC_NAME.fullmatch(name):
            raise InvalidInput(
                f"{here}: is an atomic type name (or looks like one); wallets would hash a "
                "struct called that differently. Rename the struct."
            )
        types[name] = _parse_fields(fields, here)
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
    if len(fields) > MAX_FIELDS_PER_STRUCT:
        raise InvalidInput(
            f"{where}: has {len(fields)} fields; the limit is {MAX_FIELDS_PER_STRUCT} "
            "fields per struct."
        )
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
                f"{where}.EIP712Domain: is absent and domain field {json.dumps(key)} is not a "
                "standard EIP-712 domain field (name, version, chainId, verifyingContract, salt); "
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
    return _ATOMIC_NAME.fullmatch(base) is not None


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
    """Checks values against their declared EIP-712 types; returns normalized copies.

    Counts what it has seen, and stops at the limits before doing more work.
    """

    def __init__(self, types: dict[str, list[dict[str, str]]]) -> None:
        self.types = types
        self.values = 0
        self.structs = 0
        self._split: dict[str, tuple[str, list[int | None]]] = {}

    def _count(self, where: str, struct: bool) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise InvalidInput(
                f"{where}: typed data may hold at most {MAX_VALUES} values (struct, array and "
                "atomic values of the domain and message together), the limit here; sign "
                "less at once."
            )
        if struct:
            self.structs += 1
            if self.structs > MAX_STRUCT_VALUES:
                raise InvalidInput(
                    f"{where}: typed data may hold at most {MAX_STRUCT_VALUES} struct values, "
                    "the limit here; sign less at once."
                )

    def struct(self, name: str, value: Any, where: str) -> dict[str, Any]:
        self._count(where, struct=True)
        if not isinstance(value, dict):
            raise InvalidInput(f"{where}: must be an object of type {name}.")
        fields = self.types[name]
        if len(value) != len(fields) or any(
            key not in value for key in (f["name"] for f in fields)
        ):
            self._unknown_or_missing(name, value, where)
        return {
            field["name"]: self.value(
                field["type"], value[field["name"]], f"{where}.{field['name']}"
            )
            for field in fields
        }

    def _unknown_or_missing(self, name: str, value: dict[str, Any], where: str) -> None:
        names = [f["name"] for f in self.types[name]]
        for key in value:
            if key not in names:
                meant = suggest_field(key, names)
                fix = (
                    f"did you mean `{meant}`?" if meant else f"remove it or add it to types.{name}"
                )
                raise InvalidInput(
                    f"{format_path((key,), where)}: is not a field of {name}; {fix} "
                    "(a signer must not hash fields the type does not declare)."
                )
        for key in names:
            if key not in value:
                raise InvalidInput(f"{where}.{key}: is required by type {name}.")

    def value(self, type_: str, value: Any, where: str) -> Any:
        split = self._split.get(type_)
        if split is None:
            split = self._split[type_] = _split_array(type_)
        base, dims = split
        if dims:
            return self._array(base, dims, value, where)
        if base in self.types:
            return self.struct(base, value, where)
        self._count(where, struct=False)
        return self._atomic(base, value, where)

    def _array(self, base: str, dims: list[int | None], value: Any, where: str) -> list[Any]:
        self._count(where, struct=False)
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
                return _text(value, where)
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


def _text(value: Any, where: str) -> str:
    """A ``string`` value: text that has a UTF-8 form (the hash is over those bytes)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: must be a string.")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{where}: contains an unpaired UTF-16 surrogate (such as \\ud800), which has "
                "no UTF-8 form and so no EIP-712 hash; send valid text."
            ) from None
    return value


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
