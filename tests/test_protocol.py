"""Raw JSON-RPC over stdio: malformed, huge and hostile lines each get an answer.

The official client only sends well-formed frames, so these tests write the
lines themselves. After every bad line the same server must still answer
``get_address``; stdout must carry nothing but JSON-RPC frames; and repeated
10 MB requests must not make the server's memory grow with them.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentic_vault._local_kms import LocalKms

from .mcp_helpers import SERVER, server_env

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


class RawServer:
    """The installed server, spoken to line by line."""

    def __init__(self, env: dict[str, str], stderr: Path) -> None:
        self._stderr = open(stderr, "w")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [SERVER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.garbage: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 100

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                frame = json.loads(line)
            except ValueError:
                self.garbage.append(line)
                continue
            self.frames.put(frame)

    def send(self, payload: bytes | dict[str, Any]) -> None:
        line = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def receive(self, timeout: float = 30) -> dict[str, Any]:
        return self.frames.get(timeout=timeout)

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        answer = self.receive()
        assert answer.get("id") == self.next_id, answer
        return answer

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.request("tools/call", {"name": tool, "arguments": arguments})["result"]

    def peak_rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0])

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=30)
        self._stderr.close()
        return code


@pytest.fixture
def server(emulator: LocalKms, tmp_path: Path, request: pytest.FixtureRequest) -> RawServer:
    alias = f"alias/raw-{request.node.name[5:60]}"
    emulator.create_key(alias=alias)
    raw = RawServer(server_env(emulator, tmp_path, VAULT_KEY_ID=alias), tmp_path / "stderr.log")
    init = raw.request(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "1"},
        },
    )
    assert init["result"]["serverInfo"]["name"] == "agentic-vault"
    raw.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return raw


def _still_serving(server: RawServer) -> None:
    result = server.call("get_address", {})
    assert not result.get("isError"), result
    assert result["structuredContent"]["address"].startswith("0x")


def _tool_error(answer: dict[str, Any]) -> str:
    result = answer["result"]
    assert result["isError"] is True
    return str(result["content"][0]["text"])


def test_lines_that_are_not_json_rpc_get_json_rpc_errors(server: RawServer) -> None:
    for line, code, request_id in [
        (b"this is not json", -32700, None),
        (b'{"hello": "world"}', -32600, None),
        # Broken JSON whose id can still be read: answering that id frees the waiting caller.
        (b'{"jsonrpc": "2.0", "id": 7, "method": ', -32700, 7),
    ]:
        server.send(line)
        answer = server.receive()
        assert answer["id"] == request_id
        assert answer["error"]["code"] == code, (line, answer)
        _still_serving(server)
    # A batch: one error per element, as JSON-RPC 2.0's own example answers [1, 2, 3].
    server.send(b"[1, 2, 3]")
    answer = server.receive()
    assert isinstance(answer, list)
    assert len(answer) == 3
    assert all(item["id"] is None and item["error"]["code"] == -32600 for item in answer)
    _still_serving(server)
    # A structurally wrong message that carries an id is answered with that id.
    server.send(b'{"jsonrpc": "1.0", "id": 42, "method": "tools/list"}')
    answer = server.receive()
    assert answer["id"] == 42
    assert answer["error"]["code"] == -32600
    _still_serving(server)
    assert server.close() == 0
    assert server.garbage == []


def test_an_unreadable_id_in_a_broken_or_huge_line_gets_a_null_id_answer(
    server: RawServer,
) -> None:
    # The id of a line that cannot be parsed is read from its text: a control
    # character or a byte that is not UTF-8 inside it must not stop the server.
    for request_id in (b'"a\x01b"', b'"\xff"', b'"\xc3"'):
        broken = b'{"jsonrpc": "2.0", "id": ' + request_id + b', "method": '
        huge = (
            b'{"jsonrpc":"2.0","id":' + request_id + b',"method":"tools/call","params":'
            b'{"name":"sign_message","arguments":{"message":"' + b"x" * (3 * MiB) + b'"}}}'
        )
        for line, code in ((broken, -32700), (huge, -32600)):
            server.send(line)
            answer = server.receive()
            assert answer["id"] is None, answer
            assert answer["error"]["code"] == code, answer
            _still_serving(server)
    assert server.close() == 0
    assert server.garbage == []


def test_unknown_methods_and_tools(server: RawServer) -> None:
    answer = server.request("wallet/drain")
    assert answer["error"]["code"] == -32601
    answer = server.request("tools/call", {"name": "transfer_all", "arguments": {}})
    assert "transfer_all" in json.dumps(answer)
    _still_serving(server)
    assert server.close() == 0


def test_a_10_mib_argument_gets_a_tool_error_with_its_id(server: RawServer) -> None:
    for where in ("first", "last"):  # ids first (Python SDK) or last (TypeScript SDK)
        arguments = {"name": "sign_message", "arguments": {"message": "x" * (10 * MiB)}}
        if where == "first":
            line = json.dumps(
                {"jsonrpc": "2.0", "id": 900, "method": "tools/call", "params": arguments}
            )
        else:
            line = json.dumps(
                {"method": "tools/call", "params": arguments, "jsonrpc": "2.0", "id": 900}
            )
        server.send(line.encode())
        answer = server.receive()
        assert answer["id"] == 900
        text = _tool_error(answer)
        assert text.startswith("invalid_input: the request is 10485")
        assert "2 MiB" in text
        _still_serving(server)
    assert server.close() == 0


def test_typed_data_nested_10000_deep_or_with_100000_fields(server: RawServer) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    line = (
        '{"jsonrpc":"2.0","id":901,"method":"tools/call","params":{"name":"sign_typed_data",'
        '"arguments":{"typed_data":' + deep + "}}}"
    )
    server.send(line.encode())
    answer = server.receive()
    assert answer["id"] == 901
    assert "nested too deeply" in _tool_error(answer)
    _still_serving(server)

    deep_string = json.dumps(json.loads('{"a":' * 200 + "1" + "}" * 200))
    text = _tool_error(
        server.request(
            "tools/call", {"name": "sign_typed_data", "arguments": {"typed_data": deep_string}}
        )
    )
    assert text.startswith("invalid_input: typed_data")
    _still_serving(server)

    wide = {
        "types": {"Wide": [{"name": f"f{i}", "type": "uint8"} for i in range(100_000)]},
        "primaryType": "Wide",
        "domain": {"name": "wide"},
        "message": {f"f{i}": 1 for i in range(100_000)},
    }
    text = _tool_error(
        server.request("tools/call", {"name": "sign_typed_data", "arguments": {"typed_data": wide}})
    )
    assert text.startswith("invalid_input: ")
    assert "MiB" in text or "KiB" in text  # refused for its size, before any hashing
    _still_serving(server)
    assert server.close() == 0


def test_memory_stays_bounded_under_repeated_huge_requests(server: RawServer) -> None:
    def huge(request_id: int) -> bytes:
        return json.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": "sign_message", "arguments": {"message": "y" * (10 * MiB)}},
            }
        ).encode()

    server.send(huge(1000))
    server.receive()
    _still_serving(server)
    after_one = server.peak_rss_kib()
    for request_id in range(1001, 1011):
        server.send(huge(request_id))
        assert server.receive()["id"] == request_id
    _still_serving(server)
    after_eleven = server.peak_rss_kib()
    # Ten more 10 MiB requests (100 MiB in all) leave the peak where one left it.
    assert after_eleven - after_one < 8 * 1024, (after_one, after_eleven)
    assert server.close() == 0


def test_a_flood_of_bad_lines_does_not_stop_good_ones(server: RawServer) -> None:
    started = time.perf_counter()
    for i in range(200):
        server.send(b"garbage " + str(i).encode())
    for _ in range(200):
        assert server.receive()["error"]["code"] == -32700
    _still_serving(server)
    assert time.perf_counter() - started < 20
    assert server.close() == 0


def test_sigterm_lets_a_signature_in_flight_reach_its_caller_and_the_audit_log(
    server: RawServer, tmp_path: Path
) -> None:
    import signal

    from agentic_vault._local_kms import CONTROL

    _still_serving(server)  # key fetched, imports done
    CONTROL.latency["Sign"] = 1.0
    server.send(
        {
            "jsonrpc": "2.0",
            "id": 77,
            "method": "tools/call",
            "params": {"name": "sign_message", "arguments": {"message": "last words"}},
        }
    )
    time.sleep(0.4)  # the Sign is now waiting on KMS
    server.process.send_signal(signal.SIGTERM)
    answer = server.receive(timeout=10)
    assert answer["id"] == 77
    assert answer["result"]["structuredContent"]["signature"].startswith("0x")
    assert server.process.wait(timeout=10) == 0
    audit = [json.loads(line) for line in (tmp_path / "stderr.log").read_text().splitlines()]
    signed = [line for line in audit if line.get("tool") == "sign_message"]
    assert signed[-1]["outcome"] == "ok"
    assert signed[-1]["digest"].startswith("0x")
