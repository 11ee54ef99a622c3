"""The three KMS calls we make, each inside a bounded total time.

One boto3 client per signer, built on first use (importing boto3 costs a
third of a second, and a server must start without KMS). Credentials stay
inside botocore: its refreshable providers (SSO, ``credential_process``,
instance and container roles) renew them before they expire, so the client is
kept for the life of the process. It is rebuilt only when no credentials were
found, so that credentials which appear later (``aws sso login``, a fixed
profile) are picked up without a restart.

botocore's own retry modes have no total-time bound, so botocore makes one
attempt per call and this module retries transient failures with full-jitter
exponential backoff, never starting an attempt that could not finish before
the deadline (``kms_timeout``).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._config import SignerConfig
from ._kms_errors import KmsCallContext, classify, is_sdk_failure
from ._redact import without_secrets
from ._version import __version__

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_kms.client import KMSClient

logger = logging.getLogger("agentic_vault.kms")

BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0


def backoff_delay(attempt: int) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


class KmsClient:
    """``Sign``, ``GetPublicKey`` and ``DescribeKey`` for one key, with deadlines."""

    def __init__(
        self,
        config: SignerConfig,
        session: boto3.session.Session | None = None,
    ) -> None:
        self.config = config
        self._given_session = session
        self._session: boto3.session.Session | None = session
        self._client: KMSClient | None = None
        self._lock = threading.Lock()
        self.key_arn: str | None = None

    # -- the calls ---------------------------------------------------------------------

    def sign(self, digest: bytes, key_id: str | None = None) -> bytes:
        """KMS's DER signature of the 32-byte ``digest``, signed as given (``DIGEST``).

        ``key_id``: the key ARN ``GetPublicKey`` answered (the signer pins it), else the
        configured key id.
        """
        response = self._call(
            "Sign",
            lambda kms: kms.sign(
                KeyId=key_id or self.config.key_id,
                Message=digest,
                MessageType="DIGEST",
                SigningAlgorithm="ECDSA_SHA_256",
            ),
        )
        return bytes(response["Signature"])

    def get_public_key(self) -> dict[str, Any]:
        """The ``GetPublicKey`` response (``PublicKey`` DER, ``KeyId`` ARN, spec, usage)."""
        response = self._call(
            "GetPublicKey", lambda kms: kms.get_public_key(KeyId=self.config.key_id)
        )
        self._learn_arn(response.get("KeyId"))
        return dict(response)

    def describe_key(self, key_id: str | None = None) -> dict[str, Any]:
        """``KeyMetadata`` from ``DescribeKey`` of ``key_id`` (default: the configured one)."""
        response = self._call(
            "DescribeKey", lambda kms: kms.describe_key(KeyId=key_id or self.config.key_id)
        )
        metadata = dict(response["KeyMetadata"])
        if self.key_arn is None:
            self._learn_arn(metadata.get("Arn"))
        return metadata

    def _learn_arn(self, value: object) -> None:
        """Remember the key ARN KMS reports (messages and health name it).

        ``GetPublicKey``'s answer wins: it names the key that signs, whereas an alias
        that ``DescribeKey`` resolves may have moved since.
        """
        if isinstance(value, str) and value.startswith("arn:"):
            self.key_arn = value

    # -- what health reports -----------------------------------------------------------

    @property
    def region(self) -> str | None:
        """The configured region, else ``AWS_REGION``, else the SDK's (AWS_DEFAULT_REGION, profile).

        boto3 reads ``AWS_DEFAULT_REGION`` but not ``AWS_REGION``, which the other SDKs,
        Lambda and ECS set; the contract honours both, ``AWS_REGION`` first.
        """
        explicit = self._explicit_region()
        if explicit:
            return explicit
        with self._lock:
            session = self._session
        return session.region_name if session is not None else None

    def _explicit_region(self) -> str | None:
        return self.config.region or os.environ.get("AWS_REGION") or None

    def credential_source(self) -> str | None:
        """The kind of credential source botocore used (``env``, ``sso``...), never a value."""
        with self._lock:
            session = self._session
        if session is None:
            return None
        try:
            credentials = session.get_credentials()
        except Exception:  # noqa: BLE001 - any failure just means "unknown" here
            return None
        return getattr(credentials, "method", None) if credentials is not None else None

    # -- machinery ---------------------------------------------------------------------

    def _call(self, operation: str, call: Callable[[KMSClient], Any]) -> Any:
        deadline = time.monotonic() + self.config.kms_timeout
        per_attempt = self.config.connect_timeout + self.config.read_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(self._get_client())
            except Exception as exc:
                if not is_sdk_failure(exc):
                    raise
                error, retryable = classify(exc, self._context(operation))
                if _is_missing_credentials(exc):
                    self._forget_client()
                delay = backoff_delay(attempt)
                if not retryable or time.monotonic() + delay + per_attempt > deadline:
                    logger.warning(
                        "KMS %s failed after %d attempt(s): %s", operation, attempt, error.code
                    )
                    raise without_secrets(error) from exc
                logger.info(
                    "KMS %s attempt %d failed (%s); retrying in %.0f ms",
                    operation,
                    attempt,
                    _failure_name(exc),
                    delay * 1000,
                )
                time.sleep(delay)

    def _get_client(self) -> KMSClient:
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> KMSClient:
        import boto3
        from botocore.config import Config

        region = self._explicit_region()
        if self._session is None:
            self._session = boto3.session.Session(profile_name=self.config.profile)
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            max_pool_connections=self.config.max_concurrency,
            user_agent_extra=f"agentic-vault/{__version__}",
        )
        return self._session.client("kms", region_name=region, config=config)

    def _forget_client(self) -> None:
        with self._lock:
            self._client = None
            self._session = self._given_session

    def _context(self, operation: str) -> KmsCallContext:
        with self._lock:
            client = self._client
        return KmsCallContext(
            operation=operation,
            key_id=self.config.key_id,
            region=self.region,
            key_arn=self.key_arn,
            # The profile in effect, so a message can name it: --profile, else AWS_PROFILE.
            profile=self.config.profile or os.environ.get("AWS_PROFILE") or None,
            endpoint=client.meta.endpoint_url if client is not None else None,
        )


def _is_missing_credentials(error: Exception) -> bool:
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    return isinstance(error, NoCredentialsError | PartialCredentialsError)


def _failure_name(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(error).__name__)
    return type(error).__name__
