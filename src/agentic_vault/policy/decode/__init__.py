"""Decode: a request → the effects signing it would have. Pure; one module per standard.

    transaction ─▶ native (value, fees, deployment) · eip7702 (authorizations)
                   └─ its call ─▶ multicall (inner calls, each decoded below)
                                  erc20 · nft · plain transfer · other contract call
    typed data  ─▶ permit2 · permit (EIP-2612, DAI) · other EIP-712
    message     ─▶ siwe (EIP-4361) · text · bytes

Decoding knows no policy: a call is read by its selector wherever it goes, and
the decider judges it by the entry of its target. What claims a standard but
does not decode strictly becomes ``Unreadable``, which the decider refuses.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ..._message import MessageEncoding, PersonalMessage
from ..._transaction import TransactionRequest
from ..._typed_data import TypedDataPayload
from ..effects import (
    Batch,
    Call,
    ContractCall,
    DecodedCall,
    Delegation,
    Deployment,
    Effect,
    Fees,
    PlainMessage,
    TokenAllowance,
    TypedMessage,
    Unreadable,
)
from . import eip7702, erc20, multicall, native, nft, permit, permit2, siwe

# Contracts at one address on every chain, named when the policy does not name them.
WELL_KNOWN = {multicall.MULTICALL3: "Multicall3", permit2.PERMIT2: "Permit2"}


@dataclass(frozen=True)
class DecodedTransaction:
    chain_id: int
    tx_type: int
    value: int
    fees: Fees
    call: DecodedCall | None  # None: contract creation
    deployment: Deployment | None
    delegations: tuple[Delegation, ...]

    def effects(self) -> tuple[Effect, ...]:
        found: list[Effect] = []
        if self.deployment is not None:
            found.append(self.deployment)
        if self.call is not None:
            found.append(self.call.effect)
            if isinstance(self.call.effect, Batch):
                found.extend(inner.effect for inner in self.call.effect.calls)
        found.extend(self.delegations)
        found.append(self.fees)
        return tuple(found)


def decode_transaction(tx: TransactionRequest) -> DecodedTransaction:
    call = None
    deployment = None
    if tx.to is None:
        deployment = native.deployment(tx)
    else:
        call = decode_call(Call(tx.chain_id, tx.to, tx.value, tx.data))
    return DecodedTransaction(
        chain_id=tx.chain_id,
        tx_type=tx.tx_type,
        value=tx.value,
        fees=native.fees(tx),
        call=call,
        deployment=deployment,
        delegations=eip7702.delegations(tx),
    )


def decode_call(call: Call, *, inside_batch: bool = False) -> DecodedCall:
    """What one call does, read from its calldata alone."""
    return DecodedCall(call, _call_effect(call, inside_batch))


def _call_effect(call: Call, inside_batch: bool) -> Effect:
    if not call.data:
        return native.plain_transfer(call)
    if len(call.data) < 4:
        return Unreadable(
            what=f"calldata to {call.to}",
            reason=f"{len(call.data)} bytes are too short to hold a function selector",
            chain_id=call.chain_id,
            index=call.index,
        )
    if multicall.is_batch(call):
        if inside_batch:
            return Unreadable(
                what="a Multicall3 batch inside another batch",
                reason="nested batches are not unwrapped; put every call in one batch",
                chain_id=call.chain_id,
                index=call.index,
            )
        unwrapped = multicall.unwrap(call)
        if isinstance(unwrapped, Unreadable):
            return unwrapped
        name, calls = unwrapped
        return Batch(
            call.chain_id,
            call.to,
            name,
            call.value,
            tuple(decode_call(inner, inside_batch=True) for inner in calls),
            call.index,
        )
    for decoder in (erc20.decode, nft.decode):
        effect = decoder(call)
        if effect is not None:
            return effect
    return ContractCall(call.chain_id, call.to, call.selector, call.value, call.index)


def decode_typed_data(payload: TypedDataPayload) -> tuple[Effect, ...]:
    """Permit2 grants, a Permit's allowance, or the other EIP-712 message it is."""
    grants = permit2.decode(payload)
    if isinstance(grants, Unreadable):
        return (grants,)
    if grants is not None:
        return grants
    allowance: TokenAllowance | None = permit.decode(payload)
    if allowance is not None:
        return (allowance,)
    message = payload.full_message
    return (
        TypedMessage(
            chain_id=payload.chain_id,
            verifying_contract=payload.verifying_contract,
            primary_type=message["primaryType"],
            domain_name=message["domain"].get("name"),
        ),
    )


def decode_message(message: PersonalMessage, encoding: MessageEncoding) -> Effect:
    """A sign-in, a text, or bytes. Hex that spells a sign-in or printable text is that."""
    raw = message.raw
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        sign_in = siwe.parse(text)
        if sign_in is not None:
            return sign_in
    if encoding == "hex":
        if text and unprintable(text) is None:
            # The same signature as sending this text: judged as the text.
            return PlainMessage(text=text, size=len(raw), encoding="hex")
        shown = "0x" + raw[:16].hex() + ("…" if len(raw) > 16 else "")
        return PlainMessage(text=None, size=len(raw), encoding="hex", preview=shown)
    return PlainMessage(text=text, size=len(raw), encoding="utf8")


def unprintable(text: str) -> str | None:
    """The first character a person could not see or would misread, as ``U+XXXX``, or None.

    Tab and newline are text; other control characters, bidirectional and
    zero-width formatting, line separators, private-use and unassigned code
    points are not (they hide or reorder what the person reads).
    """
    for char in text:
        if char in "\t\n":
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"):
            return f"U+{ord(char):04X}"
    return None
