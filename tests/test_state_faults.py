"""The store fails under a running server: signing is refused, then resumes (issue #10, item 4).

Through the installed ``agentic-vault-mcp`` and the official MCP client, with
faults injected at the boundary: the SQLite state directory on a tiny tmpfs of
its own that fills up or is remounted read-only, and the test's PostgreSQL
stopped and started again. In every case each signing tool answers
``state_unavailable: …`` naming the cause, the KMS emulator sees no Sign for
it, ``health_check`` is unhealthy and says why, and the same server process
signs again once the fault is gone; ``agentic-vault audit verify`` then
passes on a trail holding exactly the signatures that were made.

Read-only, two ways. The kernel refuses to remount a file system read-only
(``mount -o remount,ro``, and a bind mount's ``remount,bind,ro`` alike) while a
file on it is open for writing, and the server keeps its SQLite database open
from its first write on. So: (1) the tmpfs is remounted read-only between two
runs (an earlier server leaves a trail and exits; a new one starts on the
read-only directory, refuses, and signs once it is remounted writable), and
(2) the file system turns read-only under the open database the way it does in
production: an ext4 image on a loop device, mounted ``errors=remount-ro``, is
told of an error through ``/sys/fs/ext4/DEV/trigger_fs_error``; it is then
unmounted (which works only if the failed store let go of its files) and
mounted again.

The last test is the narrowest window: kms:Sign has answered but the outcome
record cannot be committed (PostgreSQL stopped while Sign is held on the
emulator's gate). The signature must not be returned.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from mcp import Client

from agentic_vault._local_kms import CONTROL, LocalKms

from .bad_inputs import mail, tx
from .disk_faults import fill, remount
from .mcp_helpers import CLI, log_lines, mcp_client, server_env, structured, text_of
from .postgres import PostgresServer

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


# -- the fault injectors -----------------------------------------------------------------


@pytest.fixture
def failing_disk(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None], Callable[[], None]]]:
    """An 8 MiB ext4 on a loop device, mounted ``errors=remount-ro`` as most root file
    systems are: (mountpoint, fail: an error the kernel answers by turning it read-only
    under open files, remount: unmount it (which fails while a file is open) and mount it
    again, writable). Fails, never skips, where this is not permitted."""
    image, mountpoint = tmp_path / "disk.img", tmp_path / "disk"
    mountpoint.mkdir()
    with image.open("wb") as disk:
        disk.truncate(8 * 1024 * 1024)
    mount = ["mount", "-o", "loop,errors=remount-ro", str(image), str(mountpoint)]
    steps = [["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image)], mount]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            problem = done.stderr.strip() if done.returncode else ""
        except FileNotFoundError:
            problem = f"no {step[0]} command"
        if problem:
            pytest.fail(
                f"this fault test mounts an ext4 image on a loop device, which is not possible "
                f"here ({problem}); run the suite as root with CAP_SYS_ADMIN, loop devices and "
                "e2fsprogs (a VM, or docker run --privileged).",
                pytrace=False,
            )
    source = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", str(mountpoint)], capture_output=True, text=True
    )
    trigger = Path("/sys/fs/ext4") / Path(source.stdout.strip()).name / "trigger_fs_error"

    def fail() -> None:
        if not trigger.exists():
            pytest.fail(f"the kernel has no {trigger} to report an ext4 error", pytrace=False)
        trigger.write_text("agentic-vault test: a device error\n")

    def remount() -> None:
        subprocess.run(["umount", str(mountpoint)], check=True, capture_output=True)
        subprocess.run(mount, check=True)

    yield mountpoint, fail, remount
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


# -- what the client sees ----------------------------------------------------------------


_tags = itertools.count(1)


def requests() -> list[tuple[str, dict[str, Any]]]:
    """One new request per signing tool."""
    tag = next(_tags)
    contents = {**mail()["message"], "contents": f"store down {tag}"}
    return [
        ("sign_message", {"message": f"signed while the store was down? ({tag})"}),
        ("sign_transaction", {"transaction": tx(nonce=tag)}),
        ("sign_typed_data", {"typed_data": mail(message=contents)}),
    ]


async def assert_refused(client: Client, backend: str, cause: str, *named: str) -> str:
    """health_check unhealthy saying why; every signing tool refused with
    ``state_unavailable`` naming ``cause``, and no kms:Sign. Returns one refusal's text."""
    signs_before, messages_before = CONTROL.calls["Sign"], list(CONTROL.messages)
    # First, right after the fault: the last heartbeat was written within the second.
    await assert_unhealthy(client, backend, cause)
    texts = []
    for tool, arguments in requests():
        result = await client.call_tool(tool, arguments)
        text = text_of(result)
        assert result.is_error, f"{tool} was answered while the store was down: {text}"
        assert result.structured_content is None
        assert text.startswith("state_unavailable: "), text
        assert cause in text, text
        for part in named:
            assert part in text, text
        texts.append(text)
    assert CONTROL.calls["Sign"] == signs_before, "kms:Sign was called while the store was down"
    assert CONTROL.messages == messages_before
    await assert_unhealthy(client, backend, cause)
    return texts[0]


async def assert_unhealthy(client: Client, backend: str, cause: str) -> None:
    health = structured(await client.call_tool("health_check", {}))
    assert health["state"] == {"backend": backend, "ok": False}, health
    assert health["status"] == "unhealthy"
    problems = [p for p in health["problems"] if p.startswith("state_unavailable: ")]
    assert len(problems) == 1, health["problems"]
    assert cause in problems[0]


async def signs(client: Client, text: str, address: str | None = None) -> str:
    """``text`` is signed (eth-account agrees) and the store is healthy; returns the address."""
    address = address or structured(await client.call_tool("get_address", {}))["address"]
    signed = structured(await client.call_tool("sign_message", {"message": text}))
    assert Account.recover_message(encode_defunct(text=text), signature=signed["signature"]) == (
        address
    )
    assert signed["digest"] == "0x" + defunct_hash_message(text=text).hex()
    health = structured(await client.call_tool("health_check", {}))
    assert health["state"]["ok"] is True
    assert not [p for p in health["problems"] if p.startswith("state_unavailable")]
    return address


def trail(location: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    """``audit verify`` passes; returns ``audit export``'s records."""
    verified = subprocess.run(
        [CLI, "audit", "verify", *location],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exported = subprocess.run(
        [CLI, "audit", "export", *location],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert f"ok: {len(records)} records" in verified.stdout
    return records


def signed_pairs(count: int) -> list[tuple[str, str]]:
    """(kind, outcome) of a trail holding ``count`` signatures and nothing else."""
    return [("intent", "intent"), ("outcome", "signed")] * count


def kinds(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["kind"], r["outcome"]) for r in records]


def logged(log: Path, words: str) -> bool:
    return any(words in json.dumps(line) for line in log_lines(log))


@pytest.fixture
def key_alias(emulator: LocalKms, request: pytest.FixtureRequest) -> str:
    alias = f"alias/faults-{request.node.name[5:50]}"
    emulator.create_key(alias=alias)
    return alias


# -- SQLite: a full disk, a read-only file system ----------------------------------------


async def test_a_full_state_disk_refuses_signing_until_space_is_freed(
    emulator: LocalKms, key_alias: str, tmp_path: Path, tiny_tmpfs: Path
) -> None:
    state = tiny_tmpfs / "state"
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    log = tmp_path / "server.log"
    async with mcp_client(env, ["--state-dir", str(state)], log) as client:
        address = await signs(client, "before the disk filled up")
        filler = fill(tiny_tmpfs)
        text = await assert_refused(client, "sqlite", "full", str(state))
        assert "free space" in text
        filler.unlink()
        await signs(client, "after space was freed", address)  # the same process
    assert logged(log, "state unavailable")
    assert logged(log, "works again")
    assert kinds(trail(["--state-dir", str(state)], env)) == signed_pairs(2)


async def test_a_read_only_state_directory_refuses_signing_until_it_is_writable(
    emulator: LocalKms, key_alias: str, tmp_path: Path, tiny_tmpfs: Path
) -> None:
    state = tiny_tmpfs / "state"
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    args = ["--state-dir", str(state)]
    async with mcp_client(env, args, tmp_path / "earlier.log") as client:
        address = await signs(client, "an earlier run")
    remount(tiny_tmpfs, "ro")
    try:
        async with mcp_client(env, args, tmp_path / "server.log") as client:
            text = await assert_refused(client, "sqlite", "read-only", str(state))
            assert "make it writable" in text
            remount(tiny_tmpfs, "rw")
            await signs(client, "writable again", address)  # the same process
    finally:
        remount(tiny_tmpfs, "rw")
    assert kinds(trail(args, env)) == signed_pairs(2)


async def test_a_file_system_turning_read_only_under_the_server_refuses_until_remounted(
    emulator: LocalKms,
    key_alias: str,
    tmp_path: Path,
    failing_disk: tuple[Path, Callable[[], None], Callable[[], None]],
) -> None:
    mountpoint, fail, remount_writable = failing_disk
    state = mountpoint / "state"
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    args = ["--state-dir", str(state)]
    async with mcp_client(env, args, tmp_path / "server.log") as client:
        address = await signs(client, "before the disk failed")  # the database is open now
        fail()
        signs_before = CONTROL.calls["Sign"]
        first = await client.call_tool("sign_message", {"message": "as the disk fails"})
        text = text_of(first)
        assert first.is_error, text
        assert text.startswith("state_unavailable: "), text
        assert str(state) in text
        # The write on the open file fails (an I/O error, read-only on older kernels)...
        assert "dmesg" in text or "read-only" in text, text
        assert CONTROL.calls["Sign"] == signs_before
        # ...and each attempt after it reopens the store and finds it read-only.
        await assert_refused(client, "sqlite", "read-only", str(state))
        # The failed store let go of its files: the file system unmounts without -l.
        remount_writable()
        await signs(client, "after the disk was mounted again", address)  # the same process
    assert kinds(trail(args, env)) == signed_pairs(2)


# -- PostgreSQL: stopped and started again -----------------------------------------------


async def test_a_stopped_postgresql_refuses_signing_until_it_is_back(
    emulator: LocalKms,
    key_alias: str,
    tmp_path: Path,
    postgres_url: str,
    postgres_control: PostgresServer,
) -> None:
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    async with mcp_client(env, ["--state-url", postgres_url], tmp_path / "server.log") as client:
        address = await signs(client, "before PostgreSQL stopped")
        await anyio.to_thread.run_sync(postgres_control.stop)
        began = time.monotonic()
        text = await assert_refused(
            client, "postgresql", "not reachable", f"127.0.0.1:{postgres_control.port}"
        )
        assert time.monotonic() - began < 30  # three refusals and a health check, not hangs
        assert postgres_control.password not in text
        await anyio.to_thread.run_sync(postgres_control.start)
        await signs(client, "after PostgreSQL started again", address)  # the same process
    assert kinds(trail(["--state-url", postgres_url], env)) == signed_pairs(2)


async def test_a_signature_whose_outcome_cannot_be_recorded_is_withheld(
    emulator: LocalKms,
    key_alias: str,
    tmp_path: Path,
    postgres_url: str,
    postgres_control: PostgresServer,
) -> None:
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    held = "signed by KMS, but its outcome cannot be recorded"
    digest = "0x" + defunct_hash_message(text=held).hex()
    async with mcp_client(env, ["--state-url", postgres_url], tmp_path / "server.log") as client:
        address = await signs(client, "before")
        signs_before = CONTROL.calls["Sign"]
        gate = CONTROL.gates["Sign"] = threading.Event()
        async with anyio.create_task_group() as group:
            answers: list[Any] = []

            async def call() -> None:
                answers.append(await client.call_tool("sign_message", {"message": held}))

            group.start_soon(call)
            # kms:Sign is asked only once the intent is committed; it waits at the gate.
            with anyio.fail_after(30):
                while CONTROL.calls["Sign"] == signs_before:
                    await anyio.sleep(0.01)
            await anyio.to_thread.run_sync(postgres_control.stop)
            gate.set()
        (result,) = answers
        text = text_of(result)
        assert CONTROL.messages[-1].hex() == digest[2:]  # KMS did sign it
        assert result.is_error, f"a signature was returned without its outcome record: {text}"
        assert result.structured_content is None
        assert text.startswith("state_unavailable: "), text
        assert not re.search(r"[0-9a-fA-F]{128}", text), text  # no r||s anywhere in it
        # It says what happened: signed by KMS, withheld, and why (not "nothing was signed").
        assert "withheld" in text, text
        assert "nothing was signed" not in text.lower(), text
        assert "not reachable" in text, text
        await anyio.to_thread.run_sync(postgres_control.start)
        await signs(client, "after", address)
    (line,) = [
        line
        for line in log_lines(tmp_path / "server.log")
        if line.get("message") == "tool call" and line.get("digest") == digest
    ]
    assert (line["error_code"], line["signed"]) == ("state_unavailable", True)
    records = trail(["--state-url", postgres_url], env)
    # The held request's intent stays without an outcome: signed or not, nobody got it.
    assert kinds(records) == [*signed_pairs(1), ("intent", "intent"), *signed_pairs(1)]
    assert records[2]["digest"] == digest
