"""Concurrent transfers can never overshoot a daily cap, in one server or two, and the
window survives a restart (issue #9, acceptance 3).

Each repetition sends 64 transfers at once (one MCP session, or two servers
sharing one SQLite file), each within ``max_per_tx``, together well past
``max_per_day``: exactly ``cap // amount`` are signed (each verified with
eth-account), the rest are refused naming the cap's KEY, the emulator saw
exactly as many ``Sign`` calls as there are signatures, and the ledger
agrees (kept amounts = signed x amount, nothing left reserved).

Twenty repetitions run on one server and one state directory, each against
a cap of its own: ten on ``native.max_per_day`` (per chain, so each on its
own chain) and ten on ``tokens.tN.max_per_day`` (ten tokens with their own
decimals and caps). Amounts vary: exact divisions, one signature only, 63 of
64. ``kms:Sign`` is slowed a little so that reservations are checked while
others are still held and unsettled. The state lives where the server puts
it by default: under the test's HOME.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import CallToolResult

from agentic_vault._local_kms import CONTROL, LocalKms

from .mcp_helpers import CLI, mcp_client, server_env, structured, text_of
from .policy_cases import ALICE, ETHER, transfer, tx
from .test_policy_e2e import records, verify_signature

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CALLS = 64
SIGN_LATENCY = 0.01
SPARE_CHAIN = 324  # listed, never used by a repetition


@dataclass(frozen=True)
class Token:
    name: str
    decimals: int
    max_per_tx: str
    max_per_day: str

    @property
    def address(self) -> str:
        return f"0x{0x7000 + int(self.name[1:]):040x}"

    def units(self, amount: str) -> int:
        whole, _, fraction = amount.partition(".")
        return int(whole + fraction.ljust(self.decimals, "0"))


NATIVE_CAP = ETHER  # max_per_day = "1" on every chain
TOKENS = [
    Token("t0", 6, "10", "100"),
    Token("t1", 18, "0.5", "2.5"),
    Token("t2", 0, "600", "1000"),
    Token("t3", 6, "1.01", "64"),
    Token("t4", 8, "0.1", "0.5"),
    Token("t5", 2, "1", "10"),
    Token("t6", 6, "500", "2000"),
    Token("t7", 18, "1", "1"),
    Token("t8", 6, "3", "3"),
    Token("t9", 12, "1", "7"),
]


@dataclass(frozen=True)
class Repetition:
    """64 transfers of ``amount`` against one cap: native on ``chain``, or ``token``'s."""

    amount: int
    chain: int = 8453
    token: Token | None = None

    @property
    def key(self) -> str:
        return f"tokens.{self.token.name}.max_per_day" if self.token else "native.max_per_day"

    @property
    def scope(self) -> str:  # the ledger's name for the cap (store/ledger.py, policy/decide.py)
        return f"token:{self.token.name}" if self.token else f"native:{self.chain}"

    @property
    def cap(self) -> int:
        return self.token.units(self.token.max_per_day) if self.token else NATIVE_CAP

    @property
    def fits(self) -> int:
        return self.cap // self.amount

    def arguments(self, nonce: int) -> dict[str, Any]:
        if self.token is None:
            return tx(ALICE, value=self.amount, chain=self.chain, nonce=nonce)
        return tx(self.token.address, data=transfer(ALICE, self.amount), nonce=nonce)

    def __str__(self) -> str:
        return f"{self.key} ({self.scope}), {CALLS} x {self.amount} against {self.cap}"


def ether(amount: str) -> int:
    whole, _, fraction = amount.partition(".")
    return int(whole + fraction.ljust(18, "0"))


NATIVE_REPETITIONS = [
    Repetition(ether(amount), chain=chain)
    for amount, chain in [
        ("0.05", 1),  # 20, exactly the cap
        ("0.03", 10),  # 33
        ("0.016", 56),  # 62
        ("0.0159", 100),  # 62
        ("0.045", 137),  # 22
        ("0.02", 250),  # 50, exactly
        ("0.0333", 8453),  # 30
        ("0.025", 42161),  # 40, exactly
        ("0.0157", 43114),  # 63 of 64
        ("0.04", 59144),  # 25, exactly
    ]
]
TOKEN_REPETITIONS = [
    Repetition(token.units(amount), token=token)
    for token, amount in zip(
        TOKENS,
        ["7", "0.3", "501", "1.000001", "0.0125", "0.33", "450", "1", "0.1", "0.5"],
        strict=True,
    )
]
REPETITIONS = [
    repetition
    for pair in zip(NATIVE_REPETITIONS, TOKEN_REPETITIONS, strict=True)
    for repetition in pair
]


def policy_text() -> str:
    chains = sorted({r.chain for r in NATIVE_REPETITIONS} | {8453, SPARE_CHAIN})
    text = f"""version = 1
chains = {chains}

[addresses]
alice = "{ALICE}"

[native]
to = ["alice"]
max_per_tx = "0.05"
max_per_day = "1"
"""
    for token in TOKENS:
        text += f"""
[tokens.{token.name}]
decimals = {token.decimals}
address = "{token.address}"
to = ["alice"]
max_per_tx = "{token.max_per_tx}"
max_per_day = "{token.max_per_day}"
"""
    return text


# -- running and checking one repetition --------------------------------------------------------


@dataclass
class Server:
    client: Client
    address: str


async def burst(
    servers: list[Server], repetition: Repetition, nonces: range = range(CALLS)
) -> list[tuple[dict[str, Any], CallToolResult]]:
    """All the transfers at once, spread over the servers in turn; (arguments, answer) each."""
    requests = [(repetition.arguments(n), servers[n % len(servers)]) for n in nonces]
    answers = await asyncio.gather(
        *(server.client.call_tool("sign_transaction", args) for args, server in requests)
    )
    return [(args, answer) for (args, _), answer in zip(requests, answers, strict=True)]


def ledger_rows(database: Path, scope: str) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT amount, state FROM ledger WHERE scope = ?", (scope,)).fetchall()
    return [(int(amount), state) for amount, state in rows]


def check_repetition(
    repetition: Repetition,
    answers: list[tuple[dict[str, Any], CallToolResult]],
    address: str,
    signs: int,
    database: Path,
) -> None:
    signed = [(args, answer) for args, answer in answers if not answer.is_error]
    refused = [text_of(answer) for _, answer in answers if answer.is_error]
    assert len(signed) == repetition.fits, f"{repetition}: {refused[:1]}"
    assert repetition.fits < CALLS, f"{repetition}: the sum must pass the cap"
    for args, answer in signed:
        assert verify_signature("sign_transaction", args, structured(answer)) == address
    wrong = [text for text in refused if not text.startswith(f"policy_denied: {repetition.key}: ")]
    assert not wrong, f"{repetition}: {wrong[:2]}"
    assert signs == repetition.fits, f"{repetition}: {signs} kms:Sign calls"
    rows = ledger_rows(database, repetition.scope)
    assert rows == [(repetition.amount, "kept")] * repetition.fits, f"{repetition}: {rows}"


def state_database(home: Path) -> Path:
    return home / ".local" / "state" / "agentic-vault" / "vault.sqlite3"


def audit_verify(env: dict[str, str]) -> str:
    result = subprocess.run(
        [CLI, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def check_trail(database: Path, repetitions: list[Repetition]) -> None:
    """Per repetition, as many ``signed`` records as signatures; the rest ``denied`` by its KEY."""
    trail = records(database)
    for repetition in repetitions:
        where = repetition.token.address if repetition.token else ALICE
        mine = [
            record
            for record in trail
            if record["chain_id"] == repetition.chain
            and (record["to"] or "").lower() == where.lower()
        ]
        outcomes = [record["outcome"] for record in mine]
        assert outcomes.count("signed") == repetition.fits, str(repetition)
        denied = [record["rule"] for record in mine if record["outcome"] == "denied"]
        assert denied == [repetition.key] * (CALLS - repetition.fits), str(repetition)


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(policy_text())
    path.chmod(0o600)
    return path


async def test_concurrent_transfers_never_overshoot_and_the_window_survives_a_restart(
    emulator: LocalKms, signing_key: dict[str, Any], tmp_path: Path, policy_file: Path
) -> None:
    assert len(REPETITIONS) == 20
    assert len({r.scope for r in REPETITIONS}) == 20  # a cap of its own each
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=signing_key["KeyId"])
    args = ["--policy", str(policy_file)]
    database = state_database(tmp_path)

    async with mcp_client(env, args, log=tmp_path / "server.log") as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        server = Server(client, address)
        CONTROL.latency["Sign"] = SIGN_LATENCY
        for repetition in REPETITIONS:
            before = CONTROL.calls["Sign"]
            answers = await burst([server], repetition)
            signs = CONTROL.calls["Sign"] - before
            check_repetition(repetition, answers, address, signs, database)

    total = sum(r.fits for r in REPETITIONS)
    assert audit_verify(env).startswith("ok: ")
    check_trail(database, REPETITIONS)
    assert sum(1 for record in records(database) if record["outcome"] == "signed") == total

    # A new process on the same state: every window still holds what was signed.
    CONTROL.latency.clear()
    async with mcp_client(env, args, log=tmp_path / "restarted.log") as client:
        signs = CONTROL.calls["Sign"]
        for repetition in REPETITIONS:
            answer = await client.call_tool("sign_transaction", repetition.arguments(CALLS))
            assert text_of(answer).startswith(f"policy_denied: {repetition.key}: "), str(repetition)
        assert CONTROL.calls["Sign"] == signs
        spare = Repetition(ether("0.05"), chain=SPARE_CHAIN)
        fresh = await client.call_tool("sign_transaction", spare.arguments(0))
        assert structured(fresh)["from"] == address  # a cap with room still signs
    for repetition in REPETITIONS:
        rows = ledger_rows(database, repetition.scope)
        assert rows == [(repetition.amount, "kept")] * repetition.fits


async def test_two_servers_on_one_sqlite_file_never_overshoot(
    emulator: LocalKms, signing_key: dict[str, Any], tmp_path: Path, policy_file: Path
) -> None:
    """Two processes share the file; BEGIN IMMEDIATE serialises their reservations."""
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=signing_key["KeyId"])
    args = ["--policy", str(policy_file)]
    database = state_database(tmp_path)
    # 63 and 62 of 64 fit: each process (32 calls) signs some, and both hit the cap.
    repetitions = [NATIVE_REPETITIONS[8], TOKEN_REPETITIONS[3], NATIVE_REPETITIONS[2]]

    async with (
        mcp_client(env, args, log=tmp_path / "a.log") as first,
        mcp_client(env, args, log=tmp_path / "b.log") as second,
    ):
        servers = [
            Server(client, structured(await client.call_tool("get_address", {}))["address"])
            for client in (first, second)
        ]
        address = servers[0].address
        assert servers[1].address == address
        CONTROL.latency["Sign"] = SIGN_LATENCY
        for repetition in repetitions:
            before = CONTROL.calls["Sign"]
            answers = await burst(servers, repetition)
            signs = CONTROL.calls["Sign"] - before
            check_repetition(repetition, answers, address, signs, database)

    assert audit_verify(env).startswith("ok: ")
    check_trail(database, repetitions)
