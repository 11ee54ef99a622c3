"""Running the MCP server over stdio until stdin closes or a signal asks it to stop."""

from __future__ import annotations

import logging
import os
import signal
import sys

import anyio
import anyio.abc

from ._config import SignerConfig
from ._server import ToolRunner, build_server
from ._signer import KmsSigner
from ._stdio import stdio_transport
from ._version import __version__

logger = logging.getLogger("agentic_vault.server")

DRAIN_MARGIN = 1.0
WRITE_GRACE = 0.1


def serve_stdio(config: SignerConfig) -> int:
    """Serve MCP on stdin/stdout; returns the exit status."""
    signer = KmsSigner(config)
    runner = ToolRunner(signer)
    server = build_server(signer, runner)

    async def serve() -> None:
        async with anyio.create_task_group() as tasks:
            await tasks.start(_stop_on_signal, runner, config)
            logger.info(
                "agentic-vault-mcp %s serving on stdio",
                __version__,
                extra={
                    "fields": {
                        "key_id": config.key_id,
                        "region": config.region,
                        "profile": config.profile,
                        "expected_address": config.expected_address,
                    }
                },
            )
            async with stdio_transport(on_refused=runner.audit_refusal) as (read, write):
                # MCPServer serves stdio only through the SDK's transport, which drops
                # lines it cannot parse; ours answers them, so serve its streams directly.
                lowlevel = server._lowlevel_server
                await lowlevel.run(read, write, lowlevel.create_initialization_options())
            logger.info("stdin closed; stopping")
            tasks.cancel_scope.cancel()

    anyio.run(serve)
    return 0


async def _stop_on_signal(
    runner: ToolRunner,
    config: SignerConfig,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            logger.info(
                "%s received; finishing %d call(s) in flight, then stopping",
                signal.Signals(signum).name,
                runner.in_flight,
            )
            # A call in flight may already hold a signature: let it reach the audit log
            # and its caller.
            with anyio.move_on_after(config.kms_timeout + DRAIN_MARGIN):
                while runner.in_flight:
                    await anyio.sleep(0.02)
                await anyio.sleep(WRITE_GRACE)  # the last answers leave through the writer
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stderr.flush()
            # The SDK's stdin reader is a thread blocked in readline(), which nothing
            # can interrupt; every response and log line is written, so leave now.
            os._exit(0)
