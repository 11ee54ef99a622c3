"""Asking the person at the MCP client, through elicitation (form mode).

Two protocol eras, one outcome:

- up to 2025-11-25 the server sends ``elicitation/create`` in the middle of the
  tool call and waits for the answer (``Context.elicit``);
- from 2026-07-28 the tool call returns an input-required result carrying the
  question, and the client calls the tool again with the answer and our
  ``request_state`` (the approval's id, sealed by the SDK). The request on
  the second round must have the same digest, or the approval does not apply.

Either way the question is filed first as a pending approval in the store, so
an accept becomes "approved, channel elicitation" and the vault then signs by
using it up, exactly as it does with an approval given out of band.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field

from .._errors import PolicyDenied
from . import decide, file_request

if TYPE_CHECKING:
    from mcp_types import InputRequiredResult

    from .._vault import Call, Prepared, Vault

T = TypeVar("T")
Worker = Callable[[Callable[[], T]], Awaitable[T]]
INPUT_KEY = "approval"


class ApprovalForm(BaseModel):
    """The one question a person answers."""

    approve: bool = Field(
        title="Approve and sign",
        description="Sign exactly the request described above (check the digest).",
    )


def can_elicit(context: Any) -> bool:
    """Whether this client declared form elicitation and this connection can carry it."""
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    if context is None:
        return False
    capabilities = context.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None:
        return False
    # A bare `elicitation: {}` (older clients) means form mode.
    if elicitation.form is None and elicitation.url is not None:
        return False
    if context.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return True
    return bool(context.session.can_send_request)


async def ask(
    vault: Vault, prepared: Prepared, call: Call, context: Any, worker: Worker[Any]
) -> str | InputRequiredResult:
    """The id of the approval the person just gave, or the question to send (2026-07-28).

    Raises ``PolicyDenied`` (``approval: …``) when the person declines or cancels.
    """
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    if context.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return await _ask_by_round_trip(vault, prepared, call, context, worker)
    approval_id = await _file(vault, prepared, call, worker)
    from mcp.server.elicitation import AcceptedElicitation

    answer = await context.elicit(_message(prepared), ApprovalForm)
    accepted = isinstance(answer, AcceptedElicitation) and answer.data.approve
    return await _settle(vault, call, approval_id, accepted, answer.action, worker)


async def _ask_by_round_trip(
    vault: Vault, prepared: Prepared, call: Call, context: Any, worker: Worker[Any]
) -> str | InputRequiredResult:
    from mcp.server.elicitation import render_elicitation_schema
    from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult

    answer = (context.input_responses or {}).get(INPUT_KEY)
    approval_id = context.request_state
    if (
        isinstance(answer, ElicitResult)
        and approval_id
        and await _same_request(vault, prepared, approval_id, worker)
    ):
        accepted = answer.action == "accept" and (answer.content or {}).get("approve") is True
        return await _settle(vault, call, approval_id, accepted, answer.action, worker)
    approval_id = await _file(vault, prepared, call, worker)
    question = ElicitRequest(
        params=ElicitRequestFormParams(
            message=_message(prepared), requested_schema=render_elicitation_schema(ApprovalForm)
        )
    )
    return InputRequiredResult(input_requests={INPUT_KEY: question}, request_state=approval_id)


async def _same_request(
    vault: Vault, prepared: Prepared, approval_id: str, worker: Worker[Any]
) -> bool:
    from ..store import approvals as approval_table

    found = await worker(lambda: vault.store.read(lambda c: approval_table.get(c, approval_id)))
    return (
        found is not None
        and found.digest == prepared.digest_hex
        and found.policy_sha256 == (prepared.policy_sha256 or "")
    )


async def _file(vault: Vault, prepared: Prepared, call: Call, worker: Worker[Any]) -> str:
    approval = await worker(
        lambda: vault.store.write(
            lambda c: file_request(vault, c, prepared, call, channel="elicitation")
        )
    )
    return str(approval.id)


async def _settle(
    vault: Vault, call: Call, approval_id: str, accepted: bool, action: str, worker: Worker[Any]
) -> str:
    decided = await worker(
        lambda: decide(
            vault.store,
            approval_id,
            approve=accepted,
            channel="elicitation",
            by=call.client,
            now=vault.clock(),
        )
    )
    if accepted and decided is not None:
        return approval_id
    how = {"decline": "declined it", "cancel": "cancelled the question"}.get(
        action, "did not approve it"
    )
    if decided is None and accepted:
        how = "approved it too late (the request had expired or was already decided)"
    call.record.rule, call.record.outcome = "approval", "denied"
    raise PolicyDenied(f"approval: the person asked at the MCP client {how}; nothing was signed.")


def _message(prepared: Prepared) -> str:
    return (
        "agentic-vault asks you to approve a signature.\n\n"
        f"{prepared.summary()}\n\n"
        "Approve only if this is exactly what you expect."
    )
