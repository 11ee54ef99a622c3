"""Two servers on one PostgreSQL share one daily cap and one audit chain (issue #10, item 1).

Two installed ``agentic-vault-mcp`` processes, the same KMS key and the same
policy, point ``--state-url`` at one real PostgreSQL. 64 transfers of 0.01 ETH
are sent at once, half to each, through the official MCP client over stdio,
under ``native.max_per_day = "0.2"``: exactly 20 may be signed. Were the sums
per server, 40 would be. Every signature is checked with eth-account, and the
trail, read back with ``agentic-vault audit verify`` and ``audit export``, must
hold every intent and every outcome.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, Implementation

from agentic_vault._local_kms import CONTROL, LocalKms

from .mcp_helpers import CLI, SERVER, server_env, structured, text_of
from .reference import decode_raw_transaction

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ALICE = to_checksum_address("0x" + "a1" * 20)
CHAIN = 8453
ETHER = 10**18
AMOUNT = ETHER // 100  # 0.01 ETH each
CAP = ETHER // 5  # 0.2 ETH per 24 h
FIT = CAP // AMOUNT  # 20 transfers fit under the cap
BURST = 64
POLICY = f"""\
version = 1
chains = [{CHAIN}]

[addresses]
alice = "{ALICE}"

[native]
to = ["alice"]
max_per_tx = "0.01"
max_per_day = "0.2"
"""


def transfer(nonce: int) -> dict[str, Any]:
    """One EIP-1559 transfer of 0.01 ETH to alice; the nonce makes each digest unique."""
    return {
        "type": 2,
        "chainId": CHAIN,
        "nonce": nonce,
        "gas": 21000,
        "maxFeePerGas": 30 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "to": ALICE,
        "value": AMOUNT,
    }


def signing_digest(transaction: dict[str, Any]) -> str:
    """What kms:Sign must sign for ``transaction``, computed by eth-account."""
    unsigned = TypedTransaction.from_dict({**transaction, "data": b"", "accessList": []})
    return "0x" + bytes(unsigned.hash()).hex()


@asynccontextmanager
async def client_named(
    name: str, env: dict[str, str], args: list[str], log: Path
) -> AsyncIterator[Client]:
    """The official client, introducing itself as ``name`` (the audit records' ``client``)."""
    params = StdioServerParameters(command=SERVER, args=args, env=env)
    with log.open("w") as errlog:
        async with Client(
            stdio_client(params, errlog=errlog),
            read_timeout_seconds=60,
            client_info=Implementation(name=name, version="1"),
        ) as client:
            yield client


def exported(url: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [CLI, "audit", "export", "--state-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_two_servers_on_one_postgresql_share_the_daily_cap_and_the_chain(
    emulator: LocalKms, tmp_path: Path, postgres_url: str
) -> None:
    alias = "alias/shared-state"
    emulator.create_key(alias=alias)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    policy.chmod(0o600)
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=alias)
    args = ["--state-url", postgres_url, "--policy", str(policy)]

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(client_named(name, env, args, tmp_path / f"{name}.log"))
            for name in ("server-a", "server-b")
        ]
        addresses = {structured(await c.call_tool("get_address", {}))["address"] for c in clients}
        assert len(addresses) == 1
        (address,) = addresses
        transactions = [transfer(nonce) for nonce in range(BURST)]
        results: list[CallToolResult] = await asyncio.gather(
            *(
                clients[nonce % 2].call_tool("sign_transaction", {"transaction": tx})
                for nonce, tx in enumerate(transactions)
            )
        )

    signed = {n: structured(r) for n, r in enumerate(results) if not r.is_error}
    refused = {n: text_of(r) for n, r in enumerate(results) if r.is_error}
    assert len(signed) == FIT, sorted(refused.values())[:3]
    assert len(refused) == BURST - FIT
    for text in refused.values():
        assert text.startswith("policy_denied: native.max_per_day: "), text
        assert "0.2" in text, text  # the cap, in ether

    for nonce, answer in signed.items():
        raw = bytes(HexBytes(answer["raw_transaction"]))
        assert Account.recover_transaction(raw) == address
        assert answer["hash"] == "0x" + keccak(raw).hex()
        decoded = decode_raw_transaction(raw)
        assert (decoded["nonce"], decoded["to"], decoded["value"], decoded["chainId"]) == (
            nonce,
            ALICE,
            AMOUNT,
            CHAIN,
        )
    # kms:Sign was asked for exactly the signed ones: no refusal reached it.
    assert sorted(m.hex() for m in CONTROL.messages) == sorted(
        signing_digest(transactions[n])[2:] for n in signed
    )

    verified = subprocess.run(
        [CLI, "audit", "verify", "--state-url", postgres_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    records = exported(postgres_url)
    # One chain, written by two servers: seq 1..N without a gap, each linked to the last.
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert all(r["prev_hash"] == p["hash"] for p, r in itertools.pairwise(records))
    assert f"ok: {len(records)} records" in verified.stdout
    assert len(records) == 2 * FIT + (BURST - FIT)
    # Each server wrote the records of its own calls: two for a signature, one for a refusal.
    expected_clients: Counter[str] = Counter()
    for n in range(BURST):
        expected_clients[f"stdio:server-{'ab'[n % 2]}"] += 2 if n in signed else 1
    assert Counter(r["client"] for r in records) == expected_clients
    intents = {r["seq"]: r for r in records if r["kind"] == "intent"}
    outcomes = [r for r in records if r["kind"] == "outcome"]
    assert Counter(r["outcome"] for r in outcomes) == {"signed": FIT, "denied": BURST - FIT}
    assert len(intents) == FIT
    by_digest = {signing_digest(transactions[n]): answer for n, answer in signed.items()}
    for record in outcomes:
        if record["outcome"] == "denied":
            assert record["rule"] == "native.max_per_day"
            assert record["error_code"] == "policy_denied"
            assert record["digest"] not in by_digest
            continue
        intent = intents.pop(record["intent_seq"])  # each intent has exactly one outcome
        assert intent["seq"] < record["seq"]
        assert intent["digest"] == record["digest"]
        assert intent["client"] == record["client"]
        answer = by_digest.pop(record["digest"])
        assert record["tx_hash"] == answer["hash"]
    assert intents == {}
    assert by_digest == {}
