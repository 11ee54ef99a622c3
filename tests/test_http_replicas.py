"""Several ``agentic-vault-mcp --transport http`` replicas on one store, as behind a load balancer.

Two servers share one PostgreSQL store: a token revoked through either is
refused by both at once, and ten clients spread over the two can never sign
past a daily cap between them.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from eth_account import Account
from hexbytes import HexBytes
from mcp.shared.exceptions import MCPError

from agentic_vault._local_kms import CONTROL, LocalKms
from agentic_vault.store import audit, open_store

from .mcp_helpers import server_env, structured, text_of
from .reference import decode_raw_transaction
from .test_http import (
    MCP_ACCEPT,
    SIGN_CALL,
    HttpServer,
    create_token,
    http_client,
    refused,
    start_server,
    stopped_at_end,
    token_command,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TREASURY = "0x1111111111111111111111111111111111111111"
CLIENTS = 10
CALLS_PER_CLIENT = 100
AT_ONCE_PER_CLIENT = 4
VALUE_WEI = 10**15  # 0.001 ether a call
MAX_PER_DAY_WEI = 5 * 10**17  # 0.5 ether: room for 500 of the 1000 calls
CAPPED_POLICY = f"""\
version = 1
chains = [1]

[addresses]
treasury = "{TREASURY}"

[native]
to = ["treasury"]
max_per_tx = "0.01"
max_per_day = "0.5"
"""


servers = pytest.fixture(stopped_at_end, name="servers")


@pytest.fixture
def key_alias(emulator: LocalKms) -> str:
    alias = f"alias/replicas-{uuid.uuid4().hex}"
    emulator.create_key(alias=alias)
    return alias


@pytest.fixture
def env(emulator: LocalKms, key_alias: str, tmp_path: Path, postgres_url: str) -> dict[str, str]:
    """Servers and commands on one PostgreSQL store, shared by all."""
    return server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias, VAULT_STATE_URL=postgres_url)


def trail(env: dict[str, str]) -> tuple[audit.Verdict, list[dict[str, Any]]]:
    store = open_store(env.get("VAULT_STATE_DIR"), env.get("VAULT_STATE_URL"))
    return store.read(lambda c: (audit.verify(c), [r.fields for r in audit.records(c)]))


async def test_a_token_revoked_through_one_replica_is_refused_by_the_other_at_once(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    token = create_token(env, "agent")
    first = start_server(env, tmp_path / "first.log")
    servers.append(first)
    second = start_server(env, tmp_path / "second.log")
    servers.append(second)
    async with http_client(second.url, token) as on_second:
        async with http_client(first.url, token) as on_first:
            structured(await on_first.call_tool("get_address", {}))
        structured(await on_second.call_tool("get_address", {}))
        revoked = token_command(env, "revoke", "agent")
        assert revoked.returncode == 0, revoked.stderr
        # The session opened before the revocation is refused too: every request is checked.
        with pytest.raises(MCPError, match="unauthorized: "):
            await on_second.call_tool("sign_message", {"message": "after revocation"})
    assert CONTROL.calls["Sign"] == 0
    for server in (first, second):
        assert (await refused(server.url, token)).startswith("unauthorized: ")
        async with httpx2.AsyncClient(timeout=30) as http:
            answer = await http.post(
                server.url,
                json=SIGN_CALL,
                headers=MCP_ACCEPT | {"authorization": f"Bearer {token}"},
            )
        assert answer.status_code == 401
    assert CONTROL.calls["Sign"] == 0
    # A new token under the same name (rotation) works on both; the old one stays refused.
    renewed = create_token(env, "agent")
    assert renewed != token
    for server in (first, second):
        async with http_client(server.url, renewed) as client:
            structured(await client.call_tool("sign_message", {"message": "renewed"}))
    assert CONTROL.calls["Sign"] == 2


async def test_ten_clients_on_two_replicas_never_overshoot_a_daily_cap(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(CAPPED_POLICY)
    policy.chmod(0o600)
    tokens = {f"client-{index}": create_token(env, f"client-{index}") for index in range(CLIENTS)}
    replicas = [
        start_server(env, tmp_path / f"replica-{index}.log", "--policy", str(policy))
        for index in range(2)
    ]
    servers.extend(replicas)
    answers: dict[str, list[dict[str, Any] | str]] = {name: [] for name in tokens}

    async def client(index: int, name: str) -> None:
        replica = replicas[index % 2]
        async with http_client(replica.url, tokens[name], "auto") as session:
            limiter = anyio.Semaphore(AT_ONCE_PER_CLIENT)

            async def call(number: int) -> None:
                transaction = {
                    "chainId": 1,
                    "nonce": index * CALLS_PER_CLIENT + number,
                    "gas": 21000,
                    "maxFeePerGas": "1000000000",
                    "maxPriorityFeePerGas": "1",
                    "to": TREASURY,
                    "value": str(VALUE_WEI),
                }
                async with limiter:
                    result = await session.call_tool(
                        "sign_transaction", {"transaction": transaction}
                    )
                answers[name].append(text_of(result) if result.is_error else structured(result))

            async with anyio.create_task_group() as tasks:
                for number in range(CALLS_PER_CLIENT):
                    tasks.start_soon(call, number)

    async with anyio.create_task_group() as tasks:
        for index, name in enumerate(tokens):
            tasks.start_soon(client, index, name)

    signers = set()
    signed_hashes: dict[str, set[str]] = {}
    for name, results in answers.items():
        assert len(results) == CALLS_PER_CLIENT, name  # every call answered
        signed_hashes[name] = set()
        for result in results:
            if isinstance(result, str):
                assert result.startswith("policy_denied: native.max_per_day: "), result
                continue
            raw = bytes(HexBytes(result["raw_transaction"]))
            assert Account.recover_transaction(raw) == result["from"]
            signers.add(result["from"])
            decoded = decode_raw_transaction(raw)
            assert (decoded["to"], decoded["value"]) == (TREASURY, VALUE_WEI)
            signed_hashes[name].add(result["hash"])
    assert len(signers) == 1
    signed = sum(len(hashes) for hashes in signed_hashes.values())
    assert signed * VALUE_WEI <= MAX_PER_DAY_WEI  # no overshoot
    assert signed == MAX_PER_DAY_WEI // VALUE_WEI  # and the cap's room used up exactly
    assert CONTROL.calls["Sign"] == signed  # a denial never reaches KMS

    verdict, records = trail(env)
    assert verdict.ok, verdict.problem
    outcomes = [r for r in records if r["kind"] == "outcome"]
    assert len(outcomes) == CLIENTS * CALLS_PER_CLIENT
    for name, hashes in signed_hashes.items():
        mine = [r for r in outcomes if r["client"] == name]
        assert len(mine) == CALLS_PER_CLIENT, name
        assert {r["tx_hash"] for r in mine if r["outcome"] == "signed"} == hashes, name
    assert {r["client"] for r in records} == set(tokens)
