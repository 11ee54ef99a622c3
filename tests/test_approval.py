"""A person approves what the policy sends to one (issue #12), end to end.

The installed ``agentic-vault-mcp`` with a policy that has ``approve_above``,
driven by the official MCP client over stdio, in both protocol eras: the
handshake era (``elicitation/create`` in the middle of the call) and
2026-07-28 (the input-required round trip); the out-of-band channel through
the installed ``agentic-vault approvals`` in other processes sharing the store.
The emulator records every digest KMS is asked to sign (``CONTROL.messages``):
that list, not our answers, says what was signed. Every signature is checked
with eth-account, and every digest shown to a person is recomputed here with
eth-account.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ElicitRequestFormParams, ElicitResult, InputRequiredResult

from agentic_vault._local_kms import CONTROL, LocalKms
from agentic_vault.policy import PolicyFileError, load_policy_file
from agentic_vault.store import approvals as approval_table
from agentic_vault.store import open_store

from .conftest_postgres import StoreAt
from .mcp_helpers import CLI, SERVER, server_env, structured, text_of
from .policy_cases import (
    ALICE,
    APPROVALS,
    ETHER,
    GWEI,
    ROUTER,
    USDC,
    USDC_BASE,
    permit,
    substitute,
    transfer,
)
from .reference import decode_raw_transaction
from .test_protocol import RawServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

APPROVAL_REQUIRED = r"^approval_required: (ap-[a-z2-9]{8}): "
# How the policy names the recipient and the spender in plain words.
ALICE_NAMED = "alice (0xa11c…0001)"
ROUTER_NAMED = "router (0x5a9E…0004)"


# -- the pieces: a policy, a server, a person, the other shell -------------------------------


@dataclass
class Setup:
    env: dict[str, str]
    policy: Path
    args: list[str]


@pytest.fixture
def setup(emulator: LocalKms, tmp_path: Path) -> Setup:
    return make_setup(emulator, tmp_path, APPROVALS)


def make_setup(emulator: LocalKms, tmp_path: Path, policy_text: str, *args: str) -> Setup:
    policy = tmp_path / "policy.toml"
    write_policy(policy, policy_text)
    key = emulator.create_key()
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key["KeyId"])
    return Setup(env, policy, ["--policy", str(policy), *args])


def write_policy(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


@dataclass
class Person:
    """The elicitation callback: what the person answers, and every question shown."""

    answer: str | dict[str, Any] = "accept"  # a dict: accepted with that content
    asked: list[str] = field(default_factory=list)

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        assert isinstance(params, ElicitRequestFormParams)
        assert "approve" in params.requested_schema["properties"]
        self.asked.append(params.message)
        if isinstance(self.answer, dict):
            return ElicitResult(action="accept", content=self.answer)
        if self.answer == "accept":
            return ElicitResult(action="accept", content={"approve": True})
        assert self.answer in ("decline", "cancel")
        return ElicitResult(action=self.answer)  # type: ignore[arg-type]


@asynccontextmanager
async def connect(
    setup: Setup, *, mode: str = "auto", person: Any = None, log: Path | None = None
) -> AsyncIterator[Client]:
    """The official client over stdio; with ``person`` it declares elicitation."""
    params = StdioServerParameters(command=SERVER, args=setup.args, env=setup.env)
    with open(log or os.devnull, "w") as errlog:
        async with Client(
            stdio_client(params, errlog=errlog),
            read_timeout_seconds=60,
            mode=mode,  # type: ignore[arg-type]
            elicitation_callback=person,
        ) as client:
            yield client


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``agentic-vault …`` in a process of its own (another shell, same HOME so same store)."""
    return subprocess.run(
        [CLI, *args], env=dict(env), capture_output=True, text=True, timeout=60, check=False
    )


def listed(env: Mapping[str, str], *flags: str) -> dict[str, dict[str, Any]]:
    shown = cli(env, "approvals", "list", "--json", *flags)
    assert shown.returncode == 0, shown.stderr
    return {entry["id"]: entry for entry in map(json.loads, shown.stdout.splitlines())}


def approve(env: Mapping[str, str], approval_id: str) -> None:
    done = cli(env, "approvals", "approve", approval_id)
    assert done.returncode == 0, done.stderr
    assert f"approved {approval_id}" in done.stdout


def audit_records(env: Mapping[str, str]) -> list[dict[str, Any]]:
    exported = cli(env, "audit", "export")
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines()]


def required_id(result: CallToolResult) -> str:
    assert result.is_error, text_of(result)
    match = re.match(APPROVAL_REQUIRED, text_of(result))
    assert match, text_of(result)
    return match[1]


# -- what is asked: requests, and their digests computed here ---------------------------------


def payment(usdc: int, nonce: int = 7) -> dict[str, Any]:
    """150 USDC to alice on Base: above tokens.usdc.approve_above (100)."""
    return {
        "transaction": {
            "chainId": 8453,
            "nonce": nonce,
            "gas": 100_000,
            "maxFeePerGas": str(GWEI),
            "maxPriorityFeePerGas": "1000000",
            "to": USDC_BASE,
            "data": transfer(ALICE, usdc * USDC),
        }
    }


def native(nonce: int) -> dict[str, Any]:
    """0.02 ETH to alice: above native.approve_above (0.01)."""
    return {
        "transaction": {
            "chainId": 8453,
            "nonce": nonce,
            "gas": 21_000,
            "maxFeePerGas": str(GWEI),
            "maxPriorityFeePerGas": "1000000",
            "to": ALICE,
            "value": str(2 * ETHER // 100),
        }
    }


def transaction_digest(arguments: dict[str, Any]) -> str:
    tx = arguments["transaction"]
    unsigned = TypedTransaction.from_dict(
        {
            "type": 2,
            "chainId": tx["chainId"],
            "nonce": tx["nonce"],
            "gas": tx["gas"],
            "maxFeePerGas": int(tx["maxFeePerGas"]),
            "maxPriorityFeePerGas": int(tx["maxPriorityFeePerGas"]),
            "to": tx["to"],
            "value": int(tx.get("value", "0")),
            "data": tx.get("data", "0x"),
            "accessList": [],
        }
    )
    return "0x" + bytes(unsigned.hash()).hex()


def typed_digest(arguments: dict[str, Any]) -> str:
    signable = encode_typed_data(full_message=arguments["typed_data"])
    return "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex()


def signed_digests() -> list[str]:
    return ["0x" + message.hex() for message in CONTROL.messages]


def check_signed_transaction(result: CallToolResult, address: str, usdc: int | None) -> None:
    signed = structured(result)
    raw = bytes(HexBytes(signed["raw_transaction"]))
    assert Account.recover_transaction(raw) == address
    if usdc is not None:
        assert decode_raw_transaction(raw)["data"] == bytes(HexBytes(transfer(ALICE, usdc * USDC)))


def utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- 1. elicitation: accept, decline, cancel, in both eras -----------------------------------


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_person_at_the_client_decides_and_only_an_accept_is_signed(
    setup: Setup, mode: str, tmp_path: Path
) -> None:
    person = Person()
    async with connect(setup, mode=mode, person=person, log=tmp_path / "server.log") as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        address = structured(await client.call_tool("get_address", {}))["address"]

        for answer, word in (("decline", "declined"), ("cancel", "cancelled")):
            person.answer = answer
            refused = await client.call_tool("sign_transaction", payment(150))
            assert refused.is_error
            assert text_of(refused).startswith("policy_denied: approval: "), text_of(refused)
            assert word in text_of(refused)
            assert CONTROL.messages == []

        question = person.asked[-1]
        assert "Base (8453)" in question
        assert f"sends 150 USDC to {ALICE_NAMED}" in question
        assert transaction_digest(payment(150)) in question
        assert len(person.asked) == 2

        person.answer = "accept"
        grant = substitute(permit(ROUTER, 150 * USDC, deadline=int(time.time()) + 900), address)
        signed = structured(await client.call_tool("sign_typed_data", grant))
        assert signed_digests() == [typed_digest(grant)]
        assert signed["digest"] == typed_digest(grant)
        signable = encode_typed_data(full_message=grant["typed_data"])
        assert Account.recover_message(signable, signature=signed["signature"]) == address
        question = person.asked[-1]
        assert f"lets {ROUTER_NAMED} spend up to 150 USDC" in question
        assert "Base (8453)" in question
        assert f"valid until {utc(grant['typed_data']['message']['deadline'])}" in question
        assert typed_digest(grant) in question

        # The request declined before, asked again, and accepted this time.
        paid = await client.call_tool("sign_transaction", payment(150))
        check_signed_transaction(paid, address, 150)
        assert signed_digests() == [typed_digest(grant), transaction_digest(payment(150))]
        assert len(person.asked) == 4

    decisions = [r for r in audit_records(setup.env) if r["kind"] == "approval"]
    assert [r["approval_answer"] for r in decisions] == ["decline", "cancel", "accept", "accept"]
    assert [r["outcome"] for r in decisions] == ["approval_denied"] * 2 + ["approved"] * 2
    assert {r["approval_channel"] for r in decisions} == {"elicitation"}
    assert all(r["time"] and r["policy_sha256"] for r in decisions)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_only_a_json_true_is_consent(setup: Setup, mode: str) -> None:
    person = Person()
    async with connect(setup, mode=mode, person=person) as client:
        for content in ({"approve": "yes"}, {"approve": "true"}, {"approve": 1}, {}):
            person.answer = content
            refused = await client.call_tool("sign_transaction", payment(150))
            assert text_of(refused).startswith("policy_denied: approval: "), (content, refused)
            assert "did not tick approve" in text_of(refused), content
        assert CONTROL.messages == []


async def test_a_2025_06_18_client_with_a_bare_elicitation_capability_is_asked(
    setup: Setup, tmp_path: Path
) -> None:
    raw = RawServer({**setup.env, "VAULT_POLICY": str(setup.policy)}, tmp_path / "stderr.log")
    try:
        init = raw.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {"elicitation": {}},
                "clientInfo": {"name": "old-client", "version": "1"},
            },
        )
        assert init["result"]["protocolVersion"] == "2025-06-18"
        raw.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        raw.send(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "sign_transaction", "arguments": payment(120)},
            }
        )
        question = raw.receive()
        assert question["method"] == "elicitation/create"
        assert "sends 120 USDC to" in question["params"]["message"]
        assert CONTROL.messages == []
        raw.send(
            {
                "jsonrpc": "2.0",
                "id": question["id"],
                "result": {"action": "accept", "content": {"approve": True}},
            }
        )
        answer = raw.receive()
        assert answer["id"] == 1
        assert not answer["result"].get("isError"), answer
        assert signed_digests() == [transaction_digest(payment(120))]
    finally:
        raw.close()


# -- 2. out of band: approval_required, then `agentic-vault approvals` in another process ----


async def test_out_of_band_an_approval_signs_exactly_its_request_once(setup: Setup) -> None:
    async with connect(setup) as client:  # no elicitation callback: out of band
        address = structured(await client.call_tool("get_address", {}))["address"]
        first = required_id(await client.call_tool("sign_transaction", payment(150)))
        assert CONTROL.messages == []

        waiting = listed(setup.env)
        assert list(waiting) == [first]
        assert waiting[first]["state"] == "pending"
        assert waiting[first]["digest"] == transaction_digest(payment(150))
        assert f"sends 150 USDC to {ALICE_NAMED}" in waiting[first]["summary"]

        # The same request again, before a decision: the same request waits, no new one.
        assert required_id(await client.call_tool("sign_transaction", payment(150))) == first

        approve(setup.env, first)
        assert listed(setup.env) == {}  # nothing waits any more
        check_signed_transaction(
            await client.call_tool("sign_transaction", payment(150)), address, 150
        )
        assert signed_digests() == [transaction_digest(payment(150))]

        # Used up: the same request once more is a new request for a person.
        second = required_id(await client.call_tool("sign_transaction", payment(150)))
        assert second != first
        assert len(CONTROL.messages) == 1
        assert listed(setup.env, "--all")[first]["state"] == "used"

        # An approval for one digest signs nothing else (151 USDC is another digest).
        approve(setup.env, second)
        other = required_id(await client.call_tool("sign_transaction", payment(151)))
        assert other not in (first, second)
        assert len(CONTROL.messages) == 1
        check_signed_transaction(
            await client.call_tool("sign_transaction", payment(150)), address, 150
        )
        assert signed_digests() == [transaction_digest(payment(150))] * 2

        # Denied: never signed, and a denied request cannot be approved afterwards.
        denied = cli(setup.env, "approvals", "deny", other)
        assert denied.returncode == 0, denied.stderr
        late = cli(setup.env, "approvals", "approve", other)
        assert late.returncode == 1
        assert f"{other} is denied" in late.stderr
        third = required_id(await client.call_tool("sign_transaction", payment(151)))
        assert third != other
        assert len(CONTROL.messages) == 2

        # An approval not used yet can be revoked.
        approve(setup.env, third)
        assert cli(setup.env, "approvals", "deny", third).returncode == 0
        required_id(await client.call_tool("sign_transaction", payment(151)))
        assert len(CONTROL.messages) == 2

    unknown = cli(setup.env, "approvals", "approve", "ap-nosuchid")
    assert unknown.returncode == 1
    assert "no approval request has the id" in unknown.stderr

    records = audit_records(setup.env)
    decisions = [(r["approval"], r["outcome"]) for r in records if r["kind"] == "approval"]
    assert decisions == [
        (first, "approved"),
        (second, "approved"),
        (other, "approval_denied"),
        (third, "approved"),
        (third, "approval_denied"),
    ]
    for record in (r for r in records if r["kind"] == "approval"):
        assert record["approval_channel"] == "out-of-band"
        assert record["client"].startswith("cli:")
        assert record["time"].endswith("Z")
    signed = [r for r in records if r["outcome"] == "signed"]
    assert [r["approval"] for r in signed] == [first, second]
    intents = [r for r in records if r["kind"] == "intent"]
    assert [(r["approval"], r["approval_channel"]) for r in intents] == [
        (first, "out-of-band"),
        (second, "out-of-band"),
    ]
    assert cli(setup.env, "audit", "verify").returncode == 0


async def test_an_approval_is_for_the_client_that_asked(setup: Setup, tmp_path: Path) -> None:
    async with connect(setup) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        asked = required_id(await client.call_tool("sign_transaction", payment(150)))
        approve(setup.env, asked)
        # Another client (a shell on the same store) sends the same request first: the
        # approval is not its own, so it gets a request of its own and nothing is signed.
        request = tmp_path / "payment.json"
        request.write_text(json.dumps(payment(150)["transaction"]))
        other = cli(setup.env, "sign-transaction", "--policy", str(setup.policy), str(request))
        assert other.returncode != 0, other.stdout
        assert "approval_required: " in other.stderr, other.stderr
        assert asked not in other.stderr
        assert CONTROL.messages == []
        # The client that asked still has its approval.
        check_signed_transaction(
            await client.call_tool("sign_transaction", payment(150)), address, 150
        )
        assert signed_digests() == [transaction_digest(payment(150))]


async def test_an_approval_expires(emulator: LocalKms, tmp_path: Path) -> None:
    setup = make_setup(emulator, tmp_path, APPROVALS, "--approval-ttl", "4")
    async with connect(setup) as client:
        used_late = required_id(await client.call_tool("sign_transaction", payment(150)))
        approve(setup.env, used_late)
        decided_late = required_id(await client.call_tool("sign_transaction", payment(160)))
        shown = listed(setup.env, "--all")
        assert shown[used_late]["state"] == "approved"
        assert shown[decided_late]["expires"] - shown[decided_late]["created"] == 4
        # Wait until both have expired (an approval lasts the ttl from the moment it is given).
        await anyio.sleep(max(entry["expires"] for entry in shown.values()) - time.time() + 0.2)

        refused = cli(setup.env, "approvals", "approve", decided_late)
        assert refused.returncode == 1
        assert f"{decided_late} is expired" in refused.stderr
        # Approved in time, sent again too late: nothing is signed, a new request waits.
        again = required_id(await client.call_tool("sign_transaction", payment(150)))
        assert again != used_late
        assert CONTROL.messages == []
    states = {k: v["state"] for k, v in listed(setup.env, "--all").items()}
    assert states[used_late] == states[decided_late] == "expired"


async def test_an_approval_is_bound_to_the_policy_it_was_asked_under(
    emulator: LocalKms, tmp_path: Path
) -> None:
    capped = APPROVALS.replace('max_per_day = "2000"', 'max_per_day = "200"')
    assert capped != APPROVALS
    setup = make_setup(emulator, tmp_path, capped)
    async with connect(setup) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        asked = required_id(await client.call_tool("sign_transaction", payment(150)))
        approve(setup.env, asked)

        # Another policy (one more line: another sha256) is in force when the request comes back.
        write_policy(setup.policy, capped + "\n# reviewed\n")
        again = required_id(await client.call_tool("sign_transaction", payment(150)))
        assert again != asked
        assert CONTROL.messages == []
        shown = listed(setup.env, "--all")
        assert shown[asked]["state"] == "approved"
        assert shown[again]["policy_sha256"] != shown[asked]["policy_sha256"]

        # The very policy it was approved under again: the approval applies again.
        write_policy(setup.policy, capped)
        check_signed_transaction(
            await client.call_tool("sign_transaction", payment(150)), address, 150
        )
        assert signed_digests() == [transaction_digest(payment(150))]

        # A request the daily cap refuses is refused before a person is bothered.
        over = await client.call_tool("sign_transaction", payment(101))
        assert over.is_error
        assert text_of(over).startswith("policy_denied: tokens.usdc.max_per_day: "), text_of(over)
        assert len(CONTROL.messages) == 1
    shown = listed(setup.env, "--all")
    assert shown[asked]["state"] == "used"
    assert transaction_digest(payment(101)) not in {entry["digest"] for entry in shown.values()}


async def test_a_question_left_unanswered_expires_with_its_request(
    emulator: LocalKms, tmp_path: Path
) -> None:
    setup = make_setup(emulator, tmp_path, APPROVALS, "--approval-ttl", "2")
    person = Person()

    async def slow_person(context: Any, params: Any) -> ElicitResult:
        await anyio.sleep(4)
        return await person(context, params)

    async with connect(setup, mode="legacy", person=slow_person) as client:
        started = time.monotonic()
        unanswered = await client.call_tool("sign_transaction", payment(150))
        assert time.monotonic() - started < 4
        assert unanswered.is_error
        assert text_of(unanswered).startswith("policy_denied: approval: the request expired")
    assert CONTROL.messages == []


# -- 3. twenty requests waiting, approved in random order from other processes --------------


async def test_twenty_approvals_in_random_order_each_sign_their_own_request(
    setup: Setup,
) -> None:
    requests = {nonce: native(nonce) for nonce in range(20)}
    async with connect(setup) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        ids: dict[int, str] = {}

        async def ask(nonce: int) -> None:
            ids[nonce] = required_id(await client.call_tool("sign_transaction", requests[nonce]))

        async with anyio.create_task_group() as tasks:
            for nonce in requests:
                tasks.start_soon(ask, nonce)
        assert len(set(ids.values())) == 20
        waiting = listed(setup.env)
        assert {waiting[ids[n]]["digest"] for n in requests} == {
            transaction_digest(requests[n]) for n in requests
        }

        order = list(ids.values())
        random.shuffle(order)
        with ThreadPoolExecutor(max_workers=4) as pool:
            done = list(pool.map(lambda i: cli(setup.env, "approvals", "approve", i), order))
        assert [d.returncode for d in done] == [0] * 20, [d.stderr for d in done]
        assert CONTROL.messages == []

        results: dict[int, CallToolResult] = {}

        async def retry(nonce: int) -> None:
            results[nonce] = await client.call_tool("sign_transaction", requests[nonce])

        retry_order = list(requests)
        random.shuffle(retry_order)
        async with anyio.create_task_group() as tasks:
            for nonce in retry_order:
                tasks.start_soon(retry, nonce)
        for nonce, result in results.items():
            signed = structured(result)
            raw = bytes(HexBytes(signed["raw_transaction"]))
            assert Account.recover_transaction(raw) == address
            assert decode_raw_transaction(raw)["nonce"] == nonce
        assert sorted(signed_digests()) == sorted(transaction_digest(r) for r in requests.values())

        # None twice: every approval is used up.
        async with anyio.create_task_group() as tasks:
            for nonce in requests:
                tasks.start_soon(ask, nonce)
        assert len(CONTROL.messages) == 20
    states = listed(setup.env, "--all")
    assert sorted(states[i]["state"] for i in order) == ["used"] * 20


# -- 4. a policy that demands a person outside the agent's reach ----------------------------


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_out_of_band_policy_never_asks_the_client(
    emulator: LocalKms, tmp_path: Path, mode: str
) -> None:
    setup = make_setup(emulator, tmp_path, APPROVALS + "\n[approval]\nout_of_band = true\n")
    person = Person(answer="accept")
    async with connect(setup, mode=mode, person=person) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        asked = required_id(await client.call_tool("sign_transaction", payment(150)))
        assert CONTROL.messages == []
        approve(setup.env, asked)
        check_signed_transaction(
            await client.call_tool("sign_transaction", payment(150)), address, 150
        )
    assert person.asked == []
    assert len(CONTROL.messages) == 1


# -- the agent as the adversary, on the 2026-07-28 round trip --------------------------------


async def test_the_agent_cannot_swap_replay_or_forge_an_answer(setup: Setup) -> None:
    accept = ElicitResult(action="accept", content={"approve": True})
    async with connect(setup, mode="2026-07-28", person=Person()) as client:
        session = client.session
        question = await session.call_tool(
            "sign_transaction", payment(150), allow_input_required=True
        )
        assert isinstance(question, InputRequiredResult)
        assert question.input_requests is not None
        assert question.request_state is not None
        (key,) = question.input_requests
        state = question.request_state

        # The answer to the question about 150 USDC, sent with another request (200 USDC).
        with pytest.raises(MCPError, match="requestState"):
            await session.call_tool(
                "sign_transaction",
                payment(200),
                input_responses={key: accept},
                request_state=state,
                allow_input_required=True,
            )
        # An approval id of our own making, unsealed.
        pending = listed(setup.env)
        (asked_id,) = pending
        with pytest.raises(MCPError, match="requestState"):
            await session.call_tool(
                "sign_transaction",
                payment(150),
                input_responses={key: accept},
                request_state=asked_id,
                allow_input_required=True,
            )
        assert CONTROL.messages == []
        assert listed(setup.env)[asked_id]["state"] == "pending"

        # The real answer: signed once.
        signed = await session.call_tool(
            "sign_transaction",
            payment(150),
            input_responses={key: accept},
            request_state=state,
            allow_input_required=True,
        )
        assert isinstance(signed, CallToolResult)
        structured(signed)
        assert signed_digests() == [transaction_digest(payment(150))]

        # The same answer again: the approval is used up, nothing more is signed.
        replayed = await session.call_tool(
            "sign_transaction",
            payment(150),
            input_responses={key: accept},
            request_state=state,
            allow_input_required=True,
        )
        assert isinstance(replayed, CallToolResult)
        assert replayed.is_error
        assert text_of(replayed).startswith("policy_denied: approval: "), text_of(replayed)
        assert "already used" in text_of(replayed)
        assert len(CONTROL.messages) == 1

        # A person denies it out of band while the question is open: the "no" wins.
        question = await session.call_tool(
            "sign_transaction", payment(170), allow_input_required=True
        )
        assert isinstance(question, InputRequiredResult)
        assert question.request_state is not None
        (asked_id,) = listed(setup.env)
        assert cli(setup.env, "approvals", "deny", asked_id).returncode == 0
        answered = await session.call_tool(
            "sign_transaction",
            payment(170),
            input_responses={key: accept},
            request_state=question.request_state,
            allow_input_required=True,
        )
        assert isinstance(answered, CallToolResult)
        assert answered.is_error
        assert "a person denied this request" in text_of(answered)
        assert len(CONTROL.messages) == 1


# -- the approvals table and the command, on SQLite and PostgreSQL ---------------------------


def test_an_approval_is_single_use_bound_to_digest_policy_and_time(
    store_at: StoreAt, tmp_path: Path
) -> None:
    store = store_at.open()
    now = 1_000_000.0

    def create(
        digest: str, sha: str = "policy-1", client: str = "stdio:test"
    ) -> approval_table.Approval:
        return store.write(
            lambda c: approval_table.create(
                c,
                digest=digest,
                policy_sha256=sha,
                tool="sign_transaction",
                summary="Sign a transaction",
                client=client,
                now=now,
                ttl=60,
            )
        )

    def decide(approval_id: str, approve: bool, at: float) -> approval_table.Approval | None:
        return store.write(
            lambda c: approval_table.decide(
                c, approval_id, approve=approve, channel="out-of-band", now=at
            )
        )

    def consume(
        digest: str, sha: str, at: float, client: str = "stdio:test"
    ) -> approval_table.Approval | None:
        return store.write(
            lambda c: approval_table.consume(
                c,
                [approval_table.get(c, asked.id)],  # type: ignore[list-item]
                digest,
                sha,
                client,
                at,
            )
        )

    try:
        asked = create("0xaa")
        assert create("0xaa").id == asked.id  # one request waits per digest and policy
        assert create("0xaa", "policy-2").id != asked.id
        assert create("0xaa", client="bob").id != asked.id  # each client asks for itself
        assert consume("0xaa", "policy-1", now + 1) is None  # not approved yet
        approved = decide(asked.id, True, now + 50)
        assert approved is not None
        assert approved.status == "approved"
        assert approved.expires == now + 110  # the ttl again, from the approval
        assert decide(asked.id, True, now + 51) is None
        assert consume("0xbb", "policy-1", now + 60) is None  # another digest
        assert consume("0xaa", "policy-2", now + 60) is None  # another policy
        assert consume("0xaa", "policy-1", now + 110) is None  # expired
        assert consume("0xaa", "policy-1", now + 60, client="bob") is None  # another client
        used = consume("0xaa", "policy-1", now + 100)
        assert used is not None
        assert used.id == asked.id
        assert consume("0xaa", "policy-1", now + 101) is None  # once
        assert decide(asked.id, False, now + 102) is None  # used: nothing to revoke

        revoked = create("0xcc")
        decide(revoked.id, True, now + 1)
        assert decide(revoked.id, False, now + 2) is not None
        assert store.read(lambda c: approval_table.get(c, revoked.id)).status == "denied"  # type: ignore[union-attr]

        late = create("0xdd")
        assert decide(late.id, True, now + 60) is None  # a request waits ttl, not longer
    finally:
        store.close()

    # The command against the same store (a PostgreSQL one too), from another process.
    waiting = store_at.open()
    try:
        fresh = waiting.write(
            lambda c: approval_table.create(
                c,
                digest="0xee",
                policy_sha256="policy-1",
                tool="sign_message",
                summary="Sign a message",
                client="stdio:test",
                now=time.time(),
                ttl=600,
            )
        )
    finally:
        waiting.close()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    shown = cli(env, "approvals", "list", *store_at.cli_args)
    assert fresh.id in shown.stdout
    assert "Sign a message" in shown.stdout
    done = cli(env, "approvals", "approve", fresh.id, *store_at.cli_args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Sign a message\n")
    assert listed(env, "--all", *store_at.cli_args)[fresh.id]["state"] == "approved"


def test_approve_on_a_terminal_asks_first(tmp_path: Path) -> None:
    store = open_store(tmp_path / "state")
    try:
        asked = store.write(
            lambda c: approval_table.create(
                c,
                digest="0xaa",
                policy_sha256="p",
                tool="sign_transaction",
                summary="Sign a transaction on Base (8453):\n- sends 150 USDC to alice",
                client="stdio:test",
                now=time.time(),
                ttl=600,
            )
        )
    finally:
        store.close()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    where = ["--state-dir", str(tmp_path / "state")]

    def on_terminal(answer: str) -> subprocess.CompletedProcess[str]:
        leader, terminal = os.openpty()
        try:
            os.write(leader, answer.encode() + b"\n")
            return subprocess.run(
                [CLI, "approvals", "approve", asked.id, *where],
                env=env,
                stdin=terminal,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            os.close(leader)
            os.close(terminal)

    declined = on_terminal("n")
    assert declined.returncode == 1
    assert "sends 150 USDC to alice" in declined.stdout
    assert f"Approve {asked.id} and let it be signed once? [y/N]" in declined.stdout
    assert listed(env, *where)[asked.id]["state"] == "pending"
    confirmed = on_terminal("y")
    assert confirmed.returncode == 0, confirmed.stderr
    assert listed(env, "--all", *where)[asked.id]["state"] == "approved"


# -- the policy key ----------------------------------------------------------------------------


def test_the_approval_section_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    write_policy(path, APPROVALS)
    assert load_policy_file(path).policy.approval.out_of_band is False  # the default
    write_policy(path, APPROVALS + "\n[approval]\nout_of_band = true\n")
    assert load_policy_file(path).policy.approval.out_of_band is True

    write_policy(path, APPROVALS + '\n[approval]\nout_of_band = "yes"\n')
    with pytest.raises(PolicyFileError) as not_a_boolean:
        load_policy_file(path)
    line = len(APPROVALS.splitlines()) + 3
    assert f"line {line}: approval.out_of_band: " in not_a_boolean.value.message
    assert "boolean" in not_a_boolean.value.message

    write_policy(path, APPROVALS + "\n[approval]\nout_of_bnad = true\n")
    with pytest.raises(PolicyFileError) as misspelt:
        load_policy_file(path)
    assert "approval.out_of_bnad: " in misspelt.value.message
    assert "did you mean 'out_of_band'?" in misspelt.value.message
