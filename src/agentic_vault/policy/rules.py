"""The policy compiled for deciding: names resolved, amounts in base units.

``compile_rules`` runs once per load, inside the model's validation, so every
mistake that needs the whole file to see (a name not in ``[addresses]``, an
amount with more decimals than its token has, a chain id not in ``chains``,
a function signature that is not canonical, two entries claiming one address)
is reported at load time with the dotted key that holds it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from pydantic_core import PydanticCustomError

from .._fields import parse_address
from .units import GWEI_DECIMALS, NATIVE_DECIMALS, format_units, parse_units

if TYPE_CHECKING:
    from .model import AddressSpec, Policy

_SELECTOR = re.compile(r"0x[0-9a-fA-F]{8}")
_SIGNATURE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)\((.*)\)")
# An RFC 3986 authority as EIP-4361 uses it: a host name or IP, and an optional port.
_AUTHORITY = re.compile(
    r"(?:(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?"
)


class RuleError(Exception):
    """A mistake in the file at ``path`` (``tokens.usdc.to[1]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class NativeRules:
    to: frozenset[str]
    max_per_tx: int | None
    max_per_day: int | None
    approve_above: int | None


@dataclass(frozen=True)
class TokenRules:
    name: str
    symbol: str
    decimals: int
    addresses: Mapping[int, str]
    to: frozenset[str]
    max_per_tx: int | None
    max_per_day: int | None
    approve_above: int | None
    spenders: frozenset[str]
    max_allowance: int | None

    def key(self, leaf: str) -> str:
        return f"tokens.{self.name}.{leaf}"

    def amount(self, base_units: int) -> str:
        """``"1,900 USDC"``."""
        return f"{format_units(base_units, self.decimals)} {self.symbol}"


@dataclass(frozen=True)
class Function:
    """A function a contract entry allows: its selector and, if given, its signature."""

    selector: bytes
    signature: str | None
    argument_types: tuple[str, ...] | None


@dataclass(frozen=True)
class ContractRules:
    name: str
    addresses: Mapping[int, str]
    functions: Mapping[bytes, Function]
    max_value: int

    def key(self, leaf: str) -> str:
        return f"contracts.{self.name}.{leaf}"

    def listed_functions(self) -> str:
        return ", ".join(f.signature or f"0x{f.selector.hex()}" for f in self.functions.values())


@dataclass(frozen=True)
class TypedDataRule:
    index: int
    addresses: Mapping[int, str]
    primary_types: frozenset[str]


@dataclass(frozen=True)
class Rules:
    """Everything ``decide`` reads; addresses checksummed, amounts in base units (wei)."""

    chains: frozenset[int]
    allow_deploy: bool
    labels: Mapping[str, str]
    native: NativeRules
    tokens: Mapping[str, TokenRules]
    token_at: Mapping[tuple[int, str], TokenRules]
    contracts: Mapping[str, ContractRules]
    contract_at: Mapping[tuple[int, str], ContractRules]
    max_validity: int
    typed_data_allow: tuple[TypedDataRule, ...]
    text: bool
    patterns: tuple[re.Pattern[str], ...]
    siwe_domains: frozenset[str]
    hex: bool
    delegates: frozenset[str]
    max_fee_per_gas: int | None
    max_fee: int | None
    max_per_hour: int | None


def compile_rules(policy: Policy) -> Rules:
    """The rules of a structurally valid policy, or ``RuleError`` naming the key at fault."""
    chains = frozenset(policy.chains)
    if len(chains) != len(policy.chains):
        raise RuleError("chains", "lists a chain id twice; list each once")
    names = {
        name: _address(value, f"addresses.{name}", {}) for name, value in policy.addresses.items()
    }
    resolver = _Resolver(names, chains)

    native = policy.native
    native_rules = NativeRules(
        to=resolver.many(native.to, "native.to"),
        max_per_tx=_units(native.max_per_tx, NATIVE_DECIMALS, "native.max_per_tx", "ether"),
        max_per_day=_units(native.max_per_day, NATIVE_DECIMALS, "native.max_per_day", "ether"),
        approve_above=_units(
            native.approve_above, NATIVE_DECIMALS, "native.approve_above", "ether"
        ),
    )

    tokens: dict[str, TokenRules] = {}
    token_at: dict[tuple[int, str], TokenRules] = {}
    for name, section in policy.tokens.items():
        where = f"tokens.{name}"
        unit = f"token {name}"
        token = TokenRules(
            name=name,
            symbol=section.symbol or name.upper(),
            decimals=section.decimals,
            addresses=resolver.per_chain(section.address, f"{where}.address"),
            to=resolver.many(section.to, f"{where}.to"),
            max_per_tx=_units(section.max_per_tx, section.decimals, f"{where}.max_per_tx", unit),
            max_per_day=_units(section.max_per_day, section.decimals, f"{where}.max_per_day", unit),
            approve_above=_units(
                section.approve_above, section.decimals, f"{where}.approve_above", unit
            ),
            spenders=resolver.many(section.spenders, f"{where}.spenders"),
            max_allowance=_units(
                section.max_allowance, section.decimals, f"{where}.max_allowance", unit
            ),
        )
        tokens[name] = token
        _claim(token_at, token, "tokens")

    contracts: dict[str, ContractRules] = {}
    contract_at: dict[tuple[int, str], ContractRules] = {}
    for name, entry in policy.contracts.items():
        where = f"contracts.{name}"
        functions: dict[bytes, Function] = {}
        for i, text in enumerate(entry.functions):
            function = _function(text, f"{where}.functions[{i}]")
            if function.selector in functions:
                raise RuleError(
                    f"{where}.functions[{i}]",
                    f"selector 0x{function.selector.hex()} is listed twice; list it once",
                )
            functions[function.selector] = function
        contract = ContractRules(
            name=name,
            addresses=resolver.per_chain(entry.address, f"{where}.address"),
            functions=functions,
            max_value=_units(entry.max_value, NATIVE_DECIMALS, f"{where}.max_value", "ether") or 0,
        )
        contracts[name] = contract
        _claim(contract_at, contract, "contracts")

    typed_allow = tuple(
        TypedDataRule(
            index=i,
            addresses=resolver.per_chain(
                entry.verifying_contract, f"typed_data.allow[{i}].verifying_contract"
            ),
            primary_types=frozenset(entry.primary_types),
        )
        for i, entry in enumerate(policy.typed_data.allow)
    )

    messages = policy.messages
    patterns = []
    for i, pattern in enumerate(messages.patterns):
        try:
            patterns.append(re.compile(pattern))
        except re.error as exc:
            raise RuleError(
                f"messages.patterns[{i}]", f"is not a valid regular expression ({exc})"
            ) from None
    domains = frozenset(
        _siwe_domain(domain, f"messages.siwe_domains[{i}]")
        for i, domain in enumerate(messages.siwe_domains)
    )

    labels: dict[str, str] = {}
    for name, address in names.items():
        labels.setdefault(address, name)
    for contract in contracts.values():
        for address in contract.addresses.values():
            labels.setdefault(address, contract.name)

    fees = policy.fees
    return Rules(
        chains=chains,
        allow_deploy=policy.allow_deploy,
        labels=labels,
        native=native_rules,
        tokens=tokens,
        token_at=token_at,
        contracts=contracts,
        contract_at=contract_at,
        max_validity=policy.typed_data.max_validity,
        typed_data_allow=typed_allow,
        text=messages.text,
        patterns=tuple(patterns),
        siwe_domains=domains,
        hex=messages.hex,
        delegates=resolver.many(policy.delegation.delegates, "delegation.delegates"),
        max_fee_per_gas=_units(fees.max_fee_per_gas, GWEI_DECIMALS, "fees.max_fee_per_gas", "gwei"),
        max_fee=_units(fees.max_fee, NATIVE_DECIMALS, "fees.max_fee", "ether"),
        max_per_hour=policy.rate.max_per_hour if policy.rate else None,
    )


Entry = TypeVar("Entry", TokenRules, ContractRules)


def _claim(index: dict[tuple[int, str], Entry], entry: Entry, section: str) -> None:
    """Index ``entry`` by (chain, address); two entries of a section may not share one."""
    for chain, address in entry.addresses.items():
        other = index.setdefault((chain, address), entry)
        if other is not entry:
            raise RuleError(
                f"{section}.{entry.name}.address",
                f"{address} on chain {chain} is already {section}.{other.name}; one entry per "
                "contract (merge the two)",
            )


class _Resolver:
    """Turns the file's address references (names or 0x addresses) into addresses."""

    def __init__(self, names: Mapping[str, str], chains: frozenset[int]) -> None:
        self.names = names
        self.chains = chains

    def one(self, ref: str, where: str) -> str:
        return _address(ref, where, self.names)

    def many(self, refs: list[str], where: str) -> frozenset[str]:
        return frozenset(self.one(ref, f"{where}[{i}]") for i, ref in enumerate(refs))

    def per_chain(self, spec: AddressSpec, where: str) -> dict[int, str]:
        """``"router"`` → that address on every listed chain; ``{"1": …}`` → per chain."""
        if isinstance(spec, str):
            address = self.one(spec, where)
            return dict.fromkeys(sorted(self.chains), address)
        if not spec:
            raise RuleError(where, "is an empty table; give { chain id = address } pairs")
        resolved: dict[int, str] = {}
        for key, ref in spec.items():
            here = f"{where}.{key}"
            if not key.isdigit() or key.startswith("0"):
                raise RuleError(here, f"{key!r} is not a chain id; keys are chain ids like 1")
            chain = int(key)
            if chain not in self.chains:
                raise RuleError(
                    here, f"chain {chain} is not in chains; add it there or remove this address"
                )
            resolved[chain] = self.one(ref, here)
        return resolved


def _address(ref: str, where: str, names: Mapping[str, str]) -> str:
    if ref.startswith(("0x", "0X")):
        try:
            return parse_address(ref)
        except PydanticCustomError as exc:
            raise RuleError(where, f"{ref!r} {exc.message()}") from None
    if ref in names:
        return names[ref]
    known = ", ".join(sorted(names)) or "none defined"
    raise RuleError(
        where,
        f"{ref!r} is neither a 0x address nor a name in [addresses] ({known}); define it "
        "there or write the address",
    )


def _units(text: str | None, decimals: int, where: str, unit: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_units(text, decimals)
    except ValueError:
        raise RuleError(
            where,
            f"{text!r} has more decimals than {unit} has ({decimals}); a limit must be exact, "
            f"so write at most {decimals} digits after the point",
        ) from None


def _function(text: str, where: str) -> Function:
    """``"execute(bytes,bytes[],uint256)"`` or ``"0x3593564c"`` → the function's selector."""
    from eth_abi.exceptions import ABITypeError, ParseError
    from eth_abi.grammar import parse
    from eth_utils.abi import function_signature_to_4byte_selector

    if _SELECTOR.fullmatch(text):
        return Function(selector=bytes.fromhex(text[2:]), signature=None, argument_types=None)
    match = _SIGNATURE.fullmatch(text)
    if match is None:
        raise RuleError(
            where,
            f"{text!r} is neither a 0x selector (4 bytes) nor a signature like "
            "'transfer(address,uint256)'",
        )
    arguments = match[2]
    types: tuple[str, ...] = ()
    if arguments:
        try:
            parsed = parse(f"({arguments})")
            parsed.validate()
        except (ParseError, ABITypeError) as exc:
            raise RuleError(
                where,
                f"{text!r} is not a canonical signature ({exc}); write full type names "
                "(uint256, not uint) without spaces",
            ) from None
        types = tuple(component.to_type_str() for component in parsed.components)
    return Function(
        selector=bytes(function_signature_to_4byte_selector(text)),
        signature=text,
        argument_types=types,
    )


def _siwe_domain(domain: str, where: str) -> str:
    normalized = domain.lower()
    if not _AUTHORITY.fullmatch(normalized):
        raise RuleError(
            where,
            f"{domain!r} is not a domain as a sign-in message names it (host or host:port, "
            "no scheme or path), e.g. 'app.example.org'",
        )
    return normalized
