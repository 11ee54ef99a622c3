"""Our EIP-712 encoder against the EIP's own vectors and, differentially, eth-account.

The vectors are the ones ``assets/eip-712/Example.js`` in ethereum/EIPs asserts
(the EIP's reference implementation), copied here, not computed. The random
payloads cover what the EIP's example does not: arrays (dynamic, fixed, of
arrays, of structs), every atomic type, negative integers, text beyond ASCII,
and type names whose sort order matters (``$``, ``_``, digits, case).
"""

from __future__ import annotations

import json
import re
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from agentic_vault import parse_typed_data
from agentic_vault._eip712 import StructEncoder

REFERENCE_KEY = Account.create().key

# ethereum/EIPs assets/eip-712/Example.js
MAIL = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}
MAIL_ENCODE_TYPE = "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
MAIL_TYPE_HASH = "a0cedeb2dc280ba39b857546d74f5549c3a1d7bdc2dd96bf881f76108e23dac2"
MAIL_ENCODE_DATA = (
    "a0cedeb2dc280ba39b857546d74f5549c3a1d7bdc2dd96bf881f76108e23dac2"
    "fc71e5fa27ff56c350aa531bc129ebdf613b772b6604664f5d8dbe21b85eb0c8"
    "cd54f074a4af31b4411ff6a60c9719dbd559c221c8ac3492d9d872b041d703d1"
    "b5aadf3154a261abdd9086fc627b61efca26ae5702701d05cd2305f7c52a2fc8"
)
MAIL_HASH_STRUCT = "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
MAIL_DOMAIN_SEPARATOR = "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
MAIL_DIGEST = "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"


def test_the_eip_712_mail_example_gives_the_eips_own_vectors() -> None:
    payload = parse_typed_data(MAIL)
    assert payload.digest.hex() == MAIL_DIGEST
    assert parse_typed_data(json.dumps(MAIL)).digest.hex() == MAIL_DIGEST

    normalized = payload.full_message
    encoder = StructEncoder(normalized["types"])
    assert encoder.encode_type("Mail") == MAIL_ENCODE_TYPE
    assert encoder.type_hash("Mail").hex() == MAIL_TYPE_HASH
    assert encoder.encode_data("Mail", normalized["message"]).hex() == MAIL_ENCODE_DATA
    assert encoder.hash_struct("Mail", normalized["message"]).hex() == MAIL_HASH_STRUCT
    separator = encoder.hash_struct("EIP712Domain", normalized["domain"])
    assert separator.hex() == MAIL_DOMAIN_SEPARATOR


def test_the_type_string_sorts_dependencies_by_name_and_lists_each_once() -> None:
    types = {
        "Z": [{"name": "a", "type": "_b[2][]"}, {"name": "b", "type": "A"}],
        "_b": [{"name": "x", "type": "A"}, {"name": "y", "type": "$c"}],
        "A": [{"name": "n", "type": "uint8"}],
        "$c": [{"name": "s", "type": "string"}, {"name": "z", "type": "A[]"}],
    }
    # Code-point order: $ < A < _ ; the primary type first.
    assert StructEncoder(types).encode_type("Z") == (
        "Z(_b[2][] a,A b)$c(string s,A[] z)A(uint8 n)_b(A x,$c y)"
    )


# -- random payloads against eth-account ---------------------------------------------------

_ATOMIC_NAME = re.compile(r"(?:u?int|bytes)[0-9]*|address|bool|string")
_NAMES = st.from_regex(r"[A-Za-z_$][A-Za-z0-9_$]{0,6}", fullmatch=True).filter(
    lambda n: n != "EIP712Domain" and not _ATOMIC_NAME.fullmatch(n)
)
_FIELD_NAMES = st.from_regex(r"[a-z_$][A-Za-z0-9_]{0,8}", fullmatch=True)


@st.composite
def _atomic_type(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["address", "bool", "string", "bytes", "bytesN", "uint", "int"]))
    if kind == "bytesN":
        return f"bytes{draw(st.integers(1, 32))}"
    if kind in ("uint", "int"):
        return f"{kind}{8 * draw(st.integers(1, 32))}"
    return kind


@st.composite
def _field_type(draw: st.DrawFn, structs: list[str]) -> str:
    base = (
        draw(st.sampled_from(structs)) if structs and draw(st.booleans()) else draw(_atomic_type())
    )
    dims = draw(st.lists(st.sampled_from(["[]", "[1]", "[2]", "[3]"]), max_size=3))
    return base + "".join(dims)


@st.composite
def _value(draw: st.DrawFn, type_: str, types: dict[str, list[dict[str, str]]]) -> Any:
    """A wire value of ``type_``, in a spelling eth-account reads the same way."""
    if type_.endswith("]"):
        inner, _, length = type_[:-1].rpartition("[")
        count = int(length) if length else draw(st.integers(0, 3))
        return [draw(_value(inner, types)) for _ in range(count)]
    if type_ in types:
        return {f["name"]: draw(_value(f["type"], types)) for f in types[type_]}
    if type_ == "address":
        return "0x" + draw(st.binary(min_size=20, max_size=20)).hex()
    if type_ == "bool":
        return draw(st.booleans())
    if type_ == "string":
        return draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=20))
    if type_ == "bytes":
        return "0x" + draw(st.binary(max_size=70)).hex()
    if type_.startswith("bytes"):
        size = int(type_[5:])
        return "0x" + draw(st.binary(min_size=size, max_size=size)).hex()
    if type_.startswith("uint"):
        number = draw(st.integers(0, 2 ** int(type_[4:]) - 1))
        return draw(st.sampled_from([number, hex(number), str(number)]))
    bits = int(type_[3:])
    return draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))


@st.composite
def typed_data(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(_NAMES, min_size=1, max_size=5, unique=True))
    types: dict[str, list[dict[str, str]]] = {}
    # A struct refers only to structs after it: no cycles.
    for i, name in enumerate(names):
        field_names = draw(st.lists(_FIELD_NAMES, min_size=0, max_size=5, unique=True))
        types[name] = [{"name": f, "type": draw(_field_type(names[i + 1 :]))} for f in field_names]
    domain_fields = draw(
        st.lists(
            st.sampled_from(["name", "version", "chainId", "verifyingContract", "salt"]),
            unique=True,
        )
    )
    domain_types = {
        "name": "string",
        "version": "string",
        "chainId": "uint256",
        "verifyingContract": "address",
        "salt": "bytes32",
    }
    domain = {f: draw(_value(domain_types[f], types)) for f in domain_fields}
    return {
        "types": types,
        "primaryType": names[0],
        "domain": domain,
        "message": draw(_value(names[0], types)),
    }


def _eth_account_digest(payload: dict[str, Any]) -> bytes:
    # eth-account wants only the types the primary one uses (it guesses the primary type).
    used, pending = {payload["primaryType"]}, [payload["primaryType"]]
    while pending:
        for field in payload["types"][pending.pop()]:
            base = field["type"].split("[")[0]
            if base in payload["types"] and base not in used:
                used.add(base)
                pending.append(base)
    trimmed = {**payload, "types": {n: t for n, t in payload["types"].items() if n in used}}
    signed = Account.sign_message(encode_typed_data(full_message=trimmed), REFERENCE_KEY)
    return bytes(signed.message_hash)


@settings(max_examples=300)
@given(payload=typed_data())
def test_random_typed_data_hashes_like_eth_account(payload: dict[str, Any]) -> None:
    assert parse_typed_data(payload).digest == _eth_account_digest(payload)
