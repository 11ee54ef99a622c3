"""Scrubbing credentials out of text we did not write: SDK messages and log records.

The first defence is never to format a secret: the SDK's request dumps are kept
away from our log handler, and our own messages name no credential. This is
the second: any text that came from elsewhere (a botocore exception quoting a
``credential_process`` helper's stderr, a traceback, an endpoint URL) passes
through ``redact_secrets`` before a log line or a tool result carries it.

    >>> redact_secrets("Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/kms")
    'Credential=[redacted]'
    >>> redact_secrets("http://user:hunter2@proxy:3128/")
    'http://user:***@proxy:3128/'
"""

from __future__ import annotations

import re
from typing import TypeVar

from ._errors import VaultError

REDACTED = "[redacted]"

# A name, then `:` or `=` with optional quotes (JSON, Python reprs of header dicts and
# bytes, HTTP headers, query strings, INI files): what follows is the value.
_ASSIGN = r"""['"]?\s*[:=]\s*b?['"]?"""

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
            re.DOTALL,
        ),
        REDACTED,
    ),
    # An Authorization header's value, whatever the scheme, up to the end of the quote or line.
    (re.compile(rf"(?i)(\bauthorization{_ASSIGN})[^'\"\r\n]+"), rf"\1{REDACTED}"),
    # SigV4 pieces wherever they appear: headers, canonical requests, presigned URLs.
    (re.compile(rf"(?i)(\bx-amz-security-token{_ASSIGN})[^'\"\s,;&]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b((?:x-amz-)?(?:credential|signature))=[^'\"\s,;&]+"), rf"\1={REDACTED}"),
    # Shared credentials / config file entries.
    (
        re.compile(
            rf"(?i)(\baws_(?:access_key_id|secret_access_key|session_token|security_token)"
            rf"{_ASSIGN})[^'\"\s,;]+"
        ),
        rf"\1{REDACTED}",
    ),
    # JSON or repr fields of credential_process, container and STS/SSO answers.
    (
        re.compile(
            r"""(?i)(['"]?\b(?:AccessKeyId|SecretAccessKey|SessionToken|Token|AccessToken|"""
            r"""access_key|secret_key)['"]?\s*[:=]\s*['"])[^'"]*"""
        ),
        rf"\1{REDACTED}",
    ),
    # Access key ids: long-term (AKIA) and temporary (ASIA).
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"), REDACTED),
)
URL_MASK = "***"
# A URL's userinfo runs to the last `@` of its authority (a password may hold an `@`).
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#\"']*)@")


def redact_url_credentials(text: str) -> str:
    """``scheme://user:PASSWORD@host`` → ``scheme://user:***@host``; a user alone is kept.

    >>> redact_url_credentials("postgresql://vault:p@ss@db/vault")
    'postgresql://vault:***@db/vault'
    """

    def mask(match: re.Match[str]) -> str:
        user, colon, _ = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}{':' + URL_MASK if colon else ''}@"

    return _URL_USERINFO.sub(mask, text)


def url_passwords(text: str) -> list[str]:
    """The passwords of the URLs in ``text`` (to mask wherever else they are quoted)."""
    found = []
    for match in _URL_USERINFO.finditer(text):
        _, colon, password = match["userinfo"].partition(":")
        if colon and password:
            found.append(password)
    return found


def redact_secrets(text: str) -> str:
    """``text`` with every credential-shaped value replaced (``[redacted]``; ``***`` in URLs)."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return redact_url_credentials(text)


E = TypeVar("E", bound=VaultError)


def without_secrets(error: E) -> E:
    """The same error, its message redacted (it may quote the SDK, which may quote anything)."""
    message = redact_secrets(error.message)
    return error if message == error.message else type(error)(message)
