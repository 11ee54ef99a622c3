"""``agentic-vault doctor --sign-test`` signs the way the server signs: policy, then audit trail.

A working Roles Anywhere setup (as in the other doctor tests), the installed
``agentic-vault doctor --json``, then the durable trail read back with
``agentic-vault audit export`` and the emulator's record of every ``kms:Sign``.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from agentic_vault._local_kms import CONTROL, LocalKms

from .mcp_helpers import CLI
from .roles_anywhere import Setup, good_setup

pytestmark = pytest.mark.e2e

# doctor's fixed message, and its EIP-191 digest computed here.
MESSAGE = b"agentic-vault doctor sign test"
DIGEST = keccak(b"\x19Ethereum Signed Message:\n%d" % len(MESSAGE) + MESSAGE)
CLIENT = f"doctor:{pwd.getpwuid(os.geteuid()).pw_name}"


@pytest.fixture
def setup(emulator: LocalKms, tmp_path: Path) -> Setup:
    return good_setup(emulator, tmp_path)


def trail(setup: Setup) -> list[dict[str, Any]]:
    done = subprocess.run(
        [CLI, "audit", "export"], env=setup.env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def policy_file(setup: Setup, name: str, text: bool) -> Path:
    path = setup.root / name
    path.write_text(f"version = 1\nchains = [1]\n\n[messages]\ntext = {str(text).lower()}\n")
    path.chmod(0o600)
    return path


def test_the_sign_test_is_on_the_audit_trail(setup: Setup) -> None:
    doctor = setup.doctor("--sign-test")
    doctor.says(
        "sign-test",
        "ok",
        "no policy is configured",
        f"on the audit trail as client {CLIENT}",
    )
    assert CONTROL.messages == [DIGEST]
    records = trail(setup)
    assert [(r["kind"], r["outcome"]) for r in records] == [
        ("intent", "intent"),
        ("outcome", "signed"),
    ]
    for record in records:
        assert (record["tool"], record["client"], record["digest"]) == (
            "sign_message",
            CLIENT,
            "0x" + DIGEST.hex(),
        )


def test_a_policy_that_refuses_the_message_is_a_warning_naming_its_key(setup: Setup) -> None:
    setup.env["VAULT_POLICY"] = str(policy_file(setup, "refuses.toml", text=False))
    doctor = setup.doctor("--sign-test")
    doctor.says(
        "sign-test",
        "warn",
        "kms:Sign was not tried",
        "(policy_denied: messages.text: ",
        "The refusal is on the audit trail",
        "Fix: nothing is broken if your agents need no such message",
        "messages.text = true",
    )
    assert doctor.status == 0  # a warning: a policy that signs no free text is a good one
    assert CONTROL.calls["Sign"] == 0
    [denial] = trail(setup)
    assert (denial["outcome"], denial["rule"], denial["client"]) == (
        "denied",
        "messages.text",
        CLIENT,
    )

    # --policy wins over VAULT_POLICY, as for the server: this one allows the message.
    allows = policy_file(setup, "allows.toml", text=True)
    setup.doctor("--sign-test", "--policy", str(allows)).says(
        "sign-test", "ok", "the policy allows it"
    )
    assert CONTROL.messages == [DIGEST]
    assert [r["outcome"] for r in trail(setup)] == ["denied", "intent", "signed"]


def test_a_broken_policy_fails_the_sign_test(setup: Setup) -> None:
    broken = setup.root / "broken.toml"
    broken.write_text("version = 1\nchains = [1]\n[messages]\ntext = maybe\n")
    broken.chmod(0o600)
    setup.doctor("--sign-test", "--policy", str(broken)).says(
        "sign-test",
        "fail",
        f"--policy/VAULT_POLICY: policy file {broken}",
        "agentic-vault-mcp refuses to start with it",
        "Fix: correct the policy file (`agentic-vault policy check FILE`",
    )
    assert CONTROL.calls["Sign"] == 0
