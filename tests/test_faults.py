"""Network faults between the server and KMS: bounded time, the right code, recovery.

The installed server runs against the emulator through ``FaultProxy``, with
``--kms-timeout 2``: each KMS operation, retries included, must end within 2 s
(the checks allow 0.5 s more for process and pipe overhead). Transient faults
are retried away; persistent ones end in ``kms_unavailable``; once the fault is
gone the same server process signs again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from mcp import Client

from agentic_vault._local_kms import LocalKms

from .fault_proxy import FaultProxy
from .mcp_helpers import mcp_client, server_env, structured, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

KMS_TIMEOUT = 2.0
BOUND = KMS_TIMEOUT + 0.5


@pytest.fixture
def proxy(emulator: LocalKms) -> FaultProxy:
    faults = FaultProxy(emulator.endpoint).up()
    yield faults  # type: ignore[misc]
    faults.release()
    faults.down()


@asynccontextmanager
async def served(
    emulator: LocalKms, proxy: FaultProxy, tmp_path: Path
) -> AsyncIterator[tuple[Client, str]]:
    """A server behind the proxy, warmed up (key fetched); yields it and its address."""
    alias = f"alias/faults-{len(proxy.seen)}-{time.monotonic_ns()}"
    emulator.create_key(alias=alias)
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=alias, AWS_ENDPOINT_URL_KMS=proxy.endpoint)
    async with mcp_client(env, args=["--kms-timeout", str(KMS_TIMEOUT)]) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        await _sign(client, address)  # first signature: imports done
        proxy.seen.clear()
        yield client, address


async def _sign(client: Client, address: str) -> float:
    """Sign, check the signature with eth-account; returns the time it took."""
    started = time.perf_counter()
    result = await client.call_tool("sign_message", {"message": "fault test"})
    elapsed = time.perf_counter() - started
    signature = structured(result)["signature"]
    assert (
        Account.recover_message(encode_defunct(text="fault test"), signature=signature) == address
    )
    return elapsed


async def _refused(client: Client) -> tuple[str, float]:
    started = time.perf_counter()
    result = await client.call_tool("sign_message", {"message": "fault test"})
    elapsed = time.perf_counter() - started
    assert result.is_error
    return text_of(result), elapsed


FAULTS = ["throttle", "error500", "error503", "reset"]


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_transient_fault_is_retried_away(
    emulator: LocalKms, proxy: FaultProxy, tmp_path: Path, fault: str
) -> None:
    async with served(emulator, proxy, tmp_path) as (client, address):
        proxy.schedule([fault, fault])
        elapsed = await _sign(client, address)
        assert proxy.seen["Sign"] == 3  # two faults, then the answer
        assert elapsed < BOUND


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("throttle", "throttling"),
        ("error500", "KMSInternalException"),
        ("error503", "ServiceUnavailableException"),
        ("reset", "cannot reach KMS"),
        ("silent", "cannot reach KMS"),
        ("slow:5", "cannot reach KMS"),
    ],
)
async def test_a_persistent_fault_ends_in_kms_unavailable_in_time_then_recovers(
    emulator: LocalKms, proxy: FaultProxy, tmp_path: Path, fault: str, says: str
) -> None:
    async with served(emulator, proxy, tmp_path) as (client, address):
        proxy.always(fault)
        text, elapsed = await _refused(client)
        assert text.startswith("kms_unavailable: "), text
        assert says in text
        assert elapsed < BOUND, f"{fault}: {elapsed:.2f}s"
        assert proxy.seen["Sign"] >= 2  # it was retried
        proxy.always(None)
        await _sign(client, address)


async def test_a_slow_endpoint_within_the_read_timeout_still_signs(
    emulator: LocalKms, proxy: FaultProxy, tmp_path: Path
) -> None:
    async with served(emulator, proxy, tmp_path) as (client, address):
        proxy.always("slow:0.3")
        elapsed = await _sign(client, address)
        assert 0.3 <= elapsed < BOUND
        assert proxy.seen["Sign"] == 1


async def test_an_endpoint_that_goes_down_and_comes_back(
    emulator: LocalKms, proxy: FaultProxy, tmp_path: Path
) -> None:
    async with served(emulator, proxy, tmp_path) as (client, address):
        proxy.down()
        text, elapsed = await _refused(client)
        assert text.startswith("kms_unavailable: cannot reach KMS"), text
        assert elapsed < BOUND
        proxy.up()
        await _sign(client, address)
