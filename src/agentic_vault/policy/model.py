"""The policy file as a pydantic model: every key, its type, its default.

This is the shape of the TOML file (see docs/policy.md); unknown keys are
refused, so a misspelt limit is an error and never a silently absent one.
Amounts stay decimal strings here: their meaning depends on the token's
``decimals``, and ``rules.compile_rules`` turns them into exact base units
once the whole file is known (names resolved, chains checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from .units import is_decimal_text

if TYPE_CHECKING:
    from .rules import Rules

CHAIN_ID_MAX = 2**64 - 1
MAX_DECIMALS = 77
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


def _amount(value: Any) -> str:
    """A decimal string (``"0.05"``), or a TOML integer; never a float, which rounds."""
    if isinstance(value, bool):
        raise PydanticCustomError("amount", 'must be a decimal string like "0.05", not a boolean')
    if isinstance(value, int):
        if value < 0:
            raise PydanticCustomError("amount", "must not be negative")
        return str(value)
    if isinstance(value, float):
        raise PydanticCustomError(
            "amount",
            "is a TOML float, which cannot hold every decimal exactly; write it as a "
            'string, e.g. "{value}"',
            {"value": repr(value)},
        )
    if not isinstance(value, str) or not is_decimal_text(value):
        raise PydanticCustomError(
            "amount",
            'must be a decimal string like "500" or "0.05" (digits and at most one point; '
            "no sign, exponent, spaces or separators)",
        )
    return value


Amount = Annotated[str, BeforeValidator(_amount)]
# A name from [addresses] or a 0x address; resolved by rules.compile_rules.
AddressRef = Annotated[str, Field(min_length=1, max_length=64)]
# One address (every chain in `chains`) or a table {chain id = address}.
AddressSpec = AddressRef | dict[str, AddressRef]


class PolicySection(BaseModel):
    """Unknown keys are errors: a typo must not turn a limit off."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NativeSection(PolicySection):
    to: list[AddressRef] = Field(default_factory=list)
    max_per_tx: Amount | None = None
    max_per_day: Amount | None = None
    approve_above: Amount | None = None


class TokenSection(PolicySection):
    decimals: int = Field(ge=0, le=MAX_DECIMALS)
    address: AddressSpec
    symbol: str | None = Field(default=None, min_length=1, max_length=16, pattern=r"^\S+$")
    to: list[AddressRef] = Field(default_factory=list)
    max_per_tx: Amount | None = None
    max_per_day: Amount | None = None
    approve_above: Amount | None = None
    spenders: list[AddressRef] = Field(default_factory=list)
    max_allowance: Amount | None = None


class ContractSection(PolicySection):
    address: AddressSpec
    functions: list[str] = Field(min_length=1)
    max_value: Amount | None = None


class TypedDataAllowEntry(PolicySection):
    verifying_contract: AddressSpec
    primary_types: list[Annotated[str, Field(pattern=r"^[A-Za-z_$][A-Za-z0-9_$]{0,63}$")]] = Field(
        min_length=1
    )


DEFAULT_MAX_VALIDITY = 3600


class TypedDataSection(PolicySection):
    max_validity: int = Field(default=DEFAULT_MAX_VALIDITY, ge=0, le=10 * 365 * 86400)
    allow: list[TypedDataAllowEntry] = Field(default_factory=list)


class MessagesSection(PolicySection):
    text: bool = False
    patterns: list[str] = Field(default_factory=list)
    siwe_domains: list[Annotated[str, Field(min_length=1, max_length=255)]] = Field(
        default_factory=list
    )
    hex: bool = False


class DelegationSection(PolicySection):
    delegates: list[AddressRef] = Field(default_factory=list)


class FeesSection(PolicySection):
    max_fee_per_gas: Amount | None = None
    max_fee: Amount | None = None


class RateSection(PolicySection):
    max_per_hour: int = Field(ge=1, le=1_000_000)


ChainId = Annotated[int, Field(ge=1, le=CHAIN_ID_MAX)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Policy(PolicySection):
    """The validated policy file. ``rules`` is its compiled form, which ``evaluate`` reads."""

    version: Literal[1]
    chains: list[ChainId] = Field(min_length=1)
    allow_deploy: bool = False
    addresses: dict[Name, str] = Field(default_factory=dict)
    native: NativeSection = Field(default_factory=NativeSection)
    tokens: dict[Name, TokenSection] = Field(default_factory=dict)
    contracts: dict[Name, ContractSection] = Field(default_factory=dict)
    typed_data: TypedDataSection = Field(default_factory=TypedDataSection)
    messages: MessagesSection = Field(default_factory=MessagesSection)
    delegation: DelegationSection = Field(default_factory=DelegationSection)
    fees: FeesSection = Field(default_factory=FeesSection)
    rate: RateSection | None = None

    _rules: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> Policy:
        from .rules import RuleError, compile_rules

        try:
            self._rules = compile_rules(self)
        except RuleError as exc:
            raise PydanticCustomError(
                "policy_rule", "{message}", {"path": exc.path, "message": exc.message}
            ) from None
        return self

    @property
    def rules(self) -> Rules:
        """The compiled rules: base units, resolved addresses, selectors, regexes."""
        rules: Rules = self._rules
        return rules
