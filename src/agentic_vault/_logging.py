"""Logs: JSON lines on stderr. stdout belongs to the MCP protocol.

Two streams share the handler. Diagnostics (``agentic_vault.*``, the SDK's
``mcp.*``) follow ``--log-level``. The audit trail (``agentic_vault.audit``,
one line per tool call) is written at every level: a signature that left the
server is never missing from it. Nothing here ever formats a credential, a
key or the environment; only the fields listed in ``LOG_FIELDS`` reach a line.

Credentials are kept out at two depths. The SDK's loggers that dump requests
and responses (botocore's SigV4 canonical requests and headers, parsed STS/SSO
answers, urllib3's request lines) are held at WARNING whatever ``--log-level``
says, and a filter on the handler drops any of their records below WARNING
that still arrive. Then every record that is written, from any logger, has its
message, fields and traceback passed through ``redact_secrets``: a botocore
warning quoting a failing ``credential_process`` helper is written without the
secrets the helper printed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from ._redact import redact_secrets

AUDIT_LOGGER = "agentic_vault.audit"
# The only structured fields a log line may carry: none can hold a secret.
LOG_FIELDS = (
    "tool",
    "outcome",
    "error_code",
    "error",
    "duration_ms",
    "digest",
    "tx_hash",
    "chain_id",
    "to",
    "key_id",
    "address",
    "region",
    "profile",
    "expected_address",
    "client",
    "rule",
    "approval",
    "signed",
    "delivered",
    "state",
)
LOG_LEVELS = ("debug", "info", "warning", "error")
# Their DEBUG records carry signed requests (Authorization, X-Amz-Security-Token,
# Credential=, Signature=) or parsed answers (STS and SSO return credentials).
REQUEST_DUMPING_LOGGERS = (
    "botocore.auth",
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.httpsession",
    "botocore.awsrequest",
    "urllib3",
    "s3transfer",
)


def _timestamp(created: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created % 1 * 1000):03d}Z"
    )


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and whitelisted fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k in LOG_FIELDS and v is not None})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["traceback"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


def _from_request_dumping_logger(name: str) -> bool:
    return any(name == d or name.startswith(d + ".") for d in REQUEST_DUMPING_LOGGERS)


class SecretFilter(logging.Filter):
    """Drops the SDK's request dumps and redacts credentials from every other record.

    The record is rewritten in place (message formatted, traceback rendered) so that
    no formatter downstream can bring the original text back.
    """

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and _from_request_dumping_logger(record.name):
            return False
        record.msg = redact_secrets(_message_of(record))
        record.args = None
        if record.exc_info:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_secrets(record.stack_info)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {
                key: redact_secrets(value) if isinstance(value, str) else value
                for key, value in fields.items()
            }
        return True


def _message_of(record: logging.LogRecord) -> str:
    # A filter runs outside the handler's error handling: a bad format must not raise.
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - any formatting failure
        return f"{record.msg} (unformattable arguments)"


class _FlushingHandler(logging.StreamHandler[TextIO]):
    """Flushes every line: an audit line must be on stderr before its result is sent."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.flush()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Route every log record to ``stream`` (stderr) as JSON lines."""
    handler = _FlushingHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(SecretFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The SDK logs every request, botocore every credential lookup, at INFO: noise
    # unless debugging.
    for chatty in ("mcp", "botocore"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    # Even at debug: their DEBUG records are the signed requests themselves.
    for dumper in REQUEST_DUMPING_LOGGERS:
        logging.getLogger(dumper).setLevel(logging.WARNING)
    audit = logging.getLogger(AUDIT_LOGGER)
    audit.setLevel(logging.INFO)
    audit.propagate = False
    audit.handlers = [handler]
    _audit_handler[:] = [handler]


_audit_handler: list[_FlushingHandler] = []
# The only audit field that can carry text we did not write (it quotes the SDK or the store).
_FREE_TEXT = "error"


def audit(message: str, **fields: Any) -> None:
    """Write one audit line (always, whatever ``--log-level`` says).

    Straight to the handler's stream, under its lock: the same line the
    formatter would write, without a LogRecord and the filter chain on every
    tool call. Free text is redacted here as the filter would.
    """
    if not _audit_handler:
        logging.getLogger(AUDIT_LOGGER).info(message, extra={"fields": fields})
        return
    handler = _audit_handler[0]
    line: dict[str, Any] = {
        "ts": _timestamp(time.time()),
        "level": "info",
        "logger": AUDIT_LOGGER,
        "message": message,
    }
    for key, value in fields.items():
        if key in LOG_FIELDS and value is not None:
            line[key] = redact_secrets(value) if key == _FREE_TEXT else value
    text = json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)
    handler.acquire()
    try:
        handler.stream.write(text + "\n")
        handler.stream.flush()
    except (OSError, ValueError):  # stderr gone: the durable trail still has the record
        pass
    finally:
        handler.release()
