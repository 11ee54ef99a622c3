"""Faults injected at the botocore boundary, and counts of the KMS requests really sent.

botocore emits ``before-call.kms.<Operation>`` before it signs and sends a
request; a handler that returns ``(http_response, parsed)`` replaces the whole
round trip, one that raises stands for a failure inside the SDK (credential
refresh, connection). ``before-send.kms.<Operation>`` fires once per HTTP
request actually sent, retries included.

A client copies its session's handlers when it is built, so register these
before the signer's first KMS call.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse


def aws_error(
    code: str, message: str = "", status: int = 400
) -> tuple[AWSResponse, dict[str, Any]]:
    """What botocore would have parsed from an AWS error response."""
    response = AWSResponse("https://kms.invalid/", status, {}, None)
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return response, parsed


class Injector:
    """Replaces the next ``times`` calls of an operation (all of them if ``None``)."""

    def __init__(
        self,
        session: boto3.session.Session,
        operation: str,
        fault: Callable[[], Any],
        times: int | None = None,
    ) -> None:
        self.operation = operation
        self.fault = fault
        self.remaining = times
        self.injected = 0
        self._lock = threading.Lock()
        session.events.register(f"before-call.kms.{operation}", self._handle)

    def _handle(self, **_: Any) -> Any:
        with self._lock:
            if self.remaining == 0:
                return None
            if self.remaining is not None:
                self.remaining -= 1
            self.injected += 1
        return self.fault()


def fail_with(code: str, message: str = "", status: int = 400) -> Callable[[], Any]:
    return lambda: aws_error(code, message, status)


def raise_(exception: Exception) -> Callable[[], Any]:
    def fault() -> Any:
        raise exception

    return fault


class RequestCounter:
    """Counts KMS HTTP requests sent from a session, per operation."""

    def __init__(self, session: boto3.session.Session) -> None:
        self.sent: Counter[str] = Counter()
        self._lock = threading.Lock()
        session.events.register("before-send.kms", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        operation = request.headers.get("X-Amz-Target", b"")
        if isinstance(operation, bytes):
            operation = operation.decode()
        with self._lock:
            self.sent[operation.rpartition(".")[2]] += 1
