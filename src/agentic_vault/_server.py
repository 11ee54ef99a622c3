"""The MCP server: five tools, each a thin adapter over the vault.

    tools/call ─▶ _ContractTool.run ─▶ ToolRunner.call
        worker: validate → Subject → vault.prepare (policy)       ─┐
        event loop: a person, if the policy asks (elicitation)      │ one call,
        worker: vault.execute (reserve, record, kms:Sign, record) ─┘ one audit line
      ◀── CallToolResult (structured + JSON text, or isError "code: …")

The SDK validates tool arguments itself and words failures its own way; the
contract wants our error codes and refuses unknown arguments (which the SDK
drops), so each tool validates with its own pydantic model instead, and the
SDK only sees a tool that takes whatever it is given.

Blocking work runs on a fixed pool of ``max_concurrency`` threads: a thread
is a call's slot until its work ends, whatever the caller does (cancels, or
is answered by the watchdog), so threads never exceed the limit. A call
cancelled before its work starts never runs; one cancelled in flight stops
before ``kms:Sign`` if it has not reached it, and its audit line says what
became of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol, TypeVar

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.request_state import RequestStateSecurity
from mcp_types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from ._errors import InternalError, InvalidInput, KmsUnavailable, VaultError
from ._fields import StrictModel, invalid_input_from
from ._logging import audit
from ._message import MAX_MESSAGE_BYTES
from ._results import AddressResult, HealthReport, SignedMessage, SignedTransaction
from ._transaction import TransactionRequest
from ._typed_data import MAX_TYPED_DATA_BYTES
from ._vault import Call, CallCancelled, Guard, Prepared, Subject, Vault
from ._version import __version__

logger = logging.getLogger("agentic_vault.server")
T = TypeVar("T")

INSTRUCTIONS = """\
agentic-vault signs Ethereum data with a key held in AWS KMS; the key never leaves KMS.
Call get_address for the wallet address. sign_transaction returns a signed raw transaction
(broadcast it yourself with eth_sendRawTransaction: this server has no RPC and sends
nothing); sign_typed_data signs EIP-712 (eth_signTypedData_v4); sign_message signs EIP-191
personal_sign messages. A policy may limit what is signed: a refusal says which rule
refused and what would pass; some requests need a person's approval first. health_check
explains configuration problems. Errors start with a code (invalid_input, policy_denied,
approval_required, address_mismatch, kms_access_denied, kms_key_invalid, kms_unavailable,
state_unavailable, internal), then say what to fix. Amounts are in wei."""


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


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    arguments: type[BaseModel]
    result: type[BaseModel]
    # What will be signed, from the validated arguments; None for the tools that only read.
    subject: Callable[[Any], Subject] | None
    read_only: bool


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
        subject=None,
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
        subject=lambda a: Subject.of_transaction(a.transaction),
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
        subject=lambda a: Subject.of_typed_data(a.typed_data),
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
        subject=lambda a: Subject.of_message(a.message, a.encoding),
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
        subject=None,
        read_only=True,
    ),
)


# -- plumbing -----------------------------------------------------------------------------

TOOL_NAMES = tuple(spec.name for spec in TOOLS)


# -- plumbing -----------------------------------------------------------------------------


class _AnyArguments(ArgModelBase):
    """Lets every argument through to our own validation."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)


class _ContractTool(Tool):
    """An SDK tool whose run() is ours: our validation, our error results."""

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        return await self.fn(arguments, context)


class ToolRunner:
    """Runs tool calls through the vault on a fixed thread pool; one audit line per call."""

    def __init__(self, vault: Vault) -> None:
        config = vault.signer.config
        self.vault = vault
        self.call_timeout = config.call_timeout
        self.pool = ThreadPoolExecutor(
            max_workers=config.max_concurrency, thread_name_prefix="agentic-vault-call"
        )
        self.stopping: str | None = None
        self._answering = 0
        self._busy = 0
        self._busy_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        """Calls not yet answered, and work still running for calls already answered."""
        return self._answering + self._busy

    async def call(self, spec: ToolSpec, arguments: dict[str, Any], context: Any) -> Any:
        slot = request_slot(context)
        if slot is None:
            return await self._call(spec, arguments, context)
        slot.hold()  # until the call ends, even if its HTTP request ended first
        reset = _SLOT.set(slot)  # and until its worker thread ends: see in_worker
        try:
            return await self._call(spec, arguments, context)
        finally:
            _SLOT.reset(reset)
            slot.release()

    async def _call(self, spec: ToolSpec, arguments: dict[str, Any], context: Any) -> Any:
        call = Call(spec.name, client_name(context), guard=caller_guard(context))
        started = time.perf_counter()
        self._answering += 1
        try:
            if self.stopping is not None:
                raise KmsUnavailable(
                    f"the server is stopping ({self.stopping}) and takes no new calls; nothing "
                    "was signed. Send the request again once it has restarted."
                )
            result = await self._run(spec, arguments, call, context)
        except VaultError as error:
            # Its traceback holds the frames, and so the arguments, of the call; and the
            # worker's future holds the error: a cycle that would keep a large request in
            # memory until the next full garbage collection.
            error.__traceback__ = error.__context__ = None
            self._audit(call, started, error)
            return _error_result(error)
        except CallCancelled:
            # Cancelled between its steps: the caller is gone, nothing to answer.
            self._audit(call, started, None, "cancelled")
            raise anyio.get_cancelled_exc_class()() from None
        except anyio.get_cancelled_exc_class():
            call.cancelled.set()
            self._audit(call, started, None, "cancelled")
            raise
        except Exception:
            logger.exception("tool %s failed unexpectedly", spec.name)
            bug = InternalError(
                f"{spec.name} failed unexpectedly; nothing was signed. The server log has the "
                "details; please report it."
            )
            self._audit(call, started, bug)
            return _error_result(bug)
        finally:
            self._answering -= 1
        if isinstance(result, InputRequiredResult):
            return result  # the question of an elicitation (2026-07-28): no audit line yet
        self._audit(call, started, None)
        structured = result.model_dump(mode="json", by_alias=True)
        return CallToolResult(
            content=[TextContent(type="text", text=json.dumps(structured))],
            structured_content=structured,
        )

    async def _run(
        self, spec: ToolSpec, arguments: dict[str, Any], call: Call, context: Any
    ) -> Any:
        """One hop to a worker thread for the whole call; two more if a person is asked."""
        done = await self.in_worker(call, lambda: self._work_of(spec, arguments, call, context))
        if not isinstance(done, Prepared):
            return done
        # The policy asks a person, and this client can ask one.
        from .approval import elicitation

        asked = await elicitation.ask(
            self.vault, done, call, context, lambda work: self.in_worker(call, work)
        )
        if not isinstance(asked, str):
            return asked  # the question itself (2026-07-28): the client calls again
        return await self.in_worker(call, lambda: self.vault.execute(done, call, asked))

    def _work_of(
        self, spec: ToolSpec, arguments: dict[str, Any], call: Call, context: Any
    ) -> BaseModel | Prepared:
        """Validate, then read, or prepare and (unless a person is to be asked) execute."""
        args = _validate(spec, arguments)
        if spec.subject is None:
            if spec.name == "health_check":
                return self.vault.health(call)
            return self.vault.address(call)
        prepared = self.vault.prepare(spec.subject(args), call)
        if prepared.needs_approval and self._elicitable(context, prepared, call):
            return prepared  # the person is asked from the event loop
        return self.vault.execute(prepared, call)

    def _elicitable(self, context: Any, prepared: Prepared, call: Call) -> bool:
        from .approval.elicitation import can_ask

        return can_ask(self.vault, prepared, call, context)

    async def in_worker(self, call: Call, work: Callable[[], T]) -> T:
        """``work()`` on a pool thread; the watchdog answers after ``call_timeout``."""
        future = self.pool.submit(self._work, call, work)
        try:
            with anyio.fail_after(self.call_timeout):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            call.cancelled.set()
            future.add_done_callback(lambda _: self._late_line(call))
            _hold_until_done(future)
            logger.error("tool %s abandoned after %.0f s", call.tool, self.call_timeout)
            raise KmsUnavailable(
                f"{call.tool} got no answer within {self.call_timeout:g} s and was abandoned; "
                "nothing was returned, and it will not be signed if it has not been already "
                "(the audit log says which). Something outside the network timeouts hangs: "
                "most often a credential_process helper that never exits, or DNS. Run the "
                "profile's credential_process by hand, check name resolution, and run "
                "`agentic-vault doctor`."
            ) from None
        except anyio.get_cancelled_exc_class():
            call.cancelled.set()
            if not future.cancel():
                future.add_done_callback(lambda _: self._late_line(call))
                _hold_until_done(future)
            raise

    def _work(self, call: Call, work: Callable[[], T]) -> T:
        if call.cancelled.is_set():
            raise CallCancelled  # cancelled while it waited for a thread: never run
        with self._busy_lock:
            self._busy += 1
        try:
            return work()
        finally:
            with self._busy_lock:
                self._busy -= 1

    def _late_line(self, call: Call) -> None:
        """The audit line of work that ended after its call was answered or cancelled."""
        audit(
            "abandoned call finished",
            tool=call.tool,
            client=call.client,
            outcome="cancelled",
            signed=call.signed,
            digest=call.record.digest,
            tx_hash=call.record.tx_hash,
            delivered=False,
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

    def _audit(
        self, call: Call, started: float, error: VaultError | None, outcome: str | None = None
    ) -> None:
        call.write_audit_line(started, error, outcome)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _from_request(context: Any, key: str) -> Any:
    """What the HTTP gate put in the request state under ``key`` (transports/http.py's
    ``TokenGate._admit``); None over stdio, where a call has no HTTP request."""
    request = getattr(getattr(context, "request_context", None), "request", None)
    return getattr(getattr(request, "state", None), key, None)


def client_name(context: Any) -> str:
    """Who is calling, for the audit trail: the HTTP token's name as it is (the contract's
    `client`), else ``stdio:`` and the name the stdio client gave itself."""
    name = _from_request(context, "token_name")
    if name:
        return str(name)
    session = getattr(context, "session", None)
    params = getattr(session, "client_params", None)
    info = getattr(params, "client_info", None)
    name = getattr(info, "name", None)
    return f"stdio:{name}" if isinstance(name, str) and name else "stdio"


class Slot(Protocol):
    """A share of the caller's concurrency limit (HTTP: one of its token's requests)."""

    def hold(self) -> None: ...
    def release(self) -> None: ...


# The slot of the HTTP request whose tool call this task runs (None over stdio).
_SLOT: ContextVar[Slot | None] = ContextVar("agentic_vault_slot", default=None)


def _hold_until_done(future: Future[Any]) -> None:
    """Work left running by a call that was answered (abandoned, cancelled) keeps its
    caller's slot until the thread ends: a client cannot hang up its way past its limit."""
    slot = _SLOT.get()
    if slot is None:
        return
    slot.hold()
    loop = asyncio.get_running_loop()
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(slot.release))


def request_slot(context: Any) -> Slot | None:
    """The slot of the HTTP request that carried this call; None over stdio."""
    slot = _from_request(context, "slot")
    return slot if hasattr(slot, "hold") and hasattr(slot, "release") else None


def caller_guard(context: Any) -> Guard | None:
    """The policy of the HTTP token that made this call, if it has one of its own."""
    guard = _from_request(context, "guard")
    return guard if isinstance(guard, Guard) else None


def _validate(spec: ToolSpec, arguments: dict[str, Any]) -> BaseModel:
    try:
        return spec.arguments.model_validate(arguments)
    except ValidationError as exc:
        raise invalid_input_from(exc, root="") from None


def _error_result(error: VaultError) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=str(error))], is_error=True)


def unknown_tool(name: object) -> InvalidInput:
    return InvalidInput(
        f"name: there is no tool {name!r}; this server has {', '.join(TOOL_NAMES)}."
    )


class _VaultServer(MCPServer):
    """The SDK's server, with an unknown tool refused in the contract's words."""

    runner: ToolRunner

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        if name not in TOOL_NAMES:
            error = unknown_tool(name)
            self.runner.audit_refusal(name if isinstance(name, str) else None, str(error))
            return _error_result(error)
        return await super().call_tool(name, arguments, context)


def build_server(vault: Vault, runner: ToolRunner | None = None) -> MCPServer:
    """The MCP server exposing ``vault`` through the contract's five tools."""
    runner = runner or ToolRunner(vault)
    server = _VaultServer(
        name="agentic-vault",
        title="agentic-vault",
        version=__version__,
        instructions=INSTRUCTIONS,
        tools=[_tool(spec, runner) for spec in TOOLS],
        # The approval question's sealed state (2026-07-28) must outlive the wait for a person.
        request_state_security=RequestStateSecurity.ephemeral(ttl=max(600.0, vault.approval_ttl)),
    )
    server.runner = runner
    return server


def _tool(spec: ToolSpec, runner: ToolRunner) -> Tool:
    async def call(arguments: dict[str, Any], context: Any) -> Any:
        return await runner.call(spec, arguments, context)

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
