"""Every case of the policy table (tests/policy_cases.py) through the installed server.

The real ``agentic-vault-mcp --policy FILE``, the official MCP client over
stdio, boto3 over HTTP to the local KMS emulator. For each case:

- allow: the signature is verified with eth-account alone (it recovers to the
  address ``get_address`` gave) and a raw transaction decodes to what was asked;
- deny: the answer starts ``policy_denied: KEY: `` with the case's KEY, and the
  emulator saw no ``Sign`` for it;
- approve: the answer starts ``approval_required: `` (the client declares no
  elicitation), and nothing is signed either.

Speed: one server per distinct policy (17 of them) runs all its cases in
sequence on one session; pytest spreads the policies over the workers.
The ledger is durable, and allowed cases reserve against the rolling caps and
the rate, so before each case the test ages the ledger's rows by two days in
the SQLite file (as if time had passed; the server reads the ledger inside
every write transaction and caches nothing): each case starts from empty
rolling sums, as on a fresh state directory. A case's earlier requests
(``before``) then run untouched, so its sums build up exactly as in use.
Afterwards the durable audit trail must agree: one ``signed`` record per
allowed request, one ``denied`` (or ``approval_required``) record naming the
case's KEY per refusal (or request sent to a person).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from mcp import Client

from agentic_vault._local_kms import CONTROL, LocalKms

from . import policy_cases
from .mcp_helpers import mcp_client, server_env, structured, text_of
from .policy_cases import CASES, Case, Step
from .reference import decode_raw_transaction

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

DAY_AND_MORE = 2 * 24 * 3600


# -- the cases, grouped by policy ----------------------------------------------------------


def _policy_names() -> dict[str, str]:
    """Each policy text of the table by the name it has in policy_cases (else its first case)."""
    texts = {case.policy for case in CASES}
    names: dict[str, str] = {}
    for name, value in vars(policy_cases).items():
        if (
            not name.startswith("_")
            and len(name) > 1
            and name.isupper()
            and isinstance(value, str)
            and value in texts
        ):
            names.setdefault(value, name.lower())
    for case in CASES:
        names.setdefault(case.policy, case.id)
    return names


POLICY_NAMES = _policy_names()


@dataclass(frozen=True)
class Group:
    name: str
    policy: str
    cases: tuple[Case, ...]


def _groups() -> list[Group]:
    by_policy: dict[str, list[Case]] = {}
    for case in CASES:
        by_policy.setdefault(case.policy, []).append(case)
    return [Group(POLICY_NAMES[text], text, tuple(cases)) for text, cases in by_policy.items()]


GROUPS = _groups()


# -- one server ------------------------------------------------------------------------------


@dataclass
class Served:
    client: Client
    address: str
    database: Path


def write_policy(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)  # owner-writable only: the server refuses anything looser
    return path


@asynccontextmanager
async def serve(
    emulator: LocalKms, key_id: str, tmp: Path, name: str, policy: str, mode: int = 0o600
) -> AsyncIterator[Served]:
    """The installed server with this policy and a state directory of its own."""
    policy_file = write_policy(tmp / f"{name}.toml", policy, mode)
    state = tmp / f"state-{name}"
    env = server_env(emulator, tmp, VAULT_KEY_ID=key_id)
    args = ["--policy", str(policy_file), "--state-dir", str(state)]
    async with mcp_client(env, args, log=tmp / f"{name}.log") as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        yield Served(client, address, state / "vault.sqlite3")


# -- checking one answer ---------------------------------------------------------------------


def _with_domain_type(typed_data: dict[str, Any]) -> dict[str, Any]:
    """EIP-712 payload with ``EIP712Domain`` spelled out, as eth-account wants it."""
    if "EIP712Domain" in typed_data["types"]:
        return typed_data
    kinds = {
        "name": "string",
        "version": "string",
        "chainId": "uint256",
        "verifyingContract": "address",
        "salt": "bytes32",
    }
    domain = [{"name": n, "type": t} for n, t in kinds.items() if n in typed_data["domain"]]
    return {**typed_data, "types": {**typed_data["types"], "EIP712Domain": domain}}


def verify_signature(tool: str, arguments: dict[str, Any], signed: dict[str, Any]) -> str:
    """The address eth-account recovers from ``signed``; a raw transaction must match the ask."""
    if tool == "sign_transaction":
        raw = bytes(HexBytes(signed["raw_transaction"]))
        assert signed["hash"] == "0x" + keccak(raw).hex(), signed
        asked = arguments["transaction"]
        decoded = decode_raw_transaction(raw)
        wanted = {
            "to": to_checksum_address(asked["to"]) if asked.get("to") else None,
            "value": int(asked.get("value", "0x0"), 16),
            "data": bytes(HexBytes(asked.get("data", "0x"))),
            "nonce": asked["nonce"],
        }
        assert {name: decoded[name] for name in wanted} == wanted, decoded
        return str(Account.recover_transaction(raw))
    if tool == "sign_typed_data":
        signable = encode_typed_data(full_message=_with_domain_type(arguments["typed_data"]))
    elif arguments.get("encoding") == "hex":
        signable = encode_defunct(primitive=bytes(HexBytes(arguments["message"])))
    else:
        signable = encode_defunct(text=arguments["message"])
    return str(Account.recover_message(signable, signature=signed["signature"]))


async def check(served: Served, label: str, request: Case | Step, key: str | None) -> list[str]:
    """Send ``request``; the mismatches with its expected outcome (none: it behaved)."""
    arguments = request.arguments_for(served.address)
    signs_before = CONTROL.calls["Sign"]
    result = await served.client.call_tool(request.tool, arguments)
    text = text_of(result)
    signs = CONTROL.calls["Sign"] - signs_before
    if request.outcome == "allow":
        if result.is_error:
            return [f"{label}: expected a signature, got {text}"]
        try:
            recovered = verify_signature(request.tool, arguments, structured(result))
        except AssertionError as exc:
            return [f"{label}: what was signed is not what was asked: {exc}"]
        if recovered != served.address or signs != 1:
            return [f"{label}: recovered {recovered} with {signs} Sign(s); wanted {served.address}"]
        return []
    # An earlier step that must be refused names no KEY in the table: any refusal will do.
    denial = f"policy_denied: {key}: " if key is not None else "policy_denied: "
    prefix = denial if request.outcome == "deny" else "approval_required: "
    problems = []
    if not (result.is_error and text.startswith(prefix)):
        problems.append(f"{label}: expected {prefix!r}…, got {text[:300]}")
    if signs:
        problems.append(f"{label}: a {request.outcome} reached kms:Sign {signs} time(s)")
    return problems


# -- the durable trail -----------------------------------------------------------------------


def records(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT record FROM audit ORDER BY seq").fetchall()
    return [json.loads(text) for (text,) in rows]


def age_the_ledger(database: Path) -> None:
    """Move every rolling-sum row out of its window, as if two days had passed."""
    if not database.exists():
        return  # the store is created by the first request that writes
    with sqlite3.connect(database, timeout=10) as db:
        db.execute("UPDATE ledger SET created = created - ?", (DAY_AND_MORE,))


RECORDED = {"allow": "signed", "deny": "denied", "approve": "approval_required"}


def trail_problems(database: Path, expected: list[tuple[str, str | None]]) -> list[str]:
    """The audit trail must hold, in order, one ``signed`` record per allowed request, one
    ``denied`` per refusal and one ``approval_required`` per request sent to a person, each
    of the last two naming the case's KEY."""
    found = [
        (record["outcome"], record["rule"])
        for record in records(database)
        if record["outcome"] in RECORDED.values()
    ]
    wanted = [(RECORDED[outcome], key) for outcome, key in expected]
    agree = len(found) == len(wanted) and all(
        f_outcome == w_outcome and (w_key is None or f_rule == w_key)
        for (f_outcome, f_rule), (w_outcome, w_key) in zip(found, wanted, strict=True)
    )
    return [] if agree else [f"audit trail: {found} != {wanted}"]


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS, ids=[group.name for group in GROUPS])
async def test_policy_cases(
    group: Group, emulator: LocalKms, signing_key: dict[str, Any], tmp_path: Path
) -> None:
    # Both modes the contract calls safe: 0600 for some policies, 0644 for the others.
    mode = (0o600, 0o644)[GROUPS.index(group) % 2]
    expected: list[tuple[str, str | None]] = []
    problems: list[str] = []
    async with serve(
        emulator, signing_key["KeyId"], tmp_path, group.name, group.policy, mode
    ) as served:
        for case in group.cases:
            age_the_ledger(served.database)  # each case starts with empty rolling sums
            for number, earlier in enumerate(case.before):
                problems += await check(served, f"{case.id} (earlier {number})", earlier, None)
                expected.append((earlier.outcome, None))
            problems += await check(served, case.id, case, case.key)
            expected.append((case.outcome, case.key if case.outcome != "allow" else None))
    problems += trail_problems(served.database, expected)
    assert not problems, "\n".join(problems)


def test_the_run_covers_the_whole_table() -> None:
    run = [case.id for group in GROUPS for case in group.cases]
    assert sorted(run) == sorted(case.id for case in CASES)
    assert len(run) >= 150
    assert sum(1 for case in CASES if case.before) >= 10
