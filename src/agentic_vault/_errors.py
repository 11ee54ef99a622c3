"""Our error hierarchy: one class per error code of the contract.

    VaultError                      (base; never raised itself)
    ├── InvalidInput                invalid_input     the caller's request is wrong
    ├── PolicyDenied                policy_denied     a signing policy refused the request
    ├── ApprovalRequired            approval_required a person must approve it first
    ├── AddressMismatch             address_mismatch  the key is not the pinned address
    ├── KmsAccessDenied             kms_access_denied IAM or key policy refused the call
    ├── KmsKeyInvalid               kms_key_invalid   wrong spec/usage, disabled or missing key
    ├── KmsUnavailable              kms_unavailable   network, throttling, credentials
    ├── StateUnavailable            state_unavailable the durable store cannot be written
    └── InternalError               internal          a bug or a corrupt KMS answer
        └── MalformedDer                              DER that is not what KMS sends

Every message is one or two sentences that say what is wrong and how to fix
it; ``str(error)`` is the text a tool result starts with (``code: message``).
botocore's exceptions are mapped into this tree in one place,
``agentic_vault._kms_errors``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorCode = Literal[
    "invalid_input",
    "policy_denied",
    "approval_required",
    "address_mismatch",
    "kms_access_denied",
    "kms_key_invalid",
    "kms_unavailable",
    "state_unavailable",
    "internal",
]


class VaultError(Exception):
    """Base of every error this package raises on purpose."""

    code: ClassVar[ErrorCode]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidInput(VaultError):
    code = "invalid_input"


class PolicyDenied(VaultError):
    code = "policy_denied"


class ApprovalRequired(VaultError):
    code = "approval_required"


class AddressMismatch(VaultError):
    code = "address_mismatch"


class KmsAccessDenied(VaultError):
    code = "kms_access_denied"


class KmsKeyInvalid(VaultError):
    code = "kms_key_invalid"


class KmsUnavailable(VaultError):
    code = "kms_unavailable"


class StateUnavailable(VaultError):
    code = "state_unavailable"


class InternalError(VaultError):
    code = "internal"


class MalformedDer(InternalError):
    """A DER blob (signature or public key) that is not strictly well-formed."""
