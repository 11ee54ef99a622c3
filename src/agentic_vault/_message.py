"""EIP-191 ``personal_sign`` messages (version 0x45, "E") and their digest.

The digest is one line of the EIP:
``keccak256(0x19 || "Ethereum Signed Message:\\n" || len(message) || message)``. It
is written here rather than taken from eth-account, whose import alone weighs
10 MB in the server; eth-account stays the independent reference in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pydantic_core import PydanticCustomError

from ._errors import InvalidInput
from ._fields import parse_hex_bytes

MAX_MESSAGE_BYTES = 64 * 1024

MessageEncoding = Literal["utf8", "hex"]


@dataclass(frozen=True)
class PersonalMessage:
    """The bytes of a ``personal_sign`` message, ready to hash."""

    raw: bytes

    @classmethod
    def parse(
        cls, message: str, encoding: MessageEncoding = "utf8", root: str = "message"
    ) -> PersonalMessage:
        if encoding not in ("utf8", "hex"):
            raise InvalidInput(
                f"encoding: must be 'utf8' (sign the text) or 'hex' (sign 0x bytes), "
                f"not {encoding!r}."
            )
        return cls(message_bytes(message, encoding, root))

    @cached_property
    def digest(self) -> bytes:
        """``keccak256("\\x19Ethereum Signed Message:\\n" || len || message)``."""
        from eth_utils.crypto import keccak

        header = b"\x19Ethereum Signed Message:\n" + str(len(self.raw)).encode("ascii")
        return bytes(keccak(header + self.raw))


def message_bytes(message: str, encoding: MessageEncoding, root: str = "message") -> bytes:
    """The bytes to sign: the UTF-8 text, or the bytes a ``0x`` hex string spells."""
    if not isinstance(message, str):
        raise InvalidInput(f"{root}: must be a string.")
    limit = f"the limit is {MAX_MESSAGE_BYTES // 1024} KiB"
    if encoding == "hex":
        if len(message) > 2 + 2 * MAX_MESSAGE_BYTES:
            raise InvalidInput(f"{root}: spells {(len(message) - 1) // 2} bytes in hex; {limit}.")
        try:
            raw = parse_hex_bytes(message, MAX_MESSAGE_BYTES)
        except PydanticCustomError as exc:
            raise InvalidInput(
                f"{root}: {exc.message()} (encoding is 'hex'; send encoding 'utf8' to sign "
                "the text itself)."
            ) from None
    else:
        if len(message) > MAX_MESSAGE_BYTES:  # every character is at least one UTF-8 byte
            raise InvalidInput(f"{root}: is over {MAX_MESSAGE_BYTES} bytes of UTF-8; {limit}.")
        try:
            raw = message.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{root}: contains an unpaired UTF-16 surrogate, which has no UTF-8 form; "
                "send valid text or use encoding 'hex'."
            ) from None
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidInput(f"{root}: is {len(raw)} bytes; {limit}.")
    return raw
