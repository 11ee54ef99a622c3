"""No credential reaches stderr or stdout, at any log level, on any path.

The installed server runs with ``--log-level debug`` and sentinel values for
every secret it could come near: environment keys and session token, the
password of the KMS endpoint URL, and the keys a ``credential_process`` helper
hands out (or prints when it fails). Every tool is called on its success and
error paths; afterwards no sentinel, and no SigV4 signing material
(``Signature=``, ``Credential=``, ``X-Amz-Security-Token``), may appear in
anything the server wrote. stdout is read raw, not through an MCP client, so
every byte it wrote is checked.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentic_vault._local_kms import LocalKms
from agentic_vault._logging import AUDIT_LOGGER, configure_logging

from .bad_inputs import mail, signed_tx
from .mcp_helpers import SERVER, server_env

pytestmark = pytest.mark.e2e

ENV_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAZZSENTINEL0ENV01",
    "AWS_SECRET_ACCESS_KEY": "sentinel-env-secret-access-key-7f3a",
    "AWS_SESSION_TOKEN": "sentinel-env-session-token-9c1e",
}
URL_PASSWORD = "sentinel-url-password-4b2d"
HELPER_KEY_ID = "ASIAZZSENTINEL0HLP01"
HELPER_SECRET = "sentinel-helper-secret-access-key-5e8f"
HELPER_TOKEN = "sentinel-helper-session-token-a61c"
HELPER_FAILURE_SECRET = "sentinel-helper-printed-this-on-failure-3d0b"
SENTINELS = [
    *ENV_SECRETS.values(),
    URL_PASSWORD,
    HELPER_KEY_ID,
    HELPER_SECRET,
    HELPER_TOKEN,
    HELPER_FAILURE_SECRET,
]
# SigV4 signing material, whatever its value (compared case-insensitively).
SIGNING_MARKERS = ["signature=", "credential=", "x-amz-security-token"]

EVERY_TOOL: list[tuple[str, dict[str, Any]]] = [
    ("get_address", {}),
    ("sign_transaction", signed_tx()),
    ("sign_typed_data", {"typed_data": mail()}),
    ("sign_message", {"message": "sentinel check"}),
    ("health_check", {}),
]


class RawServer:
    """The installed server over raw stdio; keeps every byte of stdout."""

    def __init__(self, env: dict[str, str], args: list[str], stderr: Path) -> None:
        self._stderr_path = stderr
        self._stderr = open(stderr, "wb")  # noqa: SIM115 - closed in finish()
        self.process = subprocess.Popen(
            [SERVER, *args],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.stdout = bytearray()
        self._frames: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next_id = 0
        self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "secrets-test", "version": "1"},
            },
        )
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.stdout += line
            self._frames.put(json.loads(line))

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        answer = self._frames.get(timeout=60)
        assert answer.get("id") == self._next_id, answer
        return answer

    def call_every_tool(self) -> dict[str, dict[str, Any]]:
        return {
            tool: self.request("tools/call", {"name": tool, "arguments": arguments})["result"]
            for tool, arguments in EVERY_TOOL
        }

    def finish(self) -> tuple[str, str]:
        """Close stdin, wait for the exit; returns (stdout, stderr) as written."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0
        self._stderr.close()
        time.sleep(0.05)  # the reader thread takes the last bytes
        return self.stdout.decode(), self._stderr_path.read_text()


def _error_code(result: dict[str, Any]) -> str | None:
    if not result.get("isError"):
        return None
    return str(result["content"][0]["text"]).split(":", 1)[0]


def _assert_no_sentinel(name: str, text: str) -> None:
    for sentinel in SENTINELS:
        assert sentinel not in text, f"{sentinel} on {name}: {_around(text, sentinel)}"


def _assert_nothing_secret(stdout: str, stderr: str) -> None:
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        _assert_no_sentinel(name, text)
        for marker in SIGNING_MARKERS:
            assert marker not in text.lower(), f"{marker} on {name}: {_around(text, marker)}"


def _around(text: str, needle: str) -> str:
    at = text.lower().find(needle.lower())
    return text[max(0, at - 300) : at + 100]


def _assert_debug_was_on(stderr: str) -> None:
    # Else the test would pass for the wrong reason: nothing was logged at all.
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any(line["level"] == "debug" and line["logger"].startswith("botocore") for line in lines)


def _with_password(endpoint: str) -> str:
    return endpoint.replace("http://", f"http://agent:{URL_PASSWORD}@")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_env_credentials_and_an_endpoint_password_on_success_and_a_disabled_key(
    emulator: LocalKms, tmp_path: Path
) -> None:
    key = emulator.create_key(alias="alias/secrets-env")
    env = server_env(
        emulator,
        tmp_path,
        VAULT_KEY_ID="alias/secrets-env",
        AWS_ENDPOINT_URL_KMS=_with_password(emulator.endpoint),
        **ENV_SECRETS,
    )
    server = RawServer(env, ["--log-level", "debug"], tmp_path / "stderr.log")
    results = server.call_every_tool()
    assert {tool: _error_code(result) for tool, result in results.items()} == dict.fromkeys(results)
    assert results["health_check"]["structuredContent"]["credentials"] == "env"
    emulator.client().disable_key(KeyId=key["KeyId"])
    failed = server.call_every_tool()
    assert _error_code(failed["sign_message"]) == "kms_key_invalid"
    assert failed["health_check"]["structuredContent"]["status"] == "unhealthy"
    stdout, stderr = server.finish()
    _assert_debug_was_on(stderr)
    _assert_nothing_secret(stdout, stderr)


class _DenyingKms(BaseHTTPRequestHandler):
    """Answers every KMS request the way KMS answers a principal without permission."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        payload = json.dumps(
            {
                "__type": "AccessDeniedException",
                "message": "User: arn:aws:sts::123456789012:assumed-role/agent/session is not "
                f"authorized to perform: kms:{operation} on this resource because no "
                "identity-based policy allows the action",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def denying_kms() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DenyingKms)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_access_denied_and_an_unreachable_endpoint(denying_kms: str, tmp_path: Path) -> None:
    for name, endpoint, code in (
        ("denied", denying_kms, "kms_access_denied"),
        ("unreachable", f"http://127.0.0.1:{_free_port()}", "kms_unavailable"),
    ):
        env = server_env(
            None,
            tmp_path,
            VAULT_KEY_ID="alias/secrets-denied",
            VAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL_KMS=_with_password(endpoint),
            **ENV_SECRETS,
        )
        server = RawServer(env, ["--log-level", "debug", "--kms-timeout", "0.5"], tmp_path / name)
        results = server.call_every_tool()
        for tool in ("get_address", "sign_transaction", "sign_typed_data", "sign_message"):
            assert _error_code(results[tool]) == code, (tool, results[tool])
        problems = results["health_check"]["structuredContent"]["problems"]
        assert problems
        assert problems[0].startswith(code)
        stdout, stderr = server.finish()
        _assert_debug_was_on(stderr)
        _assert_nothing_secret(stdout, stderr)


HELPER = """
import datetime as dt, json, sys
from pathlib import Path
state = Path(sys.argv[1])
mode = (state / "mode").read_text().strip()
credentials = {{
    "Version": 1,
    "AccessKeyId": "{key_id}",
    "SecretAccessKey": "{secret}",
    "SessionToken": "{token}",
}}
if mode == "fail":
    # A helper that shows what it was given when it fails (a wrapper script, a debug build).
    failing = dict(credentials, SecretAccessKey="{failure_secret}")
    print("signing helper failed: certificate expired; last response:", file=sys.stderr)
    print(json.dumps(failing), file=sys.stderr)
    sys.exit(1)
if mode == "garbled":
    print(json.dumps(credentials)[:-20])  # cut short: not JSON
    sys.exit(0)
# Inside botocore's mandatory refresh window: each call after a second runs the helper again.
expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10 * 60 + 1)
print(json.dumps(dict(credentials, Expiration=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))))
"""


def test_a_credential_process_that_works_then_fails_then_garbles(
    emulator: LocalKms, tmp_path: Path
) -> None:
    emulator.create_key(alias="alias/secrets-helper")
    state = tmp_path / "helper-state"
    state.mkdir()
    (state / "mode").write_text("ok")
    script = tmp_path / "helper.py"
    script.write_text(
        HELPER.format(
            key_id=HELPER_KEY_ID,
            secret=HELPER_SECRET,
            token=HELPER_TOKEN,
            failure_secret=HELPER_FAILURE_SECRET,
        )
    )
    (tmp_path / "aws-config").write_text(
        "[profile helper]\nregion = us-east-1\n"
        f"credential_process = {sys.executable} {script} {state}\n"
    )
    env = server_env(
        emulator,
        tmp_path,
        VAULT_KEY_ID="alias/secrets-helper",
        AWS_ENDPOINT_URL_KMS=_with_password(emulator.endpoint),
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        AWS_PROFILE="helper",
    )
    server = RawServer(env, ["--log-level", "debug", "--kms-timeout", "2"], tmp_path / "stderr")
    results = server.call_every_tool()
    assert _error_code(results["sign_message"]) is None, results["sign_message"]
    assert results["health_check"]["structuredContent"]["credentials"] == "custom-process"
    for mode in ("fail", "garbled"):
        (state / "mode").write_text(mode)
        time.sleep(1.2)  # the credentials are now due for a mandatory refresh
        failed = server.call_every_tool()
        assert _error_code(failed["sign_message"]) is not None, (mode, failed["sign_message"])
        health = failed["health_check"]
        assert health.get("isError") or health["structuredContent"]["status"] == "unhealthy"
    stdout, stderr = server.finish()
    assert "certificate expired" in stdout  # the helper's own words reach the agent...
    _assert_debug_was_on(stderr)
    _assert_nothing_secret(stdout, stderr)  # ...its secrets do not


# -- the handler's filter on its own ---------------------------------------------------------

DUMPERS = ("botocore.auth", "botocore.endpoint", "botocore.parsers", "urllib3", "s3transfer")


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """``configure_logging("debug")`` into a buffer; the test process's logging restored."""
    root = logging.getLogger()
    touched = [root, logging.getLogger(AUDIT_LOGGER), logging.getLogger("mcp")]
    touched += [logging.getLogger(name) for name in ("botocore", *DUMPERS)]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in touched]
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    try:
        yield stream
    finally:
        for lg, level, handlers, propagate in saved:
            lg.setLevel(level)
            lg.handlers = handlers
            lg.propagate = propagate


def test_the_handler_drops_request_dumps_and_redacts_everything_else(
    captured_logs: io.StringIO,
) -> None:
    # Someone lowers a request-dumping logger's level: its records still never get out.
    logging.getLogger("botocore.endpoint").setLevel(logging.DEBUG)
    logging.getLogger("botocore.endpoint").debug("Sending http request: %s", "dumped")
    logging.getLogger("urllib3.connectionpool").debug("dumped too")
    secrets = {
        "authorization": "Authorization: AWS4-HMAC-SHA256 Credential=AKIAZZSENTINEL0ENV01/x, "
        "Signature=0123abcd",
        "token header": f"{{'X-Amz-Security-Token': b'{ENV_SECRETS['AWS_SESSION_TOKEN']}'}}",
        "ini": f"aws_secret_access_key = {ENV_SECRETS['AWS_SECRET_ACCESS_KEY']}",
        "json": json.dumps({"SecretAccessKey": HELPER_SECRET, "SessionToken": HELPER_TOKEN}),
        "url": f"http://agent:{URL_PASSWORD}@127.0.0.1:1/",
        "key id": f"key {HELPER_KEY_ID} expired",
    }
    for name, text in secrets.items():
        logging.getLogger("botocore.credentials").warning("%s: %s", name, text)
    try:
        raise RuntimeError(f"helper said {json.dumps({'SecretAccessKey': HELPER_FAILURE_SECRET})}")
    except RuntimeError:
        logging.getLogger("agentic_vault.test").exception("failed at %s", dt.date.today())
    logging.getLogger(AUDIT_LOGGER).info(
        "tool call", extra={"fields": {"error": f"at http://agent:{URL_PASSWORD}@host/"}}
    )
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert not [line for line in lines if "dumped" in line["message"]]
    assert len(lines) == len(secrets) + 2
    # Secrets become [redacted]; a URL's password becomes *** (the URL stays readable).
    assert all(
        "[redacted]" in json.dumps(line) or "agent:***@" in json.dumps(line) for line in lines
    )
    assert "helper said" in lines[-2]["traceback"]
    _assert_no_sentinel("the log", captured_logs.getvalue())
