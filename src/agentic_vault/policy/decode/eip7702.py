"""EIP-7702 authorizations: each lets an account run a delegate contract's code as its own."""

from __future__ import annotations

from ..._transaction import TransactionRequest
from ..effects import Delegation


def delegations(tx: TransactionRequest) -> tuple[Delegation, ...]:
    return tuple(
        Delegation(auth.chain_id, auth.address, auth.nonce, index=i)
        for i, auth in enumerate(tx.authorization_list or ())
    )
