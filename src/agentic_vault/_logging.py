"""Logs: JSON lines on stderr. stdout belongs to the MCP protocol.

Two streams share the handler. Diagnostics (``agentic_vault.*``, the SDK's
``mcp.*``) follow ``--log-level``. The audit trail (``agentic_vault.audit``,
one line per tool call) is written at every level: a signature that left the
server is never missing from it. Nothing here ever formats a credential, a
key or the environment; only the fields listed in ``LOG_FIELDS`` reach a line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

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


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and whitelisted fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k in LOG_FIELDS and v is not None})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


class _FlushingHandler(logging.StreamHandler[TextIO]):
    """Flushes every line: an audit line must be on stderr before its result is sent."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.flush()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Route every log record to ``stream`` (stderr) as JSON lines."""
    handler = _FlushingHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The SDK logs every request, botocore every credential lookup, at INFO: noise
    # unless debugging.
    for chatty in ("mcp", "botocore", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    audit = logging.getLogger(AUDIT_LOGGER)
    audit.setLevel(logging.INFO)
    audit.propagate = False
    audit.handlers = [handler]


def audit(message: str, **fields: Any) -> None:
    """Write one audit line (always, whatever ``--log-level`` says)."""
    logging.getLogger(AUDIT_LOGGER).info(message, extra={"fields": fields})
