"""Hypothesis strategies: requests in every spelling we accept, with their canonical values.

Each strategy draws a pair ``(request, canonical)``: ``request`` is what an
agent would send (quantities as integers, decimal or hex strings; addresses in
lower case or EIP-55; ``input`` for ``data``...), ``canonical`` the same values
as plain ints, bytes and checksummed addresses, for the reference signer
(eth-account) and for comparing decoded transactions.
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address
from hypothesis import strategies as st

from agentic_vault._der import SECP256K1_N

HALF_N = SECP256K1_N // 2
UINT256 = 2**256 - 1


@st.composite
def quantity(draw: st.DrawFn, low: int = 0, high: int = UINT256) -> tuple[Any, int]:
    value = draw(
        st.one_of(
            st.integers(low, min(high, low + 1000)),
            st.integers(low, high),
            st.just(high),
        )
    )
    spelled = draw(st.sampled_from([value, str(value), hex(value)]))
    return spelled, value


@st.composite
def address(draw: st.DrawFn) -> tuple[str, str]:
    raw = draw(st.binary(min_size=20, max_size=20))
    checksummed = to_checksum_address(raw)
    return draw(st.sampled_from([checksummed, checksummed.lower()])), checksummed


def hex_bytes(min_size: int = 0, max_size: int = 64) -> st.SearchStrategy[tuple[str, bytes]]:
    return st.binary(min_size=min_size, max_size=max_size).map(lambda b: ("0x" + b.hex(), b))


@st.composite
def access_list(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    request, canonical = [], []
    for _ in range(draw(st.integers(0, 3))):
        wire_address, address_ = draw(address())
        keys = draw(st.lists(st.binary(min_size=32, max_size=32), max_size=3))
        request.append({"address": wire_address, "storageKeys": ["0x" + k.hex() for k in keys]})
        canonical.append({"address": address_, "storageKeys": keys})
    return request, canonical


@st.composite
def authorization(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    request: dict[str, Any] = {}
    canonical: dict[str, Any] = {}
    for name, low, high in (("chainId", 0, UINT256), ("nonce", 0, 2**64 - 2)):
        request[name], canonical[name] = draw(quantity(low, high))
    request["address"], canonical["address"] = draw(address())
    parity = draw(st.sampled_from([0, 1]))
    request["yParity"], canonical["yParity"] = draw(st.sampled_from([parity, hex(parity)])), parity
    request["r"], canonical["r"] = draw(quantity(1, SECP256K1_N - 1))
    request["s"], canonical["s"] = draw(quantity(1, HALF_N))
    return request, canonical


@st.composite
def transaction(draw: st.DrawFn, tx_type: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """An ``eth_signTransaction`` request of ``tx_type`` and its canonical field values."""
    request: dict[str, Any] = {}
    canonical: dict[str, Any] = {"type": tx_type}

    def put(name: str, pair: tuple[Any, Any]) -> None:
        request[name], canonical[name] = pair

    put("chainId", draw(quantity(1, 2**64 - 1)))
    put("nonce", draw(quantity(0, 2**64 - 2)))
    put("gas", draw(quantity(0, 2**64 - 1)))
    if tx_type in (0, 1):
        put("gasPrice", draw(quantity()))
    else:
        spelled_cap, cap = draw(quantity())
        put("maxFeePerGas", (spelled_cap, cap))
        put("maxPriorityFeePerGas", draw(quantity(0, cap)))
    creation = tx_type <= 2 and draw(st.booleans())
    if creation:
        how = draw(st.sampled_from(["absent", "null"]))
        if how == "null":
            request["to"] = None
        canonical["to"] = None
    else:
        put("to", draw(address()))
    if draw(st.booleans()):
        put("value", draw(quantity()))
    else:
        canonical["value"] = 0
    if draw(st.booleans()):
        wire, raw = draw(hex_bytes(max_size=200))
        request[draw(st.sampled_from(["data", "input"]))] = wire
        canonical["data"] = raw
    else:
        canonical["data"] = b""
    if tx_type >= 1:
        if tx_type == 1 or draw(st.booleans()):
            put("accessList", draw(access_list()))
        else:
            canonical["accessList"] = []
    if tx_type == 3:
        put("maxFeePerBlobGas", draw(quantity()))
        hashes = draw(
            st.lists(st.binary(min_size=31, max_size=31), min_size=1, max_size=3).map(
                lambda tails: [b"\x01" + t for t in tails]
            )
        )
        request["blobVersionedHashes"] = ["0x" + h.hex() for h in hashes]
        canonical["blobVersionedHashes"] = hashes
    if tx_type == 4:
        pairs = draw(st.lists(authorization(), min_size=1, max_size=3))
        request["authorizationList"] = [p[0] for p in pairs]
        canonical["authorizationList"] = [p[1] for p in pairs]
    if tx_type in (0, 2, 3, 4) and draw(st.booleans()):
        request["type"] = draw(st.sampled_from([tx_type, hex(tx_type)]))
    elif tx_type == 1:
        request["type"] = draw(st.sampled_from([1, "0x1", "0x01"]))
    return request, canonical


# -- EIP-712 ----------------------------------------------------------------------------

_ATOMIC_KINDS = ["address", "bool", "string", "bytes", "bytesN", "uintN", "intN"]


@st.composite
def _field_type(draw: st.DrawFn, structs_after: list[str]) -> str:
    kinds = _ATOMIC_KINDS + (["struct"] * 3 if structs_after else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "bytesN":
        base = f"bytes{draw(st.integers(1, 32))}"
    elif kind == "uintN":
        base = f"uint{8 * draw(st.integers(1, 32))}"
    elif kind == "intN":
        base = f"int{8 * draw(st.integers(1, 32))}"
    elif kind == "struct":
        base = draw(st.sampled_from(structs_after))
    else:
        base = kind
    suffix = draw(st.sampled_from(["", "", "", "[]", "[2]", "[][]", "[1][]"]))
    return base + suffix


@st.composite
def _value(draw: st.DrawFn, type_: str, types: dict[str, list[dict[str, str]]]) -> tuple[Any, Any]:
    if type_.endswith("]"):
        inner, _, length = type_[:-1].rpartition("[")
        count = int(length) if length else draw(st.integers(0, 3))
        pairs = [draw(_value(inner, types)) for _ in range(count)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    if type_ in types:
        request, canonical = {}, {}
        for field in types[type_]:
            request[field["name"]], canonical[field["name"]] = draw(_value(field["type"], types))
        return request, canonical
    if type_ == "address":
        return draw(address())
    if type_ == "bool":
        flag = draw(st.booleans())
        return flag, flag
    if type_ == "string":
        text = draw(st.text(max_size=40))
        return text, text
    if type_ == "bytes":
        wire, raw = draw(hex_bytes(max_size=80))
        return wire, raw
    if type_.startswith("bytes"):
        size = int(type_[5:])
        wire, raw = draw(hex_bytes(size, size))
        return wire, raw
    if type_.startswith("uint"):
        return draw(quantity(0, 2 ** int(type_[4:]) - 1))
    bits = int(type_[3:])
    value = draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    return draw(st.sampled_from([value, str(value)])), value


_DOMAIN = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
]


@st.composite
def typed_data(draw: st.DrawFn) -> tuple[Any, dict[str, Any]]:
    """An ``eth_signTypedData_v4`` payload and its canonical form (``EIP712Domain`` explicit)."""
    count = draw(st.integers(1, 4))
    names = [f"Struct{i}" for i in range(count)]
    types: dict[str, list[dict[str, str]]] = {}
    for i, name in enumerate(names):
        field_count = draw(st.integers(1, 5))
        types[name] = [
            {"name": f"field{j}", "type": draw(_field_type(names[i + 1 :]))}
            for j in range(field_count)
        ]
    domain_fields = draw(
        st.lists(st.sampled_from(_DOMAIN), min_size=1, max_size=5, unique=True).map(
            lambda chosen: [f for f in _DOMAIN if f in chosen]
        )
    )
    domain_types = [{"name": n, "type": t} for n, t in domain_fields]
    domain_request, domain_canonical = draw(_value("EIP712Domain", {"EIP712Domain": domain_types}))
    message_request, message_canonical = draw(_value(names[0], types))
    request_types = dict(types)
    if draw(st.booleans()):
        request_types["EIP712Domain"] = domain_types
    request: Any = {
        "types": request_types,
        "primaryType": names[0],
        "domain": domain_request,
        "message": message_request,
    }
    # eth-account hashes only payloads without unused types; the hash never covers them.
    used, pending = {names[0]}, [names[0]]
    while pending:
        for field in types[pending.pop()]:
            base = field["type"].split("[")[0]
            if base in types and base not in used:
                used.add(base)
                pending.append(base)
    canonical = {
        "types": {**{n: types[n] for n in used}, "EIP712Domain": domain_types},
        "primaryType": names[0],
        "domain": domain_canonical,
        "message": message_canonical,
    }
    if draw(st.booleans()):
        import json

        request = json.dumps(request)
    return request, canonical


@st.composite
def personal_message(draw: st.DrawFn) -> tuple[dict[str, Any], bytes]:
    """``sign_message`` arguments and the bytes they sign."""
    if draw(st.booleans()):
        text = draw(st.text(max_size=300))
        arguments: dict[str, Any] = {"message": text}
        if draw(st.booleans()):
            arguments["encoding"] = "utf8"
        return arguments, text.encode()
    raw = draw(st.binary(max_size=300))
    return {"message": "0x" + raw.hex(), "encoding": "hex"}, raw
