"""What agentic-vault adds on top of the KMS call itself, in figures.

Run it with scripts/bench (which builds its own virtual environment). Everything
is measured in one run, against one local KMS emulator running in a process of
its own, so that its cost (about 2 ms of CPU per Sign) lands equally in our
figures and in the baselines they are compared with. Samples are interleaved
(one tool call, one direct Sign, and so on) so that drift on a shared machine
hits both sides alike:

- cold start: spawn agentic-vault-mcp, initialize, tools/list (official MCP
  client) beside a bare `python -c "import mcp.server.mcpserver"`;
- p50/p95 over stdio of every tool (official MCP client) beside the p50 of a
  direct boto3 Sign, and sign_transaction from a minimal JSON-RPC client too,
  which shows the server's own cost without the official client's;
- KMS calls per signature, counted by the emulator;
- 64 concurrent sign_transaction calls beside 64 threads making direct boto3 Sign
  calls on one shared client, with 50 ms added to every Sign by the emulator;
- the server's peak RSS.

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

BIN = Path(sys.executable).parent
ALIAS = "alias/agentic-vault-bench"
TARGETS = {
    "sign_transaction_p50_ratio": 1.3,
    "cold_start_ratio": 1.5,
    "concurrency_ratio": 1.3,
    "kms_calls_per_signature": 1.0,
    "peak_rss_mb": 120.0,
}


# -- the emulator, in a process of its own -------------------------------------------------


def _emulator(conn: Connection) -> None:
    from agentic_vault._local_kms import CONTROL, LocalKms

    kms = LocalKms().start()
    kms.create_key(alias=ALIAS)
    conn.send(kms.environment(ALIAS))
    while True:
        command, *args = conn.recv()
        if command == "counts":
            conn.send(dict(CONTROL.calls))
        elif command == "reset":
            CONTROL.calls.clear()
            conn.send(None)
        elif command == "latency":
            CONTROL.latency["Sign"] = args[0]
            conn.send(None)
        elif command == "stop":
            kms.stop()
            conn.send(None)
            return


class Emulator:
    def __init__(self) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_emulator, args=(child,), daemon=True
        )
        self._process.start()
        self.env: dict[str, str] = self._conn.recv()

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


def server_env(emulator: Emulator) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **emulator.env,
    }


def server_params(emulator: Emulator) -> Any:
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(command=str(BIN / "agentic-vault-mcp"), env=server_env(emulator))


def client(emulator: Emulator) -> Any:
    from mcp import Client
    from mcp.client.stdio import stdio_client

    log = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the client
    return Client(stdio_client(server_params(emulator), errlog=log), read_timeout_seconds=120)


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


def direct_sign(kms: Any) -> float:
    started = time.perf_counter()
    kms.sign(
        KeyId=ALIAS,
        Message=bytes(range(32)),
        MessageType="DIGEST",
        SigningAlgorithm="ECDSA_SHA_256",
    )
    return time.perf_counter() - started


def direct_concurrent_seconds(kms: Any, calls: int) -> float:
    """64 threads, one shared client, all released at once; the wall time."""
    digest = bytes(range(32))
    barrier = threading.Barrier(calls + 1)

    def sign() -> None:
        barrier.wait()
        kms.sign(
            KeyId=ALIAS, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
        )

    threads = [threading.Thread(target=sign) for _ in range(calls)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


TX = {
    "chainId": 1,
    "nonce": 0,
    "gas": 21000,
    "maxFeePerGas": "30000000000",
    "maxPriorityFeePerGas": "1000000000",
    "to": "0x52908400098527886E0F7030069857D2E4169EE7",
    "value": "10000000000000000",
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


async def over_stdio(
    emulator: Emulator, kms: Any, rounds: int, concurrency: int, latency: float
) -> dict[str, Any]:
    figures: dict[str, Any] = {"tools": {}}
    async with client(emulator) as session:
        for name, arguments in CALLS.items():
            await session.call_tool(name, arguments(0))  # warm: imports, public key
        direct_sign(kms)
        all_direct = []
        for name, arguments in CALLS.items():
            ours, direct = [], []
            for i in range(rounds):
                direct.append(direct_sign(kms))
                started = time.perf_counter()
                result = await session.call_tool(name, arguments(i))
                ours.append(time.perf_counter() - started)
                if result.is_error:
                    raise SystemExit(f"{name} failed: {result.content[0].text}")
            all_direct += direct
            figures["tools"][name] = {
                "p50_ms": ms(percentile(ours, 0.5)),
                "p95_ms": ms(percentile(ours, 0.95)),
                "paired_direct_p50_ms": ms(percentile(direct, 0.5)),
                "ratio": round(percentile(ours, 0.5) / percentile(direct, 0.5), 2),
            }
        figures["direct_p50"] = percentile(all_direct, 0.5)
        figures["direct_p95"] = percentile(all_direct, 0.95)

        emulator.ask("reset")
        for i in range(rounds):
            await session.call_tool("sign_transaction", CALLS["sign_transaction"](i))
        counts = emulator.ask("counts")
        figures["kms_calls"] = {op: count / rounds for op, count in sorted(counts.items())}

        emulator.ask("latency", latency)
        ours_walls, direct_walls = [], []
        for _ in range(5):
            direct_walls.append(direct_concurrent_seconds(kms, concurrency))
            started = time.perf_counter()
            async with anyio.create_task_group() as tasks:
                for i in range(concurrency):
                    tasks.start_soon(
                        session.call_tool, "sign_transaction", CALLS["sign_transaction"](i)
                    )
            ours_walls.append(time.perf_counter() - started)
        emulator.ask("latency", 0.0)
        figures["concurrent_wall"] = statistics.median(ours_walls)
        figures["direct_concurrent_wall"] = statistics.median(direct_walls)
        pid = server_pid()
        figures["peak_rss_mb"] = peak_rss_mb(pid) if pid else None
    return figures


def raw_client_sign_transaction(emulator: Emulator, kms: Any, rounds: int) -> dict[str, float]:
    """sign_transaction from a minimal line-level JSON-RPC client: the server's own cost."""
    server = subprocess.Popen(
        [str(BIN / "agentic-vault-mcp")],
        env=server_env(emulator),
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
    arguments = {"name": "sign_transaction", "arguments": CALLS["sign_transaction"](0)}
    request("tools/call", arguments)
    ours, direct = [], []
    for _ in range(rounds):
        direct.append(direct_sign(kms))
        started = time.perf_counter()
        request("tools/call", arguments)
        ours.append(time.perf_counter() - started)
    server.stdin.close()
    server.wait(timeout=30)
    return {
        "p50_ms": ms(percentile(ours, 0.5)),
        "p95_ms": ms(percentile(ours, 0.95)),
        "paired_direct_p50_ms": ms(percentile(direct, 0.5)),
        "ratio": round(percentile(ours, 0.5) / percentile(direct, 0.5), 2),
    }


def run(rounds: int, concurrency: int, latency: float, repeat: int) -> dict[str, Any]:
    emulator = Emulator()
    try:
        kms = boto3_client(emulator)
        cold, bare = anyio.run(cold_starts, emulator, repeat)
        ours = anyio.run(over_stdio, emulator, kms, rounds, concurrency, latency)
        raw = raw_client_sign_transaction(emulator, kms, rounds)
    finally:
        emulator.stop()
    return {
        "rounds": rounds,
        "cold_start_ms": ms(cold),
        "bare_sdk_import_ms": ms(bare),
        "cold_start_ratio": round(cold / bare, 2),
        "direct_boto3_sign_p50_ms": ms(ours["direct_p50"]),
        "direct_boto3_sign_p95_ms": ms(ours["direct_p95"]),
        "tools": ours["tools"],
        "sign_transaction_p50_ratio": ours["tools"]["sign_transaction"]["ratio"],
        "sign_transaction_minimal_client": raw,
        "kms_calls_per_sign_transaction": ours["kms_calls"],
        "kms_calls_per_signature": sum(ours["kms_calls"].values()),
        "concurrency": concurrency,
        "injected_sign_latency_ms": ms(latency),
        "concurrent_wall_ms": ms(ours["concurrent_wall"]),
        "direct_concurrent_wall_ms": ms(ours["direct_concurrent_wall"]),
        "concurrency_ratio": round(ours["concurrent_wall"] / ours["direct_concurrent_wall"], 2),
        "peak_rss_mb": ours["peak_rss_mb"],
        "targets": TARGETS,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


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
        ratio = f"x{f['ratio']}"
        if name == "sign_transaction":
            ratio = judged("sign_transaction_p50_ratio", f["ratio"], ratio)
        rows.append(
            (
                f"{name} over stdio",
                f"p50 {f['p50_ms']} ms / p95 {f['p95_ms']} ms",
                f"direct boto3 Sign p50: {f['paired_direct_p50_ms']} ms",
                ratio,
            )
        )
    raw = r["sign_transaction_minimal_client"]
    rows.append(
        (
            "sign_transaction, minimal JSON-RPC client",
            f"p50 {raw['p50_ms']} ms / p95 {raw['p95_ms']} ms",
            f"direct boto3 Sign p50: {raw['paired_direct_p50_ms']} ms",
            f"x{raw['ratio']}",
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
            f"{r['concurrency']} concurrent sign_transaction, "
            f"+{r['injected_sign_latency_ms']:g} ms per Sign",
            f"{r['concurrent_wall_ms']} ms",
            f"{r['concurrency']} threads of direct boto3 Sign: {r['direct_concurrent_wall_ms']} ms",
            judged("concurrency_ratio", r["concurrency_ratio"], f"x{r['concurrency_ratio']}"),
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
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"agentic-vault benchmark: {r['rounds']} rounds per tool, "
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
    parser.add_argument("--rounds", type=int, default=200, help="calls per tool (default 200)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=50.0,
        help="added to every Sign in the concurrency test (default 50)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="cold starts measured (default 5)")
    args = parser.parse_args()
    results = run(args.rounds, args.concurrency, args.latency_ms / 1000, args.repeat)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
