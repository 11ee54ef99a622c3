"""Bad requests, each with the error code it must get and the field its message must name.

One table serves the signer (``test_inputs``) and the MCP server over stdio
(``test_mcp_e2e``). Cases marked ``server_only`` concern the tool call's own
arguments, which only the server sees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentic_vault import KmsSigner

ADDRESS = "0x1111111111111111111111111111111111111111"
CHECKSUMMED = "0x52908400098527886E0F7030069857D2E4169EE7"  # an EIP-55 test vector
BAD_CHECKSUM = "0x52908400098527886e0F7030069857D2E4169EE7"
HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


@dataclass(frozen=True)
class Case:
    id: str
    tool: str
    arguments: dict[str, Any]
    field: str  # the message must name this
    code: str = "invalid_input"
    server_only: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def tx(**changes: Any) -> dict[str, Any]:
    """A valid EIP-1559 transfer with ``changes`` applied (``None`` removes a field)."""
    base: dict[str, Any] = {
        "chainId": 1,
        "nonce": 0,
        "gas": 21000,
        "maxFeePerGas": "0x3b9aca00",
        "maxPriorityFeePerGas": "0x1",
        "to": ADDRESS,
        "value": "1000",
    }
    for name, value in changes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def signed_tx(**changes: Any) -> dict[str, Any]:
    return {"transaction": tx(**changes)}


AUTHORIZATION = {"chainId": 1, "address": ADDRESS, "nonce": 0, "yParity": 0, "r": 1, "s": 1}
MAIL_TYPES = {
    "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
    "Mail": [
        {"name": "from", "type": "Person"},
        {"name": "to", "type": "Person"},
        {"name": "contents", "type": "string"},
    ],
}
PERSON = {"name": "Bob", "wallet": ADDRESS}


def mail(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "types": json.loads(json.dumps(MAIL_TYPES)),
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail",
            "version": "1",
            "chainId": 1,
            "verifyingContract": ADDRESS,
        },
        "message": {"from": PERSON, "to": PERSON, "contents": "Hello, Bob!"},
    }
    for name, value in changes.items():
        if value is None:
            payload.pop(name)
        else:
            payload[name] = value
    return payload


def typed(payload: Any) -> dict[str, Any]:
    return {"typed_data": payload}


def with_message(**fields: Any) -> dict[str, Any]:
    return mail(message={"from": PERSON, "to": PERSON, "contents": "hi", **fields})


CASES = [
    # -- the tool call's own arguments -------------------------------------------------
    Case(
        "unknown top-level argument",
        "sign_transaction",
        {**signed_tx(), "tx": {}},
        "tx",
        server_only=True,
    ),
    Case("missing transaction", "sign_transaction", {}, "transaction", server_only=True),
    Case(
        "get_address with an argument",
        "get_address",
        {"verbose": True},
        "verbose",
        server_only=True,
    ),
    Case(
        "sign_message unknown argument",
        "sign_message",
        {"message": "hi", "to": ADDRESS},
        "to",
        server_only=True,
    ),
    Case("health_check with an argument", "health_check", {"deep": 1}, "deep", server_only=True),
    Case("missing typed_data", "sign_typed_data", {}, "typed_data", server_only=True),
    # -- transactions ------------------------------------------------------------------
    Case("transaction is a string", "sign_transaction", {"transaction": "0x02f8"}, "transaction"),
    Case("transaction is a list", "sign_transaction", {"transaction": [1, 2]}, "transaction"),
    Case("missing chainId", "sign_transaction", signed_tx(chainId=None), "transaction.chainId"),
    Case("missing nonce", "sign_transaction", signed_tx(nonce=None), "transaction.nonce"),
    Case("missing gas", "sign_transaction", signed_tx(gas=None), "transaction.gas"),
    Case("chainId 0", "sign_transaction", signed_tx(chainId=0), "transaction.chainId"),
    Case("chainId as hex 0x0", "sign_transaction", signed_tx(chainId="0x0"), "transaction.chainId"),
    Case("negative nonce", "sign_transaction", signed_tx(nonce=-1), "transaction.nonce"),
    Case(
        "nonce beyond EIP-2681", "sign_transaction", signed_tx(nonce=2**64 - 1), "transaction.nonce"
    ),
    Case(
        "value above 2^256-1", "sign_transaction", signed_tx(value=str(2**256)), "transaction.value"
    ),
    Case("value as a float", "sign_transaction", signed_tx(value=1.5), "transaction.value"),
    Case("value as a boolean", "sign_transaction", signed_tx(value=True), "transaction.value"),
    Case("negative value string", "sign_transaction", signed_tx(value="-5"), "transaction.value"),
    Case("gas with units", "sign_transaction", signed_tx(gas="21k"), "transaction.gas"),
    Case("empty hex quantity", "sign_transaction", signed_tx(gas="0x"), "transaction.gas"),
    Case("odd-length data", "sign_transaction", signed_tx(data="0x123"), "transaction.data"),
    Case("non-hex data", "sign_transaction", signed_tx(data="0xzz"), "transaction.data"),
    Case("data without 0x", "sign_transaction", signed_tx(data="abcd"), "transaction.data"),
    Case(
        "data over 128 KiB",
        "sign_transaction",
        signed_tx(data="0x" + "00" * (128 * 1024 + 1)),
        "transaction.data",
    ),
    Case(
        "data and input differ", "sign_transaction", signed_tx(data="0x01", input="0x02"), "input"
    ),
    Case("short to address", "sign_transaction", signed_tx(to="0x1234"), "transaction.to"),
    Case(
        "to with a bad checksum", "sign_transaction", signed_tx(to=BAD_CHECKSUM), "transaction.to"
    ),
    Case("to as a number", "sign_transaction", signed_tx(to=5), "transaction.to"),
    Case(
        "unknown field gasLimit",
        "sign_transaction",
        signed_tx(gasLimit=21000),
        "transaction.gasLimit",
    ),
    Case("type 5", "sign_transaction", signed_tx(type=5), "transaction.type"),
    Case(
        "gasPrice in a type 2",
        "sign_transaction",
        signed_tx(type=2, gasPrice=1),
        "transaction.gasPrice",
    ),
    Case(
        "gasPrice and maxFeePerGas without type",
        "sign_transaction",
        signed_tx(gasPrice=1),
        "transaction.gasPrice",
    ),
    Case(
        "accessList in a type 0",
        "sign_transaction",
        signed_tx(type=0, gasPrice=1, maxFeePerGas=None, maxPriorityFeePerGas=None, accessList=[]),
        "transaction.accessList",
    ),
    Case(
        "type 2 without maxFeePerGas",
        "sign_transaction",
        signed_tx(maxFeePerGas=None, type=2),
        "transaction.maxFeePerGas",
    ),
    Case(
        "legacy without gasPrice",
        "sign_transaction",
        signed_tx(type=0, maxFeePerGas=None, maxPriorityFeePerGas=None),
        "transaction.gasPrice",
    ),
    Case(
        "tip above fee cap",
        "sign_transaction",
        signed_tx(maxFeePerGas=1, maxPriorityFeePerGas=2),
        "transaction.maxPriorityFeePerGas",
    ),
    Case(
        "accessList not a list",
        "sign_transaction",
        signed_tx(accessList={"a": 1}),
        "transaction.accessList",
    ),
    Case(
        "accessList entry without storageKeys",
        "sign_transaction",
        signed_tx(accessList=[{"address": ADDRESS}]),
        "transaction.accessList[0].storageKeys",
    ),
    Case(
        "accessList storage key of 31 bytes",
        "sign_transaction",
        signed_tx(accessList=[{"address": ADDRESS, "storageKeys": ["0x" + "00" * 31]}]),
        "transaction.accessList[0].storageKeys[0]",
    ),
    Case(
        "accessList entry with an unknown field",
        "sign_transaction",
        signed_tx(accessList=[{"address": ADDRESS, "storageKeys": [], "slot": 1}]),
        "transaction.accessList[0].slot",
    ),
    Case(
        "authorization without yParity",
        "sign_transaction",
        signed_tx(
            type=4, authorizationList=[{k: v for k, v in AUTHORIZATION.items() if k != "yParity"}]
        ),
        "transaction.authorizationList[0].yParity",
    ),
    Case(
        "authorization yParity 2",
        "sign_transaction",
        signed_tx(type=4, authorizationList=[{**AUTHORIZATION, "yParity": 2}]),
        "transaction.authorizationList[0].yParity",
    ),
    Case(
        "authorization with high s",
        "sign_transaction",
        signed_tx(type=4, authorizationList=[{**AUTHORIZATION, "s": HALF_N + 1}]),
        "transaction.authorizationList[0]",
    ),
    Case(
        "empty authorizationList",
        "sign_transaction",
        signed_tx(type=4, authorizationList=[]),
        "transaction.authorizationList",
    ),
    Case(
        "type 4 without to",
        "sign_transaction",
        signed_tx(type=4, to=None, authorizationList=[AUTHORIZATION]),
        "transaction.to",
    ),
    Case(
        "blob hash with the wrong version",
        "sign_transaction",
        signed_tx(maxFeePerBlobGas=1, blobVersionedHashes=["0x02" + "00" * 31]),
        "transaction.blobVersionedHashes[0]",
    ),
    Case(
        "from is not the signer",
        "sign_transaction",
        signed_tx(**{"from": CHECKSUMMED}),
        "transaction.from",
    ),
    # -- typed data --------------------------------------------------------------------
    Case("typed data as a non-JSON string", "sign_typed_data", typed("{not json"), "typed_data"),
    Case("typed data as a number", "sign_typed_data", typed(42), "typed_data"),
    Case(
        "typed data without message",
        "sign_typed_data",
        typed(mail(message=None)),
        "typed_data.message",
    ),
    Case(
        "typed data with an unknown top-level key",
        "sign_typed_data",
        typed({**mail(), "extra": 1}),
        "typed_data.extra",
    ),
    Case(
        "undefined type",
        "sign_typed_data",
        typed(mail(types={**MAIL_TYPES, "Mail": [{"name": "to", "type": "Persona"}]})),
        "typed_data.types.Mail[0].type",
    ),
    Case(
        "cyclic type",
        "sign_typed_data",
        typed(mail(types={**MAIL_TYPES, "Person": [{"name": "next", "type": "Mail"}]})),
        "typed_data.types.",
    ),
    Case(
        "primaryType not in types",
        "sign_typed_data",
        typed(mail(primaryType="Letter")),
        "typed_data.primaryType",
    ),
    Case(
        "uint without a size",
        "sign_typed_data",
        typed(mail(types={**MAIL_TYPES, "Mail": [{"name": "n", "type": "uint"}]})),
        "typed_data.types.Mail[0].type",
    ),
    Case(
        "value of the wrong type",
        "sign_typed_data",
        typed(
            mail(message={"from": {"name": 5, "wallet": ADDRESS}, "to": PERSON, "contents": "x"})
        ),
        "typed_data.message.from.name",
    ),
    Case(
        "address value with a bad checksum",
        "sign_typed_data",
        typed(
            mail(
                message={
                    "from": {"name": "a", "wallet": BAD_CHECKSUM},
                    "to": PERSON,
                    "contents": "x",
                }
            )
        ),
        "typed_data.message.from.wallet",
    ),
    Case(
        "message with an extra field",
        "sign_typed_data",
        typed(with_message(cc=PERSON)),
        "typed_data.message.cc",
    ),
    Case(
        "message missing a field",
        "sign_typed_data",
        typed(mail(message={"from": PERSON, "contents": "x"})),
        "typed_data.message.to",
    ),
    Case(
        "domain field unknown to EIP-712",
        "sign_typed_data",
        typed(mail(domain={"name": "x", "owner": ADDRESS})),
        "typed_data.types.EIP712Domain",
    ),
    Case(
        "EIP712Domain out of order",
        "sign_typed_data",
        typed(
            mail(
                types={
                    **MAIL_TYPES,
                    "EIP712Domain": [
                        {"name": "chainId", "type": "uint256"},
                        {"name": "name", "type": "string"},
                    ],
                },
                domain={"name": "x", "chainId": 1},
            )
        ),
        "typed_data.types.EIP712Domain",
    ),
    Case(
        "domain chainId negative",
        "sign_typed_data",
        typed(mail(domain={"name": "x", "chainId": -1})),
        "typed_data.domain.chainId",
    ),
    Case(
        "typed data over 256 KiB",
        "sign_typed_data",
        typed(with_message(contents="x" * (256 * 1024))),
        "typed_data",
    ),
    # -- messages ----------------------------------------------------------------------
    Case(
        "hex message of odd length",
        "sign_message",
        {"message": "0x123", "encoding": "hex"},
        "message",
    ),
    Case(
        "hex message with non-hex digits",
        "sign_message",
        {"message": "0xgg", "encoding": "hex"},
        "message",
    ),
    Case(
        "hex message without 0x", "sign_message", {"message": "abcd", "encoding": "hex"}, "message"
    ),
    Case("unknown encoding", "sign_message", {"message": "hi", "encoding": "base64"}, "encoding"),
    Case("message is a number", "sign_message", {"message": 42}, "message"),
    Case("message over 64 KiB", "sign_message", {"message": "x" * (64 * 1024 + 1)}, "message"),
]


def call_signer(signer: KmsSigner, tool: str, arguments: dict[str, Any]) -> Any:
    """A case's tool call made on the signer directly, in this process (no server)."""
    if tool == "sign_transaction":
        return signer.sign_transaction(arguments["transaction"])
    if tool == "sign_typed_data":
        return signer.sign_typed_data(arguments["typed_data"])
    if tool == "sign_message":
        return signer.sign_message(**arguments)
    raise AssertionError(tool)
