"""The decoders against eth-abi and eth-account: what we read from a request is what those
libraries read from it, party by party, amount by amount.

Every ERC-20, Multicall3, Permit and Permit2 request of the case table is decoded
both ways; property tests add random parties and amounts, and calldata that is
not exactly canonical.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

import pytest
from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_account.messages import encode_typed_data
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from agentic_vault import TransactionRequest, parse_typed_data
from agentic_vault.policy import Batch, SignIn, TokenAllowance, TokenTransfer, Unreadable
from agentic_vault.policy.decode import decode_call, decode_transaction, decode_typed_data
from agentic_vault.policy.decode import siwe as siwe_decoder
from agentic_vault.policy.effects import Call
from agentic_vault.policy.units import format_units, parse_units

from .policy_cases import CASES, MULTICALL3, PERMIT2, Case

WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"

ERC20 = {
    function_signature_to_4byte_selector(signature): (signature, types)
    for signature, types in [
        ("transfer(address,uint256)", ["address", "uint256"]),
        ("transferFrom(address,address,uint256)", ["address", "address", "uint256"]),
        ("approve(address,uint256)", ["address", "uint256"]),
        ("increaseAllowance(address,uint256)", ["address", "uint256"]),
    ]
}
BATCHES = {
    function_signature_to_4byte_selector(signature): types
    for signature, types in [
        ("aggregate((address,bytes)[])", ["(address,bytes)[]"]),
        ("aggregate3((address,bool,bytes)[])", ["(address,bool,bytes)[]"]),
        ("aggregate3Value((address,bool,uint256,bytes)[])", ["(address,bool,uint256,bytes)[]"]),
        ("tryAggregate(bool,(address,bytes)[])", ["bool", "(address,bytes)[]"]),
        ("blockAndAggregate((address,bytes)[])", ["(address,bytes)[]"]),
        ("tryBlockAndAggregate(bool,(address,bytes)[])", ["bool", "(address,bytes)[]"]),
    ]
}


def canonical(types: list[str], data: bytes) -> tuple[Any, ...] | None:
    """What eth-abi reads from ``data``, if ``data`` is exactly the encoding of it."""
    try:
        values = decode(types, data, strict=False)
    except (DecodingError, ValueError, OverflowError):
        return None
    return values if encode(types, values) == data else None


def expected_erc20(to: str, data: bytes) -> tuple[str, tuple[Any, ...]] | None:
    """(function name, (party…, amount)) as eth-abi reads the calldata; None if not ERC-20."""
    spec = ERC20.get(data[:4])
    if spec is None:
        return None
    values = canonical(spec[1], data[4:])
    if values is None:
        return ("unreadable", ())
    parties = tuple(to_checksum_address(v) if isinstance(v, str) else v for v in values)
    return spec[0].split("(")[0], parties


def check_call(to: str, value: int, data: bytes, effect: Any) -> int:
    """Compare one call's effect with eth-abi's reading; the number of comparisons made."""
    expected = expected_erc20(to, data)
    if expected is None:
        return 0
    name, values = expected
    if name == "unreadable":
        assert isinstance(effect, Unreadable)
        return 1
    if name == "transfer":
        assert isinstance(effect, TokenTransfer)
        assert (effect.token, effect.sender, effect.to, effect.amount) == (to, None, *values)
    elif name == "transferFrom":
        assert isinstance(effect, TokenTransfer)
        assert (effect.token, effect.sender, effect.to, effect.amount) == (to, *values)
    else:
        assert isinstance(effect, TokenAllowance)
        assert effect.method == name
        assert (effect.token, effect.spender, effect.amount) == (to, *values)
    return 1


def calldata_cases() -> list[Case]:
    return [c for c in CASES if c.tool == "sign_transaction"]


@pytest.mark.parametrize("case", calldata_cases(), ids=lambda c: c.id)
def test_transactions_of_the_table_decode_as_eth_abi_reads_them(case: Case) -> None:
    raw = case.arguments_for(WALLET)["transaction"]
    tx = TransactionRequest.parse(raw)
    decoded = decode_transaction(tx)
    if tx.to is None:
        assert decoded.deployment is not None
        assert decoded.deployment.value == tx.value
        return
    assert decoded.call is not None
    effect = decoded.call.effect
    data = bytes.fromhex(raw.get("data", "0x")[2:])
    check_call(tx.to, tx.value, data, effect)
    if tx.to == MULTICALL3 and data[:4] in BATCHES:
        values = canonical(BATCHES[data[:4]], data[4:])
        if values is None:
            assert isinstance(effect, Unreadable)
            return
        assert isinstance(effect, Batch)
        entries = values[-1]
        assert len(effect.calls) == len(entries)
        for inner, entry in zip(effect.calls, entries, strict=True):
            target, inner_data = to_checksum_address(entry[0]), entry[-1]
            inner_value = entry[2] if len(entry) == 4 else 0
            assert (inner.call.to, inner.call.value, inner.call.data) == (
                target,
                inner_value,
                inner_data,
            )
            if inner.call.to != MULTICALL3:
                check_call(target, inner_value, inner_data, inner.effect)


def test_the_table_has_plenty_of_erc20_and_batch_requests() -> None:
    compared = 0
    for case in calldata_cases():
        raw = case.arguments_for(WALLET)["transaction"]
        data = bytes.fromhex(raw.get("data", "0x")[2:])
        compared += expected_erc20(raw.get("to", ""), data) is not None
    assert compared >= 30


# -- typed data ---------------------------------------------------------------------------


def expected_grants(typed_data: dict[str, Any]) -> list[dict[str, Any]]:
    """Token, spender, amount and times of a Permit or Permit2 message, read from its JSON."""
    message, domain, primary = (
        typed_data["message"],
        typed_data["domain"],
        typed_data["primaryType"],
    )
    if primary == "Permit" and "value" in message:
        return [
            {
                "token": to_checksum_address(domain["verifyingContract"]),
                "spender": to_checksum_address(message["spender"]),
                "amount": int(message["value"]),
                "deadline": int(message["deadline"]),
                "owner": to_checksum_address(message["owner"]),
            }
        ]
    if primary == "Permit" and "allowed" in message:
        return [
            {
                "token": to_checksum_address(domain["verifyingContract"]),
                "spender": to_checksum_address(message["spender"]),
                "amount": 2**256 - 1 if message["allowed"] else 0,
                "deadline": int(message["expiry"]) or None,
                "owner": to_checksum_address(message["holder"]),
            }
        ]
    if "details" in message:
        details = (
            message["details"] if isinstance(message["details"], list) else [message["details"]]
        )
        return [
            {
                "token": to_checksum_address(d["token"]),
                "spender": to_checksum_address(message["spender"]),
                "amount": int(d["amount"]),
                "deadline": int(message["sigDeadline"]),
                "expires_at": int(d["expiration"]),
            }
            for d in details
        ]
    permitted = (
        message["permitted"] if isinstance(message["permitted"], list) else [message["permitted"]]
    )
    return [
        {
            "token": to_checksum_address(p["token"]),
            "spender": to_checksum_address(message["spender"]),
            "amount": int(p["amount"]),
            "deadline": int(message["deadline"]),
            "single_use": True,
        }
        for p in permitted
    ]


# Permit2's own type definitions, written out from its source (PermitHash.sol).
PERMIT2_TYPES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "PermitSingle": {
        "PermitSingle": [
            ("details", "PermitDetails"),
            ("spender", "address"),
            ("sigDeadline", "uint256"),
        ],
    },
    "PermitBatch": {
        "PermitBatch": [
            ("details", "PermitDetails[]"),
            ("spender", "address"),
            ("sigDeadline", "uint256"),
        ],
    },
    "PermitTransferFrom": {
        "PermitTransferFrom": [
            ("permitted", "TokenPermissions"),
            ("spender", "address"),
            ("nonce", "uint256"),
            ("deadline", "uint256"),
        ],
    },
    "PermitBatchTransferFrom": {
        "PermitBatchTransferFrom": [
            ("permitted", "TokenPermissions[]"),
            ("spender", "address"),
            ("nonce", "uint256"),
            ("deadline", "uint256"),
        ],
    },
}
PERMIT_DETAILS = [
    ("token", "address"),
    ("amount", "uint160"),
    ("expiration", "uint48"),
    ("nonce", "uint48"),
]
TOKEN_PERMISSIONS = [("token", "address"), ("amount", "uint256")]


def genuine_permit2(raw: dict[str, Any]) -> bool:
    """Permit2's domain exactly, and one of its message types exactly as Permit2 defines it."""
    domain = raw["domain"]
    if set(domain) != {"name", "chainId", "verifyingContract"}:
        return False
    if to_checksum_address(domain["verifyingContract"]) != PERMIT2:
        return False
    types = {n: [(f["name"], f["type"]) for f in fs] for n, fs in raw["types"].items()}
    primary = raw["primaryType"]
    if primary == "PermitWitnessTransferFrom":
        fields = types.get(primary, [])
        return (
            fields[:-1] == PERMIT2_TYPES["PermitTransferFrom"]["PermitTransferFrom"]
            and types.get("TokenPermissions") == TOKEN_PERMISSIONS
        )
    if primary not in PERMIT2_TYPES or types.get(primary) != PERMIT2_TYPES[primary][primary]:
        return False
    if primary in ("PermitSingle", "PermitBatch"):
        return types.get("PermitDetails") == PERMIT_DETAILS
    return types.get("TokenPermissions") == TOKEN_PERMISSIONS


def permit_cases() -> list[Case]:
    found = []
    for case in CASES:
        if case.tool != "sign_typed_data":
            continue
        typed_data = case.arguments["typed_data"]
        if typed_data["primaryType"] == "Permit" or typed_data["domain"].get("name") == "Permit2":
            found.append(case)
    return found


@pytest.mark.parametrize("case", permit_cases(), ids=lambda c: c.id)
def test_permits_of_the_table_decode_as_their_json_says(case: Case) -> None:
    raw = case.arguments_for(WALLET)["typed_data"]
    payload = parse_typed_data(raw)
    # What we judge is what is signed: eth-account hashes the raw request to the same digest.
    signable = encode_typed_data(full_message=raw)
    assert keccak(b"\x19" + signable.version + signable.header + signable.body) == payload.digest
    effects = decode_typed_data(payload)
    if raw["domain"].get("name") == "Permit2" and not genuine_permit2(raw):
        assert all(isinstance(e, Unreadable) for e in effects), effects
        return
    if raw["primaryType"] == "Permit" and not {"value", "allowed"} & set(raw["message"]):
        return  # another struct named Permit: other typed data
    grants = [e for e in effects if isinstance(e, TokenAllowance)]
    expected = expected_grants(raw)
    assert len(grants) == len(expected)
    for grant, wanted in zip(grants, expected, strict=True):
        for field, value in wanted.items():
            assert getattr(grant, field) == value, (field, grant)


def test_the_table_has_every_permit_kind() -> None:
    kinds = {c.arguments["typed_data"]["primaryType"] for c in permit_cases()}
    assert kinds >= {
        "Permit",
        "PermitSingle",
        "PermitBatch",
        "PermitTransferFrom",
        "PermitBatchTransferFrom",
        "PermitWitnessTransferFrom",
    }


# -- properties ---------------------------------------------------------------------------

addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
uint256 = st.integers(min_value=0, max_value=2**256 - 1)
TOKEN = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"


@given(st.sampled_from(sorted(ERC20)), st.lists(addresses, min_size=2, max_size=2), uint256)
def test_erc20_calldata_reads_as_encoded(selector: bytes, parties: list[str], amount: int) -> None:
    types = ERC20[selector][1]
    values = [*parties[: len(types) - 1], amount]
    data = selector + encode(types, values)
    effect = decode_call(Call(8453, TOKEN, 0, data)).effect
    assert check_call(TOKEN, 0, data, effect) == 1
    assert not isinstance(effect, Unreadable)


@given(
    st.sampled_from(sorted(ERC20)),
    addresses,
    uint256,
    st.binary(min_size=1, max_size=64),
)
def test_erc20_calldata_with_trailing_bytes_is_unreadable(
    selector: bytes, party: str, amount: int, tail: bytes
) -> None:
    types = ERC20[selector][1]
    data = selector + encode(types, [party] * (len(types) - 1) + [amount]) + tail
    assert isinstance(decode_call(Call(1, TOKEN, 0, data)).effect, Unreadable)


@given(addresses, uint256, st.integers(min_value=0, max_value=11), st.integers(1, 255))
def test_dirty_address_padding_is_unreadable(
    party: str, amount: int, position: int, byte: int
) -> None:
    data = bytearray(
        function_signature_to_4byte_selector("transfer(address,uint256)")
        + encode(["address", "uint256"], [party, amount])
    )
    data[4 + position] = byte  # one of the 12 zero bytes before the address
    assert isinstance(decode_call(Call(1, TOKEN, 0, bytes(data))).effect, Unreadable)


calls = st.lists(
    st.tuples(addresses, st.booleans(), st.integers(0, 10**20), st.binary(max_size=100)),
    max_size=6,
)


@given(calls)
def test_aggregate3_value_batches_read_call_by_call(
    entries: list[tuple[str, bool, int, bytes]],
) -> None:
    selector = function_signature_to_4byte_selector(
        "aggregate3Value((address,bool,uint256,bytes)[])"
    )
    data = selector + encode(["(address,bool,uint256,bytes)[]"], [entries])
    total = sum(e[2] for e in entries)
    effect = decode_call(Call(1, MULTICALL3, total, data)).effect
    assert isinstance(effect, Batch)
    assert [(c.call.to, c.call.value, c.call.data) for c in effect.calls] == [
        (target, value, payload) for target, _, value, payload in entries
    ]
    assert [c.call.index for c in effect.calls] == list(range(1, len(entries) + 1))


@given(
    st.lists(
        st.tuples(addresses, st.integers(0, 2**160 - 1), st.integers(0, 2**48 - 1)),
        min_size=1,
        max_size=4,
    ),
    addresses,
    st.integers(0, 2**256 - 1),
)
def test_permit2_batches_read_token_by_token(
    details: list[tuple[str, int, int]], spender: str, deadline: int
) -> None:
    raw = {
        "types": {
            "PermitBatch": [
                {"name": "details", "type": "PermitDetails[]"},
                {"name": "spender", "type": "address"},
                {"name": "sigDeadline", "type": "uint256"},
            ],
            "PermitDetails": [
                {"name": "token", "type": "address"},
                {"name": "amount", "type": "uint160"},
                {"name": "expiration", "type": "uint48"},
                {"name": "nonce", "type": "uint48"},
            ],
        },
        "primaryType": "PermitBatch",
        "domain": {"name": "Permit2", "chainId": 8453, "verifyingContract": PERMIT2},
        "message": {
            "details": [
                {"token": t, "amount": str(a), "expiration": e, "nonce": 0} for t, a, e in details
            ],
            "spender": spender.lower(),
            "sigDeadline": hex(deadline),
        },
    }
    grants = [g for g in decode_typed_data(parse_typed_data(raw)) if isinstance(g, TokenAllowance)]
    assert [(g.token, g.amount, g.expires_at, g.spender, g.deadline) for g in grants] == [
        (t, a, e, spender, deadline) for t, a, e in details
    ]


# -- sign-in messages ---------------------------------------------------------------------

EIP4361_EXAMPLE = (
    "service.org wants you to sign in with your Ethereum account:\n"
    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
    "\n"
    "I accept the ServiceOrg Terms of Service: https://service.org/tos\n"
    "\n"
    "URI: https://service.org/login\n"
    "Version: 1\n"
    "Chain ID: 1\n"
    "Nonce: 32891756\n"
    "Issued At: 2021-09-30T16:25:24Z\n"
    "Resources:\n"
    "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
    "- https://example.com/my-web2-claim.json"
)


def test_the_eip_4361_example_parses_field_by_field() -> None:
    parsed = siwe_decoder.parse(EIP4361_EXAMPLE)
    assert isinstance(parsed, SignIn)
    assert parsed.domain == "service.org"
    assert parsed.address == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert parsed.statement == "I accept the ServiceOrg Terms of Service: https://service.org/tos"
    assert (parsed.uri, parsed.chain_id, parsed.nonce) == (
        "https://service.org/login",
        1,
        "32891756",
    )
    assert parsed.issued_at == "2021-09-30T16:25:24Z"
    assert parsed.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    )


@pytest.mark.parametrize(
    "mangled",
    [
        EIP4361_EXAMPLE + "\n",
        EIP4361_EXAMPLE.replace("\n", "\r\n"),
        EIP4361_EXAMPLE.replace("Chain ID: 1\n", ""),
        EIP4361_EXAMPLE.replace("Nonce: 32891756\n", "Nonce: 32891756\nNonce: 1234567890\n"),
        EIP4361_EXAMPLE.replace("service.org wants", "evil.org\u2028service.org wants"),
        EIP4361_EXAMPLE.replace("Chain ID: 1", "Chain ID: 01"),
        EIP4361_EXAMPLE.replace("Issued At: 2021-09-30T16:25:24Z", "Issued At: yesterday"),
        EIP4361_EXAMPLE.replace("\n\nURI", "\nURI"),
        "  " + EIP4361_EXAMPLE,
        EIP4361_EXAMPLE.replace("Ethereum account", "ethereum account"),
    ],
)
def test_near_misses_are_malformed_not_text(mangled: str) -> None:
    assert isinstance(siwe_decoder.parse(mangled), Unreadable)


def test_text_without_the_phrase_is_not_a_sign_in() -> None:
    assert siwe_decoder.parse("Sign in to service.org please") is None


statements = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    + " -._~:/?#[]@!$&'()*+,;=",
    min_size=1,
    max_size=80,
)


@given(
    st.sampled_from(["app.example.org", "localhost:3000", "a.b.c.example.com", "[::1]:8080"]),
    addresses,
    st.one_of(st.none(), statements),
    st.integers(1, 2**63),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=32),
)
def test_generated_sign_ins_parse_back(
    domain: str, address: str, statement: str | None, chain: int, nonce: str
) -> None:
    lines = [f"{domain} wants you to sign in with your Ethereum account:", address, ""]
    if statement is not None:
        lines += [statement, ""]
    lines += [
        f"URI: https://{domain}/",
        "Version: 1",
        f"Chain ID: {chain}",
        f"Nonce: {nonce}",
        "Issued At: 2026-01-01T00:00:00.123+02:00",
    ]
    parsed = siwe_decoder.parse("\n".join(lines))
    assert isinstance(parsed, SignIn), parsed
    assert (parsed.domain, parsed.address, parsed.statement, parsed.chain_id, parsed.nonce) == (
        domain.lower(),
        address,
        statement,
        chain,
        nonce,
    )


# -- units --------------------------------------------------------------------------------


@given(st.integers(0, 10**40), st.integers(0, 30), st.integers(0, 30))
def test_units_convert_exactly(whole: int, decimals: int, digits: int) -> None:
    fraction = str(whole)[:digits]
    text = f"{whole}.{fraction}" if fraction else str(whole)
    with localcontext() as context:
        context.prec = 200
        scaled = Decimal(text) * (Decimal(10) ** decimals)
    if scaled != scaled.to_integral_value():
        with pytest.raises(ValueError, match="decimals"):
            parse_units(text, decimals)
        return
    amount = parse_units(text, decimals)
    assert amount == int(scaled)
    assert parse_units(format_units(amount, decimals).replace(",", ""), decimals) == amount
