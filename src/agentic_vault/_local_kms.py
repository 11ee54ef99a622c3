"""A local KMS emulator for development and tests: moto, corrected where it differs from KMS.

FOR DEVELOPMENT ONLY. Keys live unprotected in this process's memory.

moto 5.2.5 differs from AWS KMS in ways that matter to a signer:

1. It ignores ``MessageType=DIGEST`` and hashes the 32-byte digest again
   (getmoto/moto#10202), so the signature is over ``sha256(digest)``. The
   correction signs the digest as given, the way KMS does. It checks moto's own
   answer first and keeps it when it already verifies as a signature of the
   digest, so it stops correcting by itself once moto is fixed
   (``EmulatorControl.digest_corrections`` counts the corrections made).
2. It signs with, and returns the public key of, a disabled key. KMS answers
   ``DisabledException`` (``KMSInvalidStateException`` when pending deletion).
3. Its ``GetPublicKey`` answers the bare key id in ``KeyId``; KMS answers the
   key ARN. (Its missing ``KeySpec`` is left as is: real clients must cope
   with ``CustomerMasterKeySpec`` alone, so ours is tested doing so.)
4. A request signed for a region AWS does not have (``us-east-1x``,
   ``eu-west-9``) crashes it: HTTP 500 and a traceback of some sixty lines,
   which a client's retries multiply. KMS answers ``InvalidSignatureException``;
   so does this emulator, with one log line. Any other crash inside moto is
   answered ``KMSInternalException`` with one log line too.

Needs the ``local`` extra (``pip install 'agentic-vault[local]'``).
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

DEFAULT_PORT = 4599
DEFAULT_REGION = "us-east-1"
DEV_ALIAS = "alias/agentic-vault-dev"
# Placeholder credentials: the emulator checks none, but the SDK wants some.
PLACEHOLDER_ACCESS_KEY = "local-dev-placeholder"
PLACEHOLDER_SECRET_KEY = "local-dev-placeholder"  # noqa: S105 - not a secret, by design

logger = logging.getLogger("agentic_vault.local_kms")


class EmulatorControl:
    """Counts the KMS operations served and injects latency; shared by every emulator here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.key_ids: dict[str, list[str]] = {}  # operation -> the KeyId of each request
        self.messages: list[bytes] = []  # the Message of each Sign, retries included
        self.digest_corrections = 0
        self.latency: dict[str, float] = {}
        # An operation whose gate is here waits until the gate is set (at most a minute).
        self.gates: dict[str, threading.Event] = {}

    def record(
        self, operation: str, key_id: str | None = None, message: bytes | None = None
    ) -> None:
        with self._lock:
            self.calls[operation] += 1
            if key_id is not None:
                self.key_ids.setdefault(operation, []).append(key_id)
            if message is not None:
                self.messages.append(message)
        delay = self.latency.get(operation, 0.0)
        if delay:
            time.sleep(delay)
        gate = self.gates.get(operation)
        if gate is not None:
            gate.wait(60)

    def corrected(self) -> None:
        with self._lock:
            self.digest_corrections += 1

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.key_ids = {}
            self.messages = []
            self.digest_corrections = 0
            self.latency = {}
            for gate in self.gates.values():
                gate.set()
            self.gates = {}


CONTROL = EmulatorControl()
_install_lock = threading.Lock()


# moto's own handlers, looked up at call time (a test swaps in a "fixed moto").
MOTO_HANDLERS: dict[str, Callable[[Any], str]] = {}
# moto's dispatch of every KMS request (status, headers, body), wrapped so it cannot crash.
_moto_call_action: list[Callable[[Any], Any]] = []


def install_corrections() -> None:
    """Patch moto's KMS responses (idempotent): DIGEST signing, disabled keys, crashes."""
    from moto.kms.responses import KmsResponse

    with _install_lock:
        if MOTO_HANDLERS:
            return
        MOTO_HANDLERS.update(
            Sign=KmsResponse.sign,
            GetPublicKey=KmsResponse.get_public_key,
            DescribeKey=KmsResponse.describe_key,
        )
        _moto_call_action.append(KmsResponse.call_action)

        def call_action(self: Any) -> Any:
            return _answer_without_crashing(self)

        def sign(self: Any) -> str:
            message = self._get_param("Message")
            CONTROL.record(
                "Sign",
                self._get_param("KeyId"),
                message.encode("utf-8") if isinstance(message, str) else message,
            )
            key = _usable_key(self)
            if self._get_param("MessageType") != "DIGEST":
                return MOTO_HANDLERS["Sign"](self)
            return _sign_digest_as_given(self, key)

        def get_public_key(self: Any) -> str:
            CONTROL.record("GetPublicKey", self._get_param("KeyId"))
            key = _usable_key(self)
            answer = json.loads(MOTO_HANDLERS["GetPublicKey"](self))
            answer["KeyId"] = key.arn
            return json.dumps(answer)

        def describe_key(self: Any) -> str:
            CONTROL.record("DescribeKey", self._get_param("KeyId"))
            return MOTO_HANDLERS["DescribeKey"](self)

        KmsResponse.call_action = call_action  # type: ignore[method-assign]
        KmsResponse.sign = sign  # type: ignore[method-assign]
        KmsResponse.get_public_key = get_public_key  # type: ignore[method-assign]
        KmsResponse.describe_key = describe_key  # type: ignore[method-assign]


def _answer_without_crashing(response: Any) -> Any:
    """moto's answer to one request, or KMS's error answer where moto would crash."""
    from moto.kms.models import kms_backends
    from moto.settings import allow_unknown_region

    operation = response._get_action()
    region = response.region
    if region not in kms_backends[response.current_account] and not allow_unknown_region():
        logger.warning(
            "refused %s signed for region %r, which AWS does not have; this local KMS's key "
            "is in %s: set AWS_REGION and VAULT_REGION to %s",
            operation,
            region,
            DEFAULT_REGION,
            DEFAULT_REGION,
        )
        return kms_error(
            400,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{region}'.",
        )
    try:
        return _moto_call_action[0](response)
    except Exception as exc:  # noqa: BLE001 - the emulator must answer, not crash
        logger.warning(
            "moto failed on %s (%s: %s); answered KMSInternalException",
            operation,
            type(exc).__name__,
            exc,
        )
        return kms_error(500, "KMSInternalException", f"The local KMS failed on {operation}.")


def kms_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], str]:
    """An error answer in KMS's JSON shape (``__type``, ``message``), as moto returns one."""
    body = json.dumps({"__type": code, "message": message})
    return status, {"Content-Type": "application/x-amz-json-1.1"}, body


def _usable_key(response: Any) -> Any:
    """The key a request names, refused the way KMS refuses a disabled key."""
    from moto.core.exceptions import JsonRESTError

    key_id = response._get_param("KeyId")
    response._validate_key_id(key_id)
    key = response.kms_backend.describe_key(key_id)
    if key.key_state == "Disabled":
        raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
    if key.key_state != "Enabled":
        raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")
    return key


def _sign_digest_as_given(response: Any, key: Any) -> str:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from moto.kms.exceptions import ValidationException

    digest = response._get_param("Message")
    if isinstance(digest, str):
        digest = digest.encode("utf-8")
    if response._get_param("SigningAlgorithm") == "ECDSA_SHA_256" and len(digest) != 32:
        raise ValidationException("Digest is invalid length for algorithm ECDSA_SHA_256.")
    answer = json.loads(MOTO_HANDLERS["Sign"](response))
    private_key = key.private_key.private_key
    prehashed = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
    try:
        private_key.public_key().verify(base64.b64decode(answer["Signature"]), digest, prehashed)
    except InvalidSignature:
        CONTROL.corrected()
        signature = private_key.sign(digest, prehashed)
        answer["Signature"] = base64.b64encode(signature).decode()
    return json.dumps(answer)


def _require_free_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise OSError(
                f"127.0.0.1:{port} is already in use ({exc.strerror}); pass --port with a free "
                "port, or stop the other local KMS"
            ) from None


class LocalKms:
    """A moto KMS server with the corrections above, on 127.0.0.1 only."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.region = DEFAULT_REGION
        self._server: Any = None

    def start(self) -> LocalKms:
        from moto.server import ThreadedMotoServer

        install_corrections()
        # werkzeug logs every request on stderr; our users read stderr.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        if self.port:
            # ThreadedMotoServer binds in its thread and waits forever if that fails.
            _require_free_port(self.port)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.port = int(self._server.get_host_and_port()[1])
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LocalKms:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self, key_id: str) -> dict[str, str]:
        """The variables that point the SDK and ``agentic-vault-mcp`` at this emulator."""
        return {
            "AWS_ENDPOINT_URL_KMS": self.endpoint,
            "AWS_ACCESS_KEY_ID": PLACEHOLDER_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": PLACEHOLDER_SECRET_KEY,
            "AWS_REGION": self.region,
            "VAULT_REGION": self.region,
            "VAULT_KEY_ID": key_id,
        }

    def client(self) -> Any:
        """A boto3 KMS client for this emulator (placeholder credentials)."""
        import boto3

        return boto3.session.Session().client(
            "kms",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=PLACEHOLDER_ACCESS_KEY,
            aws_secret_access_key=PLACEHOLDER_SECRET_KEY,
        )

    def create_key(
        self,
        alias: str | None = None,
        key_spec: str = "ECC_SECG_P256K1",
        key_usage: str = "SIGN_VERIFY",
    ) -> dict[str, Any]:
        """Create a key (and its alias); returns its ``KeyMetadata``."""
        kms = self.client()
        metadata = kms.create_key(
            KeySpec=key_spec, KeyUsage=key_usage, Description="agentic-vault local development key"
        )["KeyMetadata"]
        if alias is not None:
            kms.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
        return dict(metadata)


def run_local_kms(port: int, sign_latency: float = 0.0) -> int:
    """``agentic-vault local-kms``: serve until interrupted; returns the exit status."""
    try:
        import moto  # noqa: F401
    except ImportError:
        print(
            "agentic-vault local-kms: error: the local KMS needs the `local` extra: "
            "pip install 'agentic-vault[local]'",
            file=sys.stderr,
        )
        return 2
    from ._der import decode_secp256k1_public_key
    from ._signer import address_of

    # One line per event on stderr (refused requests, moto failures), no tracebacks.
    logging.basicConfig(
        level=logging.WARNING, format="agentic-vault local-kms: %(message)s", stream=sys.stderr
    )
    emulator = LocalKms(port)
    try:
        emulator.start()
    except OSError as exc:
        print(f"agentic-vault local-kms: error: {exc}", file=sys.stderr)
        return 2
    if sign_latency:
        CONTROL.latency["Sign"] = sign_latency
    try:
        key = emulator.create_key(alias=DEV_ALIAS)
        public_key = emulator.client().get_public_key(KeyId=DEV_ALIAS)["PublicKey"]
        address = address_of(decode_secp256k1_public_key(bytes(public_key)))
        environment = emulator.environment(DEV_ALIAS)
        lines = [
            "# agentic-vault local KMS -- FOR DEVELOPMENT ONLY. The key lives unprotected in",
            "# this process's memory and is gone when it stops: never send real funds to it.",
            "# Paste these lines into another shell, then run agentic-vault-mcp with no flags:",
            "unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN",
            *(f"export {name}={value}" for name, value in environment.items()),
            '# For an MCP client\'s configuration, the same as an "env" block (copy the lines',
            "# between the two markers; pasted into a shell, the block does nothing):",
            *env_block(environment),
            f"# key:     {key['Arn']}",
            f"# address: {address}",
            f"# serving on {emulator.endpoint} until Ctrl-C"
            + (f" (adding {sign_latency * 1000:g} ms to every Sign)" if sign_latency else ""),
        ]
        print("\n".join(lines), flush=True)
        _wait_for_interrupt()
    finally:
        emulator.stop()
    return 0


ENV_BLOCK_MARKER = "MCP_CLIENT_ENV"


def env_block(environment: dict[str, str]) -> list[str]:
    """The variables as a JSON ``"env": {...}`` member, wrapped in a no-op shell here-document.

    The quoted here-document (``: <<'MARKER'``) makes the whole output safe to paste
    into a shell, while the lines between the markers are plain JSON to copy.
    """
    member = json.dumps({"env": environment}, indent=2).splitlines()[1:-1]
    return [f": <<'{ENV_BLOCK_MARKER}'", *(line[2:] for line in member), ENV_BLOCK_MARKER]


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
