"""The one path every signature takes, for the MCP server and the shell commands alike.

    Subject (exactly what will be signed, decoded)
       │ prepare:  the key (pinned) ─▶ authorize: policy decision ─▶ deny → refusal record
       ▼
    Prepared ─ approve? ─▶ a person (elicitation, or out of band: approval_required)
       │ execute:  one transaction: cap check ─▶ intent record ─▶ holds on the ledger
       ▼                          (a cap that does not fit → refusal record instead)
    kms:Sign ─▶ verified signature ─▶ one transaction: outcome record, holds kept/released
       ▼
    result (returned only once its outcome is committed)

The signing core (``KmsSigner``) knows nothing of this; the policy and the store
know nothing of each other. A record that cannot be committed stops the call
with ``state_unavailable`` before ``kms:Sign``, or withholds the signature
after it. A call cancelled before ``kms:Sign`` never makes it; one cancelled
after is recorded as signed and not delivered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel

from ._errors import ApprovalRequired, InvalidInput, PolicyDenied, StateUnavailable, VaultError
from ._message import MessageEncoding, PersonalMessage
from ._results import AddressResult, HealthReport, PolicyInfo, StateInfo
from ._signer import KmsSigner, prepare_transaction
from ._transaction import TransactionRequest, UnsignedTransaction
from ._typed_data import TypedDataPayload, parse_typed_data
from .store import Connection, Store, audit, ledger
from .store import approvals as approval_table

if TYPE_CHECKING:
    from .policy import LoadedPolicy, PolicyHolder

SigningTool = Literal["sign_transaction", "sign_typed_data", "sign_message"]
DEFAULT_APPROVAL_TTL = 15 * 60.0


class CallCancelled(Exception):
    """The caller went away (MCP cancellation, the watchdog, a stopping server)."""


# -- what is signed -------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """Exactly what will be signed, already validated, and its digest."""

    tool: SigningTool
    request: TransactionRequest | TypedDataPayload | PersonalMessage
    digest: bytes
    encoding: MessageEncoding = "utf8"
    transaction: UnsignedTransaction | None = None

    @classmethod
    def of_transaction(cls, transaction: Any) -> Subject:
        unsigned = prepare_transaction(transaction)
        return cls("sign_transaction", unsigned.request, unsigned.digest, transaction=unsigned)

    @classmethod
    def of_typed_data(cls, typed_data: Any) -> Subject:
        payload = parse_typed_data(typed_data, "typed_data")
        return cls("sign_typed_data", payload, payload.digest)

    @classmethod
    def of_message(cls, message: Any, encoding: MessageEncoding = "utf8") -> Subject:
        parsed = PersonalMessage.parse(message, encoding, "message")
        return cls("sign_message", parsed, parsed.digest, encoding=encoding)

    @property
    def chain_id(self) -> int | None:
        if isinstance(self.request, TransactionRequest | TypedDataPayload):
            return self.request.chain_id
        return None

    @property
    def to(self) -> str | None:
        if isinstance(self.request, TransactionRequest):
            return self.request.to
        if isinstance(self.request, TypedDataPayload):
            return self.request.verifying_contract
        return None


# -- what a policy decision must offer --------------------------------------------------


class Decision(Protocol):
    @property
    def outcome(self) -> Literal["allow", "deny", "approve"]: ...

    @property
    def key(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def summary(self) -> str: ...  # the effects in plain words, one per line

    @property
    def reservations(self) -> Sequence[ledger.Reservation]: ...


@dataclass(frozen=True)
class _Unguarded:
    """The decision when no policy is configured: everything well formed is signed."""

    outcome: Literal["allow", "deny", "approve"] = "allow"
    key: str = "none"
    reason: str = "no policy is configured"
    summary: str = ""
    reservations: Sequence[ledger.Reservation] = ()


UNGUARDED = _Unguarded()


class Guard:
    """The policy in force, if any; asked once per request, reloaded when its file changes."""

    def __init__(self, holder: PolicyHolder | None = None) -> None:
        self.holder = holder

    @property
    def loaded(self) -> LoadedPolicy | None:
        return self.holder.current if self.holder is not None else None

    def refreshed(self) -> LoadedPolicy | None:
        """The policy the next request will be judged by: reloaded first if its file changed."""
        if self.holder is not None:
            self.holder.reload_if_changed()
        return self.loaded

    def decide(self, subject: Subject, signer: str, now: float) -> tuple[Decision, str | None]:
        """The decision and the sha256 of the policy that made it (None: no policy)."""
        if self.holder is None:
            return UNGUARDED, None
        from .policy import evaluate

        self.holder.reload_if_changed()
        loaded = self.holder.current
        decision = evaluate(
            loaded,
            subject.request,
            signer=signer,
            now=datetime.fromtimestamp(now, UTC),
            message_encoding=subject.encoding,
        )
        return decision, loaded.sha256

    def cap_refusal(self, exceeded: ledger.Exceeded, now: float) -> tuple[str, PolicyDenied]:
        """The policy key that refused and the refusal, for a reservation that did not fit."""
        from .policy import Reservation, cap_denial

        reservation = exceeded.reservation
        assert isinstance(reservation, Reservation)  # the ledger holds what evaluate asked
        frees_at = exceeded.frees_at()
        denial = cap_denial(
            reservation,
            used=exceeded.usage.used,
            frees_at=datetime.fromtimestamp(frees_at, UTC) if frees_at is not None else None,
            now=datetime.fromtimestamp(now, UTC),
        )
        return denial.key, denial.error()


# -- one call --------------------------------------------------------------------------------


@dataclass
class CallRecord:
    """What the stderr audit line says about one call; filled in as it becomes known."""

    tool: str
    client: str = "unknown"
    address: str | None = None
    digest: str | None = None
    tx_hash: str | None = None
    chain_id: int | None = None
    to: str | None = None
    rule: str | None = None
    outcome: str | None = None
    approval: str | None = None


@dataclass
class Call:
    """One tool call on its way through the pipeline."""

    tool: str
    client: str
    # The caller's own policy (an HTTP token created with --policy); None: the vault's.
    guard: Guard | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    record: CallRecord = field(init=False)

    def __post_init__(self) -> None:
        self.record = CallRecord(tool=self.tool, client=self.client)

    @property
    def signed(self) -> bool | None:
        """Whether a signature was made (None: not a signing call, or not that far yet)."""
        outcome = self.record.outcome
        if outcome is None:
            return None
        return outcome in ("signed", "cancelled_after_signing")

    def write_audit_line(
        self, started: float, error: VaultError | None = None, outcome: str | None = None
    ) -> None:
        """The stderr audit line of this call (for log shippers; the store has the record)."""
        from ._logging import audit

        record = self.record
        audit(
            "tool call",
            tool=record.tool,
            client=record.client,
            address=record.address,
            outcome=outcome or ("error" if error else "ok"),
            signed=self.signed,
            error_code=error.code if error else None,
            error=error.message if error else None,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            digest=record.digest,
            tx_hash=record.tx_hash,
            chain_id=record.chain_id,
            to=record.to,
            rule=record.rule,
            approval=record.approval,
            delivered=False if self.cancelled.is_set() else None,
        )


@dataclass(frozen=True)
class Prepared:
    """A request the policy allows, or sends to a person; nothing is reserved yet."""

    subject: Subject
    decision: Decision
    policy_sha256: str | None
    address: str

    @property
    def needs_approval(self) -> bool:
        return self.decision.outcome == "approve"

    @property
    def digest_hex(self) -> str:
        return "0x" + self.subject.digest.hex()

    def summary(self) -> str:
        """The request in plain words, for a person deciding on it."""
        from .approval import summarize

        return summarize(self)


@dataclass(frozen=True)
class _Begun:
    intent_seq: int
    holds: list[str]
    approval_id: str | None


# -- the vault -------------------------------------------------------------------------------


class Vault:
    """The signer behind a guard, a store and an approval desk; see the module docstring."""

    def __init__(
        self,
        signer: KmsSigner,
        store: Store,
        guard: Guard | None = None,
        *,
        approval_ttl: float = DEFAULT_APPROVAL_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.store = store
        self.guard = guard or Guard()
        self.approval_ttl = approval_ttl
        self.clock = clock

    def guard_for(self, call: Call) -> Guard:
        """The policy that judges ``call``: its caller's own, else the server's."""
        return call.guard or self.guard

    # -- reading -----------------------------------------------------------------------

    def address(self, call: Call) -> AddressResult:
        info = self.signer.pinned_key_info()
        call.record.address = info.address
        return AddressResult(address=info.address)

    def health(self, call: Call | None = None) -> HealthReport:
        """The signer's report, with the policy in force (for ``call``'s caller) and whether
        the store can be written."""
        report = self.signer.health()
        state = self.store.health()
        # Not the policy last used, but the one in force now: an operator who edits the file
        # and asks health_check must see the edit taken (or, if it was bad, the warning).
        loaded = (self.guard_for(call) if call is not None else self.guard).refreshed()
        problems = list(report.problems)
        if not state.ok:
            problems.append(f"state_unavailable: {state.problem} Signing is refused until then.")
        policy = None
        if loaded is not None:
            policy = PolicyInfo(
                path=str(loaded.path),
                sha256=loaded.sha256,
                loaded_at=loaded.loaded_at.isoformat().replace("+00:00", "Z"),
            )
        return report.model_copy(
            update={
                "status": "ok" if not problems else "unhealthy",
                "problems": problems,
                "policy": policy,
                "state": StateInfo(backend=state.backend, ok=state.ok),
            }
        )

    # -- signing, step 1: authorize -------------------------------------------------------

    def prepare(self, subject: Subject, call: Call) -> Prepared:
        """Pin the key, check ``from``, ask the policy; a denial is recorded and raised."""
        record = call.record
        record.digest = "0x" + subject.digest.hex()
        record.chain_id, record.to = subject.chain_id, subject.to
        info = self.signer.pinned_key_info()
        record.address = info.address
        if isinstance(subject.request, TransactionRequest):
            claimed = subject.request.from_
            if claimed is not None and claimed != info.address:
                raise InvalidInput(
                    f"transaction.from: is {claimed}, but this signer's address is "
                    f"{info.address}; remove `from` or set it to the signer's address."
                )
        decision, policy_sha = self.guard_for(call).decide(subject, info.address, self.clock())
        record.rule = decision.key
        prepared = Prepared(subject, decision, policy_sha, info.address)
        if decision.outcome == "deny":
            self._refuse(
                prepared, call, "denied", PolicyDenied(f"{decision.key}: {decision.reason}")
            )
        return prepared

    # -- signing, step 3: reserve, sign, record -------------------------------------------

    def execute(self, prepared: Prepared, call: Call, approval_id: str | None = None) -> BaseModel:
        """Reserve and record the intent, sign, record the outcome; return the result.

        A request the policy sends to a person is signed only by using up an approval
        for exactly its digest under the same policy: ``approval_id`` (the one just
        given through elicitation) or any approved one filed out of band.
        """
        begun = self.store.write(lambda c: self._begin(c, prepared, call, approval_id))
        if isinstance(begun, VaultError):
            raise begun
        call.record.approval = begun.approval_id
        try:
            if call.cancelled.is_set():
                raise CallCancelled
            result = self._sign(prepared)
        except BaseException as exc:
            outcome = "cancelled" if isinstance(exc, CallCancelled) else "failed"
            code = exc.code if isinstance(exc, VaultError) else None
            self.store.write(lambda c: self._finish(c, prepared, call, begun, outcome, code=code))
            call.record.outcome = outcome
            raise
        tx_hash = getattr(result, "hash", None)
        call.record.tx_hash = tx_hash
        outcome = "cancelled_after_signing" if call.cancelled.is_set() else "signed"
        call.record.outcome = outcome  # signed, whether or not its record can be committed
        try:
            self.store.write(lambda c: self._finish(c, prepared, call, begun, outcome, tx_hash))
        except StateUnavailable:
            raise self._withheld(begun) from None
        if outcome != "signed":
            raise CallCancelled
        return result

    def _withheld(self, begun: _Begun) -> StateUnavailable:
        # The store's own words say "nothing was signed", true only before kms:Sign.
        problem = self.store.health(probe=False).problem or "the store did not commit in time."
        return StateUnavailable(
            "kms:Sign signed this request, but its record could not be committed, so the "
            f"signature was withheld and is not returned: {problem} Send the request again "
            f"once the store works; its intent (audit record {begun.intent_seq}) may stay "
            "without an outcome."
        )

    def _sign(self, prepared: Prepared) -> BaseModel:
        subject = prepared.subject
        if subject.transaction is not None:
            return self.signer.sign_transaction(subject.transaction)
        if isinstance(subject.request, TypedDataPayload):
            return self.signer.sign_typed_data(subject.request)
        assert isinstance(subject.request, PersonalMessage)
        return self.signer.sign_message(subject.request)

    def _begin(
        self, connection: Connection, prepared: Prepared, call: Call, approval_id: str | None
    ) -> _Begun | VaultError:
        now = self.clock()
        # The caps first: a request they refuse neither uses up an approval nor asks for one.
        reservations = prepared.decision.reservations
        exceeded = ledger.check(connection, reservations, now)
        if exceeded is not None:
            rule, error = self.guard_for(call).cap_refusal(exceeded, now)
            call.record.rule = rule
            audit.append(connection, self.fields(prepared, call, "denied", rule=rule, error=error))
            call.record.outcome = "denied"
            return error
        used = None
        if prepared.needs_approval:
            digest, policy_sha = prepared.digest_hex, prepared.policy_sha256 or ""
            if approval_id is not None:
                given = approval_table.get(connection, approval_id)
                candidates = [given] if given is not None else []
            else:
                candidates = approval_table.find(connection, digest, policy_sha, call.client)
            used = approval_table.consume(
                connection, candidates, digest, policy_sha, call.client, now
            )
            if used is None:
                return self._approval_missing(connection, prepared, call)
        approval_id = used.id if used is not None else None
        fields = self.fields(prepared, call, "intent", approval=approval_id)
        if used is not None:
            fields["approval_channel"] = used.channel
        intent = audit.append(connection, fields)
        holds = ledger.hold(connection, reservations, now, intent.seq)
        return _Begun(intent.seq, holds, approval_id)

    def _approval_missing(
        self, connection: Connection, prepared: Prepared, call: Call
    ) -> ApprovalRequired:
        # No usable approval (never given, used already, expired, or for another policy):
        # file a new request rather than sign.
        from .approval import file_request

        approval = file_request(self, connection, prepared, call, channel="out-of-band")
        return ApprovalRequired(
            f"{approval.id}: {prepared.decision.reason or 'this request needs a person'}. "
            "Nothing was signed. A person must run `agentic-vault approvals approve "
            f"{approval.id}` within {max(1, round(self.approval_ttl / 60))} min; then send "
            "exactly the same request again and it is signed once."
        )

    def _finish(
        self,
        connection: Connection,
        prepared: Prepared,
        call: Call,
        begun: _Begun,
        outcome: str,
        tx_hash: str | None = None,
        code: str | None = None,
    ) -> None:
        ledger.settle(
            connection, begun.holds, kept=outcome in ("signed", "cancelled_after_signing")
        )
        fields = self.fields(prepared, call, outcome, approval=begun.approval_id)
        fields["intent_seq"] = begun.intent_seq
        fields["tx_hash"] = tx_hash
        if code is not None:
            fields["error_code"] = code
        audit.append(connection, fields)

    def _refuse(
        self,
        prepared: Prepared,
        call: Call,
        outcome: str,
        error: VaultError,
        *,
        rule: str | None = None,
        raise_it: bool = True,
    ) -> None:
        fields = self.fields(prepared, call, outcome, rule=rule, error=error)
        self.store.write(lambda c: audit.append(c, fields))
        call.record.outcome = outcome
        if raise_it:
            raise error

    def fields(
        self,
        prepared: Prepared,
        call: Call,
        outcome: str,
        *,
        rule: str | None = None,
        error: VaultError | None = None,
        approval: str | None = None,
    ) -> dict[str, Any]:
        """The audit record of ``prepared`` with this outcome (seq and hashes come later)."""
        subject = prepared.subject
        fields: dict[str, Any] = {
            "time": timestamp(self.clock()),
            "kind": "intent" if outcome == "intent" else "outcome",
            "tool": subject.tool,
            "client": call.client,
            "outcome": outcome,
            "digest": prepared.digest_hex,
            "chain_id": subject.chain_id,
            "to": subject.to,
            "address": prepared.address,
            "rule": rule or prepared.decision.key,
            "policy_sha256": prepared.policy_sha256,
            "effects": prepared.decision.summary.splitlines(),
        }
        if approval is not None:
            fields["approval"] = approval
        if error is not None:
            fields["error_code"] = error.code
            fields["error"] = error.message
        return fields


def timestamp(now: float) -> str:
    return (
        datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
