"""Amounts in units people read, and back: exact, never through floats.

A policy file writes amounts as decimal strings in a token's own units
(``"0.05"`` ether, ``"500"`` USDC); the guard compares base units (wei, the
token's smallest unit). Converting must be exact: ``"0.1234567"`` for a token
with 6 decimals is an error in the file, not a rounded limit.
"""

from __future__ import annotations

import re

NATIVE_DECIMALS = 18
GWEI_DECIMALS = 9

_DECIMAL_TEXT = re.compile(r"(?P<whole>[0-9]{1,78})(?:\.(?P<fraction>[0-9]{1,78}))?")

# Chains an operator is likely to list; others are shown as "chain N".
CHAIN_NAMES = {
    1: "Ethereum",
    10: "OP Mainnet",
    56: "BNB Smart Chain",
    100: "Gnosis",
    137: "Polygon",
    8453: "Base",
    42161: "Arbitrum One",
    43114: "Avalanche C-Chain",
    84532: "Base Sepolia",
    11155111: "Sepolia",
    17000: "Holesky",
}
_NATIVE_SYMBOLS = {56: "BNB", 100: "xDAI", 137: "POL", 43114: "AVAX"}


def is_decimal_text(text: str) -> bool:
    """``"500"`` or ``"0.05"``: digits, at most one point, no sign, no exponent."""
    return _DECIMAL_TEXT.fullmatch(text) is not None


def fraction_digits(text: str) -> int:
    """How many digits follow the point, ignoring trailing zeros (``"1.50"`` → 1)."""
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None:
        raise ValueError(f"not a decimal amount: {text!r}")
    return len((match["fraction"] or "").rstrip("0"))


def parse_units(text: str, decimals: int) -> int:
    """``parse_units("0.05", 18) == 50_000_000_000_000_000``; refuses what would round."""
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None:
        raise ValueError(f"not a decimal amount: {text!r}")
    fraction = (match["fraction"] or "").rstrip("0")
    if len(fraction) > decimals:
        raise ValueError(f"{text!r} has {len(fraction)} decimals; at most {decimals} are exact")
    scale: int = 10**decimals
    return int(match["whole"]) * scale + int(fraction.ljust(decimals, "0") or "0")


def format_units(amount: int, decimals: int) -> str:
    """``format_units(1_900_000_000, 6) == "1,900"``: thousands separated, no trailing zeros."""
    whole, fraction = divmod(amount, 10**decimals)
    text = f"{whole:,}"
    if fraction:
        text += "." + str(fraction).rjust(decimals, "0").rstrip("0")
    return text


def gwei(wei: int) -> str:
    """A gas price as people write it: ``"150 gwei"``."""
    return f"{format_units(wei, GWEI_DECIMALS)} gwei"


def ether(wei: int) -> str:
    """An amount of the native coin in its unit, without a symbol: ``"0.05"``."""
    return format_units(wei, NATIVE_DECIMALS)


def chain_label(chain_id: int) -> str:
    """``"Base (8453)"``, or ``"chain 12345"`` for a chain we have no name for."""
    name = CHAIN_NAMES.get(chain_id)
    return f"{name} ({chain_id})" if name else f"chain {chain_id}"


def native_symbol(chain_id: int) -> str:
    """The coin a chain's ``value`` is paid in; ETH unless we know otherwise."""
    return _NATIVE_SYMBOLS.get(chain_id, "ETH")
