"""The MCP server: five tools, each a thin adapter over the signer.

    tools/call ─▶ _ContractTool.run ─▶ worker thread: validate → signer → result model
                                                        │
               ◀── CallToolResult (structured + JSON text, or isError "code: …") ◀─ audit line

The SDK validates tool arguments itself and words failures its own way; the
contract wants our error codes and refuses unknown arguments (which the SDK
drops), so each tool validates with its own pydantic model instead, and the
SDK only sees a tool that takes whatever it is given. Blocking KMS calls run
in worker threads under our own capacity limiter (the SDK's default pool runs
40 at a time), so concurrent calls are served concurrently.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from ._errors import InternalError, KmsUnavailable, VaultError
from ._fields import StrictModel, invalid_input_from
from ._logging import audit
from ._message import MAX_MESSAGE_BYTES, PersonalMessage
from ._results import AddressResult, HealthReport, SignedMessage, SignedTransaction
from ._signer import KmsSigner, prepare_transaction
from ._transaction import TransactionRequest
from ._typed_data import MAX_TYPED_DATA_BYTES, parse_typed_data
from ._version import __version__

logger = logging.getLogger("agentic_vault.server")

INSTRUCTIONS = """\
agentic-vault signs Ethereum data with a key held in AWS KMS; the key never leaves KMS.
Call get_address for the wallet address. sign_transaction returns a signed raw transaction
(broadcast it yourself with eth_sendRawTransaction: this server has no RPC and sends
nothing); sign_typed_data signs EIP-712 (eth_signTypedData_v4); sign_message signs EIP-191
personal_sign messages. health_check explains configuration problems. Errors start with
a code (invalid_input, policy_denied, address_mismatch, kms_access_denied, kms_key_invalid,
kms_unavailable, internal), then say what to fix. Amounts are in wei."""


# -- argument models (their JSON schemas are the tools' input schemas) --------------------


class NoArguments(StrictModel):
    """This tool takes no arguments."""


class SignTransactionArguments(StrictModel):
    transaction: TransactionRequest = Field(
        description="An eth_signTransaction object (a JSON string of one is accepted too). "
        "Required: chainId, nonce, gas, and gasPrice (types 0-1) or maxFeePerGas + "
        "maxPriorityFeePerGas (types 2-4). Quantities in wei as integers, decimal strings or "
        "0x hex strings."
    )


class SignTypedDataArguments(StrictModel):
    # Any here, checked by parse_typed_data: a union would report one error per branch.
    typed_data: Annotated[
        Any,
        WithJsonSchema(
            {
                "anyOf": [{"type": "object"}, {"type": "string"}],
                "description": "The eth_signTypedData_v4 payload {types, primaryType, domain, "
                "message}, as an object or a JSON string of one; types.EIP712Domain may be "
                f"omitted. At most {MAX_TYPED_DATA_BYTES // 1024} KiB of JSON.",
            }
        ),
    ]


class SignMessageArguments(StrictModel):
    # The limit is checked (and worded) by PersonalMessage.parse; the schema only shows it.
    message: str = Field(
        json_schema_extra={"maxLength": 2 + 2 * MAX_MESSAGE_BYTES},
        description="The message: text (encoding utf8) or 0x-prefixed hex bytes (encoding hex). "
        f"At most {MAX_MESSAGE_BYTES // 1024} KiB.",
    )
    encoding: Literal["utf8", "hex"] = Field(
        default="utf8", description="utf8 (default): sign the text; hex: sign the bytes"
    )


# -- the tools --------------------------------------------------------------------------


@dataclass
class CallRecord:
    """What the audit line says about one call; filled in as it becomes known."""

    tool: str
    address: str | None = None
    digest: str | None = None
    tx_hash: str | None = None
    chain_id: int | None = None
    to: str | None = None


Handler = Callable[[KmsSigner, Any, CallRecord], BaseModel]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    arguments: type[BaseModel]
    result: type[BaseModel]
    handler: Handler
    read_only: bool


def _get_address(signer: KmsSigner, _: NoArguments, record: CallRecord) -> AddressResult:
    info = signer.pinned_key_info()
    record.address = info.address
    return AddressResult(address=info.address)


def _sign_transaction(
    signer: KmsSigner, args: SignTransactionArguments, record: CallRecord
) -> SignedTransaction:
    unsigned = prepare_transaction(args.transaction)
    record.digest = "0x" + unsigned.digest.hex()
    record.chain_id = args.transaction.chain_id
    record.to = args.transaction.to
    signed = signer.sign_transaction(unsigned)
    record.tx_hash = signed.hash
    record.address = signed.from_
    return signed


def _sign_typed_data(
    signer: KmsSigner, args: SignTypedDataArguments, record: CallRecord
) -> SignedMessage:
    payload = parse_typed_data(args.typed_data, "typed_data")
    record.digest = "0x" + payload.digest.hex()
    record.chain_id = payload.chain_id
    record.to = payload.verifying_contract
    signed = signer.sign_typed_data(payload)
    record.address = signer.address
    return signed


def _sign_message(
    signer: KmsSigner, args: SignMessageArguments, record: CallRecord
) -> SignedMessage:
    message = PersonalMessage.parse(args.message, args.encoding, "message")
    record.digest = "0x" + message.digest.hex()
    signed = signer.sign_message(message)
    record.address = signer.address
    return signed


def _health_check(signer: KmsSigner, _: NoArguments, record: CallRecord) -> HealthReport:
    return signer.health()


TOOLS = (
    ToolSpec(
        name="get_address",
        title="Get the wallet address",
        description=(
            "Return the Ethereum address (EIP-55 checksummed) of the KMS-held key that this "
            "server signs with. Takes no arguments. Example result: "
            '{"address": "0x52908400098527886E0F7030069857D2E4169EE7"}.'
        ),
        arguments=NoArguments,
        result=AddressResult,
        handler=_get_address,
        read_only=True,
    ),
    ToolSpec(
        name="sign_transaction",
        title="Sign an Ethereum transaction",
        description=(
            "Sign a transaction with the KMS key and return it ready for "
            "eth_sendRawTransaction (this server never broadcasts). The argument is an "
            "eth_signTransaction object: chainId, nonce and gas are required (there is no "
            "RPC to fill them); fees per type: type 0/1 gasPrice, type 2/3/4 maxFeePerGas and "
            "maxPriorityFeePerGas; the type is inferred from the fee fields if absent. All "
            "amounts are in wei, as integers, decimal strings or 0x hex. `to` absent means "
            "contract creation. Legacy transactions always get EIP-155 replay protection. "
            'Example: {"transaction": {"chainId": 1, "nonce": 0, "gas": 21000, '
            '"maxFeePerGas": "30000000000", "maxPriorityFeePerGas": "1000000000", '
            '"to": "0x…", "value": "10000000000000000"}}. Returns raw_transaction, hash, '
            "from, type, v, r, s."
        ),
        arguments=SignTransactionArguments,
        result=SignedTransaction,
        handler=_sign_transaction,
        read_only=False,
    ),
    ToolSpec(
        name="sign_typed_data",
        title="Sign EIP-712 typed data",
        description=(
            "Sign EIP-712 typed data (what eth_signTypedData_v4 takes: permits, orders, "
            "sign-in requests) with the KMS key. The payload has types, primaryType, domain "
            "and message, as an object or as a JSON string; types.EIP712Domain may be "
            "omitted. Every message field must be declared in types and present. Example: "
            '{"typed_data": {"types": {"Mail": [{"name": "contents", "type": "string"}]}, '
            '"primaryType": "Mail", "domain": {"name": "Example", "chainId": 1}, '
            '"message": {"contents": "hello"}}}. Returns signature (0x r||s||v), digest, v, '
            "r, s."
        ),
        arguments=SignTypedDataArguments,
        result=SignedMessage,
        handler=_sign_typed_data,
        read_only=False,
    ),
    ToolSpec(
        name="sign_message",
        title="Sign a message (personal_sign)",
        description=(
            "Sign a message the EIP-191 personal_sign way (prefix "
            '"\\x19Ethereum Signed Message:\\n" + length). encoding "utf8" (default) signs '
            'the text; "hex" signs the bytes of a 0x hex string. Example: {"message": '
            '"Sign in to example.org", "encoding": "utf8"}. Returns signature (0x r||s||v), '
            "digest, v, r, s."
        ),
        arguments=SignMessageArguments,
        result=SignedMessage,
        handler=_sign_message,
        read_only=False,
    ),
    ToolSpec(
        name="health_check",
        title="Check the signer's configuration",
        description=(
            "Check that the KMS key is reachable and usable (DescribeKey, and GetPublicKey "
            "once): reports status ok or unhealthy, the address, key ARN, spec, usage, state, "
            "region, the kind of AWS credential source, KMS latency, and a list of problems, "
            "each saying how to fix it. Takes no arguments. Call it when signing fails."
        ),
        arguments=NoArguments,
        result=HealthReport,
        handler=_health_check,
        read_only=True,
    ),
)


# -- plumbing -----------------------------------------------------------------------------


class _AnyArguments(ArgModelBase):
    """Lets every argument through to our own validation."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)


class _ContractTool(Tool):
    """An SDK tool whose run() is ours: our validation, our error results."""

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        return await self.fn(arguments)


class ToolRunner:
    """Runs tool calls in worker threads, writes the audit line, shapes the result."""

    def __init__(self, signer: KmsSigner) -> None:
        self.signer = signer
        self.limiter = anyio.CapacityLimiter(signer.config.max_concurrency)
        self.call_timeout = signer.config.call_timeout
        self._running = 0
        self._answering = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Calls not yet answered: running in a worker thread (abandoned ones too) or returning."""
        return self._running + self._answering

    async def call(self, spec: ToolSpec, arguments: dict[str, Any]) -> CallToolResult:
        self._answering += 1
        try:
            return await self._call_with_watchdog(spec, arguments)
        finally:
            self._answering -= 1

    async def _call_with_watchdog(
        self, spec: ToolSpec, arguments: dict[str, Any]
    ) -> CallToolResult:
        with anyio.move_on_after(self.call_timeout):
            return await anyio.to_thread.run_sync(
                partial(self._call_sync, spec, arguments),
                limiter=self.limiter,
                abandon_on_cancel=True,
            )
        # The thread runs on and writes its own audit line when it ends.
        logger.error("tool %s abandoned after %.0f s", spec.name, self.call_timeout)
        return _error_result(
            KmsUnavailable(
                f"{spec.name} got no answer within {self.call_timeout:g} s and was abandoned; "
                "nothing was returned. Something outside the network timeouts hangs: most "
                "often a credential_process helper that never exits, or DNS. Run the "
                "profile's credential_process by hand, and check name resolution."
            )
        )

    def _call_sync(self, spec: ToolSpec, arguments: dict[str, Any]) -> CallToolResult:
        with self._lock:
            self._running += 1
        try:
            return self._call_and_audit(spec, arguments)
        finally:
            with self._lock:
                self._running -= 1

    def _call_and_audit(self, spec: ToolSpec, arguments: dict[str, Any]) -> CallToolResult:
        record = CallRecord(tool=spec.name)
        started = time.perf_counter()
        try:
            try:
                args = spec.arguments.model_validate(arguments)
            except ValidationError as exc:
                raise invalid_input_from(exc, root="") from None
            result = spec.handler(self.signer, args, record)
        except VaultError as error:
            self._audit(record, started, error)
            return _error_result(error)
        except Exception:
            logger.exception("tool %s failed unexpectedly", spec.name)
            bug = InternalError(
                f"{spec.name} failed unexpectedly; nothing was signed. The server log has the "
                "details; please report it."
            )
            self._audit(record, started, bug)
            return _error_result(bug)
        self._audit(record, started, None)
        structured = result.model_dump(mode="json", by_alias=True)
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(structured))],
            structured_content=structured,
        )

    def audit_refusal(self, tool: str | None, text: str) -> None:
        """The audit line of a tool call the transport refused before it reached us."""
        audit(
            "tool call",
            tool=tool,
            outcome="error",
            error_code="invalid_input",
            error=text.removeprefix("invalid_input: "),
        )

    def _audit(self, record: CallRecord, started: float, error: VaultError | None) -> None:
        audit(
            "tool call",
            tool=record.tool,
            address=record.address,
            outcome="error" if error else "ok",
            error_code=error.code if error else None,
            error=error.message if error else None,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            digest=record.digest,
            tx_hash=record.tx_hash,
            chain_id=record.chain_id,
            to=record.to,
        )


def _error_result(error: VaultError) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=str(error))], is_error=True)


def build_server(signer: KmsSigner, runner: ToolRunner | None = None) -> MCPServer:
    """The MCP server exposing ``signer`` through the contract's five tools."""
    runner = runner or ToolRunner(signer)
    tools = [_tool(spec, runner) for spec in TOOLS]
    return MCPServer(
        name="agentic-vault",
        title="agentic-vault",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=tools,
    )


def _tool(spec: ToolSpec, runner: ToolRunner) -> Tool:
    async def call(arguments: dict[str, Any]) -> CallToolResult:
        return await runner.call(spec, arguments)

    annotations = ToolAnnotations(
        title=spec.title,
        read_only_hint=spec.read_only,
        # A signature can move funds: clients should ask before they let an agent sign.
        destructive_hint=not spec.read_only,
        idempotent_hint=spec.read_only,
        open_world_hint=True,
    )
    return _ContractTool(
        fn=call,
        name=spec.name,
        title=spec.title,
        description=spec.description,
        parameters=spec.arguments.model_json_schema(by_alias=True),
        fn_metadata=FuncMetadata(
            arg_model=_AnyArguments,
            output_schema=spec.result.model_json_schema(by_alias=True, mode="serialization"),
        ),
        is_async=True,
        annotations=annotations,
    )
