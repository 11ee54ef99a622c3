"""What a signature would do, as values: who gets what, who may spend what, until when.

The decoders turn a request into these; the decider judges them; the approval
prompt and ``policy explain`` print them with ``describe``, which names
addresses and tokens the way the policy does ("300 USDC to alice (0x1234…cdef)").
Amounts are base units (wei, a token's smallest unit) until described.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .units import NATIVE_DECIMALS, chain_label, format_units, gwei, native_symbol

if TYPE_CHECKING:
    from .rules import Rules

# An allowance this large is no limit at all: no token's supply comes near 2**128 base
# units, and the "infinite" sentinels (2**256 - 1, Permit2's 2**160 - 1) are above it.
UNLIMITED = 2**128


@dataclass(frozen=True)
class Names:
    """How the policy names addresses and tokens; empty when there is no policy."""

    labels: Mapping[str, str] = field(default_factory=dict)
    tokens: Mapping[tuple[int, str], tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def from_rules(cls, rules: Rules) -> Names:
        from .decode import WELL_KNOWN

        return cls(
            labels={**WELL_KNOWN, **rules.labels},
            tokens={key: (t.symbol, t.decimals) for key, t in rules.token_at.items()},
        )

    def address(self, address: str) -> str:
        name = self.labels.get(address)
        return f"{name} ({address[:6]}…{address[-4:]})" if name else address

    def addresses(self, addresses: Iterable[str]) -> str:
        """``"alice (0xa11c…0001), bob (0xb0b0…0002)"``, or ``"none"``."""
        shown = sorted(self.address(address) for address in addresses)
        return ", ".join(shown) if shown else "none"

    def token(self, chain_id: int, token: str) -> str:
        known = self.tokens.get((chain_id, token))
        return f"{known[0]} ({token[:6]}…{token[-4:]})" if known else f"token {token}"

    def amount(self, chain_id: int, token: str, amount: int) -> str:
        if amount >= UNLIMITED:
            return f"an unlimited amount of {self.token(chain_id, token)}"
        known = self.tokens.get((chain_id, token))
        if known:
            return f"{format_units(amount, known[1])} {known[0]}"
        return f"{amount:,} base unit{'s' if amount != 1 else ''} of token {token}"


def native_amount(chain_id: int, amount: int) -> str:
    return f"{format_units(amount, NATIVE_DECIMALS)} {native_symbol(chain_id)}"


def timestamp(seconds: int) -> str:
    """A unix time as ``2026-11-25T14:32:00Z`` (or a note when it is beyond any calendar)."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"unix time {seconds} (never, in practice)"


class Effect:
    """Base of every effect; ``describe`` says it in plain words."""

    def describe(self, names: Names) -> str:
        raise NotImplementedError


def _at(index: int | None) -> str:
    return f"call {index}: " if index is not None else ""


@dataclass(frozen=True)
class Call:
    """One call: the transaction's own, or one inside a batch (``index`` counts from 1)."""

    chain_id: int
    to: str
    value: int
    data: bytes
    index: int | None = None

    @property
    def selector(self) -> bytes:
        return self.data[:4]


@dataclass(frozen=True)
class DecodedCall:
    call: Call
    effect: Effect


@dataclass(frozen=True)
class Fees(Effect):
    chain_id: int
    gas: int
    price_per_gas: int
    blob_fee: int = 0

    @property
    def max_fee(self) -> int:
        return self.gas * self.price_per_gas + self.blob_fee

    def describe(self, names: Names) -> str:
        text = (
            f"pays at most {native_amount(self.chain_id, self.max_fee)} in fees "
            f"({self.gas:,} gas at up to {gwei(self.price_per_gas)}"
        )
        if self.blob_fee:
            text += f", plus up to {native_amount(self.chain_id, self.blob_fee)} of blob gas"
        return text + ")"


@dataclass(frozen=True)
class NativeTransfer(Effect):
    chain_id: int
    to: str
    amount: int
    index: int | None = None

    def describe(self, names: Names) -> str:
        return (
            f"{_at(self.index)}sends {native_amount(self.chain_id, self.amount)} to "
            f"{names.address(self.to)} on {chain_label(self.chain_id)}"
        )


@dataclass(frozen=True)
class ContractCall(Effect):
    chain_id: int
    to: str
    selector: bytes
    value: int
    index: int | None = None

    def describe(self, names: Names) -> str:
        text = f"{_at(self.index)}calls {names.address(self.to)}, function 0x{self.selector.hex()}"
        if self.value:
            text += f", sending {native_amount(self.chain_id, self.value)}"
        return f"{text}, on {chain_label(self.chain_id)}"


@dataclass(frozen=True)
class Unreadable(Effect):
    """Calldata, typed data or a message that claims a standard but does not decode strictly."""

    what: str
    reason: str
    chain_id: int | None = None
    index: int | None = None

    def describe(self, names: Names) -> str:
        return f"{_at(self.index)}{self.what} that does not decode: {self.reason}"


@dataclass(frozen=True)
class TokenTransfer(Effect):
    chain_id: int
    token: str
    to: str
    amount: int
    sender: str | None = None  # transferFrom's `from`; None for transfer
    index: int | None = None

    def describe(self, names: Names) -> str:
        moved = names.amount(self.chain_id, self.token, self.amount)
        source = f" from {names.address(self.sender)}" if self.sender else ""
        return (
            f"{_at(self.index)}sends {moved}{source} to {names.address(self.to)} on "
            f"{chain_label(self.chain_id)}"
        )


@dataclass(frozen=True)
class TokenAllowance(Effect):
    """An allowance: approve, increaseAllowance, an EIP-2612 Permit or a Permit2 message.

    ``deadline``: until when the signature can be used (None: never expires);
    ``expires_at``: until when the allowance lasts (Permit2 allowances only);
    ``single_use``: a Permit2 transfer permit, spent by one transfer.
    """

    chain_id: int
    token: str
    spender: str
    amount: int
    method: str
    deadline: int | None = None
    expires_at: int | None = None
    owner: str | None = None
    single_use: bool = False
    signed: bool = False  # an off-chain signature (permit) rather than a call
    index: int | None = None

    def describe(self, names: Names) -> str:
        amount = names.amount(self.chain_id, self.token, self.amount)
        spender = names.address(self.spender)
        if self.amount == 0 and not self.single_use:
            text = (
                f"sets the allowance of {spender} for {names.token(self.chain_id, self.token)} to 0"
            )
        elif self.single_use:
            text = f"lets {spender} transfer up to {amount} once"
        else:
            text = f"lets {spender} spend up to {amount}"
        text = f"{_at(self.index)}{text} ({self.method}) on {chain_label(self.chain_id)}"
        if self.expires_at is not None:
            text += f"; the allowance lasts until {timestamp(self.expires_at)}"
        if self.signed:
            if self.deadline is None:
                text += "; the signature never expires"
            else:
                text += f"; the signature is valid until {timestamp(self.deadline)}"
        return text


@dataclass(frozen=True)
class OperatorApproval(Effect):
    chain_id: int
    contract: str
    operator: str
    approved: bool
    index: int | None = None

    def describe(self, names: Names) -> str:
        verb = "lets" if self.approved else "stops letting"
        return (
            f"{_at(self.index)}{verb} {names.address(self.operator)} move every token this "
            f"wallet holds in {names.address(self.contract)} (setApprovalForAll) on "
            f"{chain_label(self.chain_id)}"
        )


@dataclass(frozen=True)
class Batch(Effect):
    """A Multicall3 batch; its calls are judged one by one."""

    chain_id: int
    to: str
    function: str
    value: int
    calls: tuple[DecodedCall, ...]
    index: int | None = None

    def describe(self, names: Names) -> str:
        text = (
            f"{_at(self.index)}bundles {len(self.calls)} call{'s' if len(self.calls) != 1 else ''}"
            f" through {names.address(self.to)} ({self.function})"
        )
        if self.value:
            text += f", sending {native_amount(self.chain_id, self.value)} in total"
        return f"{text}, on {chain_label(self.chain_id)}"


@dataclass(frozen=True)
class Deployment(Effect):
    chain_id: int
    value: int
    code_size: int

    def describe(self, names: Names) -> str:
        text = f"deploys a contract ({self.code_size:,} bytes of init code)"
        if self.value:
            text += f" with {native_amount(self.chain_id, self.value)}"
        return f"{text} on {chain_label(self.chain_id)}"


@dataclass(frozen=True)
class Delegation(Effect):
    """One EIP-7702 authorization carried by a type 4 transaction."""

    chain_id: int  # the authorization's own chain id; 0 means every chain
    delegate: str
    nonce: int
    index: int

    def describe(self, names: Names) -> str:
        where = "on every chain" if self.chain_id == 0 else f"on {chain_label(self.chain_id)}"
        return (
            f"authorization {self.index}: makes the authorizing account run the code of "
            f"{names.address(self.delegate)} (EIP-7702, nonce {self.nonce}) {where}"
        )


@dataclass(frozen=True)
class SignIn(Effect):
    """A well-formed EIP-4361 sign-in message."""

    domain: str
    address: str
    chain_id: int
    uri: str
    nonce: str
    issued_at: str
    statement: str | None = None
    scheme: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()

    def describe(self, names: Names) -> str:
        text = (
            f"signs in to {self.domain} as {names.address(self.address)} on "
            f"{chain_label(self.chain_id)} (URI {self.uri}"
        )
        if self.expiration_time:
            text += f", expires {self.expiration_time}"
        return text + ")"


@dataclass(frozen=True)
class PlainMessage(Effect):
    text: str | None
    size: int
    encoding: str
    preview: str = ""

    def describe(self, names: Names) -> str:
        if self.text is not None:
            shown = self.text if len(self.text) <= 120 else self.text[:117] + "…"
            return f"signs the text {shown!r} ({self.size:,} bytes)"
        return f"signs {self.size:,} bytes of binary data ({self.preview})"


@dataclass(frozen=True)
class TypedMessage(Effect):
    """EIP-712 data that is neither a Permit nor a Permit2 message."""

    chain_id: int | None
    verifying_contract: str | None
    primary_type: str
    domain_name: str | None

    def describe(self, names: Names) -> str:
        text = f"signs EIP-712 {self.primary_type}"
        if self.domain_name is not None:
            text += f" of domain {self.domain_name!r}"
        if self.verifying_contract is not None:
            text += f" for {names.address(self.verifying_contract)}"
        if self.chain_id is not None:
            text += f" on {chain_label(self.chain_id)}"
        return text
