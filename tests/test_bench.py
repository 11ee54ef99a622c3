"""The benchmark runs and reports every figure it promises (few rounds: this is no measurement)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_reports_every_figure() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--json",
            "--rounds",
            "5",
            "--concurrency",
            "8",
            "--latency-ms",
            "20",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures["tools"]) == {
        "get_address",
        "sign_transaction",
        "sign_typed_data",
        "sign_message",
        "health_check",
    }
    for tool in figures["tools"].values():
        assert 0 < tool["p50_ms"] <= tool["p95_ms"]
        assert tool["paired_direct_p50_ms"] > 0
    assert figures["cold_start_ms"] > 0
    assert figures["bare_sdk_import_ms"] > 0
    assert figures["kms_calls_per_sign_transaction"] == {"Sign": 1.0}
    assert figures["concurrent_wall_ms"] > 20
    assert figures["direct_concurrent_wall_ms"] > 20
    assert 0 < figures["peak_rss_mb"] < 1024
    assert figures["sign_transaction_minimal_client"]["p50_ms"] > 0
    # Every set-up against both endpoints: no policy, the example policy on SQLite and on
    # PostgreSQL (the suite has PostgreSQL's binaries).
    assert set(figures["setups"]) == {
        "no policy, SQLite store",
        "example policy, SQLite store",
        "example policy, PostgreSQL store",
    }
    for by_endpoint in figures["setups"].values():
        assert set(by_endpoint) == {"emulator", "keep-alive stub"}
        for row in by_endpoint.values():
            assert 0 < row["sign_transaction"]["p50_ms"] <= row["sign_transaction"]["p95_ms"]
            assert row["burst"]["wall_ms"] > 20
            assert row["burst"]["direct_wall_ms"] > 20
    # The guard's own decision, on requests the example policy allows.
    assert set(figures["guard_us"]) == {"ETH transfer", "USDC transfer on Base"}
    assert all(0 < micros < 100_000 for micros in figures["guard_us"].values())
