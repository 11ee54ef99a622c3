"""``agentic-vault-mcp --transport http``: the installed server, the official client over HTTP.

Each test spawns the real console script on a port of its own (``--listen
127.0.0.1:0``; the URL is read from its start-up line), makes tokens with the
real ``agentic-vault token`` command, and checks every signature with
eth-account. The KMS emulator's call counter proves that a refused request
reached nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak
from hexbytes import HexBytes
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from agentic_vault._der import decode_secp256k1_public_key
from agentic_vault._local_kms import CONTROL, LocalKms
from agentic_vault._signer import address_of
from agentic_vault.store import audit, open_store

from .bad_inputs import mail, signed_tx
from .mcp_helpers import CLI, SERVER, log_lines, server_env, structured, text_of
from .reference import decode_raw_transaction
from .test_mcp_e2e import PERMIT, TRANSACTIONS, _with_domain_type

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOOLS = {"get_address", "sign_transaction", "sign_typed_data", "sign_message", "health_check"}
MCP_ACCEPT = {"accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
SIGN_CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "sign_message", "arguments": {"message": "must not be signed"}},
}


# -- spawning servers and making tokens ----------------------------------------------------


@dataclass
class HttpServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def start_server(
    env: dict[str, str], log: Path, *args: str, timeout: float = 30, max_files: int | None = None
) -> HttpServer:
    """The installed server on HTTP; returns once its start-up line names its URL.

    ``max_files``: the server's limit of open file descriptors (soft and hard).
    """
    listen = [] if "--listen" in args else ["--listen", "127.0.0.1:0"]

    def limit_files() -> None:
        if max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

    with open(log, "w") as errors:
        process = subprocess.Popen(
            [SERVER, "--transport", "http", *listen, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            preexec_fn=limit_files,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            message = json.loads(line).get("message", "") if line.startswith("{") else ""
            if " serving on " in message:
                return HttpServer(message.rsplit(" ", 1)[1], process, log)
        if process.poll() is not None:
            raise AssertionError(f"the server exited {process.returncode}: {log.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"the server did not start within {timeout} s: {log.read_text()}")


def token_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "token", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def create_token(env: dict[str, str], name: str, *args: str) -> str:
    result = token_command(env, "create", name, *args)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("avt_"), result.stdout
    return token


@asynccontextmanager
async def http_client(
    url: str, token: str | None, mode: Any = "legacy", verify: Any = True
) -> AsyncIterator[Client]:
    """The official MCP client over Streamable HTTP, sending ``token`` as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, verify=verify, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.fixture
def key_alias(emulator: LocalKms) -> str:
    alias = f"alias/http-{uuid.uuid4().hex}"
    emulator.create_key(alias=alias)
    return alias


@pytest.fixture
def env(emulator: LocalKms, key_alias: str, tmp_path: Path) -> dict[str, str]:
    """The server's and the token command's environment, with a store of this test's own."""
    return server_env(
        emulator, tmp_path, VAULT_KEY_ID=key_alias, VAULT_STATE_DIR=str(tmp_path / "state")
    )


def stopped_at_end() -> Iterator[list[HttpServer]]:
    """Servers a test starts; each is stopped (and must exit 0) at its end."""
    started: list[HttpServer] = []
    yield started
    for server in started:
        assert server.stop() == 0, server.log.read_text()


servers = pytest.fixture(stopped_at_end, name="servers")


async def refused(url: str, token: str | None) -> str:
    """What the official client reports when it cannot even connect with ``token``."""
    with pytest.RaisesGroup(MCPError, allow_unwrapped=True, flatten_subgroups=True) as caught:
        async with http_client(url, token) as client:
            await client.call_tool("sign_message", {"message": "must not be signed"})
    error: BaseException = caught.value
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return str(error)


def records(state_dir: Path) -> list[dict[str, Any]]:
    store = open_store(state_dir)
    return store.read(lambda c: [r.fields for r in audit.records(c)])


# -- the tools over HTTP -----------------------------------------------------------------------


async def test_every_tool_over_http_signs_what_eth_account_verifies(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    token = create_token(env, "alice")
    server = start_server(env, tmp_path / "server.log")
    servers.append(server)
    for mode, version in (("legacy", "2025-11-25"), ("auto", "2026-07-28")):
        async with http_client(server.url, token, mode) as client:
            assert client.protocol_version == version
            await _call_every_tool(client)
    signatures = len(TRANSACTIONS) + 2 + 1
    assert CONTROL.calls["Sign"] == 2 * signatures

    lines = log_lines(server.log)  # every stderr line is JSON
    calls = [line for line in lines if line["logger"] == "agentic_vault.audit"]
    assert len(calls) == 2 * (1 + signatures + 1)
    assert {line["client"] for line in calls} == {"alice"}
    trail = [r for r in records(tmp_path / "state") if r["kind"] == "outcome"]
    assert len(trail) == 2 * signatures
    assert {r["client"] for r in trail} == {"alice"}
    text = server.log.read_text()
    assert token not in text
    assert token[4:20] not in text
    assert env["AWS_SECRET_ACCESS_KEY"] not in text


async def _call_every_tool(client: Client) -> None:
    assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
    address = structured(await client.call_tool("get_address", {}))["address"]
    for request, expected in TRANSACTIONS:
        signed = structured(await client.call_tool("sign_transaction", {"transaction": request}))
        raw = bytes(HexBytes(signed["raw_transaction"]))
        assert Account.recover_transaction(raw) == address
        assert signed["hash"] == "0x" + keccak(raw).hex()
        decoded = decode_raw_transaction(raw)
        assert decoded["type"] == expected["type"]
        assert decoded["nonce"] == expected["nonce"]
    for payload in (PERMIT, mail()):
        signed = structured(await client.call_tool("sign_typed_data", {"typed_data": payload}))
        signable = encode_typed_data(full_message=_with_domain_type(payload))
        assert Account.recover_message(signable, signature=signed["signature"]) == address
    signed = structured(await client.call_tool("sign_message", {"message": "over http"}))
    recovered = Account.recover_message(
        encode_defunct(text="over http"), signature=signed["signature"]
    )
    assert recovered == address
    health = structured(await client.call_tool("health_check", {}))
    assert health["status"] == "ok", health["problems"]
    assert health["address"] == address


# -- who may call -----------------------------------------------------------------------------


async def test_no_token_a_wrong_one_or_a_revoked_one_gets_401_and_reaches_nothing(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    alice = create_token(env, "alice")
    bob = create_token(env, "bob")
    assert token_command(env, "revoke", "bob").returncode == 0
    server = start_server(env, tmp_path / "server.log")
    servers.append(server)
    cases = {
        "no header": {},
        "empty bearer": {"authorization": "Bearer"},
        "basic": {"authorization": "Basic YWxpY2U6c2VjcmV0"},
        "wrong token": {"authorization": "Bearer avt_" + "A" * 43},
        "alice's token altered": {"authorization": f"Bearer {alice[:-1]}x"},
        "revoked token": {"authorization": f"Bearer {bob}"},
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        for case, headers in cases.items():
            for body in (INITIALIZE, SIGN_CALL):
                answer = await http.post(server.url, json=body, headers=MCP_ACCEPT | headers)
                assert answer.status_code == 401, case
                assert answer.headers["www-authenticate"].startswith("Bearer "), case
                error = answer.json()["error"]
                assert error["message"].startswith("unauthorized: "), case
            listing = await http.get(server.url, headers=headers)
            assert listing.status_code == 401, case
    for token in (None, bob, "avt_nope"):
        refusal = await refused(server.url, token)
        assert refusal.startswith("unauthorized: "), refusal
    assert sum(CONTROL.calls.values()) == 0, CONTROL.calls
    async with http_client(server.url, alice) as client:
        structured(await client.call_tool("sign_message", {"message": "alice may"}))
    assert CONTROL.calls["Sign"] == 1
    assert alice not in server.log.read_text()
    assert bob not in server.log.read_text()


async def test_a_host_an_origin_or_a_body_size_from_elsewhere_is_refused(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    token = create_token(env, "alice")
    server = start_server(env, tmp_path / "server.log", "--allowed-origin", "https://app.example")
    servers.append(server)
    auth = MCP_ACCEPT | {"authorization": f"Bearer {token}"}
    huge = {
        **SIGN_CALL,
        "params": {"name": "sign_message", "arguments": {"message": "a" * (3 << 20)}},
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        for host in ("evil.example", "evil.example:8645", "127.0.0.1.evil.example"):
            answer = await http.post(server.url, json=SIGN_CALL, headers=auth | {"host": host})
            assert answer.status_code == 421, host
        for origin in ("http://evil.example", "https://127.0.0.1.evil.example", "null"):
            answer = await http.post(server.url, json=SIGN_CALL, headers=auth | {"origin": origin})
            assert answer.status_code == 403, origin
        answer = await http.post(server.url, json=huge, headers=auth)
        assert answer.status_code == 413
        assert sum(CONTROL.calls.values()) == 0
        for origin in ("https://app.example", "http://localhost:6274"):
            answer = await http.post(server.url, json=INITIALIZE, headers=auth | {"origin": origin})
            assert answer.status_code == 200, (origin, answer.text)
    async with http_client(server.url, token) as client:
        structured(await client.call_tool("sign_message", {"message": "still serving"}))


async def test_one_token_gets_at_most_16_requests_at_once_and_others_are_unaffected(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    busy = create_token(env, "busy")
    other = create_token(env, "other")
    server = start_server(env, tmp_path / "server.log")
    servers.append(server)
    outcomes: list[str] = []
    async with (
        http_client(server.url, busy, "auto") as client,
        http_client(server.url, other, "auto") as bystander,
    ):
        address = structured(await client.call_tool("get_address", {}))["address"]
        CONTROL.latency["Sign"] = 1.0

        async def sign(index: int) -> None:
            try:
                signed = structured(await client.call_tool("sign_message", {"message": f"{index}"}))
            except MCPError as exc:
                outcomes.append(str(exc).split(":")[0] + ": " + str(exc).split("'")[1])
            else:
                recovered = Account.recover_message(
                    encode_defunct(text=f"{index}"), signature=signed["signature"]
                )
                assert recovered == address
                outcomes.append("signed")

        async with anyio.create_task_group() as tasks:
            for index in range(20):
                tasks.start_soon(sign, index)
            await anyio.sleep(0.5)  # the 16 are waiting on KMS: another token is still served
            structured(await bystander.call_tool("sign_message", {"message": "bystander"}))
    assert sorted(outcomes) == ["signed"] * 16 + ["too_many_requests: busy"] * 4
    assert CONTROL.calls["Sign"] == 17


async def open_session(http: httpx2.AsyncClient, url: str, token: str) -> dict[str, str]:
    """A raw MCP session for ``token``: the headers its requests carry."""
    headers = {**MCP_ACCEPT, "authorization": f"Bearer {token}"}
    opened = await http.post(url, json=INITIALIZE, headers=headers)
    assert opened.status_code == 200, opened.text
    headers |= {
        "mcp-session-id": opened.headers["mcp-session-id"],
        "mcp-protocol-version": "2025-11-25",
    }
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(url, json=done, headers=headers)).status_code == 202
    return headers


@pytest.mark.parametrize("stateless", [False, True])
async def test_a_call_keeps_its_tokens_slot_after_its_client_hangs_up(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer], stateless: bool
) -> None:
    # Stateful, the SDK runs the call on after the client hangs up; stateless, it cancels
    # the call while its worker thread runs on. The slot stays taken in both.
    busy = create_token(env, "busy")
    other = create_token(env, "other")
    server = start_server(env, tmp_path / "server.log", *(["--stateless"] if stateless else []))
    servers.append(server)
    async with httpx2.AsyncClient(timeout=30) as http:
        if stateless:
            headers = {
                **MCP_ACCEPT,
                "authorization": f"Bearer {busy}",
                "mcp-protocol-version": "2025-11-25",
            }
        else:
            headers = await open_session(http, server.url, busy)
        CONTROL.latency["Sign"] = 2.0

        async def hang_up(index: int) -> None:
            call = {**SIGN_CALL, "id": 100 + index}
            call["params"] = {"name": "sign_message", "arguments": {"message": f"{index}"}}
            with anyio.move_on_after(0.4):  # then the connection is dropped
                await http.post(server.url, json=call, headers=headers)

        async with anyio.create_task_group() as tasks:
            for index in range(16):
                tasks.start_soon(hang_up, index)
        # Every request hung up; their 16 calls still run and still hold the token's slots.
        more = await http.post(server.url, json={**SIGN_CALL, "id": 200}, headers=headers)
        assert more.status_code == 429, more.text
        assert "too_many_requests: token 'busy'" in more.text
        # Another token is served meanwhile.
        async with http_client(server.url, other, "auto") as bystander:
            structured(await bystander.call_tool("sign_message", {"message": "bystander"}))
        # Once the calls have ended, the token is served again.
        await anyio.sleep(2.5)
        CONTROL.latency["Sign"] = 0.0
        again = await http.post(server.url, json={**SIGN_CALL, "id": 201}, headers=headers)
        assert again.status_code == 200, again.text
        assert '"signature"' in again.text


async def test_one_token_opens_at_most_64_sessions_and_others_are_unaffected(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    busy = create_token(env, "busy")
    other = create_token(env, "other")
    server = start_server(env, tmp_path / "server.log")
    servers.append(server)
    async with httpx2.AsyncClient(timeout=30) as http:
        opened = [await open_session(http, server.url, busy) for _ in range(64)]
        headers = {**MCP_ACCEPT, "authorization": f"Bearer {busy}"}
        refused = await http.post(server.url, json=INITIALIZE, headers=headers)
        assert refused.status_code == 429, refused.text
        assert "too_many_sessions: token 'busy' already has 64 MCP sessions open" in refused.text
        # Another token opens sessions, and the busy one still uses those it has.
        async with http_client(server.url, other) as bystander:
            structured(await bystander.call_tool("get_address", {}))
        listed = await http.post(
            server.url, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=opened[0]
        )
        assert listed.status_code == 200, listed.text
        # A session ended (HTTP DELETE, as MCP clients do on close) makes room for one.
        assert (await http.delete(server.url, headers=opened[0])).status_code == 200
        assert (await http.post(server.url, json=INITIALIZE, headers=headers)).status_code == 200


def _address(server: HttpServer) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def test_a_connection_that_never_finishes_its_headers_is_closed(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    server = start_server(env, tmp_path / "server.log")
    servers.append(server)

    def half_a_request() -> float:
        with socket.create_connection(_address(server), timeout=30) as sock:
            sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the server, no answer
            return time.monotonic() - started

    took = await anyio.to_thread.run_sync(half_a_request)
    assert 8 < took < 15, took  # HEADER_TIMEOUT is 10 s


async def test_a_tls_handshake_that_never_starts_is_closed(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    cert, key = make_certificate(tmp_path)
    server = start_server(
        env,
        tmp_path / "server.log",
        *("--listen", "0.0.0.0:0", "--tls-cert", str(cert), "--tls-key", str(key)),
        *("--allowed-host", "localhost"),
    )
    servers.append(server)

    def no_client_hello() -> float:
        with socket.create_connection(("127.0.0.1", _address(server)[1]), timeout=30) as sock:
            started = time.monotonic()
            assert sock.recv(1024) == b""
            return time.monotonic() - started

    took = await anyio.to_thread.run_sync(no_client_hello)
    assert 8 < took < 15, took  # asyncio's own default is 60 s


async def test_past_its_connection_limit_idle_connections_make_room_for_new_ones(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    token = create_token(env, "agent")
    # 256 file descriptors: at most 128 connections are kept.
    server = start_server(env, tmp_path / "server.log", max_files=256)
    servers.append(server)
    idle: list[socket.socket] = []

    def closed(sock: socket.socket) -> bool:
        sock.setblocking(False)
        try:
            return sock.recv(1) == b""
        except BlockingIOError:
            return False
        finally:
            sock.setblocking(True)

    try:
        for _ in range(220):
            idle.append(socket.create_connection(_address(server), timeout=5))
        await anyio.sleep(1.0)
        dropped = [closed(sock) for sock in idle]
        assert 220 - 128 <= sum(dropped) <= 220 - 100, sum(dropped)
        assert not any(dropped[-50:])  # the oldest idle ones made room, not the newest
        # While the idle ones are still open, a client is served: its connection evicts
        # one of them, and it sends its request at once.
        async with http_client(server.url, token) as client:
            structured(await client.call_tool("sign_message", {"message": "still serving"}))
    finally:
        for sock in idle:
            sock.close()
    # One warning, no traceback storm (every stderr line is a JSON object).
    said = [line["message"] for line in log_lines(server.log)]
    assert len([text for text in said if "connections are open" in text]) == 1, said


# -- where it may listen --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--listen", "0.0.0.0:8645"], "--listen/VAULT_LISTEN: 0.0.0.0:8645 is not a loopback"),
        (["--listen", "10.1.2.3:8645"], "give --tls-cert FILE and --tls-key FILE"),
        (["--listen", "[::]:8645"], "[::]:8645 is not a loopback address"),
        (["--listen", "127.0.0.1"], "is not HOST:PORT"),
        (["--listen", "127.0.0.1:99999"], "is not HOST:PORT"),
        (["--listen", "::1:8645"], "write an IPv6 address in brackets"),
        (["--tls-cert", "/etc/hostname"], "--tls-cert/--tls-key: --tls-cert and --tls-key go"),
        (["--allowed-origin", "evil.example"], "is not an origin"),
    ],
)
def test_a_bad_listen_configuration_is_one_line_and_exit_2(
    env: dict[str, str], args: list[str], says: str
) -> None:
    result = subprocess.run(
        [SERVER, "--transport", "http", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agentic-vault-mcp: error: "), lines[0]
    assert says in lines[0], lines[0]
    assert result.stdout == ""


def test_http_flags_without_the_http_transport_and_env_fallbacks(env: dict[str, str]) -> None:
    result = subprocess.run(
        [SERVER, "--listen", "127.0.0.1:8645"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--listen is for the HTTP transport: add --transport http" in result.stderr
    result = subprocess.run(
        [SERVER],
        env=env | {"VAULT_TRANSPORT": "http", "VAULT_LISTEN": "192.0.2.1:8645"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "192.0.2.1:8645 is not a loopback address" in result.stderr
    result = subprocess.run(
        [SERVER], env=env | {"VAULT_TRANSPORT": "ftp"}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "VAULT_TRANSPORT: 'ftp' is not stdio or http" in result.stderr


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (mode 0600)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.crt", directory / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_tls_on_a_non_loopback_address_with_a_certificate_the_client_trusts(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    cert, key = make_certificate(tmp_path)
    token = create_token(env, "remote")
    server = start_server(
        env,
        tmp_path / "server.log",
        *("--listen", "0.0.0.0:0", "--tls-cert", str(cert), "--tls-key", str(key)),
        *("--allowed-host", "localhost"),
    )
    servers.append(server)
    assert server.url.startswith("https://localhost:")
    trusting = ssl.create_default_context(cafile=str(cert))
    async with http_client(server.url, token, verify=trusting) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        signed = structured(await client.call_tool("sign_message", {"message": "over tls"}))
    recovered = Account.recover_message(
        encode_defunct(text="over tls"), signature=signed["signature"]
    )
    assert recovered == address
    async with httpx2.AsyncClient(timeout=30) as untrusting:
        with pytest.raises(httpx2.ConnectError):
            await untrusting.post(server.url, json=INITIALIZE)
    plain = server.url.replace("https://", "http://")
    async with httpx2.AsyncClient(timeout=30) as http:
        with pytest.raises(httpx2.HTTPError):
            await http.post(plain, json=SIGN_CALL, headers={"authorization": f"Bearer {token}"})
    assert CONTROL.calls["Sign"] == 1


def test_a_tls_key_readable_by_everyone_or_not_matching_is_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    cert, key = make_certificate(tmp_path)
    key.chmod(0o644)
    args = ["--transport", "http", "--tls-cert", str(cert), "--tls-key", str(key)]
    result = subprocess.run([SERVER, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--tls-key/VAULT_TLS_KEY: " in result.stderr
    assert f"chmod o-rwx {key}" in result.stderr
    key.chmod(0o600)
    other = tmp_path / "other"
    other.mkdir()
    other_cert, _ = make_certificate(other)
    args = ["--transport", "http", "--tls-cert", str(other_cert), "--tls-key", str(key)]
    result = subprocess.run([SERVER, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "cannot use --tls-cert" in result.stderr


# -- stopping ----------------------------------------------------------------------------------


async def test_sigterm_lets_calls_in_flight_finish_and_refuses_new_requests(
    env: dict[str, str], tmp_path: Path
) -> None:
    token = create_token(env, "alice")
    server = start_server(env, tmp_path / "server.log")
    try:
        await _stop_while_signing(server, token)
    finally:
        server.process.kill()
    signed = [r for r in records(tmp_path / "state") if r.get("outcome") == "signed"]
    assert len(signed) == 1


async def _stop_while_signing(server: HttpServer, token: str) -> None:
    results: list[dict[str, Any]] = []
    async with http_client(server.url, token) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        CONTROL.latency["Sign"] = 1.5

        async def sign() -> None:
            results.append(structured(await client.call_tool("sign_message", {"message": "late"})))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sign)
            with anyio.fail_after(10):
                while CONTROL.calls["Sign"] == 0:
                    await anyio.sleep(0.02)
            server.process.send_signal(signal.SIGTERM)
            await anyio.sleep(0.3)
            async with httpx2.AsyncClient(timeout=30) as http:
                answer = await http.post(
                    server.url,
                    json=INITIALIZE,
                    headers=MCP_ACCEPT | {"authorization": f"Bearer {token}"},
                )
            assert answer.status_code == 503
            assert answer.json()["error"]["message"].startswith(
                "unavailable: the server is stopping (SIGTERM received)"
            )
    assert len(results) == 1
    recovered = Account.recover_message(
        encode_defunct(text="late"), signature=results[0]["signature"]
    )
    assert recovered == address
    assert server.process.wait(15) == 0


# -- the token command -------------------------------------------------------------------------


def test_token_create_list_revoke(env: dict[str, str], tmp_path: Path) -> None:
    created = token_command(env, "create", "ci-agent")
    assert created.returncode == 0
    token = created.stdout.strip()
    assert created.stdout == token + "\n"  # the token alone, once, on stdout
    assert token.startswith("avt_")
    assert len(token) == 4 + 43
    assert token not in created.stderr
    assert "shown only this once" in created.stderr
    database = (tmp_path / "state" / "vault.sqlite3").read_bytes()
    assert token.encode() not in database
    assert token[4:].encode() not in database

    again = token_command(env, "create", "ci-agent")
    assert again.returncode == 1
    assert "'ci-agent' already has a live token" in again.stderr
    assert again.stdout == ""
    assert token_command(env, "create", "other").returncode == 0
    revoked = token_command(env, "revoke", "other")
    assert revoked.returncode == 0
    assert "revoked 'other'" in revoked.stdout
    assert token_command(env, "revoke", "other").returncode == 1  # nothing live left

    listed = token_command(env, "list")
    assert listed.returncode == 0
    assert token not in listed.stdout
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["ci-agent", "other"]
    assert "active" in lines[0]
    assert "revoked" in lines[1]
    as_json = [
        json.loads(line) for line in token_command(env, "list", "--json").stdout.splitlines()
    ]
    assert set(as_json[0]) == {"name", "created", "revoked", "policy"}
    assert (as_json[0]["revoked"], as_json[0]["policy"]) == (None, None)
    assert as_json[1]["revoked"] is not None

    bad = token_command(env, "create", "--", "-x y")
    assert bad.returncode == 2
    assert "is not a token name" in bad.stderr


def test_token_commands_say_when_the_store_cannot_be_used(
    env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    result = token_command(env, "create", "x", "--state-dir", str(blocker / "state"))
    assert result.returncode == 2
    assert result.stderr.startswith("agentic-vault token: error: state_unavailable: ")
    assert "Traceback" not in result.stderr


# -- a token's own policy ---------------------------------------------------------------------

ONLY_CHAIN_1_TEXT = """\
version = 1
chains = [1]

[messages]
text = true
patterns = ["hello .*"]
"""


async def test_a_token_with_its_own_policy_is_judged_by_it(
    env: dict[str, str], tmp_path: Path, servers: list[HttpServer]
) -> None:
    policy = tmp_path / "narrow.toml"
    policy.write_text(ONLY_CHAIN_1_TEXT)
    policy.chmod(0o600)
    narrow = create_token(env, "narrow", "--policy", str(policy))
    listed = json.loads(token_command(env, "list", "--json").stdout)
    assert listed["policy"] == str(policy.resolve())
    free = create_token(env, "free")
    server = start_server(env, tmp_path / "server.log")
    servers.append(server)
    async with http_client(server.url, narrow) as client:
        structured(await client.call_tool("sign_message", {"message": "hello there"}))
        refused = await client.call_tool("sign_message", {"message": "goodbye"})
        assert refused.is_error
        assert text_of(refused).startswith("policy_denied: "), text_of(refused)
        refused = await client.call_tool("sign_transaction", signed_tx())
        assert text_of(refused).startswith("policy_denied: "), text_of(refused)
        health = structured(await client.call_tool("health_check", {}))
        assert health["policy"]["path"] == str(policy.resolve())
    async with http_client(server.url, free) as client:  # the server has no policy
        structured(await client.call_tool("sign_message", {"message": "goodbye"}))
        assert structured(await client.call_tool("health_check", {}))["policy"] is None
    server.process.send_signal(signal.SIGHUP)  # reloads the tokens' policies too
    reloaded = f"SIGHUP: policy {policy.resolve()} (sha256 "
    with anyio.fail_after(10):
        while reloaded not in server.log.read_text():
            await anyio.sleep(0.05)
    assert CONTROL.calls["Sign"] == 2
    trail = {r["client"]: r for r in records(tmp_path / "state") if r["outcome"] == "signed"}
    assert trail["narrow"]["policy_sha256"] is not None
    assert trail["free"]["policy_sha256"] is None


def test_token_create_refuses_a_bad_policy_file(env: dict[str, str], tmp_path: Path) -> None:
    policy = tmp_path / "bad.toml"
    policy.write_text("version = 1\nchains = 'all'\n")
    policy.chmod(0o600)
    result = token_command(env, "create", "x", "--policy", str(policy))
    assert result.returncode == 2
    assert result.stderr.startswith("agentic-vault token: error: --policy: ")
    assert "chains" in result.stderr
    assert token_command(env, "list", "--json").stdout == ""


# -- the MCP Inspector (acceptance: another MCP client than ours) -----------------------------

# Pinned: on Node.js older than 22 an unpinned `npx @modelcontextprotocol/inspector`
# resolves to 0.15.0, whose CLI has no --header (so no way to send a token).
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


@pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed")
def test_the_mcp_inspector_cli_lists_the_tools_and_signs_over_http_with_a_token(
    emulator: LocalKms,
    key_alias: str,
    env: dict[str, str],
    tmp_path: Path,
    servers: list[HttpServer],
) -> None:
    token = create_token(env, "inspector")
    server = start_server(env, tmp_path / "server.log")
    servers.append(server)

    def inspector(*args: str, token: str | None = token) -> subprocess.CompletedProcess[str]:
        header = ["--header", f"Authorization: Bearer {token}"] if token else []
        command = ["npx", "--yes", INSPECTOR, "--cli", server.url, "--transport", "http"]
        return subprocess.run(
            [*command, *header, *args],
            capture_output=True,
            text=True,
            timeout=110,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )

    listed = inspector("--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    assert {tool["name"] for tool in json.loads(listed.stdout)["tools"]} == TOOLS
    called = inspector(
        "--method", "tools/call", "--tool-name", "sign_message", "--tool-arg", "message=inspected"
    )
    assert called.returncode == 0, called.stderr
    signature = json.loads(called.stdout)["structuredContent"]["signature"]
    recovered = Account.recover_message(encode_defunct(text="inspected"), signature=signature)
    public_key = emulator.client().get_public_key(KeyId=key_alias)["PublicKey"]
    assert recovered == address_of(decode_secp256k1_public_key(bytes(public_key)))
    # Without --stored-auth-only, a 401 sends the Inspector into an interactive OAuth flow.
    denied = inspector("--method", "tools/list", "--stored-auth-only", token="avt_wrong")
    assert denied.returncode != 0
    assert "unauthorized: " in denied.stdout + denied.stderr, denied.stdout
    assert CONTROL.calls["Sign"] == 1


# -- docs/deployment.md ------------------------------------------------------------------------

DEPLOYMENT = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"


def _doc_blocks() -> list[tuple[str | None, str, str, str]]:
    from .test_docs import blocks

    return blocks(DEPLOYMENT)


def test_the_deployment_guide_token_commands_run(env: dict[str, str], tmp_path: Path) -> None:
    script = next(body for kind, value, _, body in _doc_blocks() if value == "tokens")
    (tmp_path / "ci-policy.toml").write_text(ONLY_CHAIN_1_TEXT)
    (tmp_path / "ci-policy.toml").chmod(0o600)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace("agentic-vault ", f"{CLI} ")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    tokens = [line for line in result.stdout.splitlines() if line.startswith("avt_")]
    assert len(tokens) == 3
    assert len(set(tokens)) == 3
    listed = token_command(env, "list", "--json").stdout.splitlines()
    by_name = {entry["name"]: entry for entry in map(json.loads, listed)}
    assert by_name["ci-deployer"]["policy"] == str(tmp_path / "ci-policy.toml")
    assert by_name["claude-code"]["revoked"] is None  # revoked, then made again


def test_the_deployment_guide_uses_real_flags_variables_and_valid_json() -> None:
    from agentic_vault._cli import mcp_parser

    text = DEPLOYMENT.read_text()
    options = {flag for action in mcp_parser()._actions for flag in action.option_strings}
    for flag in re.findall(r"`(--[a-z-]+)", text):
        if flag not in ("--policy", "--state-dir", "--state-url", "--stored-auth-only"):
            assert flag in options, flag
    documented = (DEPLOYMENT.parent.parent / ".env.example").read_text()
    for name in set(re.findall(r"\b(VAULT_[A-Z_]+)", text)):
        assert f"{name}=" in documented, name
    configurations = [
        json.loads(body) for _, _, language, body in _doc_blocks() if language == "json"
    ]
    assert len(configurations) == 3  # Claude Desktop, Cursor, VS Code
    for configuration in configurations:
        servers = configuration.get("mcpServers") or configuration["servers"]
        assert set(servers) == {"agentic-vault"}
        text_of_server = json.dumps(servers)
        assert "/mcp" in text_of_server
        assert "Bearer" in text_of_server
