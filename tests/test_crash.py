"""kill -9 in the middle of a burst of signatures, ten times on one store (issue #10, item 3).

Once on the default SQLite store under the test's HOME, once on PostgreSQL.
Each round starts the installed server on the same state, sends 64
transactions as raw JSON-RPC lines, and kills the server with SIGKILL once it
has answered some of them; kms:Sign is slowed in the emulator so that the
others are caught in flight (on an idle machine, ten rounds catch requests at
every stage: not yet recorded, recorded and not yet at kms:Sign, at kms:Sign,
recorded as signed and not yet answered; the test requires at least one
intent left without its outcome). Then, with the server dead:

- ``agentic-vault audit verify`` passes;
- every signature the client received (every answer written before the kill,
  read to the end of the pipe) has an outcome record ``signed`` with its
  digest and transaction hash, and verifies with eth-account;
- every digest kms:Sign saw has an intent record (nothing signed unrecorded);
- the only loose ends are intents without an outcome, for requests that were
  never answered, whose ledger holds stay reserved (they may have been signed,
  so they keep counting against the cap); everything else is settled.

The next round's server is the restart; after the last round one more start
must sign again.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from agentic_vault._local_kms import CONTROL, LocalKms
from agentic_vault.store import Store, audit, default_state_dir, open_store

from .mcp_helpers import CLI, SERVER, server_env

pytestmark = pytest.mark.e2e

ALICE = to_checksum_address("0x" + "a1" * 20)
CHAIN = 8453
BURST = 64
# Answers read before each kill (0: as soon as kms:Sign has been asked once), one per round.
KILL_AFTER = (0, 3, 9, 17, 25, 33, 41, 48, 55, 61)
SIGN_LATENCY = 0.15  # seconds kms:Sign takes in the emulator
SEND_GAP = 0.004  # seconds between two requests: the burst arrives over a quarter second
POLICY = f"""\
version = 1
chains = [{CHAIN}]

[addresses]
alice = "{ALICE}"

[native]
to = ["alice"]
max_per_day = "1000"
"""


def transfer(nonce: int) -> dict[str, Any]:
    return {
        "type": 2,
        "chainId": CHAIN,
        "nonce": nonce,
        "gas": 21000,
        "maxFeePerGas": 30 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "to": ALICE,
        "value": 1,
    }


def signing_digest(transaction: dict[str, Any]) -> str:
    """What kms:Sign must sign for ``transaction``, computed by eth-account."""
    unsigned = TypedTransaction.from_dict({**transaction, "data": b"", "accessList": []})
    return "0x" + bytes(unsigned.hash()).hex()


class RawServer:
    """The installed server on raw JSON-RPC lines; every frame it writes is kept."""

    def __init__(self, env: dict[str, str], args: list[str], stderr: Path) -> None:
        self._stderr = stderr.open("w")
        self.process = subprocess.Popen(
            [SERVER, *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.frames.put(json.loads(line))

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def initialize(self) -> None:
        self.send(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "crash-test", "version": "1"},
                },
            }
        )
        answer = self.frames.get(timeout=60)
        assert answer["id"] == 0, answer
        assert "result" in answer, answer
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, request_id: int, tool: str, arguments: dict[str, Any]) -> None:
        params = {"name": tool, "arguments": arguments}
        self.send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})

    def address(self) -> str:
        self.call(1, "get_address", {})
        return str(self.frames.get(timeout=60)["result"]["structuredContent"]["address"])

    def kill(self) -> list[dict[str, Any]]:
        """SIGKILL; returns every frame not yet taken, up to the end of the pipe."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        self._stderr.close()
        rest = []
        while not self.frames.empty():
            rest.append(self.frames.get_nowait())
        return rest

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


@dataclass
class Trail:
    """What the rounds so far asked, got back, and left in the store."""

    address: str = ""
    digests: dict[str, dict[str, Any]] = field(default_factory=dict)  # digest → transaction
    answered: dict[str, dict[str, Any]] = field(default_factory=dict)  # digest → answer
    loose: int = 0  # intents without outcome, over all rounds
    unanswered: int = 0


def burst(server: RawServer, round_number: int, kill_after: int, trail: Trail) -> None:
    """Send 64 transfers, kill the server after ``kill_after`` answers; keep the answers."""
    ids: dict[int, str] = {}
    transactions = [transfer(round_number * BURST + n) for n in range(BURST)]
    for n, transaction in enumerate(transactions):
        digest = signing_digest(transaction)
        trail.digests[digest] = transaction
        ids[1000 * (round_number + 1) + n] = digest
    for request_id, transaction in zip(ids, transactions, strict=True):
        server.call(request_id, "sign_transaction", {"transaction": transaction})
        time.sleep(SEND_GAP)
    answers: list[dict[str, Any]] = []
    if kill_after == 0:
        deadline = time.monotonic() + 30
        while CONTROL.calls["Sign"] == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert CONTROL.calls["Sign"], "no kms:Sign was asked for within 30 s"
    while len(answers) < kill_after:
        answers.append(server.frames.get(timeout=60))
    answers += server.kill()
    for answer in answers:
        assert "result" in answer, answer
        result = answer["result"]
        assert not result.get("isError"), result
        trail.answered[ids[answer["id"]]] = result["structuredContent"]
        check_signature(ids[answer["id"]], result["structuredContent"], trail.address)
    trail.unanswered += BURST - len(answers)


def check_signature(digest: str, answer: dict[str, Any], address: str) -> None:
    """The answer is a signature by ``address`` over exactly ``digest``, says eth-account."""
    raw = bytes(HexBytes(answer["raw_transaction"]))
    assert answer["hash"] == "0x" + keccak(raw).hex()
    assert Account.recover_transaction(raw) == address
    assert "0x" + bytes(TypedTransaction.from_bytes(HexBytes(raw)).hash()).hex() == digest


def verify_cli(env: dict[str, str], location: list[str]) -> str:
    done = subprocess.run(
        [CLI, "audit", "verify", *location],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def check_store(store: Store, trail: Trail) -> None:
    """The chain, the answers and the ledger as the kills left them; see the module docstring."""
    records, ledger = store.read(
        lambda c: (
            [r.fields for r in audit.records(c)],
            c.query("SELECT intent_seq, state FROM ledger"),
        )
    )
    intents = {r["seq"]: r for r in records if r["kind"] == "intent"}
    outcomes = {r["intent_seq"]: r for r in records if r["kind"] == "outcome"}
    assert len(outcomes) == len(records) - len(intents), "an intent with two outcomes"
    assert {r["outcome"] for r in outcomes.values()} <= {"signed"}, "a call failed"
    for intent_seq, outcome in outcomes.items():
        intent = intents[intent_seq]  # no outcome without its intent
        assert intent["digest"] == outcome["digest"]
        assert intent["seq"] < outcome["seq"]
        transaction = trail.digests[outcome["digest"]]
        assert outcome["tx_hash"] is not None
        assert outcome["to"] == transaction["to"]
        assert outcome["chain_id"] == CHAIN
    signed = {r["digest"]: r for r in outcomes.values()}

    # Every signature the client received (checked as it came) has its record.
    for digest, answer in trail.answered.items():
        assert digest in signed, f"answered without an outcome record: {digest}"
        assert signed[digest]["tx_hash"] == answer["hash"]

    # Nothing was signed without its intent record.
    recorded = {r["digest"] for r in intents.values()}
    assert len(recorded) == len(intents), "one request recorded twice"
    for message in CONTROL.messages:
        assert "0x" + message.hex() in recorded, "kms:Sign without an intent record"

    # The loose ends: intents without outcome, never answered, their holds still reserved.
    loose = {seq for seq in intents if seq not in outcomes}
    for seq in loose:
        assert intents[seq]["digest"] not in trail.answered
    states = {int(intent_seq): state for intent_seq, state in ledger}
    assert set(states) == set(intents), "a hold without its intent, or an intent without hold"
    assert {seq for seq, state in states.items() if state == "reserved"} == loose
    assert {states[seq] for seq in outcomes} <= {"kept"}
    trail.loose = len(loose)


# Some 20 s each on an idle machine; room for a machine busy with other work.
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_burst_leaves_a_verifiable_trail_with_every_answer(
    backend: str, emulator: LocalKms, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    alias = f"alias/crash-{backend}"
    emulator.create_key(alias=alias)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    policy.chmod(0o600)
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=alias)
    args = ["--policy", str(policy)]
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        location, store = ["--state-url", url], open_store(None, url)
        args += location
    else:
        # The default store: $HOME/.local/state/agentic-vault, for the server and the CLI.
        location, store = [], open_store(default_state_dir(env))
    trail = Trail()
    CONTROL.latency["Sign"] = SIGN_LATENCY
    servers = [RawServer(env, args, tmp_path / "server-0.log")]
    try:
        for round_number, kill_after in enumerate(KILL_AFTER):
            server = servers[-1]
            server.initialize()
            if not trail.address:
                trail.address = server.address()
            burst(server, round_number, kill_after, trail)
            # The restart starts at once; it writes nothing before its first signature.
            servers.append(RawServer(env, args, tmp_path / f"server-{round_number + 1}.log"))
            assert "ok: " in verify_cli(env, location)
            check_store(store, trail)
        assert trail.unanswered > 0, "every kill came after the whole burst was answered"
        assert trail.loose > 0, "no kill came between an intent and its outcome"

        # After the last kill: the restarted server signs again, and the trail verifies.
        CONTROL.latency.clear()
        server = servers[-1]
        server.initialize()
        transaction = transfer(len(KILL_AFTER) * BURST)
        digest = signing_digest(transaction)
        trail.digests[digest] = transaction
        server.call(1, "sign_transaction", {"transaction": transaction})
        answer = server.frames.get(timeout=60)
        assert not answer["result"].get("isError"), answer
        trail.answered[digest] = answer["result"]["structuredContent"]
        check_signature(digest, trail.answered[digest], trail.address)
        server.close()
    finally:
        for server in servers:
            server.close()
    verify_cli(env, location)
    check_store(store, trail)
