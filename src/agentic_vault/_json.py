"""Strict JSON text: a repeated key or hostile nesting is an error, not a silent choice.

RFC 8259 leaves duplicate keys undefined, and parsers disagree on which value
wins (Python's ``json`` keeps the last, some keep the first, some refuse). A
payload with ``"to"`` twice can therefore show one recipient to a reviewer and
sign another, so we refuse it. Python's ``json`` also accepts ``NaN`` and
``Infinity``, which are not JSON.

Nesting is bounded (``MAX_DEPTH``) before the parser runs, not left to
``RecursionError``: the C parser recurses on the C stack, guarded only by the
interpreter's recursion limit, and importing eth-account raises that limit to
100,000 (py_ecc does it), far past what a thread's stack holds. 100,000 nested
brackets (200 KB) then kill the process with SIGSEGV instead of raising.

    InvalidJson (ValueError)    not strict JSON: syntax, encoding, NaN/Infinity
    ├── DuplicateKey            an object repeats a key (``.path``, ``.key``)
    └── TooDeep                 arrays and objects nested more than ``MAX_DEPTH`` deep

Lone UTF-16 surrogates (``"\\ud800"``) are valid JSON grammar and come through
as they are; code that hashes or prints text checks for them itself.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

Path = tuple[str | int, ...]

MAX_DEPTH = 512
# A JSON string, escapes included.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_CHUNK = 256


class InvalidJson(ValueError):
    """The text is not strict JSON; ``str()`` says why (and where, for syntax errors)."""


class DuplicateKey(InvalidJson):
    """An object repeats ``key``; ``path`` leads from the top to that object."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key
        super().__init__(
            f"the object at {format_path(path, '$')} has the key {json.dumps(key)} more than once"
        )


class TooDeep(InvalidJson):
    """Arrays and objects nest more than ``MAX_DEPTH`` deep."""


class _Repeated(dict[str, Any]):
    """An object that repeated a key; only ever seen on the way to a ``DuplicateKey``."""

    repeated: str


def _marked(obj: dict[str, Any], pairs: list[tuple[str, Any]]) -> _Repeated:
    marked = _Repeated(obj)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.repeated = key
            break
        seen.add(key)
    return marked


def _not_json_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON value (use a number or a string)")


def loads(text: str | bytes) -> Any:
    """Parse JSON text strictly: duplicate keys, ``NaN``/``Infinity`` and deep nesting fail.

    >>> loads('{"to": "0x01", "value": [1, 2]}')
    {'to': '0x01', 'value': [1, 2]}
    >>> loads('{"tx": {"to": "0x01", "to": "0x02"}}')
    Traceback (most recent call last):
      ...
    agentic_vault._json.DuplicateKey: the object at $.tx has the key "to" more than once
    >>> try:
    ...     loads('[{}, {"a": {"b": 1, "b": 2}}]')
    ... except DuplicateKey as error:
    ...     print(error.path, error.key)
    (1, 'a') b
    """
    repeated = False

    def object_from(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        repeated = True
        return _marked(obj, pairs)

    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        except UnicodeDecodeError as exc:
            problem = f"{exc.reason} at byte {exc.start}"
            raise InvalidJson(f"the bytes are not UTF-8 ({problem})") from None
    if _too_deep(text):
        raise TooDeep(f"arrays and objects are nested more than {MAX_DEPTH} deep")
    try:
        value = json.loads(text, object_pairs_hook=object_from, parse_constant=_not_json_constant)
    except RecursionError:  # a lower recursion limit, or a caller deep in the stack
        raise TooDeep("arrays and objects are nested too deeply") from None
    except InvalidJson:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidJson(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if repeated:
        # Objects are built innermost first, before their place is known: find it now.
        found = _first_repeated(value)
        assert found is not None
        raise DuplicateKey(*found)
    return value


def _too_deep(text: str) -> bool:
    """Whether arrays and objects nest more than ``MAX_DEPTH`` deep (if not JSON: maybe)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the usual case: nothing to count
        return False
    outside = _outside_strings(text)
    # Chunk by chunk with C-level counts; a chunk that might cross the limit is walked
    # bracket by bracket (still C-level: a running sum and its peak).
    depth = 0
    for start in range(0, len(outside), _CHUNK):
        chunk = outside[start : start + _CHUNK]
        opens = chunk.count("[") + chunk.count("{")
        if depth + opens > MAX_DEPTH:
            steps = filter(None, map(_STEP.get, chunk))
            if max(accumulate(steps, initial=depth)) > MAX_DEPTH:
                return True
        depth += opens - chunk.count("]") - chunk.count("}")
    return False


def _outside_strings(text: str) -> str:
    """``text`` without its JSON strings, whose brackets are text, not structure."""
    if '\\"' in text:  # an escaped quote: find where strings really end
        return _STRING.sub("", text)
    return "".join(text.split('"')[::2])


def _first_repeated(value: Any) -> tuple[Path, str] | None:
    """The path of the first object (document order) that repeated a key, and the key."""
    # An explicit stack: the document may be as deep as the parser allowed.
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Repeated):
            return path, node.repeated
        if isinstance(node, dict):
            children = [((*path, k), v) for k, v in node.items()]
        elif isinstance(node, list):
            children = [((*path, i), v) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def format_path(path: Path, root: str) -> str:
    """``('message', 'items', 3)`` under ``typed_data`` → ``typed_data.message.items[3]``.

    A key that is not a plain identifier is shown JSON-quoted (``["a b"]``), so that
    a hostile key (a lone surrogate, a dot, a newline) cannot garble the path.
    """
    text = root
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier() and part.isascii():
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text
