"""Spawning the installed ``agentic-vault-mcp`` and talking to it with the official client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult

from agentic_vault._local_kms import LocalKms

# The console scripts installed next to the interpreter running the tests.
BIN = Path(sys.executable).parent
SERVER = str(BIN / "agentic-vault-mcp")
CLI = str(BIN / "agentic-vault")


def server_env(emulator: LocalKms | None, tmp: Path, **overrides: str | None) -> dict[str, str]:
    """A clean environment: the emulator's variables and nothing from the host's AWS setup."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "AWS_CONFIG_FILE": str(tmp / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONUNBUFFERED": "1",
    }
    if emulator is not None:
        env |= emulator.environment("unset")
        del env["VAULT_KEY_ID"]
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@asynccontextmanager
async def mcp_client(
    env: Mapping[str, str], args: list[str] | None = None, log: Path | None = None
) -> AsyncIterator[Client]:
    """The official MCP client connected over stdio to a freshly spawned server."""
    params = StdioServerParameters(command=SERVER, args=args or [], env=dict(env))
    with open(log or os.devnull, "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=60) as client:
            yield client


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    return str(getattr(block, "text", ""))


def structured(result: CallToolResult) -> dict[str, Any]:
    """The structured content, checked against the text block (the same JSON)."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert json.loads(text_of(result)) == result.structured_content
    return dict(result.structured_content)


def log_lines(log: Path) -> list[dict[str, Any]]:
    """Every stderr line must be a JSON object; returns them."""
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def run_cli(
    args: list[str], env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVER, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
