"""`agentic-vault local-kms` and the demo, as a new user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .mcp_helpers import CLI, SERVER

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent

# What a user might run after pasting the lines: an MCP client starting the server
# with no flags, from the environment the pasted lines set.
CLIENT = f"""
import os, anyio
from eth_account import Account
from eth_account.messages import encode_defunct
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

async def main():
    params = StdioServerParameters(command={SERVER!r}, args=[], env=dict(os.environ))
    with open(os.devnull, "w") as log:
        async with Client(stdio_client(params, errlog=log)) as client:
            result = await client.call_tool("sign_message", {{"message": "pasted"}})
            signature = result.structured_content["signature"]
            print(Account.recover_message(encode_defunct(text="pasted"), signature=signature))

anyio.run(main)
"""


def _start_local_kms(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [CLI, "local-kms", "--port", "0", *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("# serving on"):
            return process, lines
    pytest.fail(f"local-kms stopped early: {lines}")


def test_pasted_local_kms_output_makes_the_server_sign(tmp_path: Path) -> None:
    process, lines = _start_local_kms()
    try:
        text = "\n".join(lines)
        assert "FOR DEVELOPMENT ONLY" in text
        assert "export VAULT_KEY_ID=alias/agentic-vault-dev" in lines
        address = next(line.split()[-1] for line in lines if line.startswith("# address:"))
        (tmp_path / "client.py").write_text(CLIENT)
        pasted = text + f"\nexec {sys.executable} {tmp_path / 'client.py'}\n"
        # A user's shell with leftovers from a real AWS setup, which the lines undo.
        result = subprocess.run(
            ["bash", "-c", pasted],
            env={
                "PATH": os.environ["PATH"],
                "HOME": str(tmp_path),
                "AWS_PROFILE": "work-sso-profile-that-does-not-exist-here",
                "AWS_SESSION_TOKEN": "stale",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == address
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_local_kms_refuses_a_busy_port_in_one_line() -> None:
    process, lines = _start_local_kms()
    try:
        port = next(line for line in lines if "AWS_ENDPOINT_URL_KMS" in line).rsplit(":", 1)[1]
        busy = subprocess.run(
            [CLI, "local-kms", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert busy.returncode == 2
        assert busy.stderr.count("\n") == 1
        assert f"127.0.0.1:{port} is already in use" in busy.stderr
    finally:
        process.terminate()
        process.wait(timeout=10)


def _local_kms_processes() -> set[int]:
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"local-kms" in argv and any(a.endswith(b"agentic-vault") for a in argv):
            found.add(int(cmdline.parent.name))
    return found


def test_the_demo_verifies_three_signatures_and_leaves_nothing_running() -> None:
    before = _local_kms_processes()
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.strip().startswith("address            0x") for line in lines)
    verified = [line for line in lines if "verified" in line and "  " in line]
    assert len(verified) == 3, result.stdout
    assert lines[-1].startswith("All 3 signatures verified")
    assert _local_kms_processes() <= before
