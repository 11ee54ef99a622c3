"""EIP-4361 (Sign-In with Ethereum) messages, parsed to the letter of the ABNF.

The adversary writes the text. A message that merely *looks* like a sign-in
(it carries the "wants you to sign in with your Ethereum account" phrase) but
does not parse strictly is not judged as ordinary text: some verifier may
parse it leniently and log us in where the policy does not allow, so the
decider refuses it. Lines end with LF only; CR, other line separators, a
trailing newline, a user-info part in the domain, a non-ASCII statement, or
a field out of order make the message malformed.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic_core import PydanticCustomError

from ..._fields import parse_address
from ..effects import SignIn, Unreadable

PHRASE = re.compile(
    r"wants\s+you\s+to\s+sign\s+in\s+with\s+your\s+ethereum\s+account", re.IGNORECASE
)
_HEADER = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?(?P<domain>\S+) wants you to sign in with "
    r"your Ethereum account:"
)
_AUTHORITY = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
# RFC 3986 characters: reserved and unreserved, and percent signs of pct-encoding.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_STATEMENT = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]+")
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_CHAIN_ID = re.compile(r"[1-9][0-9]{0,19}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%]*")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_OPTIONAL = ("Expiration Time", "Not Before", "Request ID")
_SEPARATORS = ("\r", "\v", "\f", "\x85", "\u2028", "\u2029")


class _Malformed(Exception):
    pass


def looks_like_siwe(text: str) -> bool:
    return PHRASE.search(text) is not None


def parse(text: str) -> SignIn | Unreadable | None:
    """The sign-in ``text`` asks for; None if it does not look like one at all."""
    if not looks_like_siwe(text):
        return None
    try:
        return _parse(text)
    except _Malformed as exc:
        return Unreadable(what="a sign-in (EIP-4361) message", reason=str(exc))


def _parse(text: str) -> SignIn:
    for separator in _SEPARATORS:
        if separator in text:
            raise _Malformed(
                f"it contains the line separator {separator!r}; lines end with LF only"
            )
    lines = text.split("\n")
    header = _HEADER.fullmatch(lines[0])
    if header is None:
        raise _Malformed(
            "the first line must be exactly '<domain> wants you to sign in with your "
            "Ethereum account:'"
        )
    domain = header["domain"]
    if "@" in domain or not _AUTHORITY.fullmatch(domain):
        raise _Malformed(f"{domain!r} is not a host or host:port (user info is not accepted)")
    if len(lines) < 3:
        raise _Malformed("it ends after the first line")
    try:
        address = parse_address(lines[1])
    except PydanticCustomError as exc:
        raise _Malformed(
            f"the second line must be the account's address: it {exc.message()}"
        ) from None
    if lines[2] != "":
        raise _Malformed("the address must be followed by an empty line")
    rest = lines[3:]
    statement = None
    if rest and not rest[0].startswith("URI: "):
        statement = rest[0]
        if not _STATEMENT.fullmatch(statement):
            raise _Malformed(
                "the statement may hold only ASCII letters, digits, spaces and URI "
                "punctuation, on one line"
            )
        if len(rest) < 2 or rest[1] != "":
            raise _Malformed("the statement must be followed by an empty line")
        rest = rest[2:]
    fields, resources = _fields(rest)
    uri = fields["URI"]
    if not _URI.fullmatch(uri):
        raise _Malformed(f"URI {uri!r} is not an RFC 3986 URI")
    if fields["Version"] != "1":
        raise _Malformed(f"Version must be 1, not {fields['Version']!r}")
    if not _CHAIN_ID.fullmatch(fields["Chain ID"]) or int(fields["Chain ID"]) >= 2**64:
        raise _Malformed(f"Chain ID {fields['Chain ID']!r} is not a chain id")
    if not _NONCE.fullmatch(fields["Nonce"]):
        raise _Malformed("Nonce must be at least 8 letters or digits")
    for name in ("Issued At", "Expiration Time", "Not Before"):
        if name in fields:
            _check_time(name, fields[name])
    if "Request ID" in fields and not _REQUEST_ID.fullmatch(fields["Request ID"]):
        raise _Malformed("Request ID holds characters a URI path segment may not")
    for resource in resources:
        if not _URI.fullmatch(resource):
            raise _Malformed(f"resource {resource!r} is not an RFC 3986 URI")
    return SignIn(
        domain=domain.lower(),
        address=address,
        chain_id=int(fields["Chain ID"]),
        uri=uri,
        nonce=fields["Nonce"],
        issued_at=fields["Issued At"],
        statement=statement,
        scheme=header["scheme"],
        expiration_time=fields.get("Expiration Time"),
        not_before=fields.get("Not Before"),
        request_id=fields.get("Request ID"),
        resources=tuple(resources),
    )


def _fields(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """The ``Name: value`` lines in the order EIP-4361 fixes, then the resources."""
    fields: dict[str, str] = {}
    position = 0
    for name in ("URI", "Version", "Chain ID", "Nonce", "Issued At"):
        if position >= len(lines) or not lines[position].startswith(f"{name}: "):
            raise _Malformed(f"the line {name!r} is missing or out of order")
        fields[name] = lines[position][len(name) + 2 :]
        position += 1
    for name in _OPTIONAL:
        if position < len(lines) and lines[position].startswith(f"{name}: "):
            fields[name] = lines[position][len(name) + 2 :]
            position += 1
    resources: list[str] = []
    if position < len(lines) and lines[position] == "Resources:":
        position += 1
        while position < len(lines) and lines[position].startswith("- "):
            resources.append(lines[position][2:])
            position += 1
    if position != len(lines):
        shown = lines[position][:40]
        raise _Malformed(f"unexpected line {shown!r} (or a trailing newline) after the fields")
    return fields, resources


def _check_time(name: str, value: str) -> None:
    if not _DATE_TIME.fullmatch(value):
        raise _Malformed(f"{name} {value!r} is not an RFC 3339 date-time")
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        raise _Malformed(f"{name} {value!r} is not a real date and time") from None
