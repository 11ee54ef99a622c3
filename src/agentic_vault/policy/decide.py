"""Decide: effects and policy → allow, deny KEY, or ask a person. Pure: no I/O, no clock.

    evaluate(policy, request, signer=, now=)
      ├─ transaction: chains → the call (token · batch · contract · plain transfer)
      │               or the deployment → delegations → native totals → token totals → fees
      ├─ typed data:  chains → Permit2 / Permit grants (token rules) or typed_data.allow
      └─ message:     hex → sign-in (siwe_domains, chains) or text (printable, text, patterns)
      then: approve_above → 'approve'; the rolling caps and the rate → reservations

The first refusal wins and later checks do not run; each names the key that
decided and says what was asked, the limit, and what would pass. Everything
no entry allows is refused (``default``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .._message import MessageEncoding, PersonalMessage
from .._transaction import TransactionRequest
from .._typed_data import TypedDataPayload
from .decision import Decision, Reservation
from .decode import (
    DecodedTransaction,
    decode_message,
    decode_transaction,
    decode_typed_data,
    unprintable,
)
from .decode.abi import checksum, decode_strict
from .decode.erc20 import SIGNATURES as ERC20_SIGNATURES
from .decode.multicall import MULTICALL3
from .decode.multicall import is_batch as is_multicall_batch
from .effects import (
    UNLIMITED,
    Batch,
    DecodedCall,
    Effect,
    Fees,
    Names,
    NativeTransfer,
    PlainMessage,
    SignIn,
    TokenAllowance,
    TokenTransfer,
    TypedMessage,
    Unreadable,
    native_amount,
    timestamp,
)
from .load import LoadedPolicy
from .model import Policy
from .rules import ContractRules, Rules, TokenRules
from .units import NATIVE_DECIMALS, chain_label, gwei, native_symbol

Request = TransactionRequest | TypedDataPayload | PersonalMessage

DAY = 86400
HOUR = 3600
_HASH_TEXT = re.compile(r"\s*0x[0-9a-fA-F]{64}\s*")


@dataclass(frozen=True)
class Ruling:
    """A key and its sentence: a refusal, or a reason to ask a person."""

    key: str
    reason: str


@dataclass
class _Tally:
    """What a request adds up to while its effects are judged."""

    allowed_by: list[str] = field(default_factory=list)
    approvals: list[Ruling] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    granted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Per (token, spender): every grant in one request adds up against max_allowance.
    allowances: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    reservations: list[Reservation] = field(default_factory=list)

    def allow(self, key: str) -> None:
        if key not in self.allowed_by:
            self.allowed_by.append(key)


@dataclass(frozen=True)
class _Context:
    rules: Rules
    names: Names
    signer: str
    now: int


def evaluate(
    policy: LoadedPolicy | Policy,
    request: Request,
    *,
    signer: str,
    now: datetime,
    message_encoding: MessageEncoding = "utf8",
) -> Decision:
    """What ``policy`` says about signing ``request`` for the wallet ``signer`` at ``now``."""
    rules = (policy.policy if isinstance(policy, LoadedPolicy) else policy).rules
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    context = _Context(rules, Names.from_rules(rules), checksum(signer), int(now.timestamp()))
    tally = _Tally()
    effects: tuple[Effect, ...]
    if isinstance(request, TransactionRequest):
        decoded = decode_transaction(request)
        effects = decoded.effects()
        refusal = _transaction(context, decoded, tally)
    elif isinstance(request, TypedDataPayload):
        effects = decode_typed_data(request)
        refusal = _typed_data(context, request, effects, tally)
    else:
        effect = decode_message(request, message_encoding)
        effects = (effect,)
        refusal = _message(context, request, message_encoding, effect, tally)
    return _conclude(context, effects, tally, refusal)


def _conclude(
    context: _Context, effects: tuple[Effect, ...], tally: _Tally, refusal: Ruling | None
) -> Decision:
    summary = "\n".join(effect.describe(context.names) for effect in effects)
    if refusal is not None:
        return Decision("deny", refusal.key, refusal.reason, effects, (), summary)
    reservations = list(tally.reservations)
    if context.rules.max_per_hour is not None:
        reservations.append(
            Reservation(
                scope="rate",
                amount=1,
                cap=context.rules.max_per_hour,
                window_seconds=HOUR,
                key="rate.max_per_hour",
                unit="signatures",
                decimals=0,
                action="is",
            )
        )
    if tally.approvals:
        first = tally.approvals[0]
        return Decision(
            "approve",
            first.key,
            first.reason + "; a person must approve it",
            effects,
            tuple(reservations),
            summary,
        )
    rules = ", ".join(tally.allowed_by) or "default"
    return Decision("allow", rules, f"allowed by {rules}", effects, tuple(reservations), summary)


# -- transactions -------------------------------------------------------------------------


def _transaction(context: _Context, tx: DecodedTransaction, tally: _Tally) -> Ruling | None:
    # `or` runs the checks in order and stops at the first refusal.
    return (
        _chain(context.rules, tx.chain_id, "the transaction is")
        or (
            _call(context, tx.call, tally)
            if tx.call is not None
            else _deployment(context, tx, tally)
        )
        or _delegations(context, tx)
        or _native_total(context, tx.chain_id, tx.value, tally)
        or _token_totals(context, tally)
        or _fees(context.rules, tx.fees)
    )


def _chain(rules: Rules, chain_id: int, subject: str) -> Ruling | None:
    if chain_id in rules.chains:
        return None
    return Ruling(
        "chains",
        f"{subject} for {chain_label(chain_id)}, which chains does not list; the chains "
        f"signed for: {_chains(rules)}",
    )


def _chains(rules: Rules) -> str:
    return ", ".join(chain_label(c) for c in sorted(rules.chains))


def _deployment(context: _Context, tx: DecodedTransaction, tally: _Tally) -> Ruling | None:
    if not context.rules.allow_deploy:
        size = tx.deployment.code_size if tx.deployment else 0
        return Ruling(
            "allow_deploy",
            f"the transaction has no `to`, so it deploys a contract ({size:,} bytes of init "
            "code); the policy allows no deployment (allow_deploy is false). Send it to a "
            "listed address instead",
        )
    tally.allow("allow_deploy")
    return None


def _call(context: _Context, decoded: DecodedCall, tally: _Tally, batch: str = "") -> Ruling | None:
    call, effect = decoded.call, decoded.effect
    rules, names = context.rules, context.names
    said = batch + effect.describe(names)
    if isinstance(effect, NativeTransfer):
        if call.to in rules.native.to:
            tally.allow("native.to")
            return None
        return Ruling(
            "native.to",
            f"{said}; native.to does not list {call.to} (a call without calldata also runs "
            f"the recipient's code); allowed recipients: {names.addresses(rules.native.to)}",
        )
    if isinstance(effect, Batch) or is_multicall_batch(call):
        return _batch(context, decoded, tally, batch)
    if isinstance(effect, Unreadable):
        return _unreadable(said)
    token = rules.token_at.get((call.chain_id, call.to))
    if token is not None and call.selector in ERC20_SIGNATURES:
        return _token_call(context, token, decoded, tally, batch)
    contract = rules.contract_at.get((call.chain_id, call.to))
    if contract is not None:
        return _contract_call(context, contract, decoded, tally, batch)
    if token is not None:
        return Ruling(
            "default",
            f"{said}; on the token {token.symbol} only transfer, transferFrom from this wallet, "
            "approve and increaseAllowance are signed",
        )
    return Ruling(
        "default",
        f"{said}; {call.to} is neither a token in [tokens] nor a contract in [contracts], "
        "so no call to it is signed",
    )


def _unreadable(said: str) -> Ruling:
    return Ruling("default", f"{said}; only calldata that decodes exactly is signed")


def _token_call(
    context: _Context, token: TokenRules, decoded: DecodedCall, tally: _Tally, batch: str
) -> Ruling | None:
    call, effect = decoded.call, decoded.effect
    said = batch + effect.describe(context.names)
    if call.value:
        return Ruling(
            "default",
            f"{said}, and sends {native_amount(call.chain_id, call.value)} to the token "
            f"contract {token.symbol}; a token call carries no value (send 0)",
        )
    if isinstance(effect, TokenAllowance):
        return _allowance(context, token, effect, tally, batch)
    assert isinstance(effect, TokenTransfer)
    if effect.sender is not None and effect.sender != context.signer:
        return Ruling(
            "default",
            f"{said}: transferFrom moves tokens of {effect.sender}, not of this wallet "
            f"({context.signer}); only transferFrom from this wallet is signed",
        )
    if effect.to not in token.to:
        return Ruling(
            token.key("to"),
            f"{said}; {token.key('to')} does not list {effect.to}; allowed recipients: "
            f"{context.names.addresses(token.to)}",
        )
    tally.sent[token.name] += effect.amount
    tally.allow(token.key("to"))
    return None


def _allowance(
    context: _Context, token: TokenRules, grant: TokenAllowance, tally: _Tally, batch: str = ""
) -> Ruling | None:
    """An approve, increaseAllowance, Permit or Permit2 grant, judged by the token's entry."""
    names = context.names
    said = batch + grant.describe(names)
    if grant.owner is not None and grant.owner != context.signer:
        return Ruling(
            "default",
            f"{said}: the {grant.method} is for the owner {grant.owner}, not this wallet "
            f"({context.signer}); only permits of this wallet are signed",
        )
    if grant.amount == 0 and not grant.signed:
        # An on-chain approve(spender, 0) takes effect when sent and only takes rights
        # away: allowed whoever the spender. A signed permit of 0 is not let through so:
        # it lives until its deadline, spends a nonce the wallet's real permits need, and
        # a transfer permit of 0 can carry a witness a spender acts on.
        tally.allow(token.key("spenders"))
        return None
    if grant.spender not in token.spenders:
        return Ruling(
            token.key("spenders"),
            f"{said}; {token.key('spenders')} does not list {grant.spender}; allowed "
            f"spenders: {names.addresses(token.spenders)}",
        )
    total = tally.allowances[(token.name, grant.spender)] + grant.amount
    tally.allowances[(token.name, grant.spender)] = total
    if total >= UNLIMITED:
        most = f" (at most {token.amount(token.max_allowance)})" if token.max_allowance else ""
        return Ruling(
            token.key("max_allowance"),
            f"{said}: an unlimited allowance is never signed; ask for the amount needed{most}",
        )
    if token.max_allowance is not None and total > token.max_allowance:
        most = token.amount(token.max_allowance)
        counted = " (every grant to this spender in the request counts)"
        return Ruling(
            token.key("max_allowance"),
            f"{said}: at most {most} may be approved at once"
            f"{counted if total != grant.amount else ''}; ask for {most} or less",
        )
    refusal = _validity(context, grant, said)
    if refusal is not None:
        return refusal
    tally.granted[token.name] += grant.amount
    tally.allow(token.key("spenders"))
    return None


def _validity(context: _Context, grant: TokenAllowance, said: str) -> Ruling | None:
    """A signed grant must lapse within typed_data.max_validity seconds (deadline and expiry)."""
    if not grant.signed:
        return None
    bound = context.now + context.rules.max_validity
    latest = f"at most {context.rules.max_validity:,} s ahead, i.e. by {timestamp(bound)}"
    if grant.deadline is None:
        return Ruling(
            "typed_data.max_validity",
            f"{said}: a signature that never expires is never signed; set a deadline {latest}",
        )
    for what, moment in (("deadline", grant.deadline), ("expiration", grant.expires_at)):
        if moment is not None and moment > bound:
            return Ruling(
                "typed_data.max_validity",
                f"{said}: its {what} {timestamp(moment)} lies beyond the limit; set it {latest}",
            )
    return None


def _batch(context: _Context, decoded: DecodedCall, tally: _Tally, outer: str) -> Ruling | None:
    call, effect = decoded.call, decoded.effect
    said = outer + effect.describe(context.names)
    if outer:
        return Ruling("default", f"{said}; a batch inside a batch is not signed")
    contract = context.rules.contract_at.get((call.chain_id, call.to))
    if contract is None:
        return Ruling(
            "default",
            f"{said}; Multicall3 ({MULTICALL3}) is in no [contracts] entry, so batches are not "
            "signed; send the calls one by one",
        )
    if call.selector not in contract.functions:
        return Ruling(
            contract.key("functions"),
            f"{said}; {contract.key('functions')} does not list 0x{call.selector.hex()}; it "
            f"lists: {contract.listed_functions()}",
        )
    if not isinstance(effect, Batch):
        return _unreadable(said)
    if call.value > contract.max_value:
        return _too_much_value(contract, call.chain_id, call.value, said)
    carried = sum(inner.call.value for inner in effect.calls)
    if carried != call.value:
        return Ruling(
            "default",
            f"{said}; its calls pass on {native_amount(call.chain_id, carried)} of the "
            f"{native_amount(call.chain_id, call.value)} sent, and the rest would stay in "
            "Multicall3, where anyone can take it; send exactly what the calls carry",
        )
    if not effect.calls:
        return Ruling("default", f"{said}; a batch without calls is not signed")
    tally.allow(contract.key("functions"))
    for inner in effect.calls:
        refusal = _call(context, inner, tally, batch=f"in the batch through {contract.name}, ")
        if refusal is not None:
            return refusal
    return None


def _contract_call(
    context: _Context, contract: ContractRules, decoded: DecodedCall, tally: _Tally, batch: str
) -> Ruling | None:
    call = decoded.call
    said = batch + decoded.effect.describe(context.names)
    function = contract.functions.get(call.selector)
    if function is None:
        return Ruling(
            contract.key("functions"),
            f"{said}; {contract.key('functions')} does not list 0x{call.selector.hex()}; it "
            f"lists: {contract.listed_functions()}",
        )
    if function.argument_types is not None and (
        decode_strict(function.argument_types, call.data[4:]) is None
    ):
        return Ruling(
            contract.key("functions"),
            f"{said}; the arguments are not exactly the ABI encoding of {function.signature}",
        )
    if call.value > contract.max_value:
        return _too_much_value(contract, call.chain_id, call.value, said)
    tally.allow(contract.key("functions"))
    return None


def _too_much_value(contract: ContractRules, chain_id: int, value: int, said: str) -> Ruling:
    return Ruling(
        contract.key("max_value"),
        f"{said}; at most {native_amount(chain_id, contract.max_value)} may go with a call "
        f"to {contract.name}; send {native_amount(chain_id, value)} in several calls or less",
    )


def _delegations(context: _Context, tx: DecodedTransaction) -> Ruling | None:
    rules = context.rules
    for delegation in tx.delegations:
        said = delegation.describe(context.names)
        if delegation.chain_id == 0:
            return Ruling(
                "delegation.delegates",
                f"{said}: chain id 0 makes it valid on every chain, so it is never signed; "
                f"use an authorization for chain {tx.chain_id}",
            )
        if delegation.chain_id != tx.chain_id:
            return Ruling(
                "chains",
                f"{said}, but the transaction is for {chain_label(tx.chain_id)}; every "
                "authorization must be for the transaction's chain",
            )
        if delegation.delegate not in rules.delegates:
            return Ruling(
                "delegation.delegates",
                f"{said}; delegation.delegates does not list {delegation.delegate}; allowed "
                f"delegates: {context.names.addresses(rules.delegates)}",
            )
    return None


def _native_total(context: _Context, chain_id: int, value: int, tally: _Tally) -> Ruling | None:
    """The coin the transaction sends (plain, to a contract, or with a deployment)."""
    if not value:
        return None
    native = context.rules.native
    asked = native_amount(chain_id, value)
    if native.max_per_tx is not None and value > native.max_per_tx:
        return Ruling(
            "native.max_per_tx",
            f"this sends {asked}; at most {native_amount(chain_id, native.max_per_tx)} per "
            "transaction; send that or less",
        )
    if native.max_per_day is not None:
        cap = native.max_per_day
        if value > cap:
            return Ruling(
                "native.max_per_day",
                f"this sends {asked}, more than the {native_amount(chain_id, cap)} allowed per "
                f"24 h on {chain_label(chain_id)} in total",
            )
        tally.reservations.append(
            Reservation(
                scope=f"native:{chain_id}",
                amount=value,
                cap=cap,
                window_seconds=DAY,
                key="native.max_per_day",
                unit=native_symbol(chain_id),
                decimals=NATIVE_DECIMALS,
                action="sends",
            )
        )
    if native.approve_above is not None and value > native.approve_above:
        tally.approvals.append(
            Ruling(
                "native.approve_above",
                f"this sends {asked}, more than "
                f"{native_amount(chain_id, native.approve_above)} (native.approve_above)",
            )
        )
    return None


def _token_totals(context: _Context, tally: _Tally) -> Ruling | None:
    """Per token: transfers against max_per_tx; transfers and grants against max_per_day."""
    for name in sorted(set(tally.sent) | set(tally.granted)):
        token = context.rules.tokens[name]
        sent, granted = tally.sent.get(name, 0), tally.granted.get(name, 0)
        if sent and token.max_per_tx is not None and sent > token.max_per_tx:
            return Ruling(
                token.key("max_per_tx"),
                f"this sends {token.amount(sent)}; at most "
                f"{token.amount(token.max_per_tx)} per transaction; send that or less",
            )
        action = "sends" if not granted else "approves" if not sent else "sends and approves"
        total = sent + granted
        if total and token.max_per_day is not None:
            if total > token.max_per_day:
                return Ruling(
                    token.key("max_per_day"),
                    f"this {action} {token.amount(total)}, more than the "
                    f"{token.amount(token.max_per_day)} allowed per 24 h in total "
                    "(transfers and approvals count)",
                )
            tally.reservations.append(
                Reservation(
                    scope=f"token:{name}",
                    amount=total,
                    cap=token.max_per_day,
                    window_seconds=DAY,
                    key=token.key("max_per_day"),
                    unit=token.symbol,
                    decimals=token.decimals,
                    action=action,
                )
            )
        above = token.approve_above
        if above is not None and max(sent, granted) > above:
            tally.approvals.append(
                Ruling(
                    token.key("approve_above"),
                    f"this {action} {token.amount(max(sent, granted))}, more than "
                    f"{token.amount(above)} ({token.key('approve_above')})",
                )
            )
    return None


def _fees(rules: Rules, fees: Fees) -> Ruling | None:
    chain = fees.chain_id
    if rules.max_fee_per_gas is not None and fees.price_per_gas > rules.max_fee_per_gas:
        return Ruling(
            "fees.max_fee_per_gas",
            f"the transaction offers up to {gwei(fees.price_per_gas)} per gas; "
            f"at most {gwei(rules.max_fee_per_gas)}; lower gasPrice or "
            "maxFeePerGas",
        )
    if rules.max_fee is not None and fees.max_fee > rules.max_fee:
        return Ruling(
            "fees.max_fee",
            f"the transaction {fees.describe(Names())}; at most "
            f"{native_amount(chain, rules.max_fee)} in fees per transaction; lower the gas "
            "limit or the price",
        )
    return None


# -- typed data ---------------------------------------------------------------------------


def _typed_data(
    context: _Context, payload: TypedDataPayload, effects: tuple[Effect, ...], tally: _Tally
) -> Ruling | None:
    rules = context.rules
    chain_id = payload.chain_id
    if chain_id is None:
        return Ruling(
            "chains",
            "the typed data has no domain.chainId, so its signature would be valid on every "
            f"chain; add the chain id to the domain (one of: {_chains(rules)})",
        )
    refusal = _chain(rules, chain_id, "the typed data is")
    if refusal is not None:
        return refusal
    for effect in effects:
        said = effect.describe(context.names)
        if isinstance(effect, Unreadable):
            return Ruling("default", f"{said}; it is not signed")
        if isinstance(effect, TokenAllowance):
            token = rules.token_at.get((chain_id, effect.token))
            if token is None:
                return Ruling(
                    "default",
                    f"{said}; {effect.token} is no token in [tokens] on "
                    f"{chain_label(chain_id)}, so no permit for it is signed",
                )
            refusal = _allowance(context, token, effect, tally)
        elif isinstance(effect, TypedMessage):
            refusal = _typed_message(context, effect, tally)
        if refusal is not None:
            return refusal
    return _token_totals(context, tally)


def _typed_message(context: _Context, message: TypedMessage, tally: _Tally) -> Ruling | None:
    for rule in context.rules.typed_data_allow:
        assert message.chain_id is not None
        # A rule without an address on this chain matches nothing there, not even a
        # domain without a verifyingContract.
        listed = rule.addresses.get(message.chain_id)
        if (
            listed is not None
            and listed == message.verifying_contract
            and message.primary_type in rule.primary_types
        ):
            tally.allow(f"typed_data.allow[{rule.index}]")
            return None
    allowed = [
        f"{', '.join(sorted(rule.primary_types))} for "
        f"{context.names.addresses(set(rule.addresses.values()))}"
        for rule in context.rules.typed_data_allow
    ]
    return Ruling(
        "typed_data.allow",
        f"{message.describe(context.names)}; no typed_data.allow entry lists that verifying "
        f"contract and primary type on that chain; allowed: {'; '.join(allowed) or 'none'}",
    )


# -- messages -----------------------------------------------------------------------------


def _message(
    context: _Context,
    message: PersonalMessage,
    encoding: MessageEncoding,
    effect: Effect,
    tally: _Tally,
) -> Ruling | None:
    rules = context.rules
    size = len(message.raw)
    if encoding == "hex" and size == 32:
        return Ruling(
            "messages.hex",
            "the message is 32 bytes of hex, the shape of a hash: signing it could approve "
            "whatever that hash stands for (a Safe transaction, an order), so a 32-byte hex "
            "message is never signed; sign the readable message or the typed data instead",
        )
    if isinstance(effect, PlainMessage) and effect.text and _HASH_TEXT.fullmatch(effect.text):
        return Ruling(
            "messages.hex",
            "the text is a 0x-prefixed 32-byte hex string, the shape of a hash, which is never "
            "signed (some wallets sign such text as the hash's bytes); sign the readable "
            "message instead",
        )
    if encoding == "hex" and not rules.hex:
        return Ruling(
            "messages.hex",
            f"the message is {size:,} bytes given as hex; messages.hex is false, so only "
            "text messages are signed; send the text with encoding utf8",
        )
    if isinstance(effect, SignIn):
        return _sign_in(context, effect, tally)
    if isinstance(effect, Unreadable):
        return Ruling(
            "messages.siwe_domains",
            f"the message looks like a sign-in (EIP-4361) message but is not a well-formed one "
            f"({effect.reason}); only well-formed sign-in messages are signed",
        )
    assert isinstance(effect, PlainMessage)
    if effect.text is None:
        tally.allow("messages.hex")
        return None
    return _text(rules, effect.text, tally)


def _sign_in(context: _Context, sign_in: SignIn, tally: _Tally) -> Ruling | None:
    rules = context.rules
    if sign_in.domain not in rules.siwe_domains:
        return Ruling(
            "messages.siwe_domains",
            f"the message {sign_in.describe(context.names)}; messages.siwe_domains does not "
            f"list {sign_in.domain}; sign-ins are signed for: "
            f"{', '.join(sorted(rules.siwe_domains)) or 'no domain'}",
        )
    refusal = _chain(rules, sign_in.chain_id, "the sign-in is")
    if refusal is not None:
        return refusal
    if sign_in.address != context.signer:
        return Ruling(
            "messages.siwe_domains",
            f"the message signs in as {sign_in.address}, not as this wallet "
            f"({context.signer}); put this wallet's address in it",
        )
    tally.allow("messages.siwe_domains")
    return None


def _text(rules: Rules, text: str, tally: _Tally) -> Ruling | None:
    hidden = unprintable(text)
    if hidden is not None:
        return Ruling(
            "messages.text",
            f"the text contains {hidden}, a character a person cannot see or that changes how "
            "the text reads; only printable text (with tabs and newlines) is signed",
        )
    if not rules.text:
        domains = ", ".join(sorted(rules.siwe_domains))
        only = f"only sign-in messages for {domains} are signed" if domains else "none is signed"
        return Ruling(
            "messages.text",
            f"the message is plain text and messages.text is false; {only}",
        )
    if rules.patterns:
        if not any(pattern.fullmatch(text) for pattern in rules.patterns):
            return Ruling(
                "messages.patterns",
                f"the text matches none of the {len(rules.patterns)} patterns in "
                "messages.patterns (a whole-text match is needed): "
                + ", ".join(repr(p.pattern) for p in rules.patterns),
            )
        tally.allow("messages.patterns")
        return None
    tally.allow("messages.text")
    return None
