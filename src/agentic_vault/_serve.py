"""Running the MCP server until stdin closes or a signal asks it to stop.

    start ─▶ serve stdio ─┬─ stdin EOF / stdout closed ─┐
                          ├─ SIGTERM / SIGINT ──────────┼─▶ refuse new calls, let calls in flight
                          │                             │   finish (bounded), flush, exit 0
                          └─ SIGHUP: reload the policy  │

The HTTP transport (``transports.http``) serves the same way with the same
signal handling, stop and reload below; it adds closing its listener before
the exit.

Exit goes through ``os._exit`` once every answer and audit line is written: a
worker thread stuck in a ``credential_process`` helper (its call already
answered by the watchdog) must not keep the process alive, and the SDK's own
stdin handling must not either. The pipes are put back in blocking mode
first, since their descriptions may be shared with our parent.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.to_thread

from ._server import ToolRunner, build_server
from ._settings import VaultSettings, open_vault
from ._vault import Vault
from ._version import __version__
from .transports.stdio import restore_stdio, stdio_transport

if TYPE_CHECKING:
    from .policy import PolicyHolder

# What a transport does once calls in flight are answered, before the process exits.
BeforeExit = Callable[[], Awaitable[None]]

logger = logging.getLogger("agentic_vault.server")

DRAIN_MARGIN = 1.0
POLICY_POLL_SECONDS = 2.0
WRITE_GRACE = 0.1


def serve_stdio(settings: VaultSettings) -> int:
    """Serve MCP on stdin/stdout; never returns (the process exits with status 0)."""
    vault = open_vault(settings)
    runner = ToolRunner(vault)
    server = build_server(vault, runner)

    async def serve() -> None:
        async with anyio.create_task_group() as tasks:
            await tasks.start(stop_on_signal, runner, vault)
            await tasks.start(reload_on_sighup, vault)
            tasks.start_soon(_reload_on_change, vault)
            log_start(vault, settings, "stdio")
            async with stdio_transport(
                on_refused=runner.audit_refusal, answer_grace=runner.call_timeout + DRAIN_MARGIN
            ) as (read, write):
                # MCPServer serves stdio only through the SDK's transport, which drops
                # lines it cannot parse; ours answers them, so serve its streams directly.
                lowlevel = server._lowlevel_server
                await lowlevel.run(read, write, lowlevel.create_initialization_options())
            await stop(runner, vault, "stdin closed")

    anyio.run(serve)
    return 0  # not reached: _stop exits


def log_start(vault: Vault, settings: VaultSettings, transport: str) -> None:
    config = settings.signer
    state = vault.store.backend
    logger.info(
        "agentic-vault-mcp %s serving on %s",
        __version__,
        transport,
        extra={
            "fields": {
                "key_id": config.key_id,
                "region": config.region,
                "profile": config.profile,
                "expected_address": config.expected_address,
                "state": f"{state.name} {state.location}",
            }
        },
    )
    loaded = vault.guard.loaded
    if loaded is None:
        logger.warning(
            "no policy: every well-formed request is signed, whoever sends it. Give one with "
            "--policy FILE (see docs/policy.md) before an agent gets real funds."
        )
    else:
        logger.info("policy %s (sha256 %s) in force", loaded.path, loaded.sha256)


async def stop_on_signal(
    runner: ToolRunner,
    vault: Vault,
    before_exit: BeforeExit | None = None,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            await stop(runner, vault, f"{signal.Signals(signum).name} received", before_exit)


async def reload_on_sighup(
    vault: Vault,
    others: Callable[[], Iterable[PolicyHolder]] = tuple,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """On SIGHUP, reload the server's policy and ``others()`` (HTTP tokens' own policies)."""
    with anyio.open_signal_receiver(signal.SIGHUP) as signals:
        task_status.started()
        async for _ in signals:
            holders = [h for h in (vault.guard.holder, *others()) if h is not None]
            if not holders:
                logger.warning("SIGHUP: no --policy was given, so there is nothing to reload")
            for holder in holders:
                if await anyio.to_thread.run_sync(holder.reload):
                    loaded = holder.current
                    logger.info(
                        "SIGHUP: policy %s (sha256 %s) in force", loaded.path, loaded.sha256
                    )


async def _reload_on_change(vault: Vault, every: float = POLICY_POLL_SECONDS) -> None:
    """Notice an edited policy file within seconds, even when no request comes.

    Every request checks too; this makes an idle server log a broken edit (and
    take a good one) promptly, as an operator watching the log expects.
    """
    holder = vault.guard.holder
    if holder is None:
        return
    while True:
        await anyio.sleep(every)
        await anyio.to_thread.run_sync(holder.reload_if_changed)


async def stop(
    runner: ToolRunner, vault: Vault, why: str, before_exit: BeforeExit | None = None
) -> None:
    """Refuse new calls, let the ones in flight finish within the KMS budget, then exit."""
    runner.stopping = why
    logger.info("%s; finishing %d call(s) in flight, then stopping", why, runner.in_flight)
    # A call in flight may already hold a signature: let it reach its record and caller.
    with anyio.move_on_after(vault.signer.config.kms_timeout + DRAIN_MARGIN):
        while runner.in_flight:
            await anyio.sleep(0.02)
        await anyio.sleep(WRITE_GRACE)  # the last answers leave through the writer
    if before_exit is not None:
        await before_exit()
    exit_now(vault)


def exit_now(vault: Vault) -> None:
    """Flush everything, close the store, and leave (threads still stuck stay behind)."""
    vault.store.close(timeout=2.0)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    restore_stdio()
    os._exit(0)
