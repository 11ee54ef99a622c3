"""What agentic-vault adds on top of the KMS call itself, in figures.

Run it with scripts/bench (which builds its own virtual environment). Everything
is measured in one run, against KMS endpoints running in processes of their own,
so that their cost lands equally in our figures and in the baselines they are
compared with. Samples are interleaved (one tool call, one direct Sign, and so
on) so that drift on a shared machine hits both sides alike. Two KMS endpoints:

- the local emulator (moto: about 2 ms of CPU per Sign, a new connection per call);
- a keep-alive stub (scripts/kms_stub.py: microseconds per Sign, connections kept),
  which shows the server's own cost without the emulator's hiding it.

Figures:

- cold start: spawn agentic-vault-mcp, initialize, tools/list (official MCP
  client) beside a bare `python -c "import mcp.server.mcpserver"`;
- p50/p95 over stdio of every tool (official MCP client) beside the p50 of a
  direct boto3 Sign;
- sign_transaction p50 from a minimal JSON-RPC client (the server's own cost
  without the official client's), against each endpoint, for three set-ups: no
  policy (the SQLite audit trail is always on), the example policy with SQLite,
  and the example policy with PostgreSQL;
- 64 concurrent sign_transaction calls beside 64 threads making direct boto3 Sign
  calls on one shared client, with 50 ms added to every Sign, for the same set-ups;
- KMS calls per signature, counted by the endpoint; the server's peak RSS;
- the CPU of each step the performance work changed, before and after, measured
  here in one process: the "before" is the library path the server used to take
  (pyasn1, two trial recoveries, eth-account's serializer, an uncached EIP-55
  checksum, the logging machinery), the "after" the server's code now.

The example policy is examples/policy.toml with its rate raised to 100,000 an
hour (the benchmark makes ~1,000 signatures in minutes; the example allows 60 an
hour), paying 0.0001 ETH to alice each time (its 0.1 ETH a day holds ~1,000).
PostgreSQL rows need Debian's server binaries (as scripts/test installs them);
without them those rows say so.

Prints a table, or JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import boto3
from botocore.config import Config
from demo import permit  # scripts/demo.py, beside this file

ROOT = Path(__file__).resolve().parent.parent

BIN = Path(sys.executable).parent
ALIAS = "alias/agentic-vault-bench"
TARGETS = {
    "sign_transaction_p50_ratio": 1.3,
    "cold_start_ratio": 1.5,
    "concurrency_ratio": 1.3,
    "guarded_ratio": 1.5,  # with the example policy and the durable store
    "kms_calls_per_signature": 1.0,
    "peak_rss_mb": 100.0,
    "guard_us": 500.0,  # the guard's own CPU per signature, besides its durable write
}
ALICE = "0xa11ce00000000000000000000000000000000001"  # a recipient of examples/policy.toml


# -- the emulator, in a process of its own -------------------------------------------------


def _emulator(conn: Connection, kind: str) -> None:
    if kind == "stub":
        from kms_stub import KmsStub  # scripts/kms_stub.py, beside this file

        stub = KmsStub().start()
        conn.send(stub.environment(stub.arn))
        calls, set_latency, stop = stub.calls, lambda s: setattr(stub, "latency", s), stub.stop
    else:
        from agentic_vault._local_kms import CONTROL, LocalKms

        kms = LocalKms().start()
        kms.create_key(alias=ALIAS)
        conn.send(kms.environment(ALIAS))
        calls, stop = CONTROL.calls, kms.stop

        def set_latency(seconds: float) -> None:
            CONTROL.latency["Sign"] = seconds

    while True:
        command, *args = conn.recv()
        if command == "counts":
            conn.send(dict(calls))
        elif command == "reset":
            calls.clear()
            conn.send(None)
        elif command == "latency":
            set_latency(args[0])
            conn.send(None)
        elif command == "stop":
            stop()
            conn.send(None)
            return


class Emulator:
    """A KMS endpoint in a process of its own: the moto emulator, or the keep-alive stub."""

    def __init__(self, kind: str = "moto") -> None:
        self.kind = kind
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_emulator, args=(child, kind), daemon=True
        )
        self._process.start()
        self.env: dict[str, str] = self._conn.recv()

    @property
    def key_id(self) -> str:
        return self.env["VAULT_KEY_ID"]

    def ask(self, *command: Any) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def stop(self) -> None:
        self.ask("stop")
        self._process.join(timeout=10)


# -- measurements ------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def bare_import() -> float:
    """Spawn to "imported", like the cold start's spawn to tools/list (no interpreter exit)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", "import mcp.server.mcpserver; print('imported', flush=True)"],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.wait()
    return elapsed


class Setup:
    """What runs around the signer: a policy or none, and where the durable store lives."""

    def __init__(self, name: str, policy: Path | None = None, state_url: str | None = None):
        self.name = name
        self.policy = policy
        self.state_url = state_url

    def env(self, emulator: Emulator) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            # A fresh store each server: the day's sums start empty.
            "XDG_STATE_HOME": tempfile.mkdtemp(prefix="agentic-vault-bench-"),
            "HOME": os.environ.get("HOME", ""),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **emulator.env,
        }
        if self.policy is not None:
            env["VAULT_POLICY"] = str(self.policy)
        if self.state_url is not None:
            env["VAULT_STATE_URL"] = (
                self.state_url() if callable(self.state_url) else self.state_url
            )
        return env


BASE = Setup("no policy, SQLite store")


def bench_policy() -> Path:
    """examples/policy.toml with its hourly rate raised for the benchmark's volume."""
    text = (ROOT / "examples" / "policy.toml").read_text()
    text = text.replace("max_per_hour = 60", "max_per_hour = 100000")
    assert "max_per_hour = 100000" in text
    path = Path(tempfile.mkdtemp(prefix="agentic-vault-bench-")) / "policy.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def server_params(emulator: Emulator, setup: Setup = BASE) -> Any:
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(command=str(BIN / "agentic-vault-mcp"), env=setup.env(emulator))


def client(emulator: Emulator, setup: Setup = BASE) -> Any:
    from mcp import Client
    from mcp.client.stdio import stdio_client

    log = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the client
    return Client(
        stdio_client(server_params(emulator, setup), errlog=log), read_timeout_seconds=120
    )


async def cold_starts(emulator: Emulator, repeat: int) -> tuple[float, float]:
    """Medians of (spawn, initialize, tools/list) and of a bare SDK import, alternated."""
    ours, bare = [], []
    for _ in range(repeat):
        bare.append(bare_import())
        started = time.perf_counter()
        async with client(emulator) as session:
            await session.list_tools()
            ours.append(time.perf_counter() - started)
    return statistics.median(ours), statistics.median(bare)


def boto3_client(emulator: Emulator) -> Any:
    # The same client settings as the server's own (pool sized for 64 calls in flight).
    session = boto3.session.Session(
        aws_access_key_id=emulator.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=emulator.env["AWS_SECRET_ACCESS_KEY"],
        region_name=emulator.env["AWS_REGION"],
    )
    return session.client(
        "kms",
        endpoint_url=emulator.env["AWS_ENDPOINT_URL_KMS"],
        config=Config(retries={"total_max_attempts": 1}, max_pool_connections=64),
    )


def direct_sign(kms: Any, key_id: str) -> float:
    started = time.perf_counter()
    kms.sign(
        KeyId=key_id,
        Message=bytes(range(32)),
        MessageType="DIGEST",
        SigningAlgorithm="ECDSA_SHA_256",
    )
    return time.perf_counter() - started


def direct_concurrent_seconds(kms: Any, key_id: str, calls: int) -> float:
    """64 threads, one shared client, all released at once; the wall time."""
    digest = bytes(range(32))
    barrier = threading.Barrier(calls + 1)

    failures: list[BaseException] = []

    def sign() -> None:
        barrier.wait()
        try:
            kms.sign(
                KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
            )
        except Exception as exc:  # noqa: BLE001 - reported below: the figure would be wrong
            failures.append(exc)

    threads = [threading.Thread(target=sign) for _ in range(calls)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"a direct Sign failed, so the baseline is void: {failures[0]!r}")
    return time.perf_counter() - started


TX = {
    "chainId": 1,
    "nonce": 0,
    "gas": 21000,
    "maxFeePerGas": "30000000000",
    "maxPriorityFeePerGas": "1000000000",
    "to": ALICE,
    "value": "100000000000000",  # 0.0001 ETH
}
CALLS: dict[str, Callable[[int], dict[str, Any]]] = {
    "get_address": lambda i: {},
    "sign_transaction": lambda i: {"transaction": {**TX, "nonce": i}},
    "sign_typed_data": lambda i: {"typed_data": _permit(i)},
    "sign_message": lambda i: {"message": f"Sign in to example.org\nNonce: {i}"},
    "health_check": lambda i: {},
}


def _permit(nonce: int) -> dict[str, Any]:
    """The demo's EIP-2612 permit, with a new nonce each call."""
    payload = permit(TX["to"])
    return {**payload, "message": {**payload["message"], "nonce": nonce}}


def server_pid() -> int | None:
    """The agentic-vault-mcp child of this process."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[1] == me and b"agentic-vault-mcp" in cmdline:
            return int(stat.parent.name)
    return None


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)


def paired(ours: list[float], direct: list[float]) -> dict[str, float]:
    return {
        "p50_ms": ms(percentile(ours, 0.5)),
        "p95_ms": ms(percentile(ours, 0.95)),
        "paired_direct_p50_ms": ms(percentile(direct, 0.5)),
        "ratio": round(percentile(ours, 0.5) / percentile(direct, 0.5), 2),
    }


async def every_tool(emulator: Emulator, kms: Any, rounds: int) -> dict[str, Any]:
    """Each tool's p50/p95 over stdio (official client), no policy, beside direct Signs."""
    figures: dict[str, Any] = {"tools": {}}
    async with client(emulator) as session:
        for name, arguments in CALLS.items():
            await session.call_tool(name, arguments(0))  # warm: imports, public key
        direct_sign(kms, emulator.key_id)
        all_direct = []
        for name, arguments in CALLS.items():
            ours, direct = [], []
            for i in range(rounds):
                direct.append(direct_sign(kms, emulator.key_id))
                started = time.perf_counter()
                result = await session.call_tool(name, arguments(i))
                ours.append(time.perf_counter() - started)
                if result.is_error:
                    raise SystemExit(f"{name} failed: {result.content[0].text}")
            all_direct += direct
            figures["tools"][name] = paired(ours, direct)
        figures["direct_p50"] = percentile(all_direct, 0.5)
        figures["direct_p95"] = percentile(all_direct, 0.95)
        emulator.ask("reset")
        for i in range(rounds):
            await session.call_tool("sign_transaction", CALLS["sign_transaction"](rounds + i))
        counts = emulator.ask("counts")
        figures["kms_calls"] = {op: count / rounds for op, count in sorted(counts.items())}
        pid = server_pid()
        figures["peak_rss_mb"] = peak_rss_mb(pid) if pid else None
    return figures


async def burst(
    emulator: Emulator, kms: Any, setup: Setup, concurrency: int, latency: float
) -> dict[str, float]:
    """Medians of 5 bursts of concurrent sign_transaction, and of 5 direct ones."""
    async with client(emulator, setup) as session:
        result = await session.call_tool("sign_transaction", CALLS["sign_transaction"](0))
        if result.is_error:
            raise SystemExit(f"{setup.name}: sign_transaction failed: {result.content[0].text}")
        emulator.ask("latency", latency)
        ours, direct = [], []
        nonce = 1
        failures: list[str] = []

        async def one(nonce: int) -> None:
            answer = await session.call_tool("sign_transaction", CALLS["sign_transaction"](nonce))
            if answer.is_error:
                failures.append(answer.content[0].text)

        for _ in range(5):
            direct.append(direct_concurrent_seconds(kms, emulator.key_id, concurrency))
            started = time.perf_counter()
            async with anyio.create_task_group() as tasks:
                for _ in range(concurrency):
                    tasks.start_soon(one, nonce)
                    nonce += 1
            ours.append(time.perf_counter() - started)
            if failures:
                raise SystemExit(f"{setup.name}: {failures[0]}")
        emulator.ask("latency", 0.0)
    return {
        "wall_ms": ms(statistics.median(ours)),
        "direct_wall_ms": ms(statistics.median(direct)),
        "ratio": round(statistics.median(ours) / statistics.median(direct), 2),
    }


def minimal_client(emulator: Emulator, kms: Any, setup: Setup, rounds: int) -> dict[str, float]:
    """sign_transaction from a minimal line-level JSON-RPC client: the server's own cost."""
    server = subprocess.Popen(
        [str(BIN / "agentic-vault-mcp")],
        env=setup.env(emulator),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    counter = 0

    def request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        message = {"jsonrpc": "2.0", "id": counter, "method": method, "params": params}
        server.stdin.write(json.dumps(message).encode() + b"\n")  # type: ignore[union-attr]
        server.stdin.flush()  # type: ignore[union-attr]
        return dict(json.loads(server.stdout.readline()))  # type: ignore[union-attr]

    request(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    )
    server.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    server.stdin.flush()
    ours, direct = [], []
    for i in range(rounds + 5):
        arguments = {"name": "sign_transaction", "arguments": CALLS["sign_transaction"](i)}
        sample = direct_sign(kms, emulator.key_id)
        started = time.perf_counter()
        answer = request("tools/call", arguments)
        elapsed = time.perf_counter() - started
        if answer.get("error") or answer["result"].get("isError"):
            raise SystemExit(f"{setup.name}: sign_transaction failed: {answer}")
        if i >= 5:  # the first calls warm imports and the public key
            ours.append(elapsed)
            direct.append(sample)
    server.stdin.close()
    server.wait(timeout=30)
    return paired(ours, direct)


def _median_us(work: Callable[[], Any], repeat: int = 2000) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1e6, 1)


def steps() -> dict[str, dict[str, float]]:
    """Microseconds per step, before (the library path) and after (ours), in this process."""
    import io
    import logging

    from coincurve import PrivateKey, PublicKey
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from eth_account._utils.legacy_transactions import (
        encode_transaction,
        serializable_unsigned_transaction_from_dict,
    )
    from eth_utils.address import to_checksum_address
    from pyasn1.codec.der import decoder, encoder
    from pyasn1.type import namedtype, univ

    from agentic_vault import _logging
    from agentic_vault._der import decode_ecdsa_signature
    from agentic_vault._fields import checksum_address
    from agentic_vault._signature import EthSignature, kms_signature_to_eth, normalize_s
    from agentic_vault._transaction import TransactionRequest, UnsignedTransaction

    class SigValue(univ.Sequence):  # type: ignore[misc]
        componentType = namedtype.NamedTypes(
            namedtype.NamedType("r", univ.Integer()), namedtype.NamedType("s", univ.Integer())
        )

    def pyasn1_decode(der: bytes) -> tuple[int, int]:
        value, _ = decoder.decode(der, asn1Spec=SigValue())
        assert encoder.encode(value) == der
        return int(value["r"]), int(value["s"])

    secret = PrivateKey()
    point = secret.public_key.format(compressed=False)
    digest = bytes(range(32))
    crypto_key = ec.derive_private_key(int.from_bytes(secret.secret, "big"), ec.SECP256K1())
    der = crypto_key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    r, s_, _ = normalize_s(*decode_ecdsa_signature(der))

    # Half of all signatures have parity 1, where trial recovery needed a second recovery.
    samples = []
    for i in range(16):
        message = bytes([i]) * 32
        signed = crypto_key.sign(message, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        samples.append((signed, message))

    def two_recoveries() -> None:
        for signed, message in samples:
            r1, s1, _ = normalize_s(*pyasn1_decode(signed))
            compact = r1.to_bytes(32, "big") + s1.to_bytes(32, "big")
            for parity in (0, 1):
                key = PublicKey.from_signature_and_message(
                    compact + bytes([parity]), message, hasher=None
                )
                if key.format(compressed=False) == point:
                    PublicKey(point).verify(encode_sig(r1, s1), message, hasher=None)
                    break

    def one_recovery() -> None:
        for signed, message in samples:
            kms_signature_to_eth(signed, message, point)

    def encode_sig(r1: int, s1: int) -> bytes:
        value = SigValue()
        value["r"], value["s"] = r1, s1
        return bytes(encoder.encode(value))

    request = TransactionRequest.parse({**TX, "nonce": 7})
    eth_account_dict = {
        "chainId": 1, "nonce": 7, "gas": 21000, "to": ALICE, "value": int(TX["value"]),
        "data": b"", "maxFeePerGas": int(TX["maxFeePerGas"]),
        "maxPriorityFeePerGas": int(TX["maxPriorityFeePerGas"]), "type": 2, "accessList": [],
    }  # fmt: skip

    def eth_account_encode() -> bytes:
        unsigned = serializable_unsigned_transaction_from_dict(eth_account_dict)
        unsigned.hash()
        return bytes(encode_transaction(unsigned, vrs=(1, r, s_)))

    def ours_encode() -> bytes:
        return UnsignedTransaction(request).encode(EthSignature(r, s_, 1))

    address = ALICE.lower()
    stream = io.StringIO()
    _logging.configure_logging("info", stream=stream)
    audit_logger = logging.getLogger(_logging.AUDIT_LOGGER)
    fields = {
        "tool": "sign_transaction",
        "client": "stdio:bench",
        "outcome": "ok",
        "digest": "0x" + digest.hex(),
        "duration_ms": 3.2,
        "chain_id": 1,
        "to": ALICE,
    }
    figures = {
        "DER signature decode": (lambda: pyasn1_decode(der), lambda: decode_ecdsa_signature(der)),
        "DER to verified signature (x16, both parities)": (two_recoveries, one_recovery),
        "transaction digest + signed encoding": (eth_account_encode, ours_encode),
        "EIP-55 checksum of a known address": (
            lambda: to_checksum_address(address),
            lambda: checksum_address(address),
        ),
        "audit line": (
            lambda: audit_logger.info("tool call", extra={"fields": fields}),
            lambda: _logging.audit("tool call", **fields),
        ),
    }
    result = {}
    for name, (before, after) in figures.items():
        repeat = 200 if "x16" in name else 2000
        result[name] = {
            "before_us": _median_us(before, repeat),
            "after_us": _median_us(after, repeat),
        }
    logging.getLogger().handlers.clear()
    return result


def guard_us(policy: Path) -> dict[str, float]:
    """Microseconds of the guard's decision (decode + decide) per request, example policy.

    Its ledger rows are written in the same commit as the intent record, so what the
    guard adds besides its durable write is this decision.
    """
    from datetime import UTC, datetime

    from eth_abi import encode

    from agentic_vault._transaction import TransactionRequest
    from agentic_vault.policy import evaluate, load_policy_file

    loaded = load_policy_file(str(policy))
    usdc = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    calldata = bytes.fromhex("a9059cbb") + encode(["address", "uint256"], [ALICE, 100 * 10**6])
    requests = {
        "ETH transfer": {**TX, "nonce": 7},
        "USDC transfer on Base": {
            **TX, "chainId": 8453, "to": usdc, "value": "0", "data": "0x" + calldata.hex(),
            "gas": 60000,
        },
    }  # fmt: skip
    now = datetime.now(UTC)
    figures = {}
    wallet = "0x" + "5e" * 20  # the signing wallet, not a recipient
    for name, fields in requests.items():
        request = TransactionRequest.parse(fields)

        def decide(request: TransactionRequest = request) -> Any:
            return evaluate(loaded, request, signer=wallet, now=now)

        assert decide().outcome == "allow", (name, decide())
        figures[name] = _median_us(decide)
    return figures


def setups(with_postgres: bool) -> tuple[list[Setup], Any]:
    """The three set-ups, and the PostgreSQL server to stop afterwards (or None)."""
    policy = bench_policy()
    found = [BASE, Setup("example policy, SQLite store", policy)]
    if not with_postgres:
        return found, None
    sys.path.insert(0, str(ROOT))
    from tests.postgres import PostgresServer, PostgresUnavailable

    try:
        postgres = PostgresServer()
        postgres.start()
    except PostgresUnavailable as exc:
        print(f"bench: no PostgreSQL rows: {str(exc).splitlines()[0]}", file=sys.stderr)
        return found, None
    found.append(Setup("example policy, PostgreSQL store", policy, postgres.create_schema))
    return found, postgres


def run(args: argparse.Namespace) -> dict[str, Any]:
    endpoints = {"emulator": Emulator("moto"), "keep-alive stub": Emulator("stub")}
    chosen, postgres = setups(not args.no_postgres)
    results: dict[str, Any] = {"rounds": args.rounds, "setups": {}}
    try:
        moto = endpoints["emulator"]
        moto_kms = boto3_client(moto)
        results["steps_us"] = steps()
        results["guard_us"] = guard_us(bench_policy())
        cold, bare = anyio.run(cold_starts, moto, args.repeat)
        tools = anyio.run(every_tool, moto, moto_kms, args.rounds)
        for kind, emulator in endpoints.items():
            kms = boto3_client(emulator)
            for setup in chosen:
                row = results["setups"].setdefault(setup.name, {})
                row[kind] = {
                    "sign_transaction": minimal_client(emulator, kms, setup, args.rounds),
                    "burst": anyio.run(
                        burst, emulator, kms, setup, args.concurrency, args.latency_ms / 1000
                    ),
                }
    finally:
        for emulator in endpoints.values():
            emulator.stop()
        if postgres is not None:
            postgres.destroy()
    base = results["setups"][BASE.name]
    results.update(
        {
            "cold_start_ms": ms(cold),
            "bare_sdk_import_ms": ms(bare),
            "cold_start_ratio": round(cold / bare, 2),
            "direct_boto3_sign_p50_ms": ms(tools["direct_p50"]),
            "direct_boto3_sign_p95_ms": ms(tools["direct_p95"]),
            "tools": tools["tools"],
            "sign_transaction_p50_ratio": base["emulator"]["sign_transaction"]["ratio"],
            "sign_transaction_minimal_client": base["emulator"]["sign_transaction"],
            "kms_calls_per_sign_transaction": tools["kms_calls"],
            "kms_calls_per_signature": sum(tools["kms_calls"].values()),
            "concurrency": args.concurrency,
            "injected_sign_latency_ms": args.latency_ms,
            "concurrent_wall_ms": base["emulator"]["burst"]["wall_ms"],
            "direct_concurrent_wall_ms": base["emulator"]["burst"]["direct_wall_ms"],
            "concurrency_ratio": base["emulator"]["burst"]["ratio"],
            "peak_rss_mb": tools["peak_rss_mb"],
            "targets": TARGETS,
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
    )
    return results


def table(r: dict[str, Any]) -> str:
    def judged(key: str, value: float | None, text: str) -> str:
        if value is None:
            return "n/a"
        verdict = "meets" if value <= TARGETS[key] else "MISSES"
        return f"{text} ({verdict} target {TARGETS[key]:g})"

    rows = [
        (
            "cold start (spawn, initialize, tools/list)",
            f"{r['cold_start_ms']} ms",
            f"bare `import mcp.server.mcpserver`: {r['bare_sdk_import_ms']} ms",
            judged("cold_start_ratio", r["cold_start_ratio"], f"x{r['cold_start_ratio']}"),
        )
    ]
    for name, f in r["tools"].items():
        rows.append(
            (
                f"{name}, official client, emulator",
                f"p50 {f['p50_ms']} ms / p95 {f['p95_ms']} ms",
                f"direct boto3 Sign p50: {f['paired_direct_p50_ms']} ms",
                f"x{f['ratio']}",
            )
        )
    for setup, by_endpoint in r["setups"].items():
        target = "sign_transaction_p50_ratio" if setup == BASE.name else "guarded_ratio"
        burst_target = "concurrency_ratio" if setup == BASE.name else "guarded_ratio"
        for endpoint, f in by_endpoint.items():
            tx, many = f["sign_transaction"], f["burst"]
            rows.append(
                (
                    f"sign_transaction, minimal client, {endpoint}, {setup}",
                    f"p50 {tx['p50_ms']} ms / p95 {tx['p95_ms']} ms",
                    f"direct boto3 Sign p50: {tx['paired_direct_p50_ms']} ms",
                    judged(target, tx["ratio"], f"x{tx['ratio']}"),
                )
            )
            rows.append(
                (
                    f"{r['concurrency']} concurrent, +{r['injected_sign_latency_ms']:g} ms per "
                    f"Sign, {endpoint}, {setup}",
                    f"{many['wall_ms']} ms",
                    f"{r['concurrency']} threads of direct Sign: {many['direct_wall_ms']} ms",
                    judged(burst_target, many["ratio"], f"x{many['ratio']}"),
                )
            )
    calls = ", ".join(f"{op} {n:g}" for op, n in r["kms_calls_per_sign_transaction"].items())
    per_signature = r["kms_calls_per_signature"]
    rows.append(
        (
            "KMS calls per signature (after the first)",
            calls,
            "",
            judged("kms_calls_per_signature", per_signature, f"{per_signature:g}"),
        )
    )
    rows.append(
        (
            "server peak RSS",
            f"{r['peak_rss_mb']} MB",
            "",
            judged("peak_rss_mb", r["peak_rss_mb"], f"{r['peak_rss_mb']} MB"),
        )
    )
    for step, f in r["steps_us"].items():
        rows.append(
            (
                f"step: {step}",
                f"{f['after_us']} us",
                f"before: {f['before_us']} us",
                f"x{round(f['after_us'] / f['before_us'], 2)}",
            )
        )
    for request, micros in r["guard_us"].items():
        rows.append(
            (
                f"the guard's decision, example policy: {request}",
                f"{micros} us",
                "decode + decide; its ledger rows share the intent's commit",
                judged("guard_us", micros, f"{micros} us"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"agentic-vault benchmark: {r['rounds']} rounds per figure, "
        f"{r['machine']['cpus']} CPUs, Python {r['machine']['python']}",
        "",
    ]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark agentic-vault-mcp on a local KMS.")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--rounds", type=int, default=200, help="calls per figure (default 200)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=50.0,
        help="added to every Sign in the concurrency test (default 50)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="cold starts measured (default 5)")
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL rows (no server binaries)"
    )
    args = parser.parse_args()
    results = run(args)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
