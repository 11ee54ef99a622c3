"""`agentic-vault local-kms` and the demo, as a new user runs them."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from .mcp_helpers import CLI, SERVER, mcp_client, text_of

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


def _start_local_kms(
    *args: str, stderr: IO[str] | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [CLI, "local-kms", "--port", "0", *args], stdout=subprocess.PIPE, stderr=stderr, text=True
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


def _exports(lines: list[str]) -> dict[str, str]:
    """The ``export NAME=VALUE`` lines, as a mapping."""
    exported = (line.removeprefix("export ") for line in lines if line.startswith("export "))
    return dict(assignment.split("=", 1) for assignment in exported)


def test_the_printed_env_block_is_json_with_the_exported_variables() -> None:
    process, lines = _start_local_kms()
    try:
        opening = next(i for i, line in enumerate(lines) if line.startswith(": <<'"))
        marker = lines[opening].split("'")[1]
        closing = lines.index(marker, opening + 1)
        block = "\n".join(lines[opening + 1 : closing])
        assert block.startswith('"env": {')
        # What a user copies into a client's server entry.
        env = json.loads("{" + block + "}")["env"]
        assert env == _exports(lines)
        assert env["VAULT_KEY_ID"] == "alias/agentic-vault-dev"
        assert env["AWS_ENDPOINT_URL_KMS"].startswith("http://127.0.0.1:")
        assert opening > max(i for i, line in enumerate(lines) if line.startswith("export "))
    finally:
        process.terminate()
        process.wait(timeout=10)


def _client(endpoint: str, region: str) -> Any:
    return boto3.session.Session().client(
        "kms",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="local-dev-placeholder",
        aws_secret_access_key="local-dev-placeholder",
        config=Config(retries={"total_max_attempts": 1}),
    )


OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    ("describe_key", {"KeyId": "alias/agentic-vault-dev"}),
    (
        "sign",
        {
            "KeyId": "alias/agentic-vault-dev",
            "Message": b"\x01" * 32,
            "MessageType": "DIGEST",
            "SigningAlgorithm": "ECDSA_SHA_256",
        },
    ),
    ("list_keys", {}),
]


@pytest.mark.anyio
async def test_a_mistyped_region_gets_kms_s_answer_and_one_log_line(tmp_path: Path) -> None:
    log = tmp_path / "local-kms.stderr"
    with open(log, "w") as stderr:
        process, lines = _start_local_kms(stderr=stderr)
    try:
        exported = _exports(lines)
        endpoint = exported["AWS_ENDPOINT_URL_KMS"]
        refused = 0
        for region in ("us-east-1x", "eu-west-9"):
            kms = _client(endpoint, region)
            for operation, arguments in OPERATIONS:
                with pytest.raises(ClientError) as raised:
                    getattr(kms, operation)(**arguments)
                error = raised.value.response
                assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
                assert error["Error"]["Code"] == "InvalidSignatureException"
                assert error["Error"]["Message"] == (
                    f"Credential should be scoped to a valid region, not '{region}'."
                )
                refused += 1
        # A region AWS has, but not the key's: KMS's own answer, as before.
        with pytest.raises(ClientError) as raised:
            _client(endpoint, "eu-west-1").describe_key(KeyId="alias/agentic-vault-dev")
        assert raised.value.response["Error"]["Code"] == "NotFoundException"

        # The server, pointed there by a stray AWS_DEFAULT_REGION: one refusal, no retries.
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **exported}
        env |= {"AWS_DEFAULT_REGION": "eu-west-9"}
        del env["AWS_REGION"], env["VAULT_REGION"]
        async with mcp_client(env, args=["--kms-timeout", "8"]) as client:
            started = time.monotonic()
            result = await client.call_tool("get_address", {})
            elapsed = time.monotonic() - started
        assert result.is_error
        assert text_of(result).startswith("kms_unavailable: "), text_of(result)
        assert "(500)" not in text_of(result)
        assert elapsed < 4, "a refusal is not retried until the deadline"
        refused += 1

        # Whatever else makes moto crash (here: a body that is not JSON) is answered too.
        host, port = endpoint.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", "/", body=b"{not json", headers=_SIGNED_FOR_US_EAST_1)
        answer = connection.getresponse()
        assert answer.status == 500
        assert json.loads(answer.read())["__type"] == "KMSInternalException"
        connection.close()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    logged = log.read_text().splitlines()
    assert len(logged) == refused + 1, logged
    assert all(line.startswith("agentic-vault local-kms: refused ") for line in logged[:-1])
    assert all("us-east-1" in line for line in logged[:-1])  # where the key is
    assert logged[-1].startswith("agentic-vault local-kms: moto failed on DescribeKey (JSON")


_SIGNED_FOR_US_EAST_1 = {
    "X-Amz-Target": "TrentService.DescribeKey",
    "Content-Type": "application/x-amz-json-1.1",
    "Authorization": "AWS4-HMAC-SHA256 Credential=local-dev-placeholder/20260101/us-east-1/"
    "kms/aws4_request, SignedHeaders=host, Signature=00",
}


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
