"""Asking the person at the MCP client, through elicitation (form mode).

Two protocol eras, one outcome:

- the handshake versions (2024-11-05 up to 2025-11-25): the server sends
  ``elicitation/create`` in the middle of the tool call and waits for the
  answer (``Context.elicit``), at most until the request expires;
- 2026-07-28: the tool call returns an input-required result carrying the
  question, and the client calls the tool again with the answer and our
  ``request_state`` (the approval's id, sealed by the SDK to this tool and
  these arguments). The answer counts only for the request it was asked
  about: the approval's digest and policy must be this request's.

Either way the question is filed first as a pending approval in the store, so
an accept becomes "approved, channel elicitation" and the vault then signs by
using it up, exactly as it does with an approval given out of band: once, for
that digest, under that policy. What the agent could try, and why it fails:

- answer a question it was never asked (a forged ``request_state``): the SDK
  refuses state it did not seal; an id we did seal names its own digest;
- swap the request between the question and the answer: the SDK refuses state
  sealed for other arguments, and a different digest gets a new question;
- replay an accepted answer: the approval is used up, so the replay is refused;
- answer after the policy changed: refused, the request is judged again;
- skip the question under ``[approval] out_of_band = true``: the client is
  never asked, and nothing here decides for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from pydantic import BaseModel, Field, StrictBool

from .._errors import ApprovalRequired, PolicyDenied
from ..store import approvals as approval_table
from ..store.approvals import Approval
from . import decide, file_request, policy_lets_client_ask

if TYPE_CHECKING:
    from mcp_types import InputRequiredResult

    from .._vault import Call, Prepared, Vault

logger = logging.getLogger("agentic_vault.approval")

T = TypeVar("T")
Worker = Callable[[Callable[[], T]], Awaitable[T]]
INPUT_KEY = "approval"
CHANNEL = "elicitation"


class ApprovalForm(BaseModel):
    """The one question a person answers."""

    # Strict: only a JSON true approves ("yes", 1, "true" are no consent).
    approve: StrictBool = Field(
        title="Approve and sign",
        description="Sign exactly the request described above (check the digest).",
    )


def can_ask(vault: Vault, prepared: Prepared, call: Call, context: Any) -> bool:
    """Whether to ask through this MCP client: its policy lets it, and the client can."""
    return policy_lets_client_ask(vault, prepared, call) and can_elicit(context)


def can_elicit(context: Any) -> bool:
    """Whether this client declared form elicitation and this connection can carry it."""
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    if context is None:
        return False
    capabilities = context.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None:
        return False
    # A bare `elicitation: {}` (clients before 2025-11-25) means form mode.
    if elicitation.form is None and elicitation.url is not None:
        return False
    if context.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return True
    # Stateless or JSON-response HTTP has no way to send the client a request.
    return bool(context.session.can_send_request)


async def ask(
    vault: Vault, prepared: Prepared, call: Call, context: Any, worker: Worker[Any]
) -> str | InputRequiredResult:
    """The id of the approval the person just gave, or the question to send (2026-07-28).

    Raises ``PolicyDenied`` (``approval: …``) when the person declines, cancels or
    does not answer in time, and ``ApprovalRequired`` when the client fails to ask
    (the request then waits for a person out of band).
    """
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    if context.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return await _ask_by_round_trip(vault, prepared, call, context, worker)
    approval = await _file(vault, prepared, call, worker)
    action = await _ask_in_call(vault, prepared, approval, context)
    return await _settle(vault, prepared, call, approval.id, action, worker)


async def _ask_in_call(vault: Vault, prepared: Prepared, approval: Approval, context: Any) -> str:
    """The client's answer to ``elicitation/create``: accept (with approve = true) or not."""
    from mcp.server.elicitation import AcceptedElicitation

    # The question is moot once the request expires: stop waiting then.
    waiting = max(approval.expires - vault.clock(), 0.0)
    try:
        with anyio.fail_after(waiting):
            answer = await context.elicit(_message(prepared, approval), ApprovalForm)
    except TimeoutError:
        return "timeout"
    except ValueError:
        # The SDK's word for an accept without content, or with content that does not
        # match the form ("yes", 1, "true" for approve): an answer, but no consent.
        return "accept-without-approve"
    except Exception as exc:  # noqa: BLE001 - whatever the client did, it did not approve
        logger.warning("the MCP client could not ask about %s: %s", approval.id, exc)
        raise ApprovalRequired(
            f"{approval.id}: the MCP client could not show the approval question ({exc}). "
            "Nothing was signed. A person can still run `agentic-vault approvals approve "
            f"{approval.id}` before it expires; then send exactly the same request again."
        ) from None
    if isinstance(answer, AcceptedElicitation):
        return "accept" if answer.data.approve else "accept-without-approve"
    return str(answer.action)


async def _ask_by_round_trip(
    vault: Vault, prepared: Prepared, call: Call, context: Any, worker: Worker[Any]
) -> str | InputRequiredResult:
    from mcp.server.elicitation import render_elicitation_schema
    from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult

    answer = (context.input_responses or {}).get(INPUT_KEY)
    approval_id = context.request_state
    if isinstance(answer, ElicitResult) and isinstance(approval_id, str):
        asked = await _approval(vault, approval_id, worker)
        if asked is not None and _is_for(asked, prepared):
            return await _settle(vault, prepared, call, asked.id, _action(answer), worker)
    # The first round, or an answer that is not about this request: ask about this one.
    approval = await _file(vault, prepared, call, worker)
    question = ElicitRequest(
        params=ElicitRequestFormParams(
            message=_message(prepared, approval),
            requested_schema=render_elicitation_schema(ApprovalForm),
        )
    )
    return InputRequiredResult(input_requests={INPUT_KEY: question}, request_state=approval.id)


def _action(answer: Any) -> str:
    if answer.action != "accept":
        return str(answer.action)
    approved = isinstance(answer.content, dict) and answer.content.get("approve") is True
    return "accept" if approved else "accept-without-approve"


def _is_for(approval: Approval, prepared: Prepared) -> bool:
    return approval.digest == prepared.digest_hex and approval.policy_sha256 == (
        prepared.policy_sha256 or ""
    )


async def _approval(vault: Vault, approval_id: str, worker: Worker[Any]) -> Approval | None:
    found: Approval | None = await worker(
        lambda: vault.store.read(lambda c: approval_table.get(c, approval_id))
    )
    return found


async def _file(vault: Vault, prepared: Prepared, call: Call, worker: Worker[Any]) -> Approval:
    approval: Approval = await worker(
        lambda: vault.store.write(lambda c: file_request(vault, c, prepared, call, channel=CHANNEL))
    )
    return approval


async def _settle(
    vault: Vault, prepared: Prepared, call: Call, approval_id: str, action: str, worker: Worker[Any]
) -> str:
    """Record the person's answer; the approval's id when it lets the request be signed."""
    accepted = action == "accept"
    if accepted and not policy_lets_client_ask(vault, prepared, call):
        # The policy was replaced while the person decided: this answer was for another.
        raise _denial(
            call,
            "the policy changed while the person decided, so the answer no longer applies; "
            "nothing was signed. Send the request again: the policy now in force judges it.",
        )
    now = vault.clock()
    decided = await worker(
        lambda: decide(
            vault.store,
            approval_id,
            approve=accepted,
            channel=CHANNEL,
            by=call.client,
            now=now,
            answer=action,
        )
    )
    if decided is not None:
        if accepted:
            return approval_id
        raise _denial(
            call, f"{_WORDS.get(action, 'the person did not approve it')}; nothing was signed."
        )
    # Nothing was decided now: the request was decided elsewhere, used, or expired.
    current = await _approval(vault, approval_id, worker)
    state = current.state_at(now) if current is not None else "expired"
    if accepted and state == "approved":
        return approval_id  # a person approved it out of band meanwhile
    why = _TOO_LATE.get(state, "the request can no longer be approved")
    raise _denial(call, f"{why}; nothing was signed.")


_WORDS = {
    "decline": "the person asked at the MCP client declined it",
    "cancel": "the person asked at the MCP client cancelled the question",
    "accept-without-approve": "the person asked at the MCP client did not tick approve",
    "timeout": "no answer came from the MCP client before the request expired",
}
_TOO_LATE = {
    "expired": "the request expired before the answer came (send it again to ask again)",
    "denied": "a person denied this request",
    "used": "this approval was already used, once, for its signature",
    "approved": "a person approved it out of band, but the answer here was no",
}


def _denial(call: Call, reason: str) -> PolicyDenied:
    call.record.rule, call.record.outcome = "approval", "denied"
    return PolicyDenied(f"approval: {reason}")


def _message(prepared: Prepared, approval: Approval) -> str:
    from .._vault import timestamp

    return (
        "agentic-vault asks you to approve a signature.\n\n"
        f"{prepared.summary()}\n\n"
        f"Request {approval.id}; this question expires at {timestamp(approval.expires)}.\n"
        "Approve only if this is exactly what you expect."
    )
