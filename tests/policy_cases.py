"""The policy's table of cases: a request, the policy, and what the guard must answer.

Each case is exactly what an MCP client sends (the tool and its arguments), the
policy file's text, the expected outcome and, for a refusal, the KEY it must
name. ``before`` lists earlier requests of the same session, each with its
own expected outcome: what they sign counts toward the rolling sums and the
rate. Runners:

- ``tests/test_policy_table.py`` (here): the core's parsers and ``evaluate``,
  with a small in-memory ledger;
- the end-to-end runner: the real console script with ``--policy``, a fresh
  state store per case, checking that a refusal reaches no ``kms:Sign``.

The wallet's address is not known when the table is built: arguments carry
``SIGNER`` where it goes (a ``from``, a Permit's owner, a sign-in's address);
``Case.arguments_for(address)`` substitutes it (also in hex messages, and for
``SIGNER_IN_CALLDATA`` where calldata encodes it). Deadlines are relative to the
moment this module is imported (``NOW``) with at least ten minutes of margin.

Calldata and typed data are built here with eth-abi and by hand, never with
the code under test.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

Tool = Literal["sign_transaction", "sign_typed_data", "sign_message"]
Outcome = Literal["allow", "deny", "approve"]

SIGNER = "<SIGNER>"
# In calldata the wallet's address is ABI-encoded: this stand-in is replaced there.
SIGNER_IN_CALLDATA = "0x5167e55167e55167e55167e55167e55167e55167"
NOW = int(time.time())
EXAMPLE = (Path(__file__).resolve().parent.parent / "examples" / "policy.toml").read_text()

# -- addresses (those of the example policy, and some strangers) --------------------------

ALICE = to_checksum_address("0xa11ce00000000000000000000000000000000001")
BOB = to_checksum_address("0xb0b0000000000000000000000000000000000002")
CAROL = to_checksum_address("0xca201000000000000000000000000000000000c3")
ROUTER = to_checksum_address("0x5a9e000000000000000000000000000000000004")
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
USDC_ETH = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
DAI = "0x6B175474E89094C44Da98b954EedeAC495271d0F"
NFT = to_checksum_address("0x00000000000000000000000000000000000c0113")
VAULT = to_checksum_address("0x0000000000000000000000000000000000005afe")
DELEGATE = to_checksum_address("0x000000000000000000000000000000000000de1e")
EXCHANGE = to_checksum_address("0x0000000000000000000000000000000000000e5c")
MALLORY = to_checksum_address("0x000000000000000000000000000000000000bad1")
STRANGER_TOKEN = to_checksum_address("0x0000000000000000000000000000000000007777")

ETHER = 10**18
GWEI = 10**9
USDC = 10**6
UINT256_MAX = 2**256 - 1

# -- policies -----------------------------------------------------------------------------

_HEAD = f"""version = 1
chains = [1, 8453]

[addresses]
alice = "{ALICE}"
bob = "{BOB}"
carol = "{CAROL}"
router = "{ROUTER}"
nft = "{NFT}"
vault = "{VAULT}"
delegate = "{DELEGATE}"
exchange = "{EXCHANGE}"
"""
_USDC = f"""
[tokens.usdc]
decimals = 6
address = {{ 1 = "{USDC_ETH}", 8453 = "{USDC_BASE}" }}
to = ["alice", "bob"]
max_per_tx = "500"
max_per_day = "2000"
spenders = ["router"]
max_allowance = "1000"
"""


def policy(body: str = "", head: str = _HEAD) -> str:
    """A policy file: the common head (chains, [addresses]) and ``body``."""
    return head + body


EMPTY = policy()
WITH_USDC = policy(_USDC)
APPROVALS = policy(
    _USDC.replace('max_allowance = "1000"', 'max_allowance = "1000"\napprove_above = "100"')
    + """
[native]
to = ["alice"]
max_per_tx = "1"
approve_above = "0.01"
"""
)
DAI_TOKEN = policy(
    f"""
[tokens.dai]
decimals = 18
address = "{DAI}"
symbol = "DAI"
to = ["alice"]
max_per_tx = "1.5"
spenders = ["router"]
"""
)
OPEN_NATIVE = policy(
    """
[native]
to = ["alice", "0x00000000000000000000000000000000000000F1"]
"""
)
MULTICALL = policy(
    _USDC
    + f"""
[native]
to = ["alice", "bob"]
max_per_tx = "0.5"

[contracts.multicall3]
address = "{MULTICALL3}"
functions = [
  "aggregate3((address,bool,bytes)[])",
  "aggregate3Value((address,bool,uint256,bytes)[])",
  "tryAggregate(bool,(address,bytes)[])",
  "0xc3077fa9",
]
max_value = "1"

[contracts.router]
address = "router"
functions = ["execute(bytes,bytes[],uint256)"]
max_value = "0.1"
"""
)
CONTRACTS = policy(
    _USDC
    + f"""
[contracts.vault]
address = "vault"
functions = ["deposit()", "withdraw(uint256)", "0x12345678"]
max_value = "0.5"

[contracts.nft]
address = "{NFT}"
functions = ["setApprovalForAll(address,bool)"]

[contracts.router]
address = {{ 8453 = "router" }}
functions = ["execute(bytes,bytes[],uint256)"]

[contracts.usdc_extras]
address = {{ 8453 = "{USDC_BASE}" }}
functions = ["permit(address,address,uint256,uint256,uint8,bytes32,bytes32)"]
"""
)
TYPED = policy(
    _USDC
    + f"""
[typed_data]
max_validity = 600

[[typed_data.allow]]
verifying_contract = "exchange"
primary_types = ["Order", "Cancel"]

[[typed_data.allow]]
verifying_contract = {{ 1 = "{NFT}" }}
primary_types = ["Permit"]

[[typed_data.allow]]
verifying_contract = "{USDC_BASE}"
primary_types = ["Permit"]
"""
)
TYPED_ONE_CHAIN = policy(
    f"""
[[typed_data.allow]]
verifying_contract = {{ 1 = "{EXCHANGE}" }}
primary_types = ["Order"]
"""
)
HEX_NOT_TEXT = policy(
    """
[messages]
text = false
hex = true
"""
)
MESSAGES = policy(
    r"""
[messages]
text = true
patterns = ['Login to example\.org: [0-9a-f]{16}', '(?s)Daily report\n.*']
siwe_domains = ["app.example.org", "localhost:3000"]
hex = true
"""
)
TEXT_ONLY = policy(
    """
[messages]
text = true
"""
)
DELEGATION = policy(
    """
[delegation]
delegates = ["delegate"]
"""
)
FEES = policy(
    """
[native]
to = ["alice"]

[fees]
max_fee_per_gas = "50"
max_fee = "0.005"
"""
)
DEPLOY = policy(
    """
allow_deploy = true

[native]
max_per_tx = "0.1"
""".replace("allow_deploy = true\n", ""),
    head=_HEAD.replace("chains = [1, 8453]\n", "chains = [1, 8453]\nallow_deploy = true\n"),
)
RATE = policy(
    """
[native]
to = ["alice"]

[messages]
text = true

[rate]
max_per_hour = 3
"""
)
ONE_CHAIN = policy(
    """
[native]
to = ["alice"]
""",
    head=_HEAD.replace("chains = [1, 8453]", "chains = [8453]"),
)
NATIVE_DAY = policy(
    """
[native]
to = ["alice", "bob"]
max_per_day = "0.1"

[contracts.vault]
address = "vault"
functions = ["deposit()"]
max_value = "1"
"""
)

# -- building requests --------------------------------------------------------------------


def selector(signature: str) -> str:
    return function_signature_to_4byte_selector(signature).hex()


def calldata(signature: str, types: list[str], values: list[Any]) -> str:
    return "0x" + selector(signature) + encode(types, values).hex()


def transfer(to: str, amount: int) -> str:
    return calldata("transfer(address,uint256)", ["address", "uint256"], [to, amount])


def transfer_from(sender: str, to: str, amount: int) -> str:
    return calldata(
        "transferFrom(address,address,uint256)",
        ["address", "address", "uint256"],
        [sender, to, amount],
    )


def approve(spender: str, amount: int) -> str:
    return calldata("approve(address,uint256)", ["address", "uint256"], [spender, amount])


def increase_allowance(spender: str, amount: int) -> str:
    return calldata("increaseAllowance(address,uint256)", ["address", "uint256"], [spender, amount])


def set_approval_for_all(operator: str, approved: bool) -> str:
    return calldata("setApprovalForAll(address,bool)", ["address", "bool"], [operator, approved])


def execute(commands: bytes = b"\x0b", deadline: int = NOW + 600) -> str:
    return calldata(
        "execute(bytes,bytes[],uint256)",
        ["bytes", "bytes[]", "uint256"],
        [commands, [b"\x01" * 40], deadline],
    )


def aggregate3(calls: list[tuple[str, str]]) -> str:
    return calldata(
        "aggregate3((address,bool,bytes)[])",
        ["(address,bool,bytes)[]"],
        [[(target, False, bytes.fromhex(data[2:])) for target, data in calls]],
    )


def aggregate3_value(calls: list[tuple[str, int, str]]) -> str:
    return calldata(
        "aggregate3Value((address,bool,uint256,bytes)[])",
        ["(address,bool,uint256,bytes)[]"],
        [[(target, False, value, bytes.fromhex(data[2:])) for target, value, data in calls]],
    )


def aggregate(calls: list[tuple[str, str]], signature: str = "aggregate((address,bytes)[])") -> str:
    entries = [(target, bytes.fromhex(data[2:])) for target, data in calls]
    if signature.startswith(("tryAggregate", "tryBlockAndAggregate")):
        return calldata(signature, ["bool", "(address,bytes)[]"], [False, entries])
    return calldata(signature, ["(address,bytes)[]"], [entries])


def tx(
    to: str | None,
    value: int = 0,
    data: str = "0x",
    chain: int = 8453,
    gas: int = 100_000,
    fee: int = 1 * GWEI,
    **extra: Any,
) -> dict[str, Any]:
    """``sign_transaction`` arguments: an EIP-1559 transaction unless ``extra`` says otherwise."""
    transaction: dict[str, Any] = {"chainId": chain, "nonce": 7, "gas": gas}
    if "gasPrice" not in extra:
        transaction |= {"maxFeePerGas": str(fee), "maxPriorityFeePerGas": "1000000"}
    if to is not None:
        transaction["to"] = to
    if value:
        transaction["value"] = hex(value)
    if data != "0x":
        transaction["data"] = data
    transaction |= extra
    return {"transaction": transaction}


def authorization(delegate: str, chain: int = 8453, nonce: int = 0) -> dict[str, Any]:
    """An EIP-7702 authorization (signed by someone; the policy judges what it delegates)."""
    return {
        "chainId": chain,
        "address": delegate,
        "nonce": nonce,
        "yParity": 1,
        "r": "0x" + "11" * 32,
        "s": "0x" + "22" * 32,
    }


def typed(
    primary: str,
    types: dict[str, list[tuple[str, str]]],
    domain: dict[str, Any],
    message: dict[str, Any],
) -> dict[str, Any]:
    """``sign_typed_data`` arguments."""
    return {
        "typed_data": {
            "types": {
                name: [{"name": n, "type": t} for n, t in fields] for name, fields in types.items()
            },
            "primaryType": primary,
            "domain": domain,
            "message": message,
        }
    }


PERMIT_TYPE = [
    ("owner", "address"),
    ("spender", "address"),
    ("value", "uint256"),
    ("nonce", "uint256"),
    ("deadline", "uint256"),
]


def permit(
    spender: str,
    value: int,
    deadline: int = NOW + 900,
    token: str = USDC_BASE,
    chain: int | None = 8453,
    owner: str = SIGNER,
) -> dict[str, Any]:
    domain: dict[str, Any] = {"name": "USD Coin", "version": "2", "verifyingContract": token}
    if chain is not None:
        domain["chainId"] = chain
    return typed(
        "Permit",
        {"Permit": PERMIT_TYPE},
        domain,
        {"owner": owner, "spender": spender, "value": str(value), "nonce": 0, "deadline": deadline},
    )


def dai_permit(allowed: bool, expiry: int, spender: str = ROUTER) -> dict[str, Any]:
    return typed(
        "Permit",
        {
            "Permit": [
                ("holder", "address"),
                ("spender", "address"),
                ("nonce", "uint256"),
                ("expiry", "uint256"),
                ("allowed", "bool"),
            ]
        },
        {"name": "Dai Stablecoin", "version": "1", "chainId": 1, "verifyingContract": DAI},
        {"holder": SIGNER, "spender": spender, "nonce": 0, "expiry": expiry, "allowed": allowed},
    )


PERMIT2_DOMAIN = {"name": "Permit2", "chainId": 8453, "verifyingContract": PERMIT2}
DETAILS = [
    ("token", "address"),
    ("amount", "uint160"),
    ("expiration", "uint48"),
    ("nonce", "uint48"),
]
PERMISSIONS = [("token", "address"), ("amount", "uint256")]


def permit2_single(
    spender: str,
    amount: int,
    expiration: int = NOW + 1200,
    sig_deadline: int = NOW + 1200,
    token: str = USDC_BASE,
    domain: dict[str, Any] | None = None,
    details_type: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    return typed(
        "PermitSingle",
        {
            "PermitSingle": [
                ("details", "PermitDetails"),
                ("spender", "address"),
                ("sigDeadline", "uint256"),
            ],
            "PermitDetails": details_type or DETAILS,
        },
        domain or PERMIT2_DOMAIN,
        {
            "details": {
                "token": token,
                "amount": str(amount),
                "expiration": expiration,
                "nonce": 0,
            },
            "spender": spender,
            "sigDeadline": sig_deadline,
        },
    )


def permit2_batch(
    spender: str, grants: list[tuple[str, int]], expiration: int = NOW + 1200
) -> dict[str, Any]:
    return typed(
        "PermitBatch",
        {
            "PermitBatch": [
                ("details", "PermitDetails[]"),
                ("spender", "address"),
                ("sigDeadline", "uint256"),
            ],
            "PermitDetails": DETAILS,
        },
        PERMIT2_DOMAIN,
        {
            "details": [
                {"token": token, "amount": str(amount), "expiration": expiration, "nonce": i}
                for i, (token, amount) in enumerate(grants)
            ],
            "spender": spender,
            "sigDeadline": NOW + 1200,
        },
    )


_TRANSFER_FIELDS = [("spender", "address"), ("nonce", "uint256"), ("deadline", "uint256")]


def permit2_transfer(
    spender: str, amount: int, deadline: int = NOW + 1200, token: str = USDC_BASE
) -> dict[str, Any]:
    return typed(
        "PermitTransferFrom",
        {
            "PermitTransferFrom": [("permitted", "TokenPermissions"), *_TRANSFER_FIELDS],
            "TokenPermissions": PERMISSIONS,
        },
        PERMIT2_DOMAIN,
        {
            "permitted": {"token": token, "amount": str(amount)},
            "spender": spender,
            "nonce": 1,
            "deadline": deadline,
        },
    )


def permit2_batch_transfer(spender: str, grants: list[tuple[str, int]]) -> dict[str, Any]:
    return typed(
        "PermitBatchTransferFrom",
        {
            "PermitBatchTransferFrom": [("permitted", "TokenPermissions[]"), *_TRANSFER_FIELDS],
            "TokenPermissions": PERMISSIONS,
        },
        PERMIT2_DOMAIN,
        {
            "permitted": [{"token": token, "amount": str(amount)} for token, amount in grants],
            "spender": spender,
            "nonce": 2,
            "deadline": NOW + 1200,
        },
    )


def permit2_witness(spender: str, amount: int, deadline: int = NOW + 1200) -> dict[str, Any]:
    return typed(
        "PermitWitnessTransferFrom",
        {
            "PermitWitnessTransferFrom": [
                ("permitted", "TokenPermissions"),
                *_TRANSFER_FIELDS,
                ("witness", "ExampleWitness"),
            ],
            "TokenPermissions": PERMISSIONS,
            "ExampleWitness": [("user", "address")],
        },
        PERMIT2_DOMAIN,
        {
            "permitted": {"token": USDC_BASE, "amount": str(amount)},
            "spender": spender,
            "nonce": 3,
            "deadline": deadline,
            "witness": {"user": SIGNER},
        },
    )


def mail(domain: dict[str, Any]) -> dict[str, Any]:
    return typed("Mail", {"Mail": [("contents", "string")]}, domain, {"contents": "hello"})


def order(
    verifying_contract: str = EXCHANGE, chain: int = 8453, primary: str = "Order"
) -> dict[str, Any]:
    return typed(
        primary,
        {primary: [("maker", "address"), ("amount", "uint256")]},
        {
            "name": "Exchange",
            "version": "1",
            "chainId": chain,
            "verifyingContract": verifying_contract,
        },
        {"maker": SIGNER, "amount": 5},
    )


def order_without_contract() -> dict[str, Any]:
    """An Order on Base whose domain has no verifyingContract."""
    return typed(
        "Order",
        {"Order": [("maker", "address"), ("amount", "uint256")]},
        {"name": "Exchange", "chainId": 8453},
        {"maker": SIGNER, "amount": 1},
    )


def nft_permit(chain: int) -> dict[str, Any]:
    """An ERC-721 permit (EIP-4494): a struct named Permit that is not a token allowance."""
    return typed(
        "Permit",
        {
            "Permit": [
                ("spender", "address"),
                ("tokenId", "uint256"),
                ("nonce", "uint256"),
                ("deadline", "uint256"),
            ]
        },
        {"name": "Positions", "version": "1", "chainId": chain, "verifyingContract": NFT},
        {"spender": ROUTER, "tokenId": 7, "nonce": 0, "deadline": NOW + 600},
    )


def message(text: str, encoding: str = "utf8") -> dict[str, Any]:
    """``sign_message`` arguments."""
    return {"message": text, "encoding": encoding}


def siwe(
    domain: str = "app.example.org",
    chain: int = 8453,
    address: str = SIGNER,
    statement: str | None = "Sign in to the example app.",
    tail: str = "",
    scheme: str = "",
) -> str:
    """An EIP-4361 message, written out by hand."""
    lines = [f"{scheme}{domain} wants you to sign in with your Ethereum account:", address, ""]
    if statement is not None:
        lines += [statement, ""]
    lines += [
        f"URI: https://{domain}/login",
        "Version: 1",
        f"Chain ID: {chain}",
        "Nonce: k2J9sLq0xYz1",
        "Issued At: 2026-01-01T00:00:00Z",
    ]
    return "\n".join(lines) + tail


def hex_of(text: str) -> str:
    return "0x" + text.encode().hex()


# -- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """An earlier request of the session and the outcome it must get."""

    tool: Tool
    arguments: dict[str, Any]
    outcome: Outcome = "allow"

    def arguments_for(self, signer: str) -> dict[str, Any]:
        return substitute(self.arguments, signer)


@dataclass(frozen=True)
class Case:
    id: str
    policy: str
    tool: Tool
    arguments: dict[str, Any]
    outcome: Outcome
    key: str | None = None
    before: tuple[Step, ...] = ()

    def arguments_for(self, signer: str) -> dict[str, Any]:
        return substitute(self.arguments, signer)


def substitute(value: Any, signer: str) -> Any:
    """``value`` with every ``SIGNER`` replaced by the wallet's (checksummed) address."""
    wallet = to_checksum_address(signer)
    text = json.dumps(value).replace(SIGNER, wallet)
    text = text.replace(SIGNER.encode().hex(), wallet.encode().hex())  # in hex messages
    text = text.replace(SIGNER_IN_CALLDATA[2:], signer.lower()[2:])
    return json.loads(text)


def _tool(arguments: dict[str, Any]) -> Tool:
    if "transaction" in arguments:
        return "sign_transaction"
    if "typed_data" in arguments:
        return "sign_typed_data"
    return "sign_message"


def allow(
    id: str, policy: str, arguments: dict[str, Any], *, before: tuple[Step, ...] = ()
) -> Case:
    return Case(id, policy, _tool(arguments), arguments, "allow", None, before)


def deny(
    id: str, policy: str, arguments: dict[str, Any], key: str, *, before: tuple[Step, ...] = ()
) -> Case:
    return Case(id, policy, _tool(arguments), arguments, "deny", key, before)


def ask(id: str, policy: str, arguments: dict[str, Any], key: str) -> Case:
    return Case(id, policy, _tool(arguments), arguments, "approve", key)


def step(arguments: dict[str, Any], outcome: Outcome = "allow") -> Step:
    return Step(_tool(arguments), arguments, outcome)


def pay(to: str, usdc: float | int, chain: int = 8453) -> dict[str, Any]:
    token = USDC_BASE if chain == 8453 else USDC_ETH
    return tx(token, data=transfer(to, round(usdc * USDC)), chain=chain)


E = EXAMPLE

# Acceptance 2: under the example policy each of these is refused.
ACCEPTANCE_2 = [
    deny("example-permit-unknown-spender", E, permit(MALLORY, 100 * USDC), "tokens.usdc.spenders"),
    deny(
        "example-permit2-single-unknown-spender",
        E,
        permit2_single(MALLORY, 100 * USDC),
        "tokens.usdc.spenders",
    ),
    deny(
        "example-permit2-transfer-from-unknown-spender",
        E,
        permit2_transfer(MALLORY, 100 * USDC),
        "tokens.usdc.spenders",
    ),
    deny(
        "example-unlimited-approve",
        E,
        tx(USDC_BASE, data=approve(ROUTER, UINT256_MAX)),
        "tokens.usdc.max_allowance",
    ),
    deny(
        "example-set-approval-for-all",
        E,
        tx(NFT, data=set_approval_for_all(MALLORY, True)),
        "default",
    ),
    deny(
        "example-transfer-hidden-in-multicall3",
        E,
        tx(MULTICALL3, data=aggregate3([(USDC_BASE, transfer(MALLORY, 400 * USDC))])),
        "default",
    ),
    deny(
        "example-type4-unknown-delegate",
        E,
        tx(ALICE, type=4, authorizationList=[authorization(MALLORY)]),
        "delegation.delegates",
    ),
    deny(
        "example-authorization-chain-id-0",
        E,
        tx(ALICE, type=4, authorizationList=[authorization(MALLORY, chain=0)]),
        "delegation.delegates",
    ),
    deny("example-personal-sign-32-byte-hex", E, message("0x" + "5a" * 32, "hex"), "messages.hex"),
    deny(
        "example-typed-data-without-chain-id",
        E,
        mail({"name": "Mail", "verifyingContract": EXCHANGE}),
        "chains",
    ),
    deny(
        "example-typed-data-unknown-verifying-contract",
        E,
        order(MALLORY),
        "typed_data.allow",
    ),
    deny("example-unlisted-chain", E, tx(ALICE, value=ETHER // 100, chain=10), "chains"),
    deny(
        "example-payment-split-past-max-per-day",
        E,
        pay(ALICE, 450),
        "tokens.usdc.max_per_day",
        before=(
            step(pay(ALICE, 450)),
            step(pay(BOB, 450)),
            step(pay(CAROL, 450, chain=1)),
            step(pay(ALICE, 450, chain=1)),
        ),
    ),
    deny(
        "example-permit-deadline-beyond-max-validity",
        E,
        permit(ROUTER, 100 * USDC, deadline=NOW + 3600),
        "typed_data.max_validity",
    ),
]

EXAMPLE_MORE = [
    allow("example-pay-alice-300-base", E, pay(ALICE, 300)),
    allow("example-pay-bob-500-ethereum", E, pay(BOB, 500, chain=1)),
    allow(
        "example-pay-carol-legacy-tx",
        E,
        tx(USDC_BASE, data=transfer(CAROL, 10 * USDC), gasPrice=str(GWEI)),
    ),
    allow(
        "example-pay-type1-access-list",
        E,
        tx(
            USDC_ETH,
            data=transfer(BOB, USDC),
            chain=1,
            accessList=[{"address": USDC_ETH, "storageKeys": []}],
        ),
    ),
    deny("example-pay-500.000001", E, pay(ALICE, 500.000001), "tokens.usdc.max_per_tx"),
    deny("example-pay-stranger", E, pay(MALLORY, 1), "tokens.usdc.to"),
    deny(
        "example-usdc-ethereum-address-on-base",
        E,
        tx(USDC_ETH, data=transfer(ALICE, USDC), chain=8453),
        "default",
    ),
    allow(
        "example-transfer-from-self-to-carol",
        E,
        tx(USDC_BASE, data=transfer_from(SIGNER_IN_CALLDATA, CAROL, 20 * USDC)),
    ),
    deny(
        "example-transfer-from-someone-else",
        E,
        tx(USDC_BASE, data=transfer_from(MALLORY, CAROL, 20 * USDC)),
        "default",
    ),
    allow("example-approve-router-1000", E, tx(USDC_BASE, data=approve(ROUTER, 1000 * USDC))),
    deny(
        "example-approve-router-above-max",
        E,
        tx(USDC_BASE, data=approve(ROUTER, 1000 * USDC + 1)),
        "tokens.usdc.max_allowance",
    ),
    deny(
        "example-approve-stranger",
        E,
        tx(USDC_BASE, data=approve(MALLORY, 5 * USDC)),
        "tokens.usdc.spenders",
    ),
    allow("example-revoke-stranger", E, tx(USDC_BASE, data=approve(MALLORY, 0))),
    deny("example-zero-permit-to-stranger", E, permit(MALLORY, 0), "tokens.usdc.spenders"),
    deny(
        "example-zero-permit2-witness-to-stranger",
        E,
        permit2_witness(MALLORY, 0, deadline=2**256 - 1),
        "tokens.usdc.spenders",
    ),
    deny(
        "example-zero-permit2-to-router-never-expiring",
        E,
        permit2_transfer(ROUTER, 0, deadline=2**256 - 1),
        "typed_data.max_validity",
    ),
    deny(
        "example-zero-permit2-single-to-stranger",
        E,
        permit2_single(MALLORY, 0),
        "tokens.usdc.spenders",
    ),
    allow(
        "example-approve-permit2-500", E, tx(USDC_ETH, data=approve(PERMIT2, 500 * USDC), chain=1)
    ),
    allow(
        "example-increase-allowance-router",
        E,
        tx(USDC_BASE, data=increase_allowance(ROUTER, 200 * USDC)),
    ),
    deny(
        "example-increase-allowance-stranger",
        E,
        tx(USDC_BASE, data=increase_allowance(MALLORY, 200 * USDC)),
        "tokens.usdc.spenders",
    ),
    deny(
        "example-increase-allowance-unlimited",
        E,
        tx(USDC_BASE, data=increase_allowance(ROUTER, UINT256_MAX)),
        "tokens.usdc.max_allowance",
    ),
    deny(
        "example-value-to-token", E, tx(USDC_BASE, value=1, data=transfer(ALICE, USDC)), "default"
    ),
    deny(
        "example-token-unknown-selector",
        E,
        tx(USDC_BASE, data=calldata("mint(address,uint256)", ["address", "uint256"], [ALICE, 1])),
        "default",
    ),
    deny(
        "example-transfer-trailing-bytes",
        E,
        tx(USDC_BASE, data=transfer(ALICE, USDC) + "00"),
        "default",
    ),
    deny(
        "example-transfer-dirty-address-padding",
        E,
        tx(USDC_BASE, data="0xa9059cbb" + "ff" * 12 + transfer(ALICE, USDC)[34:]),
        "default",
    ),
    deny(
        "example-transfer-short-calldata",
        E,
        tx(USDC_BASE, data=transfer(ALICE, USDC)[:-2]),
        "default",
    ),
    deny("example-three-byte-calldata", E, tx(ROUTER, data="0xa9059c"), "default"),
    allow("example-permit-router", E, permit(ROUTER, 250 * USDC)),
    allow(
        "example-permit-permit2-ethereum", E, permit(PERMIT2, 250 * USDC, token=USDC_ETH, chain=1)
    ),
    deny("example-permit-unlimited", E, permit(ROUTER, UINT256_MAX), "tokens.usdc.max_allowance"),
    deny("example-permit-owner-not-wallet", E, permit(ROUTER, USDC, owner=MALLORY), "default"),
    deny("example-permit-unlisted-token", E, permit(ROUTER, USDC, token=STRANGER_TOKEN), "default"),
    deny("example-permit-unlisted-chain", E, permit(ROUTER, USDC, chain=10), "chains"),
    allow("example-permit2-single-router-1000", E, permit2_single(ROUTER, 1000 * USDC)),
    deny(
        "example-permit2-single-above-max",
        E,
        permit2_single(ROUTER, 1001 * USDC),
        "tokens.usdc.max_allowance",
    ),
    deny(
        "example-permit2-single-unlimited",
        E,
        permit2_single(ROUTER, 2**160 - 1),
        "tokens.usdc.max_allowance",
    ),
    deny(
        "example-permit2-single-expiration-beyond",
        E,
        permit2_single(ROUTER, 10 * USDC, expiration=NOW + 7200),
        "typed_data.max_validity",
    ),
    deny(
        "example-permit2-single-sig-deadline-beyond",
        E,
        permit2_single(ROUTER, 10 * USDC, sig_deadline=NOW + 86400),
        "typed_data.max_validity",
    ),
    deny(
        "example-permit2-fake-domain",
        E,
        permit2_single(
            ROUTER,
            10 * USDC,
            domain={"name": "Permit2", "chainId": 8453, "verifyingContract": MALLORY},
        ),
        "default",
    ),
    deny(
        "example-permit2-altered-types",
        E,
        permit2_single(
            ROUTER, 10 * USDC, details_type=[*DETAILS[:1], ("amount", "uint256"), *DETAILS[2:]]
        ),
        "default",
    ),
    deny(
        "example-permit2-unknown-primary-type",
        E,
        typed(
            "PermitAll",
            {"PermitAll": [("spender", "address")]},
            PERMIT2_DOMAIN,
            {"spender": ROUTER},
        ),
        "default",
    ),
    allow("example-permit2-batch-router", E, permit2_batch(ROUTER, [(USDC_BASE, 400 * USDC)])),
    deny(
        "example-permit2-batch-with-unlisted-token",
        E,
        permit2_batch(ROUTER, [(USDC_BASE, 400 * USDC), (STRANGER_TOKEN, 1)]),
        "default",
    ),
    deny(
        "example-permit2-batch-adds-up-past-max-allowance",
        E,
        permit2_batch(ROUTER, [(USDC_BASE, 600 * USDC), (USDC_BASE, 600 * USDC)]),
        "tokens.usdc.max_allowance",
    ),
    allow("example-permit2-transfer-router", E, permit2_transfer(ROUTER, 300 * USDC)),
    allow(
        "example-permit2-batch-transfer-router",
        E,
        permit2_batch_transfer(ROUTER, [(USDC_BASE, 100 * USDC), (USDC_BASE, 50 * USDC)]),
    ),
    allow("example-permit2-witness-router", E, permit2_witness(ROUTER, 300 * USDC)),
    deny(
        "example-permit2-witness-deadline-beyond",
        E,
        permit2_witness(ROUTER, 300 * USDC, deadline=NOW + 4000),
        "typed_data.max_validity",
    ),
    deny(
        "example-permits-count-toward-max-per-day",
        E,
        permit2_single(ROUTER, 900 * USDC),
        "tokens.usdc.max_per_day",
        before=(
            step(pay(ALICE, 500)),
            step(pay(BOB, 500, chain=1)),
            step(permit(ROUTER, 200 * USDC)),
        ),
    ),
    allow(
        "example-payments-up-to-max-per-day",
        E,
        pay(ALICE, 100),
        before=(
            step(pay(ALICE, 500)),
            step(pay(BOB, 500)),
            step(pay(CAROL, 500, chain=1)),
            step(pay(ALICE, 400, chain=1)),
        ),
    ),
    deny(
        "example-payments-one-unit-past-max-per-day",
        E,
        pay(ALICE, 100.000001),
        "tokens.usdc.max_per_day",
        before=(
            step(pay(ALICE, 500)),
            step(pay(BOB, 500)),
            step(pay(CAROL, 500, chain=1)),
            step(pay(ALICE, 400, chain=1)),
        ),
    ),
    allow("example-siwe-app", E, message(siwe())),
    allow(
        "example-siwe-dashboard-ethereum",
        E,
        message(siwe("dashboard.example.com", chain=1, statement=None)),
    ),
    deny(
        "example-siwe-other-domain",
        E,
        message(siwe("app.example.org.evil.io")),
        "messages.siwe_domains",
    ),
    deny("example-siwe-unlisted-chain", E, message(siwe(chain=10)), "chains"),
    deny(
        "example-siwe-other-account",
        E,
        message(siwe(address=to_checksum_address(MALLORY))),
        "messages.siwe_domains",
    ),
    deny(
        "example-siwe-carriage-return",
        E,
        message(siwe().replace("\nVersion", "\r\nVersion")),
        "messages.siwe_domains",
    ),
    deny(
        "example-siwe-without-chain-id",
        E,
        message(siwe().replace("Chain ID: 8453\n", "")),
        "messages.siwe_domains",
    ),
    deny("example-siwe-trailing-newline", E, message(siwe(tail="\n")), "messages.siwe_domains"),
    deny(
        "example-siwe-phrase-inside-text",
        E,
        message("Hello!\n" + siwe()),
        "messages.siwe_domains",
    ),
    deny(
        "example-siwe-user-info-in-domain",
        E,
        message(siwe("app.example.org@evil.io")),
        "messages.siwe_domains",
    ),
    deny("example-siwe-sent-as-hex", E, message(hex_of(siwe()), "hex"), "messages.hex"),
    deny("example-text-message", E, message("Hello, world"), "messages.text"),
    deny("example-hex-message", E, message("0x01020304", "hex"), "messages.hex"),
    deny("example-text-spelling-a-hash", E, message("0x" + "ab" * 32), "messages.hex"),
    deny(
        "example-other-typed-data",
        E,
        mail({"name": "Mail", "chainId": 8453, "verifyingContract": EXCHANGE}),
        "typed_data.allow",
    ),
    allow("example-router-execute", E, tx(ROUTER, data=execute())),
    allow(
        "example-router-execute-with-0.05-eth",
        E,
        tx(ROUTER, value=5 * ETHER // 100, data=execute(), chain=1),
    ),
    deny(
        "example-router-execute-with-0.06-eth",
        E,
        tx(ROUTER, value=6 * ETHER // 100, data=execute()),
        "contracts.router.max_value",
    ),
    allow(
        "example-router-execute-two-arguments",
        E,
        tx(ROUTER, data=calldata("execute(bytes,bytes[])", ["bytes", "bytes[]"], [b"\x00", []])),
    ),
    deny(
        "example-router-unlisted-function",
        E,
        tx(ROUTER, data=calldata("sweep(address)", ["address"], [MALLORY])),
        "contracts.router.functions",
    ),
    deny(
        "example-router-execute-trailing-bytes",
        E,
        tx(ROUTER, data=execute() + "00" * 32),
        "contracts.router.functions",
    ),
    deny("example-unlisted-contract", E, tx(MALLORY, data=execute()), "default"),
    allow("example-eth-to-carol-0.05", E, tx(CAROL, value=5 * ETHER // 100)),
    deny("example-eth-0.051", E, tx(CAROL, value=51 * ETHER // 1000), "native.max_per_tx"),
    deny("example-eth-to-stranger", E, tx(MALLORY, value=1), "native.to"),
    deny("example-zero-value-to-stranger", E, tx(MALLORY), "native.to"),
    deny("example-eth-to-token-contract", E, tx(USDC_BASE, value=1), "native.to"),
    deny(
        "example-eth-past-max-per-day",
        E,
        tx(ALICE, value=2 * ETHER // 100),
        "native.max_per_day",
        before=(step(tx(ALICE, value=5 * ETHER // 100)), step(tx(BOB, value=4 * ETHER // 100))),
    ),
    deny(
        "example-eth-to-router-counts-toward-max-per-day",
        E,
        tx(BOB, value=ETHER // 100),
        "native.max_per_day",
        before=(
            step(tx(ROUTER, value=5 * ETHER // 100, data=execute())),
            step(tx(ALICE, value=5 * ETHER // 100)),
        ),
    ),
    allow(
        "example-eth-max-per-day-is-per-chain",
        E,
        tx(ALICE, value=5 * ETHER // 100, chain=1),
        before=(step(tx(ALICE, value=5 * ETHER // 100)), step(tx(BOB, value=5 * ETHER // 100))),
    ),
    deny("example-deploy", E, tx(None, data="0x6001600055"), "allow_deploy"),
    allow("example-fee-150-gwei", E, tx(ALICE, value=1, fee=150 * GWEI)),
    deny("example-fee-151-gwei", E, tx(ALICE, value=1, fee=151 * GWEI), "fees.max_fee_per_gas"),
    deny(
        "example-legacy-gas-price-200-gwei",
        E,
        tx(ALICE, value=1, gasPrice=str(200 * GWEI)),
        "fees.max_fee_per_gas",
    ),
    deny("example-max-fee", E, tx(ALICE, value=1, gas=300_000, fee=150 * GWEI), "fees.max_fee"),
    allow(
        "example-blob-transaction",
        E,
        tx(
            ALICE,
            type=3,
            maxFeePerBlobGas=str(GWEI),
            blobVersionedHashes=["0x01" + "00" * 31],
        ),
    ),
    deny(
        "example-blob-fee-past-max-fee",
        E,
        tx(
            ALICE,
            type=3,
            maxFeePerBlobGas=str(200 * GWEI),
            blobVersionedHashes=["0x01" + "00" * 31, "0x01" + "11" * 31],
        ),
        "fees.max_fee",
    ),
]

CUSTOM = [
    # default: nothing allowed but what an entry allows
    deny("empty-policy-eth-transfer", EMPTY, tx(ALICE, value=1), "native.to"),
    deny("empty-policy-token-call", EMPTY, tx(USDC_BASE, data=transfer(ALICE, 1)), "default"),
    deny("empty-policy-typed-data", EMPTY, order(), "typed_data.allow"),
    deny("empty-policy-permit", EMPTY, permit(ROUTER, 1), "default"),
    deny("empty-policy-text", EMPTY, message("hi"), "messages.text"),
    deny("empty-policy-sign-in", EMPTY, message(siwe()), "messages.siwe_domains"),
    deny(
        "empty-policy-type4",
        EMPTY,
        tx(ALICE, type=4, authorizationList=[authorization(DELEGATE)]),
        "native.to",
    ),
    # chains
    allow("one-chain-allowed", ONE_CHAIN, tx(ALICE, value=1)),
    deny("one-chain-other-chain", ONE_CHAIN, tx(ALICE, value=1, chain=1), "chains"),
    deny("one-chain-typed-data-other-chain", TYPED, order(chain=10), "chains"),
    # native
    allow(
        "native-literal-address-in-to",
        OPEN_NATIVE,
        tx("0x00000000000000000000000000000000000000F1", value=10 * ETHER),
    ),
    allow("native-no-caps-any-amount", OPEN_NATIVE, tx(ALICE, value=1000 * ETHER)),
    deny("native-not-listed", OPEN_NATIVE, tx(BOB, value=1), "native.to"),
    ask(
        "native-above-approve-above",
        APPROVALS,
        tx(ALICE, value=2 * ETHER // 100),
        "native.approve_above",
    ),
    allow("native-at-approve-above", APPROVALS, tx(ALICE, value=ETHER // 100)),
    deny(
        "native-above-max-per-tx-not-asked",
        APPROVALS,
        tx(ALICE, value=2 * ETHER),
        "native.max_per_tx",
    ),
    allow(
        "native-max-per-day-with-contract-value",
        NATIVE_DAY,
        tx(ALICE, value=4 * ETHER // 100),
        before=(step(tx(VAULT, value=6 * ETHER // 100, data="0x" + selector("deposit()"))),),
    ),
    deny(
        "native-max-per-day-contract-value-counts",
        NATIVE_DAY,
        tx(BOB, value=ETHER // 100),
        "native.max_per_day",
        before=(
            step(tx(VAULT, value=6 * ETHER // 100, data="0x" + selector("deposit()"))),
            step(tx(ALICE, value=4 * ETHER // 100)),
        ),
    ),
    deny(
        "native-max-per-day-in-one-go",
        NATIVE_DAY,
        tx(ALICE, value=ETHER // 10 + 1),
        "native.max_per_day",
    ),
    allow(
        "native-refused-requests-do-not-count",
        NATIVE_DAY,
        tx(ALICE, value=5 * ETHER // 100),
        before=(
            step(tx(ALICE, value=5 * ETHER // 100)),
            step(tx(MALLORY, value=5 * ETHER // 100), "deny"),
        ),
    ),
    # tokens
    ask(
        "token-transfer-above-approve-above",
        APPROVALS,
        tx(USDC_BASE, data=transfer(ALICE, 150 * USDC)),
        "tokens.usdc.approve_above",
    ),
    allow(
        "token-transfer-at-approve-above",
        APPROVALS,
        tx(USDC_BASE, data=transfer(ALICE, 100 * USDC)),
    ),
    ask(
        "token-approve-above-approve-above",
        APPROVALS,
        tx(USDC_BASE, data=approve(ROUTER, 150 * USDC)),
        "tokens.usdc.approve_above",
    ),
    ask(
        "token-permit-above-approve-above",
        APPROVALS,
        permit(ROUTER, 101 * USDC),
        "tokens.usdc.approve_above",
    ),
    deny(
        "token-above-max-per-tx-not-asked",
        APPROVALS,
        tx(USDC_BASE, data=transfer(ALICE, 501 * USDC)),
        "tokens.usdc.max_per_tx",
    ),
    deny(
        "token-not-a-recipient",
        WITH_USDC,
        tx(USDC_ETH, data=transfer(CAROL, USDC), chain=1),
        "tokens.usdc.to",
    ),
    allow(
        "token-18-decimals-exact-cap",
        DAI_TOKEN,
        tx(DAI, data=transfer(ALICE, 15 * ETHER // 10), chain=1),
    ),
    deny(
        "token-18-decimals-one-wei-above",
        DAI_TOKEN,
        tx(DAI, data=transfer(ALICE, 15 * ETHER // 10 + 1), chain=1),
        "tokens.dai.max_per_tx",
    ),
    allow(
        "token-single-address-every-chain",
        DAI_TOKEN,
        tx(DAI, data=transfer(ALICE, ETHER), chain=8453),
    ),
    allow(
        "token-no-max-allowance-large-approve",
        DAI_TOKEN,
        tx(DAI, data=approve(ROUTER, 10**30), chain=1),
    ),
    deny(
        "token-no-max-allowance-unlimited",
        DAI_TOKEN,
        tx(DAI, data=approve(ROUTER, UINT256_MAX), chain=1),
        "tokens.dai.max_allowance",
    ),
    deny(
        "token-dai-permit-allowed-is-unlimited",
        DAI_TOKEN,
        dai_permit(True, NOW + 600),
        "tokens.dai.max_allowance",
    ),
    allow("token-dai-permit-revocation", DAI_TOKEN, dai_permit(False, NOW + 600)),
    # A signed grant of 0 is not a free revocation: it lives until its deadline and
    # spends a nonce. Judged by spenders and max_validity like any grant.
    deny(
        "token-dai-permit-revocation-never-expiring",
        DAI_TOKEN,
        dai_permit(False, 0),
        "typed_data.max_validity",
    ),
    deny(
        "token-dai-permit-revocation-to-stranger",
        DAI_TOKEN,
        dai_permit(False, NOW + 600, spender=MALLORY),
        "tokens.dai.spenders",
    ),
    deny(
        "token-dai-permit-unlimited-and-never-expiring",
        DAI_TOKEN,
        dai_permit(True, 0),
        "tokens.dai.max_allowance",
    ),
    deny(
        "token-no-spenders",
        policy(_USDC.replace('spenders = ["router"]', "spenders = []")),
        tx(USDC_BASE, data=approve(ROUTER, USDC)),
        "tokens.usdc.spenders",
    ),
    deny(
        "token-approvals-count-toward-max-per-day",
        WITH_USDC,
        tx(USDC_BASE, data=transfer(ALICE, 500 * USDC)),
        "tokens.usdc.max_per_day",
        before=(
            step(tx(USDC_BASE, data=approve(ROUTER, 1000 * USDC))),
            step(tx(USDC_ETH, data=approve(ROUTER, 600 * USDC), chain=1)),
        ),
    ),
    # contracts
    allow(
        "contract-function-without-arguments",
        CONTRACTS,
        tx(VAULT, value=ETHER // 2, data="0x" + selector("deposit()")),
    ),
    deny(
        "contract-function-without-arguments-given-some",
        CONTRACTS,
        tx(VAULT, data="0x" + selector("deposit()") + "00" * 32),
        "contracts.vault.functions",
    ),
    allow(
        "contract-function-with-arguments",
        CONTRACTS,
        tx(VAULT, data=calldata("withdraw(uint256)", ["uint256"], [5])),
    ),
    allow(
        "contract-function-by-selector-any-arguments",
        CONTRACTS,
        tx(VAULT, data="0x12345678" + "ab" * 7),
    ),
    deny(
        "contract-function-not-listed",
        CONTRACTS,
        tx(VAULT, data=calldata("withdrawAll()", [], [])),
        "contracts.vault.functions",
    ),
    deny(
        "contract-value-above-max-value",
        CONTRACTS,
        tx(VAULT, value=ETHER // 2 + 1, data="0x" + selector("deposit()")),
        "contracts.vault.max_value",
    ),
    deny(
        "contract-no-max-value-means-no-value",
        CONTRACTS,
        tx(ROUTER, value=1, data=execute()),
        "contracts.router.max_value",
    ),
    allow("contract-address-per-chain", CONTRACTS, tx(ROUTER, data=execute())),
    deny(
        "contract-address-per-chain-other-chain",
        CONTRACTS,
        tx(ROUTER, data=execute(), chain=1),
        "default",
    ),
    allow(
        "contract-lists-set-approval-for-all",
        CONTRACTS,
        tx(NFT, data=set_approval_for_all(EXCHANGE, True)),
    ),
    deny(
        "contract-set-approval-for-all-not-listed",
        CONTRACTS,
        tx(VAULT, data=set_approval_for_all(EXCHANGE, True)),
        "contracts.vault.functions",
    ),
    allow(
        "contract-entry-on-a-token-address",
        CONTRACTS,
        tx(
            USDC_BASE,
            data=calldata(
                "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
                ["address", "address", "uint256", "uint256", "uint8", "bytes32", "bytes32"],
                [ALICE, ROUTER, 1, NOW, 27, b"\x01" * 32, b"\x02" * 32],
            ),
        ),
    ),
    deny(
        "contract-entry-on-a-token-does-not-loosen-transfers",
        CONTRACTS,
        tx(USDC_BASE, data=transfer(MALLORY, USDC)),
        "tokens.usdc.to",
    ),
    # Multicall3, listed
    allow(
        "multicall-aggregate3-calls-each-allowed",
        MULTICALL,
        tx(
            MULTICALL3,
            data=aggregate3([(USDC_BASE, transfer(ALICE, 100 * USDC)), (ROUTER, execute())]),
        ),
    ),
    deny(
        "multicall-aggregate3-hidden-transfer",
        MULTICALL,
        tx(
            MULTICALL3, data=aggregate3([(ROUTER, execute()), (USDC_BASE, transfer(MALLORY, USDC))])
        ),
        "tokens.usdc.to",
    ),
    deny(
        "multicall-splitting-past-max-per-tx",
        MULTICALL,
        tx(
            MULTICALL3,
            data=aggregate3(
                [(USDC_BASE, transfer(ALICE, 300 * USDC)), (USDC_BASE, transfer(BOB, 300 * USDC))]
            ),
        ),
        "tokens.usdc.max_per_tx",
    ),
    deny(
        "multicall-hidden-unlimited-approve",
        MULTICALL,
        tx(MULTICALL3, data=aggregate3([(USDC_BASE, approve(ROUTER, UINT256_MAX))])),
        "tokens.usdc.max_allowance",
    ),
    deny(
        "multicall-inner-unlisted-contract",
        MULTICALL,
        tx(MULTICALL3, data=aggregate3([(MALLORY, execute())])),
        "default",
    ),
    allow(
        "multicall-aggregate3-value",
        MULTICALL,
        tx(
            MULTICALL3,
            value=3 * ETHER // 10,
            data=aggregate3_value(
                [
                    (ALICE, ETHER // 10, "0x"),
                    (ROUTER, 2 * ETHER // 10 - ETHER // 10, execute()),
                    (BOB, ETHER // 10, "0x"),
                ]
            ),
        ),
    ),
    deny(
        "multicall-aggregate3-value-to-stranger",
        MULTICALL,
        tx(MULTICALL3, value=ETHER // 10, data=aggregate3_value([(MALLORY, ETHER // 10, "0x")])),
        "native.to",
    ),
    deny(
        "multicall-value-left-in-multicall",
        MULTICALL,
        tx(MULTICALL3, value=ETHER // 5, data=aggregate3_value([(ALICE, ETHER // 10, "0x")])),
        "default",
    ),
    deny(
        "multicall-value-to-aggregate3",
        MULTICALL,
        tx(MULTICALL3, value=1, data=aggregate3([(ROUTER, execute())])),
        "default",
    ),
    deny(
        "multicall-inner-value-above-contract-max",
        MULTICALL,
        tx(
            MULTICALL3,
            value=2 * ETHER // 10,
            data=aggregate3_value([(ROUTER, 2 * ETHER // 10, execute())]),
        ),
        "contracts.router.max_value",
    ),
    deny(
        "multicall-value-above-its-max",
        MULTICALL,
        tx(MULTICALL3, value=2 * ETHER, data=aggregate3_value([(ALICE, 2 * ETHER, "0x")])),
        "contracts.multicall3.max_value",
    ),
    deny(
        "multicall-total-above-native-max-per-tx",
        MULTICALL,
        tx(
            MULTICALL3,
            value=6 * ETHER // 10,
            data=aggregate3_value([(ALICE, 3 * ETHER // 10, "0x"), (BOB, 3 * ETHER // 10, "0x")]),
        ),
        "native.max_per_tx",
    ),
    deny(
        "multicall-function-not-listed",
        MULTICALL,
        tx(MULTICALL3, data=aggregate([(ROUTER, execute())])),
        "contracts.multicall3.functions",
    ),
    allow(
        "multicall-try-aggregate",
        MULTICALL,
        tx(
            MULTICALL3,
            data=aggregate([(ROUTER, execute())], "tryAggregate(bool,(address,bytes)[])"),
        ),
    ),
    deny(
        "multicall-block-and-aggregate-listed-by-selector-still-unwrapped",
        MULTICALL,
        tx(
            MULTICALL3,
            data=aggregate(
                [(USDC_BASE, transfer(MALLORY, 1))], "blockAndAggregate((address,bytes)[])"
            ),
        ),
        "tokens.usdc.to",
    ),
    deny(
        "multicall-nested",
        MULTICALL,
        tx(
            MULTICALL3,
            data=aggregate3([(MULTICALL3, aggregate3([(USDC_BASE, transfer(ALICE, 1))]))]),
        ),
        "default",
    ),
    deny("multicall-empty", MULTICALL, tx(MULTICALL3, data=aggregate3([])), "default"),
    deny(
        "multicall-malformed",
        MULTICALL,
        tx(MULTICALL3, data=aggregate3([(ROUTER, execute())]) + "00"),
        "default",
    ),
    # typed data
    allow("typed-allow-order", TYPED, order()),
    allow("typed-allow-second-primary-type", TYPED, order(primary="Cancel")),
    deny("typed-allow-other-primary-type", TYPED, order(primary="Fill"), "typed_data.allow"),
    deny("typed-allow-other-verifying-contract", TYPED, order(VAULT), "typed_data.allow"),
    allow(
        "typed-allow-per-chain-entry",
        TYPED,
        nft_permit(chain=1),
    ),
    deny(
        "typed-allow-per-chain-entry-other-chain",
        TYPED,
        nft_permit(chain=8453),
        "typed_data.allow",
    ),
    deny(
        "typed-allow-cannot-open-token-permits",
        TYPED,
        permit(MALLORY, USDC),
        "tokens.usdc.spenders",
    ),
    deny(
        "typed-max-validity-600",
        TYPED,
        permit(ROUTER, USDC, deadline=NOW + 1200),
        "typed_data.max_validity",
    ),
    allow("typed-max-validity-within-600", TYPED, permit(ROUTER, USDC, deadline=NOW + 300)),
    allow("typed-max-validity-default-3600", WITH_USDC, permit(ROUTER, USDC, deadline=NOW + 2400)),
    deny(
        "typed-max-validity-default-3600-passed",
        WITH_USDC,
        permit(ROUTER, USDC, deadline=NOW + 4800),
        "typed_data.max_validity",
    ),
    deny(
        "typed-without-verifying-contract",
        TYPED,
        order_without_contract(),
        "typed_data.allow",
    ),
    # A rule with an address on chain 1 only matches nothing on 8453, not even a domain
    # without a verifyingContract.
    allow("typed-one-chain-entry", TYPED_ONE_CHAIN, order(chain=1)),
    deny(
        "typed-one-chain-entry-no-contract-on-other-chain",
        TYPED_ONE_CHAIN,
        order_without_contract(),
        "typed_data.allow",
    ),
    # messages
    allow("text-pattern-matches", MESSAGES, message("Login to example.org: 0123456789abcdef")),
    # Hex that spells printable text is that text: same signature, same rules.
    allow("hex-text-matching-a-pattern", MESSAGES, message(hex_of("Daily report\nok"), "hex")),
    deny(
        "hex-text-matching-no-pattern",
        MESSAGES,
        message(hex_of("Transfer everything"), "hex"),
        "messages.patterns",
    ),
    deny(
        "hex-text-spelling-a-hash",
        MESSAGES,
        message(hex_of("0x" + "ab" * 32), "hex"),
        "messages.hex",
    ),
    deny("hex-text-text-false", HEX_NOT_TEXT, message(hex_of("hello"), "hex"), "messages.text"),
    allow("hex-bytes-when-text-false", HEX_NOT_TEXT, message("0x" + "ff00" * 10, "hex")),
    allow("text-second-pattern-multiline", MESSAGES, message("Daily report\nall good\tyes")),
    deny(
        "text-pattern-prefix-only",
        MESSAGES,
        message("Login to example.org: 0123456789abcdef and pay"),
        "messages.patterns",
    ),
    deny("text-pattern-no-match", MESSAGES, message("Transfer everything"), "messages.patterns"),
    allow("text-any-printable", TEXT_ONLY, message("Hello — ünïcode ✓\n\tindented")),
    deny("text-bidi-override", TEXT_ONLY, message("pay \u202eevil\u202c now"), "messages.text"),
    deny("text-zero-width", TEXT_ONLY, message("a\u200bb"), "messages.text"),
    deny("text-control-character", TEXT_ONLY, message("bell\x07"), "messages.text"),
    deny("text-carriage-return", TEXT_ONLY, message("line\rover"), "messages.text"),
    deny("text-hex-refused-when-hex-false", TEXT_ONLY, message("0x0102", "hex"), "messages.hex"),
    deny("text-only-sign-in-refused", TEXT_ONLY, message(siwe()), "messages.siwe_domains"),
    allow("hex-bytes-allowed", MESSAGES, message("0x" + "ff00" * 10, "hex")),
    deny("hex-32-bytes-never", MESSAGES, message("0x" + "00" * 32, "hex"), "messages.hex"),
    allow("hex-33-bytes", MESSAGES, message("0x" + "00" * 33, "hex")),
    allow("sign-in-listed-domain", MESSAGES, message(siwe())),
    allow("sign-in-domain-with-port", MESSAGES, message(siwe("localhost:3000"))),
    deny("sign-in-other-port", MESSAGES, message(siwe("localhost:3001")), "messages.siwe_domains"),
    allow("sign-in-with-scheme", MESSAGES, message(siwe(scheme="https://"))),
    allow("sign-in-domain-case-insensitive", MESSAGES, message(siwe("App.Example.org"))),
    allow(
        "sign-in-optional-fields",
        MESSAGES,
        message(
            siwe(
                tail="\nExpiration Time: 2030-01-01T00:00:00.000Z"
                "\nNot Before: 2025-12-31T00:00:00+01:00"
                "\nRequest ID: abc-1"
                "\nResources:"
                "\n- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/"
                "\n- https://example.com/claim.json"
            )
        ),
    ),
    deny(
        "sign-in-fields-out-of-order",
        MESSAGES,
        message(siwe().replace("Version: 1\nChain ID: 8453", "Chain ID: 8453\nVersion: 1")),
        "messages.siwe_domains",
    ),
    deny(
        "sign-in-non-ascii-statement",
        MESSAGES,
        message(siwe(statement="Sign in — please")),
        "messages.siwe_domains",
    ),
    deny(
        "sign-in-bad-date",
        MESSAGES,
        message(siwe().replace("2026-01-01T00:00:00Z", "2026-13-01T00:00:00Z")),
        "messages.siwe_domains",
    ),
    deny(
        "sign-in-short-nonce",
        MESSAGES,
        message(siwe().replace("k2J9sLq0xYz1", "abc")),
        "messages.siwe_domains",
    ),
    deny(
        "sign-in-version-2",
        MESSAGES,
        message(siwe().replace("Version: 1", "Version: 2")),
        "messages.siwe_domains",
    ),
    deny(
        "sign-in-bad-checksum-address",
        MESSAGES,
        message(
            siwe(address="0xA11CE00000000000000000000000000000000001".replace("A11CE", "a11CE"))
        ),
        "messages.siwe_domains",
    ),
    deny(
        "sign-in-lookalike-lowercase-phrase",
        MESSAGES,
        message("app.example.org wants you to sign in with your ethereum account:\n" + SIGNER),
        "messages.siwe_domains",
    ),
    allow("sign-in-as-hex-listed", MESSAGES, message(hex_of(siwe()), "hex")),
    deny(
        "sign-in-as-hex-other-domain",
        MESSAGES,
        message(hex_of(siwe("evil.example.net")), "hex"),
        "messages.siwe_domains",
    ),
    # delegation (EIP-7702)
    allow(
        "delegation-listed",
        DELEGATION.replace("[delegation]", '[native]\nto = ["alice"]\n\n[delegation]'),
        tx(ALICE, type=4, authorizationList=[authorization(DELEGATE)]),
    ),
    deny(
        "delegation-chain-id-0-even-listed",
        DELEGATION.replace("[delegation]", '[native]\nto = ["alice"]\n\n[delegation]'),
        tx(ALICE, type=4, authorizationList=[authorization(DELEGATE, chain=0)]),
        "delegation.delegates",
    ),
    deny(
        "delegation-second-unknown",
        DELEGATION.replace("[delegation]", '[native]\nto = ["alice"]\n\n[delegation]'),
        tx(
            ALICE,
            type=4,
            authorizationList=[authorization(DELEGATE), authorization(MALLORY, nonce=1)],
        ),
        "delegation.delegates",
    ),
    deny(
        "delegation-other-chain",
        DELEGATION.replace("[delegation]", '[native]\nto = ["alice"]\n\n[delegation]'),
        tx(ALICE, type=4, authorizationList=[authorization(DELEGATE, chain=1)]),
        "chains",
    ),
    # fees
    allow("fees-at-max-fee-per-gas", FEES, tx(ALICE, gas=100_000, fee=50 * GWEI)),
    deny(
        "fees-above-max-fee-per-gas",
        FEES,
        tx(ALICE, gas=21_000, fee=50 * GWEI + 1),
        "fees.max_fee_per_gas",
    ),
    deny(
        "fees-legacy-above-max-fee-per-gas",
        FEES,
        tx(ALICE, gasPrice=str(60 * GWEI)),
        "fees.max_fee_per_gas",
    ),
    allow("fees-at-max-fee", FEES, tx(ALICE, gas=100_000, fee=50 * GWEI)),
    deny("fees-above-max-fee", FEES, tx(ALICE, gas=100_001, fee=50 * GWEI), "fees.max_fee"),
    allow("fees-no-limit", OPEN_NATIVE, tx(ALICE, gas=10_000_000, fee=10_000 * GWEI)),
    # deployment
    allow("deploy-allowed", DEPLOY, tx(None, data="0x6001600055")),
    deny(
        "deploy-value-above-native-max-per-tx",
        DEPLOY,
        tx(None, value=ETHER, data="0x6001600055"),
        "native.max_per_tx",
    ),
    # rate
    deny(
        "rate-fourth-signature-in-an-hour",
        RATE,
        message("four"),
        "rate.max_per_hour",
        before=(step(message("one")), step(tx(ALICE, value=1)), step(message("three"))),
    ),
    allow(
        "rate-refusals-do-not-count",
        RATE,
        message("three"),
        before=(step(message("one")), step(tx(MALLORY, value=1), "deny"), step(message("two"))),
    ),
    deny(
        "rate-counts-every-tool",
        RATE,
        tx(ALICE, value=1),
        "rate.max_per_hour",
        before=(step(tx(ALICE, value=1)), step(message("x")), step(tx(ALICE, value=2))),
    ),
]

CASES: list[Case] = [*ACCEPTANCE_2, *EXAMPLE_MORE, *CUSTOM]
