"""The installed ``agentic-vault-mcp`` over stdio, driven by the official MCP client.

Every signature is checked independently with eth-account: the recovered
signer is ``get_address``'s answer, and a raw transaction decodes back to the
fields that were asked for.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak
from hexbytes import HexBytes

from agentic_vault._local_kms import CONTROL, LocalKms

from .bad_inputs import ADDRESS, CASES, CHECKSUMMED, mail, signed_tx
from .mcp_helpers import log_lines, mcp_client, server_env, structured, text_of
from .reference import decode_raw_transaction

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOOLS = {"get_address", "sign_transaction", "sign_typed_data", "sign_message", "health_check"}
BLOB_HASH = "0x01" + "ab" * 31
TRANSACTIONS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {
            "chainId": 1,
            "nonce": 5,
            "gas": 50000,
            "gasPrice": "0x4a817c800",
            "to": ADDRESS,
            "value": "1000000000000000000",
            "data": "0xdeadbeef",
        },
        {
            "type": 0,
            "nonce": 5,
            "gas": 50000,
            "gasPrice": 20 * 10**9,
            "to": ADDRESS,
            "value": 10**18,
            "data": bytes.fromhex("deadbeef"),
        },
    ),
    (
        {
            "chainId": "0x89",
            "nonce": 1,
            "gas": 60000,
            "gasPrice": 30,
            "to": ADDRESS,
            "accessList": [{"address": ADDRESS, "storageKeys": ["0x" + "00" * 31 + "01"]}],
        },
        {
            "type": 1,
            "chainId": 137,
            "nonce": 1,
            "gas": 60000,
            "gasPrice": 30,
            "to": ADDRESS,
            "value": 0,
            "data": b"",
            "accessList": [{"address": ADDRESS, "storageKeys": [(1).to_bytes(32, "big")]}],
        },
    ),
    (
        {
            "type": 2,
            "chainId": 8453,
            "nonce": 0,
            "gas": 300000,
            "maxFeePerGas": "100",
            "maxPriorityFeePerGas": "2",
            "input": "0x6080",
        },
        {
            "type": 2,
            "chainId": 8453,
            "nonce": 0,
            "gas": 300000,
            "maxFeePerGas": 100,
            "maxPriorityFeePerGas": 2,
            "to": None,
            "value": 0,
            "data": bytes.fromhex("6080"),
            "accessList": [],
        },
    ),
    (
        {
            "chainId": 1,
            "nonce": 9,
            "gas": 21000,
            "maxFeePerGas": 10,
            "maxPriorityFeePerGas": 1,
            "to": ADDRESS,
            "maxFeePerBlobGas": 3,
            "blobVersionedHashes": [BLOB_HASH],
        },
        {
            "type": 3,
            "chainId": 1,
            "nonce": 9,
            "gas": 21000,
            "maxFeePerGas": 10,
            "maxPriorityFeePerGas": 1,
            "to": ADDRESS,
            "value": 0,
            "data": b"",
            "accessList": [],
            "maxFeePerBlobGas": 3,
            "blobVersionedHashes": [bytes(HexBytes(BLOB_HASH))],
        },
    ),
    (
        {
            "chainId": 1,
            "nonce": 2,
            "gas": 80000,
            "maxFeePerGas": 10,
            "maxPriorityFeePerGas": 1,
            "to": ADDRESS,
            "authorizationList": [
                {
                    "chainId": 0,
                    "address": CHECKSUMMED,
                    "nonce": "0x3",
                    "yParity": "0x1",
                    "r": "0x5",
                    "s": 7,
                }
            ],
        },
        {
            "type": 4,
            "chainId": 1,
            "nonce": 2,
            "gas": 80000,
            "maxFeePerGas": 10,
            "maxPriorityFeePerGas": 1,
            "to": ADDRESS,
            "value": 0,
            "data": b"",
            "accessList": [],
            "authorizationList": [
                {"chainId": 0, "address": CHECKSUMMED, "nonce": 3, "yParity": 1, "r": 5, "s": 7}
            ],
        },
    ),
]

PERMIT = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Permit": [
            {"name": "owner", "type": "address"},
            {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ],
    },
    "primaryType": "Permit",
    "domain": {
        "name": "USD Coin",
        "version": "2",
        "chainId": 1,
        "verifyingContract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    },
    "message": {
        "owner": ADDRESS,
        "spender": CHECKSUMMED,
        "value": "1000000",
        "nonce": 0,
        "deadline": "0xffffffff",
    },
}


@pytest.fixture
def key_alias(emulator: LocalKms, request: pytest.FixtureRequest) -> str:
    alias = f"alias/e2e-{request.node.name[:40].replace('[', '-').replace(']', '')}"
    alias = "".join(c if c.isalnum() or c in "/_-" else "-" for c in alias)
    emulator.create_key(alias=alias)
    return alias


async def test_every_tool_signs_what_eth_account_verifies(
    emulator: LocalKms, key_alias: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    async with mcp_client(env, log=log) as client:
        listed = (await client.list_tools()).tools
        assert {tool.name for tool in listed} == TOOLS
        for tool in listed:
            assert tool.input_schema["type"] == "object"
            assert tool.input_schema.get("additionalProperties") is False
            assert tool.output_schema is not None
            assert tool.description
            assert tool.annotations is not None
            assert tool.annotations.read_only_hint is (tool.name in ("get_address", "health_check"))

        address = structured(await client.call_tool("get_address", {}))["address"]
        assert address == Account.recover_message(
            encode_defunct(text="probe"),
            signature=structured(await client.call_tool("sign_message", {"message": "probe"}))[
                "signature"
            ],
        )

        for request, expected in TRANSACTIONS:
            signed = structured(
                await client.call_tool("sign_transaction", {"transaction": request})
            )
            raw = bytes(HexBytes(signed["raw_transaction"]))
            assert Account.recover_transaction(raw) == address
            assert signed["from"] == address
            assert signed["hash"] == "0x" + keccak(raw).hex()
            assert signed["type"] == expected["type"]
            decoded = decode_raw_transaction(raw)
            assert (decoded.pop("v"), decoded.pop("r"), decoded.pop("s")) == (
                signed["v"],
                int(signed["r"], 16),
                int(signed["s"], 16),
            )
            if expected["type"] == 0:
                assert signed["v"] in (1 * 2 + 35, 1 * 2 + 36)  # EIP-155 on chain 1
            else:
                expected = {"chainId": expected.get("chainId", 1), **expected}
            assert decoded == expected

        for payload in (PERMIT, mail()):
            signed = structured(await client.call_tool("sign_typed_data", {"typed_data": payload}))
            signable = encode_typed_data(full_message=_with_domain_type(payload))
            assert Account.recover_message(signable, signature=signed["signature"]) == address
            assert signed["v"] in (27, 28)

        for arguments, raw_message in (
            (
                {"message": "Sign in to example.org\nNonce: 42"},
                b"Sign in to example.org\nNonce: 42",
            ),
            ({"message": "0x00ff10", "encoding": "hex"}, bytes.fromhex("00ff10")),
        ):
            signed = structured(await client.call_tool("sign_message", arguments))
            recovered = Account.recover_message(
                encode_defunct(primitive=raw_message), signature=signed["signature"]
            )
            assert recovered == address

        health = structured(await client.call_tool("health_check", {}))
        assert health["status"] == "ok"
        assert health["address"] == address
        assert health["key_spec"] == "ECC_SECG_P256K1"
        assert health["key_state"] == "Enabled"
        assert health["credentials"] == "env"
        assert health["problems"] == []

    lines = log_lines(log)  # every stderr line is JSON
    calls = [line for line in lines if line["logger"] == "agentic_vault.audit"]
    assert len(calls) == 2 + len(TRANSACTIONS) + 2 + 2 + 1
    tx_lines = [line for line in calls if line["tool"] == "sign_transaction"]
    assert all(line["tx_hash"] and line["digest"] and line["chain_id"] for line in tx_lines)
    text = log.read_text()
    assert env["AWS_SECRET_ACCESS_KEY"] not in text


def _with_domain_type(payload: dict[str, Any]) -> dict[str, Any]:
    if "EIP712Domain" in payload["types"]:
        return payload
    order = ["name", "version", "chainId", "verifyingContract", "salt"]
    kinds = {
        "name": "string",
        "version": "string",
        "chainId": "uint256",
        "verifyingContract": "address",
        "salt": "bytes32",
    }
    domain = [{"name": n, "type": kinds[n]} for n in order if n in payload["domain"]]
    return {**payload, "types": {**payload["types"], "EIP712Domain": domain}}


async def test_bad_inputs_get_their_code_and_the_server_keeps_answering(
    emulator: LocalKms, key_alias: str, tmp_path: Path
) -> None:
    assert len(CASES) >= 40
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    async with mcp_client(env) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        for case in CASES:
            result = await client.call_tool(case.tool, case.arguments)
            text = text_of(result)
            assert result.is_error, f"{case.id}: {text}"
            assert text.startswith(f"{case.code}: "), f"{case.id}: {text}"
            assert case.field in text, f"{case.id}: {text}"
            assert result.structured_content is None
            after = structured(await client.call_tool("get_address", {}))
            assert after["address"] == address, case.id
    assert CONTROL.calls["Sign"] == 0


async def test_32_concurrent_signatures_are_served_concurrently(
    emulator: LocalKms, key_alias: str, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    async with mcp_client(env) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        structured(await client.call_tool("sign_transaction", signed_tx()))  # warm imports
        CONTROL.latency["Sign"] = 0.1
        before = CONTROL.calls["Sign"]
        results: list[dict[str, Any]] = []

        async def sign(nonce: int) -> None:
            result = await client.call_tool("sign_transaction", signed_tx(nonce=nonce))
            results.append(structured(result))

        started = time.perf_counter()
        async with anyio.create_task_group() as tasks:
            for nonce in range(32):
                tasks.start_soon(sign, nonce)
        elapsed = time.perf_counter() - started
    assert CONTROL.calls["Sign"] - before == 32
    assert len(results) == 32
    for signed in results:
        assert Account.recover_transaction(signed["raw_transaction"]) == address
    # Serialized, 32 Sign calls of 100 ms each take 3.2 s.
    assert elapsed < 1.5, f"32 concurrent signatures took {elapsed:.2f}s"


async def test_an_unexpected_address_refuses_every_signature(
    emulator: LocalKms, key_alias: str, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    async with mcp_client(env, args=["--expected-address", CHECKSUMMED]) as client:
        for tool, arguments in (
            ("sign_transaction", signed_tx()),
            ("sign_typed_data", {"typed_data": mail()}),
            ("sign_message", {"message": "hi"}),
            ("get_address", {}),
        ):
            result = await client.call_tool(tool, arguments)
            assert result.is_error, tool
            assert text_of(result).startswith("address_mismatch: "), text_of(result)
            assert CHECKSUMMED in text_of(result)
        health = structured(await client.call_tool("health_check", {}))
        assert health["status"] == "unhealthy"
        assert health["expected_address"] == CHECKSUMMED
        assert any(problem.startswith("address_mismatch") for problem in health["problems"])
    assert CONTROL.calls["Sign"] == 0
