"""A person approves what the policy sends to one (``approve_above``).

    policy says "approve" ─▶ file a request (the store: digest, policy sha256, ttl)
        ├─ the policy lets the MCP client ask, and the client can elicit
        │     ─▶ ask in plain words ─▶ accept: approve it (channel elicitation)
        │                           └▶ decline / cancel: deny it → policy_denied: approval: …
        └─ otherwise ─▶ approval_required: ID ─▶ `agentic-vault approvals approve ID` (out of band)
    then the vault signs only by using the approval up: same digest, same policy, once, in time.

How strong each channel is: an elicitation is answered by the MCP client, and a
client can be configured to accept automatically, so it proves a person only
as far as the client is trusted. The out-of-band channel is as strong as the
permissions on the store (who can run ``agentic-vault approvals`` against it).
A policy can demand the second (``[approval] out_of_band = true``).
docs/approval.md says all of this for operators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store import Connection, Store, audit
from ..store import approvals as approval_table
from ..store.approvals import Approval

if TYPE_CHECKING:
    from .._vault import Call, Prepared, Vault

__all__ = ["Approval", "decide", "file_request", "policy_lets_client_ask", "summarize"]

_TOOL_WORDS = {
    "sign_transaction": "a transaction",
    "sign_typed_data": "typed data (EIP-712)",
    "sign_message": "a message (personal_sign)",
}


def summarize(prepared: Prepared) -> str:
    """What will be signed, in plain words, with the digest a person can compare."""
    from ..policy.units import chain_label

    subject = prepared.subject
    chain = chain_label(subject.chain_id) if subject.chain_id is not None else "no chain"
    lines = [f"Sign {_TOOL_WORDS[subject.tool]} on {chain}:"]
    effects = prepared.decision.summary.splitlines()
    lines.extend(f"- {text}" for text in effects or ["(no decoded effect)"])
    if prepared.decision.reason:
        lines.append(f"Why a person is asked: {prepared.decision.reason}")
    lines.append(f"Signer: {prepared.address}")
    lines.append(f"Digest: {prepared.digest_hex}")
    return "\n".join(lines)


def policy_lets_client_ask(vault: Vault, prepared: Prepared, call: Call) -> bool:
    """Whether the policy that sent ``prepared`` to a person lets the MCP client ask.

    Only the policy that decided may say so: if another one is in force by now
    (a reload between two steps), the answer is no, and the request goes out of
    band, where an approval is bound to the policy it was filed under anyway.
    """
    loaded = vault.guard_for(call).loaded  # the caller's own policy (an HTTP token's), if any
    if loaded is None or loaded.sha256 != prepared.policy_sha256:
        return False
    return not loaded.policy.approval.out_of_band


def file_request(
    vault: Vault, connection: Connection, prepared: Prepared, call: Call, *, channel: str
) -> Approval:
    """A pending request for ``prepared`` (or the one already pending), on the audit trail."""
    approval = approval_table.create(
        connection,
        digest=prepared.digest_hex,
        policy_sha256=prepared.policy_sha256 or "",
        tool=prepared.subject.tool,
        summary=summarize(prepared),
        client=call.client,
        now=vault.clock(),
        ttl=vault.approval_ttl,
    )
    fields = vault.fields(prepared, call, "approval_required", approval=approval.id)
    fields["approval_channel"] = channel
    audit.append(connection, fields)
    call.record.outcome, call.record.approval = "approval_required", approval.id
    return approval


def decide(
    store: Store,
    approval_id: str,
    *,
    approve: bool,
    channel: str,
    by: str,
    now: float,
    answer: str | None = None,
) -> Approval | None:
    """Approve a pending request, or deny (revoke) one not yet used, on the audit trail.

    None if no request by that id can take this decision (unknown, used, expired,
    already denied; or, to approve, no longer pending). ``answer`` is what the MCP
    client said (accept, decline, cancel), kept in the record.
    """

    def decide_and_record(connection: Connection) -> Approval | None:
        decided = approval_table.decide(
            connection, approval_id, approve=approve, channel=channel, now=now
        )
        if decided is not None:
            fields = _decision_fields(decided, approve, channel, by, now)
            if answer is not None:
                fields["approval_answer"] = answer
            audit.append(connection, fields)
        return decided

    return store.write(decide_and_record)


def _decision_fields(
    approval: Approval, approve: bool, channel: str, by: str, now: float
) -> dict[str, Any]:
    from .._vault import timestamp

    return {
        "time": timestamp(now),
        "kind": "approval",
        "tool": approval.tool,
        "client": by,
        "outcome": "approved" if approve else "approval_denied",
        "digest": approval.digest,
        "rule": "approval",
        "approval": approval.id,
        "approval_channel": channel,
        "approval_expires": timestamp(approval.expires),
        "policy_sha256": approval.policy_sha256,
        "requested_by": approval.client,
    }
