"""A person approves what the policy sends to one (``approve_above``).

    policy says "approve" ─▶ file a request (the store: digest, policy sha256, ttl)
        ├─ the client can elicit ─▶ ask in plain words ─▶ accept: approve it (channel elicitation)
        │                                              └▶ decline / cancel: deny it → policy_denied
        └─ otherwise ─▶ approval_required: ID ─▶ `agentic-vault approvals approve ID` (out of band)
    then the vault signs only by using the approval up: same digest, same policy, once, in time.

How strong each channel is: an elicitation is answered by the MCP client, and a
client can be configured to accept automatically, so it proves a person only
as far as the client is trusted. The out-of-band channel is as strong as the
permissions on the store (who can run ``agentic-vault approvals`` against it).
A policy can demand the second (``[approval] out_of_band = true``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..store import Connection, Store, audit
from ..store import approvals as approval_table
from ..store.approvals import Approval

if TYPE_CHECKING:
    from .._vault import Call, Prepared, Vault

__all__ = ["Approval", "decide", "file_request", "summarize"]

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
    store: Store, approval_id: str, *, approve: bool, channel: str, by: str, now: float
) -> Approval | None:
    """Approve or deny a pending request, on the audit trail; None if none is pending by that id."""

    def decide_and_record(connection: Connection) -> Approval | None:
        decided = approval_table.decide(
            connection, approval_id, approve=approve, channel=channel, now=now
        )
        if decided is not None:
            audit.append(connection, _decision_fields(decided, approve, channel, by, now))
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
        "policy_sha256": approval.policy_sha256,
        "requested_by": approval.client,
    }
