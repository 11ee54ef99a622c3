"""MCP over stdio with bounded input, where every request gets an answer.

The SDK's stdio transport reads lines of any length and silently drops a line
it cannot parse (not JSON, nested deeper than its parser allows): a client then
waits forever for that request. This transport:

- holds at most ``MAX_REQUEST_BYTES`` of one line in memory; a longer line is
  read through and discarded, and answered;
- answers a line that is not a JSON-RPC message: with the request's own id
  when it can be recovered (a ``tools/call`` then gets a normal tool error,
  ``invalid_input: ...``), else with ``Parse error`` / ``Invalid Request`` and a
  null id, as JSON-RPC 2.0 prescribes;
- takes fd 0 and fd 1 for itself while serving: fd 0 then reads /dev/null (a
  ``credential_process`` helper cannot swallow protocol bytes) and fd 1 writes
  to stderr (a stray ``print`` cannot corrupt a frame);
- reads and writes pipes without blocking, on the event loop: the SDK's
  transport hands every line and every frame to a worker thread, and those GIL
  hand-offs cost more than the rest of a request's plumbing.
"""

from __future__ import annotations

import contextlib
import json
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

MAX_REQUEST_BYTES = 2 * 1024 * 1024
_PEEK = 4096
_CHUNK = 256 * 1024
# Where clients put the id: first (Python SDK: jsonrpc, id, method...) or last (TS SDK).
_ID_FIRST = re.compile(
    rb'^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,200}")'
)
_ID_LAST = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"[^"\\]{0,200}")\s*\}\s*$')
_METHOD = re.compile(rb'"method"\s*:\s*"([A-Za-z0-9_/.$-]{1,100})"')
_TOOL = re.compile(rb'"name"\s*:\s*"([A-Za-z0-9_.-]{1,100})"')

# Called for each refused tools/call with (tool name or None, the error text).
RefusalHook = Callable[[str | None, str], None]


@dataclass(frozen=True)
class _Refused:
    """A line we will not pass on: what we know of it and why."""

    head: bytes
    tail: bytes
    size: int
    reason: str  # "too_large", "not_json", "too_deep", "not_jsonrpc"
    parsed: Any = None


@asynccontextmanager
async def stdio_transport(
    on_refused: RefusalHook | None = None,
) -> AsyncIterator[
    tuple[
        anyio.abc.ObjectReceiveStream[SessionMessage | Exception],
        anyio.abc.ObjectSendStream[SessionMessage],
    ]
]:
    """Read and write streams for a low-level MCP server, over this process's stdio."""
    in_fd, out_fd = _claim_stdio()
    write_frame = _frame_writer(out_fd)
    write_lock = anyio.Lock()
    read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

    async def emit(message: types.JSONRPCMessage) -> None:
        line = message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
        async with write_lock:  # one frame at a time, never interleaved
            await write_frame(line)

    async def reader() -> None:
        async with read_writer:
            async for item in _lines(in_fd):
                refused: _Refused
                if isinstance(item, _Refused):
                    refused = item
                else:
                    try:
                        message = types.jsonrpc_message_adapter.validate_json(item, by_name=False)
                    except ValidationError:
                        refused = _classify(item)
                    else:
                        await read_writer.send(SessionMessage(message))
                        continue
                answer = _answer(refused, on_refused)
                if answer is not None:
                    await emit(answer)

    async def writer() -> None:
        async with write_reader:
            async for session_message in write_reader:
                await emit(session_message.message)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(reader)
            tasks.start_soon(writer)
            yield read_stream, write_stream
    finally:
        for fd in (in_fd, out_fd):
            with contextlib.suppress(OSError):
                os.set_blocking(fd, True)  # the description may be shared with our parent


def _claim_stdio() -> tuple[int, int]:
    """Private copies of fd 0 and 1; fd 0 then reads /dev/null and fd 1 writes to stderr."""
    in_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return in_fd, out_fd


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
    that, the rest of the line is counted and dropped, keeping its ends.
    """
    read = _chunk_reader(fd)
    pending = bytearray()
    oversized: _Refused | None = None
    while True:
        chunk = await read()
        if not chunk:
            return  # EOF; an unterminated last line is dropped like a torn frame
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
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
            if newline < 0:
                break
            if oversized is not None:
                yield _Refused(oversized.head, oversized.tail.rstrip(), oversized.size, "too_large")
                oversized = None
            elif pending.strip():
                yield bytes(pending)
            pending.clear()
            start = newline + 1


def _classify(line: bytes) -> _Refused:
    """Why a line that the SDK's JSON-RPC model refused is unacceptable."""
    head, tail = line[:_PEEK], line.rstrip()[-_PEEK:]
    try:
        parsed = json.loads(line)
    except RecursionError:
        return _Refused(head, tail, len(line), "too_deep")
    except ValueError:
        return _Refused(head, tail, len(line), "not_json")
    if _depth_exceeds(parsed, 64):
        return _Refused(head, tail, len(line), "too_deep", parsed)
    return _Refused(head, tail, len(line), "not_jsonrpc", parsed)


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
    request_id, method, tool = _identify(refused)
    reason = _REASONS[refused.reason].format(size=refused.size)
    code = types.PARSE_ERROR if refused.reason == "not_json" else types.INVALID_REQUEST
    if request_id is None and method is not None and refused.reason == "not_jsonrpc":
        return None  # a notification: JSON-RPC never answers those
    # A tool call too big or too deep to read is still a tool call: answer it as one.
    if request_id is not None and method == "tools/call" and refused.reason in _TOOL_REFUSALS:
        text = f"invalid_input: {reason}"
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
    return _error(request_id, code, reason)


def _error(request_id: int | str | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message)
    )


def _identify(refused: _Refused) -> tuple[int | str | None, str | None, str | None]:
    """The request's id, method and tool name, from the parsed value or the raw text."""
    parsed = refused.parsed
    if isinstance(parsed, dict):
        request_id = parsed.get("id")
        if not isinstance(request_id, int | str) or isinstance(request_id, bool):
            request_id = None
        method = parsed.get("method") if isinstance(parsed.get("method"), str) else None
        params = parsed.get("params")
        tool = params.get("name") if isinstance(params, dict) else None
        return request_id, method, tool if isinstance(tool, str) else None
    found = _ID_FIRST.search(refused.head) or _ID_LAST.search(refused.tail)
    request_id = json.loads(found.group(1)) if found else None
    method = _METHOD.search(refused.head) or _METHOD.search(refused.tail)
    tool = _TOOL.search(refused.head)
    return (
        request_id,
        method.group(1).decode() if method else None,
        tool.group(1).decode() if tool else None,
    )
