"""``agentic-vault address | sign-transaction | sign-typed-data | sign-message | health``.

The installed console script, in a clean environment, against the local KMS: every
signature is checked with eth-account (the signer recovered is the key's address,
computed here from GetPublicKey with ``cryptography``; a raw transaction decodes back
to the fields asked for), every output against the tool's result model, every error
for its ``code:`` line on stderr, empty stdout and exit status, and the durable audit
trail (``agentic-vault audit export``) for the shell's records.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import pwd
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from pydantic import BaseModel

from agentic_vault._local_kms import CONTROL, LocalKms
from agentic_vault._results import AddressResult, HealthReport, SignedMessage, SignedTransaction

from .bad_inputs import ADDRESS, CHECKSUMMED, mail
from .mcp_helpers import CLI, mcp_client, server_env, text_of
from .reference import decode_raw_transaction
from .test_mcp_e2e import PERMIT as E2E_PERMIT
from .test_mcp_e2e import _with_domain_type

pytestmark = pytest.mark.e2e

# Who the audit trail must name: the account of our uid, whatever $USER claims.
USER = pwd.getpwuid(os.geteuid()).pw_name
TREASURY = CHECKSUMMED

# The e2e tests' permit without its EIP712Domain type: the shell derives it from the domain.
PERMIT = {
    **E2E_PERMIT,
    "types": {k: v for k, v in E2E_PERMIT["types"].items() if k != "EIP712Domain"},
}

# A policy: plain ETH transfers to the treasury on chain 1, a person above 0.01 ETH,
# no free-text messages.
POLICY = f"""\
version = 1
chains = [1]

[addresses]
treasury = "{TREASURY}"

[native]
to = ["treasury"]
max_per_tx = "1"
approve_above = "0.01"

[messages]
text = false
"""


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str

    def json(self, model: type[BaseModel]) -> dict[str, Any]:
        """Success: exit 0, nothing on stderr, and exactly the tool's result on stdout."""
        assert (self.status, self.stderr) == (0, ""), self
        out = json.loads(self.stdout)
        assert isinstance(out, dict)
        schema = model.model_json_schema(by_alias=True, mode="serialization")
        assert set(out) == set(schema["properties"]), out
        model.model_validate(out)
        return out

    def refused(self, code: str, *phrases: str) -> str:
        """An error: exit 1, nothing on stdout, its ``code: sentence`` line last on stderr."""
        assert self.status == 1, self
        assert self.stdout == "", self
        assert "Traceback" not in self.stderr, self
        *logs, line = self.stderr.splitlines()
        assert line.startswith(f"{code}: "), self.stderr
        for phrase in phrases:
            assert phrase in line, (phrase, line)
        for log in logs:  # anything else is a log line (a warning), not loose text
            assert json.loads(log)["level"] in ("warning", "error"), log
        return line

    def usage_error(self, *phrases: str) -> str:
        assert self.status == 2, self
        assert self.stdout == "", self
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        for phrase in phrases:
            assert phrase in lines[0], (phrase, lines[0])
        return lines[0]


def shell(env: dict[str, str], *args: str, stdin: str | bytes | None = None) -> Run:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [CLI, *args], env=env, input=data, capture_output=True, timeout=60, check=False
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def trail(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    """The durable audit trail's records, as ``agentic-vault audit export`` prints them."""
    done = subprocess.run(
        [CLI, "audit", "export", *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def address_of(emulator: LocalKms, key_id: str) -> str:
    """The key's address from GetPublicKey, computed with cryptography and eth-utils."""
    der = emulator.client().get_public_key(KeyId=key_id)["PublicKey"]
    public = load_der_public_key(der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    numbers = public.public_numbers()
    point = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    return str(to_checksum_address(keccak(point)[12:]))


@pytest.fixture
def key_alias(emulator: LocalKms, request: pytest.FixtureRequest) -> str:
    alias = f"alias/shell-{request.node.name[:40]}"
    alias = "".join(c if c.isalnum() or c in "/_-" else "-" for c in alias)
    emulator.create_key(alias=alias)
    return alias


@pytest.fixture
def env(emulator: LocalKms, key_alias: str, tmp_path: Path) -> dict[str, str]:
    # $USER says someone else: the trail must name the account, not the variable.
    return server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias, USER="not-the-account")


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    path.chmod(0o600)
    return path


# -- each command, signed and verified ------------------------------------------------------


def test_the_signing_commands_print_what_eth_account_verifies(
    emulator: LocalKms, key_alias: str, env: dict[str, str], tmp_path: Path
) -> None:
    address = address_of(emulator, key_alias)

    # sign-transaction FILE: an EIP-1559 transfer; it decodes back to what was asked.
    request = {
        "chainId": 8453,
        "nonce": 7,
        "gas": 21000,
        "maxFeePerGas": "0x3b9aca00",
        "maxPriorityFeePerGas": 1000,
        "to": ADDRESS,
        "value": "10000000000000000",
        "data": "0xdeadbeef",
    }
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(request, indent=2))
    signed = shell(env, "sign-transaction", str(tx_file)).json(SignedTransaction)
    raw = bytes(HexBytes(signed["raw_transaction"]))
    first_hash = signed["hash"]
    assert Account.recover_transaction(raw) == address
    assert signed["from"] == address
    assert signed["hash"] == "0x" + keccak(raw).hex()
    decoded = decode_raw_transaction(raw)
    assert (decoded.pop("v"), decoded.pop("r"), decoded.pop("s")) == (
        signed["v"],
        int(signed["r"], 16),
        int(signed["s"], 16),
    )
    assert decoded == {
        "type": 2,
        "chainId": 8453,
        "nonce": 7,
        "gas": 21000,
        "maxFeePerGas": 10**9,
        "maxPriorityFeePerGas": 1000,
        "to": ADDRESS,
        "value": 10**16,
        "data": bytes.fromhex("deadbeef"),
        "accessList": [],
    }

    # sign-transaction - : a legacy one on stdin, as a JSON string of the object (the
    # server takes both); EIP-155 on chain 1.
    legacy = {"chainId": 1, "nonce": 0, "gas": 21000, "gasPrice": 5, "to": ADDRESS}
    signed = shell(env, "sign-transaction", "-", stdin=json.dumps(json.dumps(legacy))).json(
        SignedTransaction
    )
    raw = bytes(HexBytes(signed["raw_transaction"]))
    assert Account.recover_transaction(raw) == address
    assert signed["type"] == 0
    assert signed["v"] in (37, 38)
    decoded = decode_raw_transaction(raw)
    assert {k: decoded[k] for k in ("nonce", "gas", "gasPrice", "to", "value")} == {
        "nonce": 0,
        "gas": 21000,
        "gasPrice": 5,
        "to": ADDRESS,
        "value": 0,
    }

    # sign-typed-data FILE (no EIP712Domain: derived from the domain), and stdin
    # without the - (a pipe is not a terminal).
    permit_file = tmp_path / "permit.json"
    permit_file.write_text(json.dumps(PERMIT))
    for args, payload, stdin in (
        (["sign-typed-data", str(permit_file)], PERMIT, None),
        (["sign-typed-data"], mail(), json.dumps(mail())),
    ):
        signed = shell(env, *args, stdin=stdin).json(SignedMessage)
        signable = encode_typed_data(full_message=_with_domain_type(payload))
        assert Account.recover_message(signable, signature=signed["signature"]) == address
        assert (
            signed["digest"] == "0x" + keccak(b"\x19\x01" + signable.header + signable.body).hex()
        )

    # sign-message TEXT, and --hex.
    for args, raw_message in (
        (
            ["sign-message", "Sign in to example.org\nNonce: 42"],
            b"Sign in to example.org\nNonce: 42",
        ),
        (["sign-message", "--hex", "0x00ff10"], bytes.fromhex("00ff10")),
        (["sign-message", "--", "-starts-with-a-dash"], b"-starts-with-a-dash"),
    ):
        signed = shell(env, *args).json(SignedMessage)
        recovered = Account.recover_message(
            encode_defunct(primitive=raw_message), signature=signed["signature"]
        )
        assert recovered == address
        assert signed["v"] in (27, 28)

    # Each signature is on the durable trail: an intent and its outcome, client cli:USER.
    records = trail(env)
    outcomes = [r for r in records if r["kind"] == "outcome"]
    assert [r["tool"] for r in outcomes] == ["sign_transaction"] * 2 + ["sign_typed_data"] * 2 + [
        "sign_message"
    ] * 3
    assert {r["outcome"] for r in outcomes} == {"signed"}
    assert {r["client"] for r in records} == {f"cli:{USER}"}
    assert (outcomes[0]["tx_hash"], outcomes[0]["chain_id"]) == (first_hash, 8453)
    assert len(records) == 2 * len(outcomes)
    assert CONTROL.calls["Sign"] == len(outcomes)


def test_address_and_health(
    emulator: LocalKms, key_alias: str, env: dict[str, str], policy: Path
) -> None:
    address = address_of(emulator, key_alias)
    assert shell(env, "address").json(AddressResult) == {"address": address}

    report = shell(env, "health", "--policy", str(policy)).json(HealthReport)
    assert report["status"] == "ok"
    assert report["problems"] == []
    assert report["address"] == address
    assert (report["key_spec"], report["key_usage"], report["key_state"]) == (
        "ECC_SECG_P256K1",
        "SIGN_VERIFY",
        "Enabled",
    )
    assert report["credentials"] == "env"
    assert report["policy"]["path"] == str(policy)
    assert report["policy"]["sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert report["state"] == {"backend": "sqlite", "ok": True}
    assert CONTROL.calls["Sign"] == 0


def test_flags_win_over_the_environment(
    emulator: LocalKms, key_alias: str, env: dict[str, str], tmp_path: Path
) -> None:
    other = "alias/shell-flag-key-" + tmp_path.name[-12:]
    emulator.create_key(alias=other)
    other_address = address_of(emulator, other)
    flag_state, env_state = tmp_path / "flag-state", tmp_path / "env-state"
    env |= {
        "VAULT_EXPECTED_ADDRESS": address_of(emulator, key_alias),  # right for the env's key
        "VAULT_STATE_DIR": str(env_state),
    }
    # The environment alone: its key, its expected address.
    assert shell(env, "address").json(AddressResult) == {"address": address_of(emulator, key_alias)}
    # Flags: another key, its expected address, another store.
    signed = shell(
        env,
        "sign-message",
        "flags first",
        "--key-id",
        other,
        "--expected-address",
        other_address,
        "--state-dir",
        str(flag_state),
    ).json(SignedMessage)
    signable = encode_defunct(text="flags first")
    assert Account.recover_message(signable, signature=signed["signature"]) == other_address
    assert [r["outcome"] for r in trail(env, "--state-dir", str(flag_state))] == [
        "intent",
        "signed",
    ]
    assert not (env_state / "vault.sqlite3").exists()


# -- errors --------------------------------------------------------------------------------


def test_invalid_input_is_named_and_nothing_is_signed(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"chainId": 1, "nonce": 0,\n  "gas": 21000,,}')
    shell(env, "sign-transaction", str(bad)).refused(
        "invalid_input", f"transaction: {bad} is not valid JSON", "line 2 column 16"
    )
    tx = {"chainId": 1, "nonce": 0, "gasLimit": 21000, "gasPrice": 1, "to": ADDRESS}
    shell(env, "sign-transaction", stdin=json.dumps(tx)).refused(
        "invalid_input", "transaction.gasLimit: unknown field; did you mean `gas`?"
    )
    repeated = '{"chainId": 1, "nonce": 0, "gas": 21000, "gasPrice": 1, "to": "%s", "to": "%s"}'
    shell(env, "sign-transaction", stdin=repeated % (ADDRESS, TREASURY)).refused(
        "invalid_input", 'transaction: has the key "to" twice'
    )
    payload = json.dumps(mail()).replace('"primaryType"', '"primaryType": "Mail", "primaryType"')
    shell(env, "sign-typed-data", "-", stdin=payload).refused(
        "invalid_input", 'typed_data: has the key "primaryType" twice'
    )
    shell(env, "sign-message", "--hex", "0xabc").refused(
        "invalid_input", "message: must be 0x followed by an even number of hex digits"
    )
    shell(env, "sign-typed-data", str(tmp_path / "missing.json")).refused(
        "invalid_input", "typed_data: cannot read", "No such file or directory"
    )
    # Bounded like the server: more than 2 MiB is refused without being read whole.
    shell(env, "sign-transaction", stdin=b" " * (3 * 1024 * 1024)).refused(
        "invalid_input", "stdin holds more than 2 MiB"
    )
    assert CONTROL.calls["Sign"] == 0
    assert not (tmp_path / ".local" / "state" / "agentic-vault" / "vault.sqlite3").exists()


@pytest.mark.anyio
async def test_a_policy_denial_is_the_servers_and_never_reaches_kms(
    env: dict[str, str], policy: Path, tmp_path: Path
) -> None:
    stranger = "0x" + "22" * 20
    transfer = {"chainId": 1, "nonce": 0, "gas": 21000, "gasPrice": 1, "to": stranger}
    shell_lines = [
        shell(env, "sign-message", "hello", "--policy", str(policy)).refused(
            "policy_denied", "policy_denied: messages.text: "
        ),
        shell(env, "sign-transaction", "--policy", str(policy), stdin=json.dumps(transfer)).refused(
            "policy_denied", "policy_denied: native.to: "
        ),
    ]
    async with mcp_client(env, args=["--policy", str(policy)]) as client:
        server_texts = [
            text_of(await client.call_tool("sign_message", {"message": "hello"})),
            text_of(await client.call_tool("sign_transaction", {"transaction": transfer})),
        ]
    assert shell_lines == server_texts  # the same key, the same sentence
    assert CONTROL.calls["Sign"] == 0
    assert CONTROL.messages == []
    denials = trail(env)
    assert [(r["tool"], r["outcome"], r["rule"]) for r in denials] == [
        ("sign_message", "denied", "messages.text"),
        ("sign_transaction", "denied", "native.to"),
        ("sign_message", "denied", "messages.text"),
        ("sign_transaction", "denied", "native.to"),
    ]
    assert [r["client"] for r in denials[:2]] == [f"cli:{USER}"] * 2


def test_approval_required_then_approved_from_the_shell(
    emulator: LocalKms, key_alias: str, env: dict[str, str], policy: Path
) -> None:
    env["VAULT_POLICY"] = str(policy)
    half_an_ether = 5 * 10**17
    transfer = json.dumps(
        {
            "chainId": 1,
            "nonce": 3,
            "gas": 21000,
            "gasPrice": 1,
            "to": TREASURY,
            "value": half_an_ether,
        }
    )
    line = shell(env, "sign-transaction", stdin=transfer).refused(
        "approval_required", "native.approve_above", "agentic-vault approvals approve "
    )
    approval_id = line.split(": ")[1]
    assert CONTROL.calls["Sign"] == 0
    approved = subprocess.run(
        [CLI, "approvals", "approve", approval_id], env=env, capture_output=True, text=True
    )
    assert approved.returncode == 0, approved.stderr
    signed = shell(env, "sign-transaction", stdin=transfer).json(SignedTransaction)
    assert Account.recover_transaction(signed["raw_transaction"]) == address_of(emulator, key_alias)
    assert (
        decode_raw_transaction(bytes(HexBytes(signed["raw_transaction"])))["value"] == half_an_ether
    )
    outcomes = [r["outcome"] for r in trail(env) if r["tool"] == "sign_transaction"]
    assert outcomes[-1] == "signed"
    assert "approval_required" in outcomes


def test_kms_errors_and_the_wrong_address(
    emulator: LocalKms, key_alias: str, env: dict[str, str]
) -> None:
    shell(env, "sign-message", "hi", "--expected-address", TREASURY).refused(
        "address_mismatch", TREASURY
    )
    shell(env, "address", "--key-id", "alias/shell-no-such-key").refused(
        "kms_key_invalid", "alias/shell-no-such-key was not found"
    )
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = env | {"AWS_ENDPOINT_URL_KMS": f"http://127.0.0.1:{port}"}
    started = time.perf_counter()
    shell(unreachable, "sign-message", "hi", "--kms-timeout", "1").refused(
        "kms_unavailable", "cannot reach KMS"
    )
    assert time.perf_counter() - started < 15  # a generous guard: the budget is 1 s

    kms = emulator.client()
    kms.disable_key(KeyId=kms.describe_key(KeyId=key_alias)["KeyMetadata"]["KeyId"])
    shell(env, "sign-message", "hi").refused("kms_key_invalid", "is disabled")
    # health reports it: the report on stdout, the problem on stderr, exit 1.
    health = shell(env, "health")
    assert health.status == 1
    report = json.loads(health.stdout)
    assert report["status"] == "unhealthy"
    assert health.stderr.splitlines() == report["problems"]
    assert report["problems"][0].startswith("kms_key_invalid: ")
    assert CONTROL.calls["Sign"] == 0


def test_usage_errors_are_one_line_and_exit_2(env: dict[str, str]) -> None:
    no_key = {k: v for k, v in env.items() if k != "VAULT_KEY_ID"}
    shell(no_key, "address").usage_error("no KMS key given", "--key-id", "VAULT_KEY_ID")
    shell(env, "sign-message", "hi", "--no-such-flag").usage_error("--no-such-flag")
    shell(env, "health", "--kms-timeout", "soon").usage_error("--kms-timeout")
    # No FILE and a terminal on stdin: refused rather than waiting for typing.
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [CLI, "sign-transaction"],
            env=env,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    Run(done.returncode, done.stdout, done.stderr).usage_error(
        "agentic-vault sign-transaction: error: give the JSON as FILE, or pipe it on stdin"
    )
    assert CONTROL.calls["Sign"] == 0


def test_a_closed_stdout_ends_quietly(env: dict[str, str]) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # `| true`: the reader is gone before anything is written
    try:
        done = subprocess.run(
            [CLI, "address"], env=env, stdout=writer, stderr=subprocess.PIPE, timeout=60
        )
    finally:
        os.close(writer)
    assert done.returncode == 128 + 13  # as a program SIGPIPE ends
    assert done.stderr == b""


def test_log_level_adds_the_servers_audit_line(env: dict[str, str]) -> None:
    run = shell(env, "sign-message", "logged", "--log-level", "info")
    assert run.status == 0
    signed = json.loads(run.stdout)
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    audit = [line for line in lines if line["logger"] == "agentic_vault.audit"]
    assert len(audit) == 1
    assert audit[0]["tool"] == "sign_message"
    assert audit[0]["client"] == f"cli:{USER}"
    assert (audit[0]["outcome"], audit[0]["signed"]) == ("ok", True)
    assert audit[0]["digest"] == signed["digest"]
    # An error, with a level asked for: the audit line, then the code line.
    run = shell(env | {"VAULT_LOG_LEVEL": "warning"}, "sign-message", "--hex", "zz")
    *logs, line = run.stderr.splitlines()
    assert line.startswith("invalid_input: message: ")
    assert [json.loads(log)["error_code"] for log in logs] == ["invalid_input"]


def test_the_input_bound_is_the_servers() -> None:
    from agentic_vault.commands.sign import MAX_INPUT_BYTES
    from agentic_vault.transports.stdio import MAX_REQUEST_BYTES

    assert MAX_INPUT_BYTES == MAX_REQUEST_BYTES
