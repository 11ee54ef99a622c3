"""``agentic-vault policy check FILE`` and ``policy explain FILE --transaction|… JSON``.

Both are offline: they read the file and the request, never KMS or the state
store. ``check`` prints what the policy allows in plain words (and what it
leaves open); ``explain`` prints the decision and the decoded effects of one
request. The rolling sums are not known offline, so ``explain`` shows what
would be reserved rather than whether it fits.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic_core import PydanticCustomError

from .._errors import InvalidInput
from .._fields import parse_address
from .._message import PersonalMessage
from .._transaction import TransactionRequest
from .._typed_data import parse_typed_data
from .decide import Request, evaluate
from .decode.nft import SET_APPROVAL_FOR_ALL
from .effects import Names
from .load import LoadedPolicy, PolicyFileError, load_policy_file
from .rules import Rules, TokenRules
from .units import chain_label, ether, gwei

EXIT_OK = 0
EXIT_BAD_REQUEST = 1
EXIT_BAD_FILE = 2
# Stands for the wallet when explain is not told its address (--from).
PLACEHOLDER_SIGNER = "0x0000000000000000000000000000000000000000"

RequestKind = Literal["transaction", "typed_data", "message"]


def check_file(path: str) -> tuple[bool, str]:
    """``(True, summary)`` for a usable file, ``(False, the error)`` for one that is not."""
    try:
        loaded = load_policy_file(path)
    except PolicyFileError as exc:
        return False, exc.message
    return True, summarize(loaded)


def summarize(loaded: LoadedPolicy) -> str:
    rules = loaded.policy.rules
    names = Names.from_rules(rules)
    lines = [
        f"policy {loaded.path} is valid (sha256 {loaded.sha256})",
        "Everything below is allowed; everything else is refused.",
        f"chains: {', '.join(chain_label(c) for c in sorted(rules.chains))}",
        f"deployments: {'allowed' if rules.allow_deploy else 'refused'}",
    ]
    lines.append("native coin: " + _native(rules, names))
    for token in rules.tokens.values():
        lines.append(f"token {token.name}: " + _token(token, names))
    for contract in rules.contracts.values():
        value = (
            f"up to {ether(contract.max_value)} of the native coin per call"
            if contract.max_value
            else "no value"
        )
        lines.append(
            f"contract {contract.name} ({_where(contract.addresses)}): "
            f"{contract.listed_functions()}; {value}"
        )
    lines.append(
        f"permits (EIP-2612, Permit2): deadlines at most {rules.max_validity:,} s ahead, "
        "to the spenders each token lists"
    )
    for rule in rules.typed_data_allow:
        lines.append(
            f"typed data allow[{rule.index}]: {', '.join(sorted(rule.primary_types))} for "
            f"{_where(rule.addresses)}"
        )
    lines.append("messages: " + _messages(rules))
    delegates = names.addresses(rules.delegates)
    lines.append(f"EIP-7702 delegation: {'to ' + delegates if rules.delegates else 'refused'}")
    fees = []
    if rules.max_fee_per_gas is not None:
        fees.append(f"at most {gwei(rules.max_fee_per_gas)} per gas")
    if rules.max_fee is not None:
        fees.append(f"at most {ether(rules.max_fee)} of the native coin per transaction")
    lines.append(f"fees: {'; '.join(fees) if fees else 'no limit'}")
    rate = f"at most {rules.max_per_hour:,} per hour" if rules.max_per_hour else "no limit"
    lines.append(f"signatures: {rate}")
    warnings = _warnings(loaded)
    if warnings:
        lines.append("warnings:")
        lines.extend(f"  - {warning}" for warning in warnings)
    return "\n".join(lines)


def _native(rules: Rules, names: Names) -> str:
    native = rules.native
    text = f"plain transfers to {names.addresses(native.to)}" if native.to else "no plain transfers"
    limits = []
    if native.max_per_tx is not None:
        limits.append(f"at most {ether(native.max_per_tx)} per transaction")
    if native.max_per_day is not None:
        limits.append(f"{ether(native.max_per_day)} per 24 h per chain")
    if native.approve_above is not None:
        limits.append(f"a person approves above {ether(native.approve_above)}")
    return text + (f"; {', '.join(limits)} (value sent to contracts counts)" if limits else "")


def _token(token: TokenRules, names: Names) -> str:
    parts = [f"{token.symbol}, {token.decimals} decimals, {_where(token.addresses)}"]
    parts.append(f"transfers to {names.addresses(token.to)}" if token.to else "no transfers")
    if token.max_per_tx is not None:
        parts.append(f"at most {token.amount(token.max_per_tx)} per transaction")
    if token.max_per_day is not None:
        parts.append(f"{token.amount(token.max_per_day)} per 24 h (transfers and approvals)")
    spenders = names.addresses(token.spenders)
    parts.append(f"approvals to {spenders}" if token.spenders else "no approvals")
    if token.max_allowance is not None:
        parts.append(f"at most {token.amount(token.max_allowance)} per approval")
    if token.approve_above is not None:
        parts.append(f"a person approves above {token.amount(token.approve_above)}")
    return "; ".join(parts)


def _where(addresses: Mapping[int, str]) -> str:
    return ", ".join(f"{address} on {chain_label(chain)}" for chain, address in addresses.items())


def _messages(rules: Rules) -> str:
    parts = []
    if rules.text:
        parts.append(
            f"text matching one of {len(rules.patterns)} patterns"
            if rules.patterns
            else "any printable text"
        )
    if rules.siwe_domains:
        parts.append("sign-in to " + ", ".join(sorted(rules.siwe_domains)))
    if rules.hex:
        parts.append("hex bytes (never 32 bytes)")
    return "; ".join(parts) if parts else "refused"


def _warnings(loaded: LoadedPolicy) -> list[str]:
    policy, rules = loaded.policy, loaded.policy.rules
    found = []
    native = rules.native
    if native.to and native.max_per_tx is None and native.max_per_day is None:
        found.append("native: transfers have no max_per_tx and no max_per_day")
    for token in rules.tokens.values():
        if (token.to or token.spenders) and token.max_per_day is None:
            found.append(f"tokens.{token.name}: no max_per_day, so there is no daily limit")
        if token.spenders and token.max_allowance is None:
            found.append(
                f"tokens.{token.name}: no max_allowance; any finite allowance to a listed "
                "spender is signed"
            )
        if (
            token.approve_above is not None
            and token.max_per_tx is not None
            and token.approve_above >= token.max_per_tx
        ):
            found.append(
                f"tokens.{token.name}.approve_above is not below max_per_tx: no transfer "
                "asks a person"
            )
    for contract in rules.contracts.values():
        if SET_APPROVAL_FOR_ALL in contract.functions:
            found.append(
                f"contracts.{contract.name} lists setApprovalForAll: any operator may be "
                "given a whole collection"
            )
    if rules.max_fee_per_gas is None and rules.max_fee is None:
        found.append("fees: no limit, so a transaction may pay any fee")
    if rules.max_per_hour is None:
        found.append("rate: no max_per_hour")
    if "max_validity" not in policy.typed_data.model_fields_set:
        found.append(
            f"typed_data.max_validity is not set; the default {rules.max_validity} s applies"
        )
    return found


def explain(path: str, kind: RequestKind, json_text: str, signer: str | None = None) -> str:
    """The decision on one request and what it would do; raises PolicyFileError or InvalidInput."""
    loaded = load_policy_file(path)
    request, encoding, claimed = _parse_request(kind, json_text)
    wallet = signer or claimed or PLACEHOLDER_SIGNER
    decision = evaluate(
        loaded, request, signer=wallet, now=datetime.now(UTC), message_encoding=encoding
    )
    lines = [f"decision: {decision.outcome}", f"key: {decision.key}"]
    if decision.outcome == "deny":
        lines.append(decision.denial)
    elif decision.outcome == "approve":
        lines.append(f"a person must approve: {decision.reason}")
    lines.append("effects:")
    lines.extend(f"  - {line}" for line in decision.summary.splitlines())
    if decision.reservations:
        lines.append("would reserve (the rolling sums are not read here):")
        for reservation in decision.reservations:
            lines.append(
                f"  - {reservation.format(reservation.amount)} of "
                f"{reservation.format(reservation.cap)} {reservation.window} ({reservation.key})"
            )
    note = "" if signer or claimed else " (a placeholder; pass --from with the wallet's address)"
    lines.append(f"wallet: {wallet}{note}")
    return "\n".join(lines)


def _parse_request(
    kind: RequestKind, json_text: str
) -> tuple[Request, Literal["utf8", "hex"], str | None]:
    """The request, the message encoding, and the wallet address the request names, if any."""
    try:
        value = json.loads(json_text)
    except ValueError as exc:
        raise InvalidInput(f"{kind}: is not valid JSON ({exc}).") from None
    if kind == "transaction":
        if isinstance(value, dict) and set(value) == {"transaction"}:
            value = value["transaction"]
        tx = TransactionRequest.parse(value)
        return tx, "utf8", tx.from_
    if kind == "typed_data":
        if isinstance(value, dict) and set(value) == {"typed_data"}:
            value = value["typed_data"]
        return parse_typed_data(value), "utf8", None
    encoding: Any = "utf8"
    if isinstance(value, dict):
        unknown = set(value) - {"message", "encoding"}
        if unknown or "message" not in value:
            raise InvalidInput(
                "message: give a JSON string, or an object with `message` and optional "
                "`encoding` (utf8 or hex)."
            )
        encoding = value.get("encoding", "utf8")
        value = value["message"]
    message = PersonalMessage.parse(value, encoding)
    return message, encoding, None


# -- argparse wiring ----------------------------------------------------------------------


def add_commands(subparsers: Any) -> None:
    """Add ``policy check`` and ``policy explain`` to the ``agentic-vault`` command line."""
    policy = subparsers.add_parser(
        "policy",
        help="check a policy file, or explain its decision on one request (offline)",
        description="Work with a signing policy file (see docs/policy.md). Nothing here "
        "calls KMS or reads the state store.",
    )
    policy.set_defaults(run=run_command)
    commands = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="validate FILE and summarize what it allows (exit 0 valid, 2 not)",
        description="Validate a policy file (permissions, TOML, every key) and print what it "
        "allows in plain words, with warnings for what it leaves open. Exit 0 if valid, "
        "2 if not.",
    )
    check.add_argument("file", metavar="FILE")
    explain_parser = commands.add_parser(
        "explain",
        help="the decision on one request and its decoded effects",
        description="Decide one request under the policy FILE and print the decision, the "
        "key that decided and what the request would do. JSON is the tool's argument (or "
        "the whole arguments object); '-' reads it from stdin, @PATH from a file. Exit 0 "
        "once explained (whatever the decision), 1 for a bad request, 2 for a bad file.",
    )
    explain_parser.add_argument("file", metavar="FILE")
    kind = explain_parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--transaction", metavar="JSON", help="an eth_signTransaction object")
    kind.add_argument("--typed-data", metavar="JSON", help="an eth_signTypedData_v4 payload")
    kind.add_argument(
        "--message",
        metavar="JSON",
        help='a JSON string, or {"message": ..., "encoding": "utf8"|"hex"}',
    )
    explain_parser.add_argument(
        "--from",
        dest="signer",
        metavar="0x…",
        help="the wallet's address (default: the transaction's `from`, else a placeholder "
        f"{PLACEHOLDER_SIGNER})",
    )


def run_command(args: argparse.Namespace) -> int:
    """Run ``policy check`` or ``policy explain``; the exit status."""
    if args.policy_command == "check":
        ok, text = check_file(args.file)
        print(
            text if ok else f"agentic-vault policy check: {text}",
            file=sys.stdout if ok else sys.stderr,
        )
        return EXIT_OK if ok else EXIT_BAD_FILE
    kinds: tuple[tuple[RequestKind, str | None], ...] = (
        ("transaction", args.transaction),
        ("typed_data", args.typed_data),
        ("message", args.message),
    )
    kind, text = next((k, v) for k, v in kinds if v is not None)
    try:
        signer = parse_address(args.signer) if args.signer else None
    except PydanticCustomError:
        print("agentic-vault policy explain: --from: must be a 0x address", file=sys.stderr)
        return EXIT_BAD_REQUEST
    try:
        print(explain(args.file, kind, _read_argument(text), signer))
    except PolicyFileError as exc:
        print(f"agentic-vault policy explain: {exc.message}", file=sys.stderr)
        return EXIT_BAD_FILE
    except (InvalidInput, OSError) as exc:
        print(f"agentic-vault policy explain: {exc}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    return EXIT_OK


def _read_argument(text: str) -> str:
    if text == "-":
        return sys.stdin.read()
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as source:
            return source.read()
    return text
