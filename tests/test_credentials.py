"""Credentials that rotate, break and hang, from a real ``credential_process``.

The helper stands in for IAM Roles Anywhere's ``aws_signing_helper``: it counts
its invocations and hands out a new access key each time, with an
``Expiration`` just inside botocore's refresh window, so the SDK renews every
couple of seconds instead of every hour. A control file makes it fail or hang.
The fault proxy sees which access key signed each request, proving that the
renewed credentials are the ones used.
"""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import anyio
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from agentic_vault._local_kms import LocalKms

from .fault_proxy import FaultProxy
from .mcp_helpers import mcp_client, server_env, structured, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

HELPER = """
import datetime as dt, json, sys, time
from pathlib import Path
state = Path(sys.argv[1])
count = int((state / "count").read_text() or 0) + 1 if (state / "count").exists() else 1
(state / "count").write_text(str(count))
mode = (state / "mode").read_text().strip()
if mode == "fail":
    print("unable to parse private key", file=sys.stderr)
    sys.exit(1)
if mode.startswith("hang"):
    time.sleep(float(mode.partition(":")[2]))
    print("gave up", file=sys.stderr)
    sys.exit(1)
ahead = float((state / "seconds-ahead").read_text())
expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ahead)
print(json.dumps({
    "Version": 1,
    "AccessKeyId": f"ROTATED{count:04d}",
    "SecretAccessKey": "placeholder",
    "SessionToken": f"session-{count}",
    "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
}))
"""
# botocore refreshes ahead of expiry: advisory 15 minutes before, mandatory 10 minutes.
ADVISORY_SOON = 15 * 60 + 2
MANDATORY_SOON = 10 * 60 + 1


class Helper:
    def __init__(self, root: Path) -> None:
        self.state = root / "helper-state"
        self.state.mkdir()
        script = root / "helper.py"
        script.write_text(HELPER)
        self.command = f"{sys.executable} {script} {self.state}"
        self.set(mode="ok", seconds_ahead=ADVISORY_SOON)

    def set(self, mode: str | None = None, seconds_ahead: int | None = None) -> None:
        if mode is not None:
            (self.state / "mode").write_text(mode)
        if seconds_ahead is not None:
            (self.state / "seconds-ahead").write_text(str(seconds_ahead))

    @property
    def invocations(self) -> int:
        path = self.state / "count"
        return int(path.read_text()) if path.exists() else 0


@pytest.fixture
def helper(tmp_path: Path) -> Helper:
    return Helper(tmp_path)


@pytest.fixture
def proxy(emulator: LocalKms) -> FaultProxy:
    faults = FaultProxy(emulator.endpoint).up()
    yield faults  # type: ignore[misc]
    faults.down()


def _env(
    emulator: LocalKms, proxy: FaultProxy, helper: Helper, tmp: Path, alias: str
) -> dict[str, str]:
    config = tmp / "aws-config"
    config.write_text(
        f"[profile roles-anywhere]\nregion = us-east-1\ncredential_process = {helper.command}\n"
    )
    config.chmod(config.stat().st_mode & ~stat.S_IWOTH)
    emulator.create_key(alias=alias)
    return server_env(
        emulator,
        tmp,
        VAULT_KEY_ID=alias,
        AWS_ENDPOINT_URL_KMS=proxy.endpoint,
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_PROFILE="roles-anywhere",
    )


def _recovers(signature: str, address: str, text: str) -> bool:
    return bool(Account.recover_message(encode_defunct(text=text), signature=signature) == address)


async def test_a_long_running_server_keeps_signing_across_credential_refreshes(
    emulator: LocalKms, proxy: FaultProxy, helper: Helper, tmp_path: Path
) -> None:
    env = _env(emulator, proxy, helper, tmp_path, "alias/rotation")
    async with mcp_client(env, args=["--kms-timeout", "3"]) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        signatures = 0
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline:
            text = f"rotation {signatures}"
            result = structured(await client.call_tool("sign_message", {"message": text}))
            assert _recovers(result["signature"], address, text)
            signatures += 1
            await anyio.sleep(0.25)
        health = structured(await client.call_tool("health_check", {}))
    assert health["credentials"] == "custom-process"
    assert helper.invocations >= 3
    keys_used = set(proxy.access_keys)
    assert len(keys_used) >= 3, keys_used  # the renewed credentials were really used
    assert signatures >= 20


async def test_a_failing_credential_process_then_a_working_one(
    emulator: LocalKms, proxy: FaultProxy, helper: Helper, tmp_path: Path
) -> None:
    helper.set(seconds_ahead=MANDATORY_SOON)  # every refresh after a second is mandatory
    env = _env(emulator, proxy, helper, tmp_path, "alias/failing-helper")
    async with mcp_client(env, args=["--kms-timeout", "3"]) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        helper.set(mode="fail")
        await anyio.sleep(1.5)
        started = time.perf_counter()
        result = await client.call_tool("sign_message", {"message": "x"})
        assert result.is_error
        text = text_of(result)
        assert text.startswith("kms_unavailable: the credential_process of the AWS profile failed")
        assert "unable to parse private key" in text
        assert "--profile roles-anywhere" in text
        assert time.perf_counter() - started < 3.5
        helper.set(mode="ok")
        signed = structured(await client.call_tool("sign_message", {"message": "back"}))
        assert _recovers(signed["signature"], address, "back")


async def test_a_credential_process_that_hangs_does_not_hang_the_server(
    emulator: LocalKms, proxy: FaultProxy, helper: Helper, tmp_path: Path
) -> None:
    helper.set(mode="hang:9")
    env = _env(emulator, proxy, helper, tmp_path, "alias/hanging-helper")
    # --kms-timeout 0.5: a tool call is abandoned after 2 * 0.5 + 5 = 6 s.
    async with mcp_client(env, args=["--kms-timeout", "0.5"]) as client:
        started = time.perf_counter()
        result = await client.call_tool("get_address", {})
        elapsed = time.perf_counter() - started
        assert result.is_error
        assert text_of(result).startswith("kms_unavailable: get_address got no answer within 6 s")
        assert "credential_process" in text_of(result)
        assert 5.5 < elapsed < 7.5
        assert len((await client.call_tool("health_check", {})).content) == 1  # still answers
        helper.set(mode="ok")
        await anyio.sleep(4)  # the stuck helper gives up at 9 s
        address = structured(await client.call_tool("get_address", {}))["address"]
        signed = structured(await client.call_tool("sign_message", {"message": "unstuck"}))
        assert _recovers(signed["signature"], address, "unstuck")
