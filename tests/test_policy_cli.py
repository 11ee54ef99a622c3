"""``agentic-vault policy check`` and ``policy explain`` through the installed console script."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .mcp_helpers import CLI
from .policy_cases import (
    ACCEPTANCE_2,
    ALICE,
    EXAMPLE,
    MALLORY,
    ROUTER,
    USDC,
    USDC_BASE,
    message,
    pay,
    permit,
    siwe,
    substitute,
)
from .test_docs import blocks
from .test_policy_table import run as run_case

pytestmark = pytest.mark.e2e

WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"


def run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "policy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def example(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE)
    path.chmod(0o600)
    return path


def test_check_summarizes_a_valid_file(example: Path) -> None:
    result = run(["check", str(example)])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert f"policy {example} is valid (sha256 " in out
    assert "chains: Ethereum (1), Base (8453)" in out
    assert "at most 500 USDC per transaction" in out
    assert "sign-in to app.example.org, dashboard.example.com" in out
    assert "EIP-7702 delegation: refused" in out


def test_check_names_what_a_policy_leaves_open(tmp_path: Path) -> None:
    path = tmp_path / "open.toml"
    path.write_text('version = 1\nchains = [1]\n\n[native]\nto = ["0x' + "11" * 20 + '"]\n')
    path.chmod(0o644)
    result = run(["check", str(path)])
    assert result.returncode == 0
    assert "native: transfers have no max_per_tx and no max_per_day" in result.stdout
    assert "fees: no limit" in result.stdout
    assert "rate: no max_per_hour" in result.stdout


def test_check_refuses_a_bad_file_in_one_line_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('version = 1\nchains = [1]\n\n[native]\nmax_per_tx = "0.1.2"\n')
    path.chmod(0o600)
    result = run(["check", str(path)])
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"agentic-vault policy check: policy file {path}, line 5: ")
    assert "native.max_per_tx" in line


def test_check_refuses_a_group_writable_file(example: Path) -> None:
    example.chmod(0o664)
    result = run(["check", str(example)])
    assert result.returncode == 2
    assert "chmod 600" in result.stderr


def test_explain_a_refused_payment(example: Path) -> None:
    arguments = pay(MALLORY, 300)
    result = run(["explain", str(example), "--transaction", json.dumps(arguments)])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "decision: deny"
    assert lines[1] == "key: tokens.usdc.to"
    assert lines[2].startswith("policy_denied: tokens.usdc.to: sends 300 USDC to ")
    assert f"  - sends 300 USDC to {MALLORY} on Base (8453)" in lines
    assert any(line.startswith("  - pays at most 0.0001 ETH in fees") for line in lines)


def test_explain_an_allowed_payment_shows_what_it_would_reserve(example: Path) -> None:
    transaction = pay(ALICE, 300)["transaction"]
    result = run(["explain", str(example), "--transaction", json.dumps(transaction)])
    assert result.returncode == 0
    assert "decision: allow" in result.stdout
    assert "  - 300 USDC of 2,000 USDC per 24 h (tokens.usdc.max_per_day)" in result.stdout
    assert "  - 1 signature of 60 signatures per hour (rate.max_per_hour)" in result.stdout
    assert "(a placeholder; pass --from" in result.stdout


def test_explain_typed_data_with_the_wallet_address(example: Path, tmp_path: Path) -> None:
    request = tmp_path / "permit.json"
    request.write_text(json.dumps(substitute(permit(ROUTER, 200 * USDC), WALLET)))
    result = run(["explain", str(example), "--typed-data", f"@{request}", "--from", WALLET])
    assert result.returncode == 0, result.stderr
    assert "decision: allow" in result.stdout
    assert "lets router (0x5a9E…0004) spend up to 200 USDC (EIP-2612 Permit)" in result.stdout
    assert f"wallet: {WALLET}\n" in result.stdout + "\n"
    # Without --from the permit's owner is not the placeholder wallet.
    result = run(["explain", str(example), "--typed-data", f"@{request}"])
    assert "decision: deny" in result.stdout
    assert "key: default" in result.stdout


def test_explain_a_message_from_stdin(example: Path) -> None:
    text = substitute(message(siwe()), WALLET)
    result = run(["explain", str(example), "--message", "-", "--from", WALLET], json.dumps(text))
    assert result.returncode == 0, result.stderr
    assert "decision: allow" in result.stdout
    assert "key: messages.siwe_domains" in result.stdout
    result = run(["explain", str(example), "--message", '"hello"'])
    assert "policy_denied: messages.text: " in result.stdout


def test_explain_a_bad_request_exits_1(example: Path) -> None:
    result = run(["explain", str(example), "--transaction", "{not json"])
    assert result.returncode == 1
    assert "is not valid JSON" in result.stderr
    result = run(["explain", str(example), "--transaction", json.dumps({"chainId": 1})])
    assert result.returncode == 1
    assert "invalid_input: transaction.nonce: is required" in result.stderr
    result = run(["explain", str(example), "--message", '"hi"', "--from", "0x12"])
    assert result.returncode == 1
    assert "--from" in result.stderr


def test_explain_with_a_bad_policy_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("version = 1\n")
    path.chmod(0o600)
    result = run(["explain", str(path), "--message", '"hi"'])
    assert result.returncode == 2
    assert "chains: is required" in result.stderr


def test_explain_needs_exactly_one_request(example: Path) -> None:
    result = run(["explain", str(example)])
    assert result.returncode == 2
    assert "one of the arguments --transaction --typed-data --message is required" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_usdc_address_in_the_example_is_the_one_the_cases_use() -> None:
    assert USDC_BASE in EXAMPLE


# -- docs/policy.md: its commands run, and print what it shows -------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "policy.md"


def doc_blocks() -> list[tuple[str | None, str, str, str]]:
    return blocks(DOC)


def run_doc_command(name: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the block marked ``test: name`` where the example lives; also the block after it."""
    found = doc_blocks()
    index = next(i for i, (kind, value, _, _) in enumerate(found) if value == name)
    (tmp_path / "examples").mkdir()
    policy = tmp_path / "examples" / "policy.toml"
    policy.write_text(EXAMPLE)
    policy.chmod(0o644)
    script = found[index][3].replace("agentic-vault ", f"{CLI} ", 1)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    following = found[index + 1][3] if index + 1 < len(found) else ""
    return result, following


def test_the_docs_check_command_runs(tmp_path: Path) -> None:
    result, _ = run_doc_command("policy-check", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout


def test_the_docs_explain_command_prints_what_the_docs_show(tmp_path: Path) -> None:
    result, shown = run_doc_command("policy-explain", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shown


def test_the_docs_refusal_example_is_what_the_guard_says() -> None:
    case = next(c for c in ACCEPTANCE_2 if c.id == "example-payment-split-past-max-per-day")
    sentence = run_case(case).denial
    shown = next(body for _, _, lang, body in doc_blocks() if "tokens.usdc.max_per_day" in body)
    date = "2026-11-26T03:55:26Z"
    assert shown.strip().replace(date, "DATE") == sentence.split("from ")[0] + "from DATE."
