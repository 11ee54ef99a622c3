"""The transport and call-handling defects of the hostile review, each through the real server.

Raw JSON-RPC over stdio, since the official client never sends most of these:
cancelled and abandoned calls must keep their thread and never sign once
cancelled; a flood must not grow memory (the server stops reading); repeated
keys, batches, odd ids and an unterminated last line all get answers; a
stopping server refuses new calls, leaves its pipes blocking, exits quietly
when its stdout is closed and does not wait for a stuck thread.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import defunct_hash_message

from agentic_vault._local_kms import CONTROL, LocalKms

from .mcp_helpers import SERVER, server_env
from .test_protocol import RawServer

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024
TOOLS = {"get_address", "sign_transaction", "sign_typed_data", "sign_message", "health_check"}


def _initialize(raw: RawServer) -> RawServer:
    init = raw.request(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "hardening-test", "version": "1"},
        },
    )
    assert init["result"]["serverInfo"]["name"] == "agentic-vault"
    raw.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return raw


@pytest.fixture
def alias(emulator: LocalKms, request: pytest.FixtureRequest) -> str:
    name = f"alias/hard-{request.node.name[5:50]}".replace("[", "-").replace("]", "")
    emulator.create_key(alias=name)
    return name


@pytest.fixture
def server(emulator: LocalKms, alias: str, tmp_path: Path) -> Iterator[RawServer]:
    raw = RawServer(server_env(emulator, tmp_path, VAULT_KEY_ID=alias), tmp_path / "stderr.log")
    yield _initialize(raw)
    if raw.process.poll() is None:
        raw.process.kill()
        raw.process.wait(10)


def _call(request_id: int, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


def _cancel(request_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": "the test changed its mind"},
    }


def _warm(server: RawServer) -> None:
    result = server.call("get_address", {})
    assert not result.get("isError"), result


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class _Peak:
    """Samples a /proc/PID/status figure in the background and keeps the largest."""

    def __init__(self, pid: int, field: str) -> None:
        self.pid, self.field, self.peak = pid, field, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
            except OSError:
                return
            value = int(status.split(f"{self.field}:")[1].split()[0])
            self.peak = max(self.peak, value)
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def _records(tmp_path: Path) -> list[dict[str, Any]]:
    database = tmp_path / ".local" / "state" / "agentic-vault" / "vault.sqlite3"
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT record FROM audit ORDER BY seq").fetchall()
    return [json.loads(text) for (text,) in rows]


def _stderr_lines(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "stderr.log").read_text().splitlines() if line]


# -- item 2: cancellation and abandonment -----------------------------------------------------


def test_cancelled_calls_keep_their_thread_and_never_sign_once_cancelled(
    server: RawServer, tmp_path: Path
) -> None:
    _warm(server)
    kms_answers = CONTROL.gates["Sign"] = threading.Event()  # KMS hangs until set
    threads = _Peak(server.process.pid, "Threads")
    request_id = 1000
    first_wave: set[bytes] = set()
    for wave in range(4):
        ids = list(range(request_id, request_id + 64))
        request_id += 64
        for i in ids:
            message = f"wave {wave} call {i}"
            server.send(_call(i, "sign_message", {"message": message}))
            if wave == 0:
                first_wave.add(bytes(defunct_hash_message(text=message)))
        if wave == 0:  # this wave's Signs have all started before it is cancelled
            _wait_for(lambda: len(set(CONTROL.messages)) >= 64, 20, "64 Signs in flight")
        for i in ids:
            server.send(_cancel(i))
    # Every cancel has been read once this ping is answered; only then does KMS answer.
    assert "result" in server.request("ping")
    kms_answers.set()
    # The first wave finishes its (cancelled) Signs; the other three never reach KMS.
    _wait_for(lambda: len(_late_lines(tmp_path)) >= 64, 20, "64 late audit lines")
    time.sleep(0.5)
    # (Counted by digest: a retried Sign under load is the same signature.)
    assert set(CONTROL.messages) == first_wave
    assert threads.stop() <= 64 + 12
    late = _late_lines(tmp_path)
    assert all(line["signed"] is True and line["delivered"] is False for line in late)
    outcomes = [r["outcome"] for r in _records(tmp_path) if r["tool"] == "sign_message"]
    assert outcomes.count("cancelled_after_signing") == 64
    assert "signed" not in outcomes
    assert outcomes.count("intent") == 64  # no intent for a call cancelled before it started
    result = server.call("sign_message", {"message": "still serving"})
    assert result["structuredContent"]["signature"].startswith("0x")
    assert server.close() == 0


def _late_lines(tmp_path: Path) -> list[dict[str, Any]]:
    return [
        line
        for line in _stderr_lines(tmp_path)
        if line.get("tool") == "sign_message" and line.get("delivered") is False
        and line.get("signed") is True
    ]  # fmt: skip


def test_a_call_abandoned_by_the_watchdog_never_signs_when_its_helper_returns_late(
    emulator: LocalKms, alias: str, tmp_path: Path
) -> None:
    # Budget 1 s: the watchdog answers after 2 x 1 + 5 = 7 s; the helper answers after 9 s.
    helper = tmp_path / "slow-helper.sh"
    helper.write_text(
        "#!/bin/sh\nsleep 9\n"
        'echo \'{"Version": 1, "AccessKeyId": "late", "SecretAccessKey": "late"}\'\n'
    )
    helper.chmod(0o755)
    (tmp_path / "aws-config").write_text(f"[profile slow]\ncredential_process = {helper}\n")
    env = server_env(
        emulator,
        tmp_path,
        VAULT_KEY_ID=alias,
        VAULT_KMS_TIMEOUT="1",
        AWS_PROFILE="slow",
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
    )
    raw = _initialize(RawServer(env, tmp_path / "stderr.log"))
    raw.send(_call(5, "sign_message", {"message": "abandoned"}))
    answer = raw.receive(timeout=20)
    text = answer["result"]["content"][0]["text"]
    assert text.startswith("kms_unavailable: sign_message got no answer within 7 s")
    _wait_for(
        lambda: any(line.get("delivered") is False for line in _stderr_lines(tmp_path)),
        15,
        "the abandoned call's own line",
    )
    time.sleep(1.0)
    assert CONTROL.calls["Sign"] == 0
    assert raw.close() == 0


# -- item 3: backpressure -----------------------------------------------------------------------


def test_a_flood_of_large_requests_while_kms_hangs_does_not_grow_memory(
    server: RawServer,
) -> None:
    _warm(server)
    CONTROL.latency["Sign"] = 2.5
    memory = _Peak(server.process.pid, "VmRSS")
    big = "y" * int(1.9 * MiB)

    def flood() -> None:
        for i in range(64):
            server.send(_call(2000 + i, "sign_message", {"message": f"in flight {i}"}))
        for i in range(120):
            server.send(_call(3000 + i, "sign_message", {"message": big}))

    writer = threading.Thread(target=flood, daemon=True)
    writer.start()
    answers = [server.receive(timeout=60) for _ in range(64 + 120)]
    writer.join(30)
    peak_mb = memory.stop() / 1024
    by_id = {answer["id"]: answer["result"] for answer in answers}
    assert set(by_id) == set(range(2000, 2064)) | set(range(3000, 3120))
    assert all(not by_id[2000 + i].get("isError") for i in range(64))
    assert all(by_id[3000 + i]["isError"] for i in range(120))
    assert peak_mb < 150, f"peak RSS {peak_mb:.0f} MB"
    assert server.close() == 0


# -- item 6: repeated keys ---------------------------------------------------------------------


def test_a_key_repeated_in_the_arguments_is_refused_naming_it(server: RawServer) -> None:
    line = (
        b'{"jsonrpc":"2.0","id":61,"method":"tools/call","params":{"name":"sign_transaction",'
        b'"arguments":{"transaction":{"chainId":1,"nonce":0,"gas":21000,"maxFeePerGas":"10",'
        b'"maxPriorityFeePerGas":"1","to":"0x1111111111111111111111111111111111111111",'
        b'"value":"1","to":"0x2222222222222222222222222222222222222222",'
        b'"value":"1000000000000000000000"}}}}'
    )
    server.send(line)
    answer = server.receive()
    assert answer["id"] == 61
    text = answer["result"]["content"][0]["text"]
    assert answer["result"]["isError"] is True
    assert text.startswith("invalid_input: transaction.to: appears more than once")
    assert CONTROL.calls["Sign"] == 0
    assert server.close() == 0


def test_a_key_repeated_in_the_envelope_runs_nothing(server: RawServer) -> None:
    _warm(server)
    CONTROL.reset()
    server.send(
        b'{"jsonrpc":"2.0","id":62,"method":"tools/call","params":{"name":"get_address",'
        b'"name":"health_check","arguments":{}}}'
    )
    answer = server.receive()
    assert answer["id"] == 62
    assert answer["error"]["code"] == -32600
    assert "params.name" in answer["error"]["message"]
    assert sum(CONTROL.calls.values()) == 0  # neither tool ran (health_check would DescribeKey)
    assert server.close() == 0


# -- item 7: every line gets an answer ----------------------------------------------------------


def test_batches_odd_ids_and_an_unterminated_last_line_are_answered(server: RawServer) -> None:
    server.send(
        b'[{"jsonrpc":"2.0","id":71,"method":"tools/list"},'
        b'{"jsonrpc":"2.0","method":"notifications/initialized"},'
        b'{"jsonrpc":"2.0","id":"seventy-two","method":"ping"}]'
    )
    batch = server.receive()
    assert isinstance(batch, list)
    assert [item["id"] for item in batch] == [71, "seventy-two"]
    assert all(item["error"]["code"] == -32600 for item in batch)
    assert "batch" in batch[0]["error"]["message"]
    for odd_id in (b"1.5", b"null", b"true"):
        server.send(b'{"jsonrpc":"2.0","id":' + odd_id + b',"method":"tools/list"}')
        answer = server.receive()
        assert answer["id"] is None
        assert answer["error"]["code"] == -32600
    assert server.process.stdin is not None
    server.process.stdin.write(b'{"jsonrpc":"2.0","id":73,"method":"ping"}')  # no newline
    server.process.stdin.close()
    assert server.receive()["id"] == 73
    assert server.process.wait(30) == 0


# -- item 8: stopping ---------------------------------------------------------------------------


def test_a_call_arriving_after_sigterm_is_refused_while_the_one_in_flight_finishes(
    server: RawServer,
) -> None:
    _warm(server)
    CONTROL.latency["Sign"] = 1.5
    server.send(_call(81, "sign_message", {"message": "in flight"}))
    _wait_for(lambda: CONTROL.calls["Sign"] == 1, 10, "the Sign to start")
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    server.send(_call(82, "sign_message", {"message": "too late"}))
    answers = {answer["id"]: answer["result"] for answer in (server.receive(), server.receive())}
    assert answers[81]["structuredContent"]["signature"].startswith("0x")
    assert answers[82]["isError"] is True
    assert "stopping" in answers[82]["content"][0]["text"]
    assert CONTROL.calls["Sign"] == 1
    assert server.process.wait(15) == 0


def test_exit_leaves_a_shared_stdin_pipe_blocking(
    emulator: LocalKms, alias: str, tmp_path: Path
) -> None:
    read_end, write_end = os.pipe()
    ours = os.dup(read_end)  # the same open file description the server reads
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=alias)
    process = subprocess.Popen(
        [SERVER], env=env, stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    os.close(read_end)
    try:
        assert process.stdout is not None
        os.write(write_end, json.dumps(_call(1, "get_address", {})).encode() + b"\n")
        process.stdout.readline()  # serving: it has set its pipes up
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
        assert os.get_blocking(ours) is True
    finally:
        os.close(ours)
        os.close(write_end)


def test_a_closed_stdout_ends_the_server_quietly(
    emulator: LocalKms, alias: str, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=alias)
    process = subprocess.Popen(
        [SERVER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdin is not None
    assert process.stdout is not None
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "gone", "version": "1"},
        },
    }
    process.stdin.write(json.dumps(initialize).encode() + b"\n")
    process.stdin.flush()
    assert b'"id":0' in process.stdout.readline()
    process.stdout.close()  # the client goes away; the next answer meets a broken pipe
    process.stdin.write(json.dumps(_call(1, "get_address", {})).encode() + b"\n")
    process.stdin.flush()
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    assert b"Traceback" not in stderr
    assert b"ExceptionGroup" not in stderr


def test_stdin_closing_with_a_stuck_worker_thread_still_exits(
    emulator: LocalKms, alias: str, tmp_path: Path
) -> None:
    helper = tmp_path / "hang.sh"
    helper.write_text("#!/bin/sh\nexec sleep 600\n")
    helper.chmod(0o755)
    (tmp_path / "aws-config").write_text(f"[profile hang]\ncredential_process = {helper}\n")
    env = server_env(
        emulator,
        tmp_path,
        VAULT_KEY_ID=alias,
        VAULT_KMS_TIMEOUT="1",
        AWS_PROFILE="hang",
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
    )
    raw = _initialize(RawServer(env, tmp_path / "stderr.log"))
    raw.send(_call(1, "get_address", {}))  # hangs in the helper
    time.sleep(0.5)
    started = time.monotonic()
    assert raw.process.stdin is not None
    raw.process.stdin.close()
    answer = raw.receive(timeout=30)
    assert answer.get("result", {}).get("isError") is True, answer  # the watchdog: kms_unavailable
    assert raw.process.wait(30) == 0
    assert time.monotonic() - started < 25
    subprocess.run(["pkill", "-f", str(helper)], check=False)


# -- item 14: the audit line of a refused oversized request ------------------------------------


def test_an_oversized_request_is_audited_under_params_name(
    server: RawServer, tmp_path: Path
) -> None:
    line = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 141,
            "method": "tools/call",
            "params": {
                "_meta": {"name": "get_address"},
                "name": "sign_message",
                "arguments": {"message": "z" * (3 * MiB)},
            },
        }
    ).encode()
    server.send(line)
    answer = server.receive()
    assert answer["id"] == 141
    assert answer["result"]["isError"] is True
    refused = [line for line in _stderr_lines(tmp_path) if line.get("error_code")]
    assert refused[-1]["tool"] == "sign_message"
    assert server.close() == 0


# -- item 16: an unknown tool ---------------------------------------------------------------


def test_an_unknown_tool_is_invalid_input_listing_the_tools(server: RawServer) -> None:
    result = server.call("transfer_all", {})
    text = result["content"][0]["text"]
    assert result["isError"] is True
    assert text.startswith("invalid_input: name: there is no tool 'transfer_all'")
    assert all(name in text for name in TOOLS)
    assert server.close() == 0
