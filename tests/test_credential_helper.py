"""The server with a broken AWS setup: every tool says what is wrong and how to fix it.

A ``credential_process`` helper that cannot run (missing, not executable, an XML error
page, built for another architecture), a profile region left as the guide's ``REGION``
placeholder, and a password in ``AWS_ENDPOINT_URL_KMS``, each through the real
``agentic-vault-mcp`` and the official MCP client.
"""

from __future__ import annotations

import platform
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from agentic_vault._local_kms import LocalKms

from .mcp_helpers import log_lines, mcp_client, run_cli, server_env, structured, text_of
from .roles_anywhere import (
    credential_process,
    fake_helper,
    foreign_architecture,
    foreign_elf_helper,
    non_executable_helper,
    write_profile,
    xml_helper,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def _missing(path: Path) -> Path:
    return path


HELPERS: dict[str, tuple[Callable[[Path], Path], list[str]]] = {
    # stand-in → what the message must say (cause, then fix)
    "missing": (_missing, ["not found", "no such file", "install"]),
    "not-executable": (non_executable_helper, ["Permission denied", "not executable", "chmod 755"]),
    "xml-page": (
        xml_helper,
        ["Exec format error", "not an ELF", "XML", "NoSuchKey", "it must say ELF"],
    ),
    "foreign-elf": (
        foreign_elf_helper,
        ["Exec format error", foreign_architecture()[0], platform.machine(), "uname -m"],
    ),
}


@pytest.mark.parametrize("kind", HELPERS)
async def test_a_helper_that_cannot_run_is_kms_unavailable_naming_path_cause_and_fix(
    emulator: LocalKms, tmp_path: Path, kind: str
) -> None:
    make, expected = HELPERS[kind]
    helper = make(tmp_path / "aws_signing_helper")
    write_profile(tmp_path / "aws-config", credential_process(helper))
    emulator.create_key(alias=f"alias/helper-{kind}")
    env = server_env(
        emulator,
        tmp_path,
        VAULT_KEY_ID=f"alias/helper-{kind}",
        AWS_PROFILE="rolesanywhere-kms",
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
    )
    async with mcp_client(env) as client:
        result = await client.call_tool("get_address", {})
        health = structured(await client.call_tool("health_check", {}))
        text = text_of(result)
        assert result.is_error
        assert text.startswith("kms_unavailable: the credential_process helper "), text
        assert str(helper) in text
        assert "rolesanywhere-kms" in text
        assert "agentic-vault doctor --profile rolesanywhere-kms" in text
        for phrase in expected:
            assert phrase.lower() in text.lower(), (phrase, text)
        assert health["status"] == "unhealthy"
        assert health["problems"][0] == text
        # Once the operator installs a working helper, the same server works: no restart.
        fake_helper(helper)
        assert structured(await client.call_tool("get_address", {}))["address"].startswith("0x")


@pytest.mark.parametrize(
    ("region_source", "named"),
    [("profile", "rolesanywhere-kms"), ("AWS_DEFAULT_REGION", "AWS_DEFAULT_REGION")],
)
def test_a_region_that_is_not_a_region_is_refused_at_start(
    tmp_path: Path, region_source: str, named: str
) -> None:
    config = write_profile(
        tmp_path / "aws-config",
        "/usr/local/bin/aws_signing_helper credential-process",
        region="REGION" if region_source == "profile" else "us-east-1",
    )
    env = server_env(None, tmp_path, VAULT_KEY_ID="alias/x", AWS_PROFILE="rolesanywhere-kms")
    if region_source == "AWS_DEFAULT_REGION":
        env["AWS_DEFAULT_REGION"] = "REGION"
    result = run_cli([], env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("agentic-vault-mcp: error: ")
    assert named in line
    assert "'REGION' is not an AWS region name" in line
    if region_source == "profile":
        assert str(config) in line
        assert "region = us-east-1" in line
    assert "--region" in line


async def test_a_bad_profile_region_that_is_not_used_does_not_stop_the_server(
    emulator: LocalKms, tmp_path: Path
) -> None:
    # VAULT_REGION wins over the profile's region, so the placeholder is harmless here
    # (doctor still warns about it).
    write_profile(tmp_path / "aws-config", "/bin/false", region="REGION")
    emulator.create_key(alias="alias/explicit-region")
    env = server_env(
        emulator, tmp_path, VAULT_KEY_ID="alias/explicit-region", AWS_PROFILE="rolesanywhere-kms"
    )
    assert env["VAULT_REGION"] == "us-east-1"
    env.pop("AWS_REGION")
    async with mcp_client(env) as client:
        health = structured(await client.call_tool("health_check", {}))
    assert health["status"] == "ok", health
    assert health["region"] == "us-east-1"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_password_in_the_kms_endpoint_is_never_echoed(
    emulator: LocalKms, tmp_path: Path
) -> None:
    endpoint = f"http://vault-user:hunter2-s3cret@127.0.0.1:{_closed_port()}"
    log = tmp_path / "server.log"
    env = server_env(emulator, tmp_path, VAULT_KEY_ID="alias/masked", AWS_ENDPOINT_URL_KMS=endpoint)
    async with mcp_client(env, args=["--kms-timeout", "1"], log=log) as client:
        result = await client.call_tool("get_address", {})
        health = structured(await client.call_tool("health_check", {}))
    assert result.is_error
    text = text_of(result)
    assert text.startswith("kms_unavailable: cannot reach KMS")
    assert "hunter2" not in text
    assert "vault-user:***@127.0.0.1" in text  # still says which endpoint, minus the secret
    assert health["problems"]
    assert all("hunter2" not in problem for problem in health["problems"])
    audit = [line for line in log_lines(log) if line["logger"] == "agentic_vault.audit"]
    assert [line["tool"] for line in audit] == ["get_address", "health_check"]
    assert "vault-user:***@" in audit[0]["error"]
    assert "hunter2" not in log.read_text()
