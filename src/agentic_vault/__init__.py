"""agentic-vault: Ethereum signatures from a key that never leaves AWS KMS.

The public surface is re-exported here; the modules behind it are private.
Importing this package connects to nothing and does not import boto3 or
eth-account: they load on first use.
"""

from ._config import SignerConfig
from ._errors import (
    AddressMismatch,
    ErrorCode,
    InternalError,
    InvalidInput,
    KmsAccessDenied,
    KmsKeyInvalid,
    KmsUnavailable,
    MalformedDer,
    PolicyDenied,
    VaultError,
)
from ._message import PersonalMessage
from ._results import AddressResult, HealthReport, SignedMessage, SignedTransaction
from ._signature import EthSignature, kms_signature_to_eth
from ._signer import KeyInfo, KmsSigner
from ._transaction import TransactionRequest, UnsignedTransaction
from ._typed_data import TypedDataPayload, parse_typed_data
from ._version import __version__

__all__ = [
    "AddressMismatch",
    "AddressResult",
    "ErrorCode",
    "EthSignature",
    "HealthReport",
    "InternalError",
    "InvalidInput",
    "KeyInfo",
    "KmsAccessDenied",
    "KmsKeyInvalid",
    "KmsSigner",
    "KmsUnavailable",
    "MalformedDer",
    "PersonalMessage",
    "PolicyDenied",
    "SignedMessage",
    "SignedTransaction",
    "SignerConfig",
    "TransactionRequest",
    "TypedDataPayload",
    "UnsignedTransaction",
    "VaultError",
    "__version__",
    "kms_signature_to_eth",
    "parse_typed_data",
]
