"""The table of policy cases (tests/policy_cases.py), run through the core's parsers and
``evaluate``, with a small in-memory ledger standing in for the durable store.

The end-to-end runner sends the same table through the real console script;
here every case runs in milliseconds, so the whole table runs on every change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from agentic_vault import PersonalMessage, TransactionRequest, parse_typed_data
from agentic_vault.policy import Decision, LoadedPolicy, cap_denial, evaluate, load_policy_file

from .policy_cases import ACCEPTANCE_2, CASES, EXAMPLE, Case, Step

WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"
POLICY_DIR = Path(os.environ.get("TMPDIR", "/tmp"))


@cache
def _policy_dir() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="policy-table-"))


@cache
def loaded(text: str) -> LoadedPolicy:
    """Each distinct policy text, written to a file of its own and loaded as the server would."""
    path = _policy_dir() / f"policy-{abs(hash(text))}.toml"
    path.write_text(text)
    path.chmod(0o600)
    return load_policy_file(path)


@dataclass
class Ledger:
    """Rolling sums: what allowed requests reserved, and when."""

    entries: list[tuple[str, int, datetime]] = field(default_factory=list)

    def check(self, decision: Decision, now: datetime) -> Decision:
        """The decision, or the cap refusal if one of its reservations would pass its cap."""
        if decision.outcome == "deny":
            return decision
        for reservation in decision.reservations:
            since = now - timedelta(seconds=reservation.window_seconds)
            window = [(a, t) for s, a, t in self.entries if s == reservation.scope and t > since]
            used = sum(a for a, _ in window)
            if used + reservation.amount > reservation.cap:
                frees_at = (
                    min(t for _, t in window) + timedelta(seconds=reservation.window_seconds)
                    if window
                    else None
                )
                return cap_denial(reservation, used, frees_at, now)
        for reservation in decision.reservations:
            self.entries.append((reservation.scope, reservation.amount, now))
        return decision


def decide(case: Case | Step, policy: LoadedPolicy, now: datetime) -> Decision:
    arguments: dict[str, Any] = case.arguments_for(WALLET)
    encoding = "utf8"
    request: Any
    if case.tool == "sign_transaction":
        request = TransactionRequest.parse(arguments["transaction"])
    elif case.tool == "sign_typed_data":
        request = parse_typed_data(arguments["typed_data"])
    else:
        encoding = arguments.get("encoding", "utf8")
        request = PersonalMessage.parse(arguments["message"], encoding)
    return evaluate(policy, request, signer=WALLET, now=now, message_encoding=encoding)


def run(case: Case) -> Decision:
    policy = loaded(case.policy)
    ledger = Ledger()
    now = datetime.now(UTC)
    for number, earlier in enumerate(case.before):
        decision = ledger.check(decide(earlier, policy, now), now)
        assert decision.outcome == earlier.outcome, (
            f"earlier request {number} of {case.id}: {decision}"
        )
        now += timedelta(seconds=1)
    return ledger.check(decide(case, policy, now), now)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case: Case) -> None:
    decision = run(case)
    assert decision.outcome == case.outcome, str(decision)
    if case.outcome != "allow":
        assert decision.key == case.key, str(decision)
    if case.outcome == "deny":
        assert decision.denial.startswith(f"policy_denied: {case.key}: ")
        assert not decision.reservations or decision.key.endswith(("max_per_day", "max_per_hour"))
        # The sentence says what was asked and what would pass, in a few words at least.
        assert len(decision.reason.split()) >= 8, decision.reason
    else:
        assert decision.summary, "an allowed request describes what it does"


def test_the_table_is_large_and_has_both_outcomes() -> None:
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES)
    outcomes = {case.outcome for case in CASES}
    assert outcomes == {"allow", "deny", "approve"}


CONTRACT_KEYS = {
    "default",
    "chains",
    "allow_deploy",
    "native.to",
    "native.max_per_tx",
    "native.max_per_day",
    "native.approve_above",
    "tokens.*.to",
    "tokens.*.max_per_tx",
    "tokens.*.max_per_day",
    "tokens.*.approve_above",
    "tokens.*.spenders",
    "tokens.*.max_allowance",
    "contracts.*.functions",
    "contracts.*.max_value",
    "typed_data.max_validity",
    "typed_data.allow",
    "messages.text",
    "messages.patterns",
    "messages.siwe_domains",
    "messages.hex",
    "delegation.delegates",
    "fees.max_fee_per_gas",
    "fees.max_fee",
    "rate.max_per_hour",
}


def _generic(key: str) -> str:
    parts = key.split(".")
    if parts[0] in ("tokens", "contracts") and len(parts) == 3:
        parts[1] = "*"
    return ".".join(parts)


def test_every_key_of_the_contract_refuses_somewhere() -> None:
    refused = {_generic(case.key) for case in CASES if case.key}
    assert refused >= CONTRACT_KEYS, sorted(CONTRACT_KEYS - refused)


def test_every_section_also_allows_somewhere() -> None:
    allowing = {
        _generic(key)
        for case in CASES
        if case.outcome == "allow"
        for key in run(case).key.split(", ")
    }
    assert allowing >= {
        "native.to",
        "tokens.*.to",
        "tokens.*.spenders",
        "contracts.*.functions",
        "typed_data.allow[0]",
        "messages.text",
        "messages.patterns",
        "messages.siwe_domains",
        "messages.hex",
        "allow_deploy",
    }, sorted(allowing)


def test_acceptance_2_runs_under_the_example_policy() -> None:
    assert all(case.policy == EXAMPLE and case.outcome == "deny" for case in ACCEPTANCE_2)
    assert len(ACCEPTANCE_2) == 14
