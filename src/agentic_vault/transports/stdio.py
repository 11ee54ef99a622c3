"""MCP over stdio with bounded input, where every line gets an answer.

The SDK's stdio transport reads lines of any length, parses JSON leniently
(the last of two equal keys wins) and silently drops a line it cannot parse;
a client then waits forever. This transport:

- holds at most ``MAX_REQUEST_BYTES`` of one line in memory; a longer line is
  read through, dropped, and answered;
- parses strictly: a key repeated anywhere is refused (a tool error naming the
  key when it is inside a tool's arguments, a JSON-RPC error otherwise), so a
  gateway in front of us and we never read two different requests;
- answers every line JSON-RPC says to answer: a line that is not JSON-RPC, an
  invalid id (``1.5``, ``null``), a batch (each request in it gets an error:
  MCP has no batches), and a last line without its newline;
- stops reading while too many requests, or too many bytes of them, wait for
  an answer (backpressure: the client's writes block, our memory does not grow);
- takes fd 0 and fd 1 for itself while serving: fd 0 then reads /dev/null (a
  ``credential_process`` helper cannot swallow protocol bytes) and fd 1 writes
  to stderr (a stray ``print`` cannot corrupt a frame);
- reads and writes pipes without blocking, on the event loop, and ends the
  session quietly when the client closes our stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import mcp_types as types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from .._json import DuplicateKey, InvalidJson, TooDeep, format_path
from .._json import loads as strict_loads

logger = logging.getLogger("agentic_vault.server")

MAX_REQUEST_BYTES = 2 * 1024 * 1024
_PEEK = 4096
_CHUNK = 256 * 1024
# Where clients put the id: first (Python SDK: jsonrpc, id, method...) or last (TS SDK).
_ID_FIRST = re.compile(
    rb'^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,200}")'
)
_ID_LAST = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,200}")\s*\}\s*$')
_METHOD = re.compile(rb'"method"\s*:\s*"([A-Za-z0-9_/.$-]{1,100})"')

RequestId = int | str
# Called for each refused tools/call with (tool name or None, the error text).
RefusalHook = Callable[[str | None, str], None]


@dataclass(frozen=True)
class Limits:
    """How much unanswered input the server holds before it stops reading."""

    max_pending: int = 128
    max_pending_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class _Refused:
    """A line we will not pass on: what we know of it and why."""

    head: bytes
    tail: bytes
    size: int
    reason: str  # "too_large", "not_json", "too_deep", "not_jsonrpc"
    parsed: Any = None


class _Backlog:
    """Requests read and not yet answered; reading waits while there are too many."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._sizes: dict[RequestId, list[int]] = {}
        self._count = 0
        self._bytes = 0
        self._room = anyio.Event()
        self._room.set()
        self._empty = anyio.Event()

    def add(self, request_id: RequestId, size: int) -> None:
        self._sizes.setdefault(request_id, []).append(size)
        self._count += 1
        self._bytes += size
        if self._full():
            self._room = anyio.Event()

    def answered(self, request_id: object) -> None:
        if not isinstance(request_id, int | str):
            return
        sizes = self._sizes.get(request_id)
        if not sizes:
            return
        self._bytes -= sizes.pop(0)
        self._count -= 1
        if not sizes:
            del self._sizes[request_id]
        if not self._full():
            self._room.set()
        if not self._count:
            self._empty.set()

    async def drained(self) -> None:
        """Wait until every request read so far has been answered."""
        while self._count:
            self._empty = anyio.Event()
            await self._empty.wait()

    def _full(self) -> bool:
        return (
            self._count >= self.limits.max_pending or self._bytes >= self.limits.max_pending_bytes
        )

    async def wait_for_room(self) -> None:
        if self._full():
            logger.info(
                "%d requests (%d bytes) wait for an answer; reading stdin again once some are "
                "answered",
                self._count,
                self._bytes,
            )
        await self._room.wait()


@asynccontextmanager
async def stdio_transport(
    on_refused: RefusalHook | None = None,
    limits: Limits | None = None,
    answer_grace: float = 60.0,
) -> AsyncIterator[
    tuple[
        anyio.abc.ObjectReceiveStream[SessionMessage | Exception],
        anyio.abc.ObjectSendStream[SessionMessage],
    ]
]:
    """Read and write streams for a low-level MCP server, over this process's stdio.

    At EOF the read stream stays open until every request read has been answered
    (at most ``answer_grace`` seconds): the SDK ends the session, and drops the
    answers still to come, as soon as it sees the end of its input.
    """
    in_fd, out_fd = claim_stdio()
    write_frame = _frame_writer(out_fd)
    write_lock = anyio.Lock()
    backlog = _Backlog(limits or Limits())
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def emit(line: bytes) -> None:
        async with write_lock:  # one frame at a time, never interleaved
            await write_frame(line + b"\n")

    async def answer(message: types.JSONRPCMessage | list[types.JSONRPCMessage]) -> None:
        await emit(_dump(message))

    async def reader() -> None:
        async with read_writer:
            async for item in _lines(in_fd):
                await backlog.wait_for_room()
                outcome = _read_message(item, on_refused)
                if isinstance(outcome, types.JSONRPCRequest):
                    backlog.add(outcome.id, len(item) if isinstance(item, bytes) else 0)
                elif (
                    isinstance(outcome, types.JSONRPCNotification)
                    and outcome.method == "notifications/cancelled"
                ):
                    # A cancelled request gets no answer: it leaves the backlog now.
                    backlog.answered((outcome.params or {}).get("requestId"))
                if isinstance(outcome, types.JSONRPCRequest | types.JSONRPCNotification):
                    await read_writer.send(SessionMessage(outcome))
                elif isinstance(outcome, _Reply):
                    await read_writer.send(SessionMessage(outcome.message))
                elif outcome is not None:
                    await answer(outcome)
            with anyio.move_on_after(answer_grace):
                await backlog.drained()

    async def writer() -> None:
        async with write_reader:
            async for session_message in write_reader:
                message = session_message.message
                await answer(message)
                if isinstance(message, types.JSONRPCResponse | types.JSONRPCError):
                    backlog.answered(message.id)

    async with anyio.create_task_group() as tasks:

        async def stop_when_stdout_closes(run: Callable[[], Awaitable[None]]) -> None:
            try:
                await run()
            except (BrokenPipeError, ConnectionResetError):
                logger.info("the client closed stdout; stopping")
                tasks.cancel_scope.cancel()

        tasks.start_soon(stop_when_stdout_closes, reader)
        tasks.start_soon(stop_when_stdout_closes, writer)
        try:
            yield read_stream, write_stream
        finally:
            restore_stdio(in_fd, out_fd)
            tasks.cancel_scope.cancel()


def _dump(message: types.JSONRPCMessage | list[types.JSONRPCMessage]) -> bytes:
    if isinstance(message, list):
        return b"[" + b",".join(_dump(item) for item in message) + b"]"
    return message.model_dump_json(by_alias=True, exclude_unset=True).encode()


def claim_stdio() -> tuple[int, int]:
    """Private copies of fd 0 and 1; fd 0 then reads /dev/null and fd 1 writes to stderr."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    _CLAIMED[:] = [in_fd, out_fd]
    return in_fd, out_fd


_CLAIMED: list[int] = []


def restore_stdio(*fds: int) -> None:
    """Blocking mode back on our pipes: their descriptions may be shared with our parent.

    Called on every way out, ``os._exit`` included (with no arguments: the fds claimed).
    """
    for fd in fds or tuple(_CLAIMED):
        with contextlib.suppress(OSError):
            os.set_blocking(fd, True)


def _pollable(fd: int) -> bool:
    """Pipes and sockets wait on the event loop. Not regular files (epoll refuses them),
    nor terminals: O_NONBLOCK would reach the user's shell, which shares the terminal."""
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _shares_stderr(fd: int) -> bool:
    """Whether ``fd`` is stderr's pipe or file too (``2>&1``): O_NONBLOCK would reach stderr."""
    ours, err = os.fstat(fd), os.fstat(2)
    return (ours.st_dev, ours.st_ino) == (err.st_dev, err.st_ino)


def _frame_writer(fd: int) -> Callable[[bytes], Awaitable[None]]:
    if _pollable(fd) and not _shares_stderr(fd):
        os.set_blocking(fd, False)

        async def write_nonblocking(data: bytes) -> None:
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    await anyio.wait_writable(fd)

        return write_nonblocking

    async def write_in_thread(data: bytes) -> None:
        def write_all() -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        await anyio.to_thread.run_sync(write_all)

    return write_in_thread


def _chunk_reader(fd: int) -> Callable[[], Awaitable[bytes]]:
    if _pollable(fd):
        os.set_blocking(fd, False)

        async def read_nonblocking() -> bytes:
            while True:
                try:
                    return os.read(fd, _CHUNK)
                except BlockingIOError:
                    await anyio.wait_readable(fd)

        return read_nonblocking

    async def read_in_thread() -> bytes:
        return await anyio.to_thread.run_sync(os.read, fd, _CHUNK)

    return read_in_thread


async def _lines(fd: int) -> AsyncIterator[bytes | _Refused]:
    """Complete lines, or a ``_Refused`` for one longer than ``MAX_REQUEST_BYTES``.

    Never holds more than ``MAX_REQUEST_BYTES`` (plus one chunk) of a line: past
    that, the rest of the line is counted and dropped, keeping its ends. A last
    line without a newline before EOF is a line too.
    """
    read = _chunk_reader(fd)
    pending = bytearray()
    oversized: _Refused | None = None
    while True:
        chunk = await read()
        start = 0
        while True:
            newline = chunk.find(b"\n", start) if chunk else -1
            piece = chunk[start:] if newline < 0 else chunk[start:newline]
            if oversized is not None:
                oversized = _Refused(
                    oversized.head,
                    (oversized.tail + piece)[-_PEEK:],
                    oversized.size + len(piece),
                    "too_large",
                )
            else:
                pending += piece
                if len(pending) > MAX_REQUEST_BYTES:
                    oversized = _Refused(
                        bytes(pending[:_PEEK]), bytes(pending[-_PEEK:]), len(pending), "too_large"
                    )
                    pending.clear()
            if newline < 0 and chunk:
                break
            if oversized is not None:
                yield _Refused(oversized.head, oversized.tail.rstrip(), oversized.size, "too_large")
                oversized = None
            elif pending.strip():
                yield bytes(pending)
            pending.clear()
            if not chunk:
                return  # EOF, after the unterminated last line (if any)
            start = newline + 1


# -- reading one line ----------------------------------------------------------------------

Answer = types.JSONRPCMessage | list[types.JSONRPCMessage]


@dataclass(frozen=True)
class _Reply:
    """A response from the client: passed on to the session, never answered."""

    message: types.JSONRPCResponse | types.JSONRPCError


def _read_message(
    item: bytes | _Refused, on_refused: RefusalHook | None
) -> types.JSONRPCRequest | types.JSONRPCNotification | _Reply | Answer | None:
    """The message to pass on, or the answer to send back, or None (a refused notification)."""
    if isinstance(item, _Refused):
        return _answer(item, on_refused)
    try:
        value = strict_loads(item)
    except DuplicateKey as repeated:
        return _answer_duplicate(item, repeated, on_refused)
    except TooDeep:
        return _answer(_refused(item, "too_deep"), on_refused)
    except InvalidJson:
        return _answer(_refused(item, "not_json"), on_refused)
    if isinstance(value, list):
        return _answer_batch(value)
    if _depth_exceeds(value, 64):
        return _answer(_refused(item, "too_deep", value), on_refused)
    if isinstance(value, dict) and "id" in value and not _valid_id(value["id"]):
        # The SDK's model would read it as a notification and never answer.
        return _answer(_refused(item, "not_jsonrpc", value), on_refused)
    try:
        message = types.jsonrpc_message_adapter.validate_python(value, by_name=False)
    except ValidationError:
        return _answer(_refused(item, "not_jsonrpc", value), on_refused)
    if isinstance(message, types.JSONRPCRequest | types.JSONRPCNotification):
        return message
    # The client's answer to a request of ours (elicitation/create): the session awaits it.
    return _Reply(message)


def _refused(line: bytes, reason: str, parsed: Any = None) -> _Refused:
    return _Refused(line[:_PEEK], line.rstrip()[-_PEEK:], len(line), reason, parsed)


def _depth_exceeds(value: Any, limit: int) -> bool:
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)
    return False


_REASONS = {
    "too_large": "the request is {size} bytes; this server reads requests of at most "
    f"{MAX_REQUEST_BYTES // (1024 * 1024)} MiB (tool limits: a message 64 KiB, typed data "
    "256 KiB of JSON, transaction data 128 KiB). Send less.",
    "too_deep": "the request is nested too deeply to be parsed; no tool argument needs more "
    "than a few dozen levels. Flatten it.",
    "not_json": "the request is not valid JSON.",
    "not_jsonrpc": "the request is not a valid JSON-RPC 2.0 message.",
}
_TOOL_REFUSALS = ("too_large", "too_deep")


def _answer(refused: _Refused, on_refused: RefusalHook | None) -> types.JSONRPCMessage | None:
    request_id, method, tool, has_id = _identify(refused)
    reason = _REASONS[refused.reason].format(size=refused.size)
    code = types.PARSE_ERROR if refused.reason == "not_json" else types.INVALID_REQUEST
    if not has_id and method is not None and refused.reason == "not_jsonrpc":
        return None  # a notification: JSON-RPC never answers those
    # A tool call too big or too deep to read is still a tool call: answer it as one.
    if request_id is not None and method == "tools/call" and refused.reason in _TOOL_REFUSALS:
        return _tool_error(request_id, tool, f"invalid_input: {reason}", on_refused)
    if has_id and request_id is None and refused.reason == "not_jsonrpc":
        reason = (
            "the request's id must be a string or an integer (JSON-RPC 2.0 and MCP); "
            "it was not, so this answer carries a null id."
        )
    return _error(request_id, code, reason)


def _tool_error(
    request_id: RequestId, tool: str | None, text: str, on_refused: RefusalHook | None
) -> types.JSONRPCResponse:
    if on_refused is not None:
        on_refused(tool, text)
    result = types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], is_error=True
    )
    return types.JSONRPCResponse(
        jsonrpc="2.0",
        id=request_id,
        result=result.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


def _answer_duplicate(
    line: bytes, repeated: DuplicateKey, on_refused: RefusalHook | None
) -> types.JSONRPCMessage:
    """A repeated key: a tool error if it is inside a tool's arguments, else a JSON-RPC error."""
    lenient = json.loads(line)  # parses: strict parsing failed only on the repeated key
    envelope = lenient if isinstance(lenient, dict) else {}
    request_id = envelope.get("id") if _valid_id(envelope.get("id")) else None
    if repeated.path == () and repeated.key == "id":
        request_id = None  # which of the two ids would be the caller's?
    params = envelope.get("params")
    tool = params.get("name") if isinstance(params, dict) else None
    if (
        request_id is not None
        and envelope.get("method") == "tools/call"
        and repeated.path[:2] == ("params", "arguments")
    ):
        where = format_path((*repeated.path[2:], repeated.key), "")
        text = (
            f"invalid_input: {where}: appears more than once in the request; send each key "
            "once (which of the two values would be signed is not something to guess)."
        )
        return _tool_error(request_id, tool if isinstance(tool, str) else None, text, on_refused)
    where = format_path((*repeated.path, repeated.key), "")
    return _error(
        request_id,
        types.INVALID_REQUEST,
        f"the request repeats the key {where}; send each key once.",
    )


def _answer_batch(batch: list[Any]) -> Answer | None:
    """MCP has no batches: each request in one gets an error, as JSON-RPC 2.0 shapes it."""
    reason = (
        "JSON-RPC batches are not part of MCP (since 2025-06-18); send each request on a line "
        "of its own."
    )
    if not batch:
        return _error(None, types.INVALID_REQUEST, "the batch is empty; " + reason)
    answers: list[types.JSONRPCMessage] = []
    for element in batch:
        if isinstance(element, dict) and "id" not in element and "method" in element:
            continue  # a notification: never answered
        request_id = element.get("id") if isinstance(element, dict) else None
        answers.append(
            _error(request_id if _valid_id(request_id) else None, types.INVALID_REQUEST, reason)
        )
    return answers or None


def _valid_id(value: object) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _error(request_id: RequestId | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message)
    )


def _identify(refused: _Refused) -> tuple[RequestId | None, str | None, str | None, bool]:
    """The request's id, method, tool name (``params.name``), and whether it has an id."""
    parsed = refused.parsed
    if isinstance(parsed, dict):
        has_id = "id" in parsed
        request_id = parsed.get("id") if _valid_id(parsed.get("id")) else None
        method = parsed.get("method") if isinstance(parsed.get("method"), str) else None
        params = parsed.get("params")
        tool = params.get("name") if isinstance(params, dict) else None
        return request_id, method, tool if isinstance(tool, str) else None, has_id
    found = _ID_FIRST.search(refused.head) or _ID_LAST.search(refused.tail)
    request_id = _id_from_text(found.group(1)) if found else None
    method = _METHOD.search(refused.head) or _METHOD.search(refused.tail)
    return (
        request_id,
        method.group(1).decode() if method else None,
        params_name(refused.head),
        found is not None,
    )


def _id_from_text(text: bytes) -> RequestId | None:
    """An id read from the text of a line we could not parse; None if it is not JSON either
    (a control character or a byte that is not UTF-8 between its quotes)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if _valid_id(value) else None


def params_name(head: bytes) -> str | None:
    """``params.name`` of a JSON object's beginning, if it is there; nothing else named "name".

    A streaming scan of the text we kept from a request too large to parse: it
    follows strings and nesting, so a ``"name"`` inside the arguments (or inside
    a string) is never taken for the tool's.
    """
    text = head.decode("utf-8", "replace")
    # One entry per open container: its kind and the member key it was opened under.
    stack: list[tuple[str, str | None]] = []
    key: str | None = None
    expect_key = False
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                return None
            value = text[i + 1 : end]
            i = end + 1
            if expect_key:
                key, expect_key = value, False
            elif key == "name" and [k for _, k in stack] == [None, "params"]:
                return value if re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value) else None
            continue
        if char in "{[":
            stack.append((char, key))
            key, expect_key = None, char == "{"
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
            key, expect_key = None, False
        elif char == ",":
            key, expect_key = None, bool(stack) and stack[-1][0] == "{"
        i += 1
    return None
