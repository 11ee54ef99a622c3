"""The guard: a policy every signature must pass, read top to bottom.

    load ──────▶ decode ──────────▶ decide ─────────────────▶ reserve ──▶ kms:Sign
    TOML file    request → effects   effects, policy →        (the ledger, in the
    → Policy     (who gets what,     Decision(allow | deny     durable store: rolling
    (load.py,    who may spend       KEY | approve) with the   sums and the rate, then
    model.py,    what, until when;   reservations it needs     cap_denial if a cap
    rules.py)    decode/)            (decide.py)               would be passed)

``evaluate`` is pure: the caller passes the wallet's address and the time.
Without a policy the server signs whatever is well formed; with one,
everything no entry allows is refused. docs/policy.md documents every key and
the attack it stops.
"""

from .commands import add_commands, check_file, explain, run_command
from .decide import Request, evaluate
from .decision import Decision, Outcome, Reservation, cap_denial
from .effects import (
    Batch,
    ContractCall,
    Delegation,
    Deployment,
    Effect,
    Fees,
    Names,
    NativeTransfer,
    OperatorApproval,
    PlainMessage,
    SignIn,
    TokenAllowance,
    TokenTransfer,
    TypedMessage,
    Unreadable,
)
from .holder import PolicyHolder
from .load import LoadedPolicy, PolicyFileError, load_policy_file
from .model import Policy

__all__ = [
    "Batch",
    "ContractCall",
    "Decision",
    "Delegation",
    "Deployment",
    "Effect",
    "Fees",
    "LoadedPolicy",
    "Names",
    "NativeTransfer",
    "OperatorApproval",
    "Outcome",
    "PlainMessage",
    "Policy",
    "PolicyFileError",
    "PolicyHolder",
    "Request",
    "Reservation",
    "SignIn",
    "TokenAllowance",
    "TokenTransfer",
    "TypedMessage",
    "Unreadable",
    "add_commands",
    "cap_denial",
    "check_file",
    "evaluate",
    "explain",
    "load_policy_file",
    "run_command",
]
