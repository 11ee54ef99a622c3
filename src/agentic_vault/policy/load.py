"""Load a policy file: check who may change it, parse the TOML, validate every key.

The file decides what the wallet signs, so a file that someone other than its
owner (or root) can change is refused before it is read, and so is one in a
directory where others can swap it. Every refusal is one ``PolicyFileError``
whose message names the file, the line where possible, the dotted key and the
fix: the server prints it as its one stderr line and exits 2, and a reload
logs it and keeps the policy in force.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError

from .model import (
    ContractSection,
    DelegationSection,
    FeesSection,
    MessagesSection,
    NativeSection,
    Policy,
    RateSection,
    TokenSection,
    TypedDataAllowEntry,
    TypedDataSection,
)

MAX_POLICY_BYTES = 1024 * 1024


class PolicyFileError(Exception):
    """A policy file that cannot be used; the message says where and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and where it came from (``health_check`` reports the last three)."""

    policy: Policy
    path: str
    sha256: str
    loaded_at: datetime


def load_policy_file(path: str | os.PathLike[str]) -> LoadedPolicy:
    """Read, check and validate ``path``, or raise ``PolicyFileError``."""
    where = os.path.abspath(path)
    raw = read_policy_bytes(where)
    return LoadedPolicy(
        policy=parse_policy(raw, where),
        path=where,
        sha256=hashlib.sha256(raw).hexdigest(),
        loaded_at=datetime.now(UTC),
    )


def read_policy_bytes(path: str) -> bytes:
    """The file's bytes, once its owner, mode and directory are known to be safe."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise PolicyFileError(f"policy file {path} does not exist; check the path") from None
    except OSError as exc:
        raise PolicyFileError(f"policy file {path} cannot be opened: {exc.strerror}") from None
    try:
        # Checked on the open file itself: nothing can swap it between check and read.
        check_permissions(path, os.fstat(fd))
        chunks = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > MAX_POLICY_BYTES:
                raise PolicyFileError(
                    f"policy file {path} is larger than {MAX_POLICY_BYTES // 1024} KiB; "
                    "a policy is a short TOML file"
                )
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_permissions(path: str, info: os.stat_result) -> None:
    """Refuse a file others can change, or that lies in a directory others can change."""
    if not stat.S_ISREG(info.st_mode):
        raise PolicyFileError(f"policy file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    writers = _writers(mode)
    if writers:
        raise PolicyFileError(
            f"policy file {path} is writable by {writers} (mode {mode:04o}), so someone other "
            f"than its owner could change what this wallet signs; fix: chmod 600 {path} "
            "(or 644)"
        )
    owner = info.st_uid
    if owner not in (os.geteuid(), 0):
        raise PolicyFileError(
            f"policy file {path} belongs to user id {owner}, neither this user "
            f"({os.geteuid()}) nor root, who could change it at any time; fix: chown it to "
            "this user or to root"
        )
    directory = os.path.dirname(os.path.realpath(path))
    dir_info = os.stat(directory)
    dir_mode = stat.S_IMODE(dir_info.st_mode)
    dir_writers = _writers(dir_mode)
    # In a sticky directory (/tmp) others may create files but not replace this one.
    if dir_writers and not dir_mode & stat.S_ISVTX:
        raise PolicyFileError(
            f"policy file {path} lies in {directory}, which is writable by {dir_writers} "
            f"(mode {dir_mode:04o}), so the file could be replaced; fix: chmod go-w "
            f"{directory}, or move the policy to a directory only you can write"
        )


def _writers(mode: int) -> str:
    who = [name for bit, name in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others")) if mode & bit]
    return " and ".join(who)


def parse_policy(raw: bytes, path: str) -> Policy:
    """The validated policy in ``raw`` (the bytes of the file at ``path``)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyFileError(
            f"policy file {path} is not UTF-8 (byte {exc.start}); save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(
            f"policy file {path} is not valid TOML: {exc}; fix the syntax there"
        ) from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(_explain_validation(exc, text, path)) from None


# -- naming the key and the line of a validation error -----------------------------------

Loc = tuple[str | int, ...]


def _explain_validation(error: ValidationError, text: str, path: str) -> str:
    problems = error.errors(include_url=False)
    first = problems[0]
    loc: Loc = tuple(first["loc"])
    context = first.get("ctx") or {}
    if first["type"] == "policy_rule":
        loc = _path_to_loc(str(context["path"]))
        message = str(context["message"])
    elif loc[-1:] == ("[key]",):  # a table key (a name) that is not valid
        loc = loc[:-1]
        message = "is not a valid name: use letters, digits, _ or -, starting with a letter or _"
    else:
        message = _problem(first["type"], first["msg"], loc)
    line = _line_of(loc, text)
    where = f"policy file {path}" + (f", line {line}" if line else "")
    more = len(problems) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {_dotted(loc) or 'the file'}: {message}{tail}"


def _problem(kind: str, message: str, loc: Loc) -> str:
    if kind == "missing":
        return "is required; add it"
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"is not a policy key here; {hint}keys here are: {', '.join(known)}"
    if kind == "literal_error" and loc == ("version",):
        return "must be 1 (the only policy format so far)"
    message = message.removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "must be " + message[len("Input should be ") :]
    return message


_SECTIONS: dict[str, type[BaseModel]] = {
    "native": NativeSection,
    "typed_data": TypedDataSection,
    "messages": MessagesSection,
    "delegation": DelegationSection,
    "fees": FeesSection,
    "rate": RateSection,
}


def _known_keys(table: Loc) -> list[str]:
    """The keys the table at ``table`` may hold (for "did you mean")."""
    model: type[BaseModel] | None = None
    if not table:
        model = Policy
    elif len(table) == 1:
        model = _SECTIONS.get(str(table[0]))
    elif len(table) == 2 and table[0] in ("tokens", "contracts"):
        model = TokenSection if table[0] == "tokens" else ContractSection
    elif len(table) == 3 and table[:2] == ("typed_data", "allow"):
        model = TypedDataAllowEntry
    return sorted(model.model_fields) if model else []


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _path_to_loc(path: str) -> Loc:
    """``"tokens.usdc.to[1]"`` → ``("tokens", "usdc", "to", 1)``."""
    loc: list[str | int] = []
    for part in path.split("."):
        name, *indices = re.split(r"\[(\d+)\]", part)
        if name:
            loc.append(name)
        loc.extend(int(i) for i in indices if i)
    return tuple(loc)


_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)"
    r"\s*="
)


def _split_key(key: str) -> list[str]:
    parts = re.findall(r"[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'", key)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _line_of(loc: Loc, text: str) -> int | None:
    """The line where the longest prefix of ``loc`` is defined (a key or a table header)."""
    lines: dict[Loc, int] = {}
    table: Loc = ()
    arrays: dict[Loc, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            name = tuple(_split_key(header[2]))
            if header[1] == "[[":
                index = arrays.get(name, -1) + 1
                arrays[name] = index
                table = (*name, index)
            else:
                table = name
            # [a.b.c] also defines a and a.b, which errors may name.
            for end in range(1, len(table) + 1):
                lines.setdefault(table[:end], number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, *_split_key(key[1])), number)
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
