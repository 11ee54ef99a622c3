"""``agentic-vault-mcp`` start-up: flags, environment fallbacks, bad configuration, exits."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from agentic_vault import __version__
from agentic_vault._local_kms import LocalKms

from .bad_inputs import CHECKSUMMED
from .mcp_helpers import SERVER, mcp_client, run_cli, server_env, structured, text_of

pytestmark = pytest.mark.e2e


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_no_key_id_is_one_line_naming_both_ways(tmp_path: Path) -> None:
    line = _one_line_error(run_cli([], server_env(None, tmp_path)))
    assert "--key-id" in line
    assert "VAULT_KEY_ID" in line


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--key-id", "alias/x", "--bogus"], {}, "--bogus"),
        (["--key-id", "not a key"], {}, "--key-id"),
        (["--key-id", "alias/x", "--expected-address", "0x1234"], {}, "--expected-address"),
        (
            ["--key-id", "alias/x", "--expected-address", CHECKSUMMED.lower()[:-1] + "E"],
            {},
            "--expected-address",
        ),
        (["--key-id", "alias/x", "--region", "mars"], {}, "--region"),
        (["--key-id", "alias/x", "--kms-timeout", "-1"], {}, "--kms-timeout"),
        (["--key-id", "alias/x", "--kms-timeout", "soon"], {}, "--kms-timeout"),
        (
            ["--key-id", "arn:aws:kms:eu-west-1:123456789012:alias/x", "--region", "us-east-1"],
            {},
            "--region",
        ),
        (
            [],
            {"VAULT_KEY_ID": "alias/x", "VAULT_EXPECTED_ADDRESS": "nope"},
            "VAULT_EXPECTED_ADDRESS",
        ),
        ([], {"VAULT_KEY_ID": "alias/x", "VAULT_KMS_TIMEOUT": "0"}, "VAULT_KMS_TIMEOUT"),
        ([], {"VAULT_KEY_ID": "alias/x", "VAULT_LOG_LEVEL": "loud"}, "VAULT_LOG_LEVEL"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], named: str
) -> None:
    line = _one_line_error(run_cli(args, server_env(None, tmp_path, **env)))
    assert line.startswith("agentic-vault-mcp: error: ")
    assert named in line


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_exit_0(tmp_path: Path, flag: str) -> None:
    result = run_cli([flag], server_env(None, tmp_path))
    assert result.returncode == 0
    assert result.stderr == ""
    if flag == "--version":
        assert result.stdout.strip() == f"agentic-vault {__version__}"
    else:
        for documented in (
            "--key-id",
            "--region",
            "--profile",
            "--expected-address",
            "VAULT_KEY_ID",
        ):
            assert documented in result.stdout


async def _address(env: dict[str, str], args: list[str] | None = None) -> str:
    async with mcp_client(env, args=args) as client:
        result = await client.call_tool("get_address", {})
        if result.is_error:
            return text_of(result)
        return str(structured(result)["address"])


@pytest.fixture
def two_keys(emulator: LocalKms) -> dict[str, str]:
    """Two aliases and their addresses."""
    from eth_account import Account  # noqa: F401 - warms the import for the helpers below

    from agentic_vault._der import decode_secp256k1_public_key
    from agentic_vault._signer import address_of

    kms = emulator.client()
    out = {}
    for name in ("alias/cli-a", "alias/cli-b"):
        if name not in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}:
            emulator.create_key(alias=name)
        point = decode_secp256k1_public_key(kms.get_public_key(KeyId=name)["PublicKey"])
        out[name] = address_of(point)
    return out


@pytest.mark.anyio
async def test_environment_fallbacks_are_used_and_flags_win(
    emulator: LocalKms, two_keys: dict[str, str], tmp_path: Path
) -> None:
    a, b = two_keys["alias/cli-a"], two_keys["alias/cli-b"]
    env = server_env(emulator, tmp_path, VAULT_KEY_ID="alias/cli-a")
    assert await _address(env) == a
    assert await _address(env, ["--key-id", "alias/cli-b"]) == b

    # The key lives in us-east-1 only: a region that wins sends the call elsewhere.
    elsewhere = server_env(
        emulator,
        tmp_path,
        VAULT_KEY_ID="alias/cli-a",
        VAULT_REGION="eu-west-1",
        AWS_REGION="us-east-1",
    )
    assert "kms_key_invalid" in await _address(elsewhere)  # VAULT_REGION beats AWS_REGION
    assert await _address(elsewhere, ["--region", "us-east-1"]) == a  # the flag beats both
    only_aws_region = server_env(
        emulator,
        tmp_path,
        VAULT_KEY_ID="alias/cli-a",
        VAULT_REGION=None,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="eu-west-1",
    )
    assert await _address(only_aws_region) == a  # AWS_REGION beats AWS_DEFAULT_REGION

    pinned = server_env(emulator, tmp_path, VAULT_KEY_ID="alias/cli-a", VAULT_EXPECTED_ADDRESS=b)
    assert (await _address(pinned)).startswith("address_mismatch: ")
    assert await _address(pinned, ["--expected-address", a]) == a


@pytest.mark.anyio
async def test_kms_unreachable_at_start_then_reachable(
    emulator: LocalKms, two_keys: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = server_env(
        emulator,
        tmp_path,
        VAULT_KEY_ID="alias/cli-a",
        AWS_ENDPOINT_URL_KMS=f"http://127.0.0.1:{port}",
    )
    async with mcp_client(env, args=["--kms-timeout", "2"]) as client:
        assert len((await client.list_tools()).tools) == 5
        started = time.perf_counter()
        result = await client.call_tool("get_address", {})
        assert time.perf_counter() - started < 4
        assert result.is_error
        assert text_of(result).startswith("kms_unavailable: cannot reach KMS")
        health = structured(await client.call_tool("health_check", {}))
        assert health["status"] == "unhealthy"
        assert health["problems"][0].startswith("kms_unavailable")
        with LocalKms(port):  # KMS comes up: the same server now works
            assert (
                structured(await client.call_tool("get_address", {}))["address"]
                == (two_keys["alias/cli-a"])
            )


def _spawn(env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [SERVER, "--key-id", "alias/cli-a"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    assert "serving on stdio" in process.stderr.readline()  # up and reading stdin
    return process


def test_stdin_eof_exits_0_without_traceback(tmp_path: Path) -> None:
    process = _spawn(server_env(None, tmp_path))
    out, err = process.communicate(input="", timeout=30)
    assert process.returncode == 0
    assert out == ""
    assert "Traceback" not in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_exit_0_without_traceback(tmp_path: Path, signum: signal.Signals) -> None:
    process = _spawn(server_env(None, tmp_path))
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out == ""
    assert "Traceback" not in err
    assert f"{signum.name} received" in err
