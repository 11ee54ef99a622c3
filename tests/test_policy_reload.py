"""Changing the policy of a running server (issue #9, acceptance 4), end to end.

The installed server with ``--policy FILE``, the official client over stdio:

- SIGHUP with a valid new file: the server logs that SIGHUP put it in force
  (the test waits for that line, making no call meanwhile), ``health_check``
  reports its path, the SHA-256 of the bytes written and a later
  ``loaded_at``, and the next call is judged by it;
- SIGHUP with a broken file (TOML error, a bad value, an unknown key, an
  undefined name), no file, or a group-writable one: the old policy stays in
  force, and a warning on stderr says why, naming the key or the mode;
- an edit without SIGHUP takes effect at once: ``health_check`` reports it and
  the next signing call is judged by it (both compare the file's stat);
- at start-up a group-writable or broken file is exit 2 and one line naming
  the problem.

The probe: a transfer to bob, which policy A refuses (``native.to`` lists
only alice) and policy B signs.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from agentic_vault._local_kms import CONTROL, LocalKms

from .mcp_helpers import log_lines, mcp_client, run_cli, server_env, structured, text_of
from .policy_cases import ALICE, BOB, tx

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HEAD = f"""version = 1
chains = [8453]

[addresses]
alice = "{ALICE}"
bob = "{BOB}"
"""
POLICY_A = HEAD + '\n[native]\nto = ["alice"]\n'
POLICY_B = HEAD + '\n[native]\nto = ["alice", "bob"]\n'
TO_BOB = tx(BOB, value=1)
TO_ALICE = tx(ALICE, value=1)
WAIT = 10.0


def write(path: Path, text: str, mode: int = 0o600, *, replace: bool = False) -> str:
    """Write the policy (in place, or as a new file renamed over it); its SHA-256."""
    target = path.with_suffix(".new") if replace else path
    target.write_text(text)
    target.chmod(mode)
    if replace:
        target.replace(path)
    return hashlib.sha256(text.encode()).hexdigest()


def server_pid(policy: Path) -> int:
    """The pid of the server this test process spawned with ``--policy policy``."""
    mine = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if ppid == mine and str(policy).encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no server with --policy {policy} among this process's children")


@dataclass
class Running:
    client: Client
    policy: Path
    log: Path
    pid: int

    async def probe(self, arguments: dict[str, Any] = TO_BOB) -> str:
        """``signed`` or the refusal's text; a refusal must not reach kms:Sign."""
        before = CONTROL.calls["Sign"]
        result = await self.client.call_tool("sign_transaction", arguments)
        if not result.is_error:
            assert CONTROL.calls["Sign"] == before + 1
            return "signed"
        assert CONTROL.calls["Sign"] == before
        return text_of(result)

    async def policy_info(self) -> dict[str, Any]:
        health = structured(await self.client.call_tool("health_check", {}))
        assert health["policy"] is not None
        return dict(health["policy"])

    def lines(self) -> list[dict[str, Any]]:
        return log_lines(self.log)

    async def sighup_and_wait(self, wanted: str, level: str) -> dict[str, Any]:
        """Send SIGHUP; the first new log line at ``level`` containing ``wanted``."""
        seen = len(self.lines())
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            for line in self.lines()[seen:]:
                if line["level"] == level and wanted in line["message"]:
                    return line
            await anyio.sleep(0.02)
        raise AssertionError(f"no {level} line with {wanted!r} after SIGHUP: {self.lines()[seen:]}")


@asynccontextmanager
async def running(
    emulator: LocalKms, key_id: str, tmp: Path, text: str = POLICY_A
) -> AsyncIterator[Running]:
    policy = tmp / "policy.toml"
    write(policy, text)
    log = tmp / "server.log"
    env = server_env(emulator, tmp, VAULT_KEY_ID=key_id)
    async with mcp_client(env, ["--policy", str(policy)], log=log) as client:
        await client.call_tool("get_address", {})  # the server is up and answering
        yield Running(client, policy, log, server_pid(policy))


def denied_by(key: str) -> str:
    return f"policy_denied: {key}: "


def loaded_at(info: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(info["loaded_at"])


# -- SIGHUP ------------------------------------------------------------------------------------


async def test_sighup_loads_a_valid_file_and_keeps_the_old_one_for_a_bad_one(
    emulator: LocalKms, signing_key: dict[str, Any], tmp_path: Path
) -> None:
    async with running(emulator, signing_key["KeyId"], tmp_path) as server:
        first = await server.policy_info()
        assert first["path"] == str(server.policy)
        assert first["sha256"] == hashlib.sha256(POLICY_A.encode()).hexdigest()
        assert (await server.probe()).startswith(denied_by("native.to"))

        # A valid new file, renamed into place: in force once SIGHUP is handled.
        sha_b = write(server.policy, POLICY_B, replace=True)
        await server.sighup_and_wait("SIGHUP: policy", "info")
        second = await server.policy_info()
        assert second["sha256"] == sha_b
        assert loaded_at(second) > loaded_at(first)
        assert await server.probe() == "signed"

        # Broken files: each leaves B in force and says why, naming the key.
        for broken, named in [
            (POLICY_A + "[native\n", "line"),  # a TOML syntax error
            (
                POLICY_A.replace('to = ["alice"]', 'to = ["alice"]\nmax_per_tx = "0.1.2"'),
                "native.max_per_tx",
            ),
            (POLICY_A.replace("[native]", "[natve]"), "natve"),
            (POLICY_A.replace('"alice"]', '"alice", "mallory"]'), "native.to"),
        ]:
            write(server.policy, broken, replace=True)
            warning = await server.sighup_and_wait("policy not reloaded", "warning")
            assert named in warning["message"], warning
            assert warning["logger"] == "agentic_vault.policy"
            assert await server.probe() == "signed", broken
            assert (await server.policy_info()) == second

        # No file at all (deleted, or a deployment that failed half-way): B stays.
        server.policy.unlink()
        warning = await server.sighup_and_wait("policy not reloaded", "warning")
        assert "does not exist" in warning["message"], warning
        assert await server.probe() == "signed"
        assert (await server.policy_info()) == second

        # A valid file that is group-writable: refused, B stays.
        write(server.policy, POLICY_A, mode=0o664, replace=True)
        warning = await server.sighup_and_wait("policy not reloaded", "warning")
        assert "writable by group (mode 0664)" in warning["message"]
        assert await server.probe() == "signed"
        assert (await server.policy_info()) == second

        # Made safe again, the same file is accepted by the next SIGHUP.
        server.policy.chmod(0o644)
        await server.sighup_and_wait("SIGHUP: policy", "info")
        third = await server.policy_info()
        assert third["sha256"] == hashlib.sha256(POLICY_A.encode()).hexdigest()
        assert loaded_at(third) > loaded_at(second)
        assert (await server.probe()).startswith(denied_by("native.to"))
        assert await server.probe(TO_ALICE) == "signed"


# -- edits without SIGHUP ------------------------------------------------------------------------


async def test_an_edit_takes_effect_on_the_next_call_without_sighup(
    emulator: LocalKms, signing_key: dict[str, Any], tmp_path: Path
) -> None:
    async with running(emulator, signing_key["KeyId"], tmp_path) as server:
        first = await server.policy_info()
        assert (await server.probe()).startswith(denied_by("native.to"))

        # Edited in place (same inode): health_check reports the new file at once (what the
        # next call will be judged by), and the next signing call is judged by it.
        sha_b = write(server.policy, POLICY_B)
        second = await server.policy_info()
        assert second["sha256"] == sha_b
        assert loaded_at(second) > loaded_at(first)
        assert await server.probe() == "signed"
        assert (await server.policy_info()) == second  # loaded once, not again per call

        # A broken edit: the next call is still judged by B, and a warning says why.
        write(server.policy, POLICY_B.replace("chains = [8453]", "chains = 8453"))
        assert await server.probe() == "signed"
        warnings = [line for line in server.lines() if line["level"] == "warning"]
        assert any("chains" in line["message"] for line in warnings), warnings
        assert (await server.policy_info()) == second

        # Group-writable after a chmod alone: refused, B stays.
        write(server.policy, POLICY_A)
        server.policy.chmod(0o620)
        assert await server.probe() == "signed"
        assert (await server.policy_info()) == second

        # chmod back: A is in force for the next call.
        server.policy.chmod(0o600)
        assert (await server.probe()).startswith(denied_by("native.to"))
        assert (await server.policy_info())["sha256"] == hashlib.sha256(
            POLICY_A.encode()
        ).hexdigest()


# -- at start-up --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode", "named"),
    [
        (POLICY_A, 0o664, "writable by group (mode 0664)"),
        (POLICY_A, 0o646, "writable by others (mode 0646)"),
        (POLICY_A + "[native\n", 0o600, "line 10"),
        (POLICY_A.replace("[native]", "[native]\nmax_per_day = 1.5"), 0o644, "native.max_per_day"),
        (POLICY_A.replace("chains = [8453]\n", ""), 0o600, "chains"),
    ],
    ids=["group-writable", "others-writable", "toml-error", "float-amount", "no-chains"],
)
def test_a_bad_file_at_start_up_is_exit_2_and_one_line(
    emulator: LocalKms, tmp_path: Path, text: str, mode: int, named: str
) -> None:
    policy = tmp_path / "policy.toml"
    write(policy, text, mode)
    env = server_env(emulator, tmp_path, VAULT_KEY_ID="alias/never-reached")
    result = run_cli(["--policy", str(policy)], env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(policy) in lines[0]
    assert named in lines[0], lines[0]
    assert CONTROL.calls["DescribeKey"] == CONTROL.calls["GetPublicKey"] == 0
