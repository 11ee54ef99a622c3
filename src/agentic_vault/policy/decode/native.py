"""The chain's own coin: plain transfers, contract creation, and the fee a transaction may cost."""

from __future__ import annotations

from ..._transaction import TransactionRequest
from ..effects import Call, Deployment, Fees, NativeTransfer

GAS_PER_BLOB = 2**17  # EIP-4844


def plain_transfer(call: Call) -> NativeTransfer:
    """A call without calldata moves ``value`` (and runs the target's receive code, if any)."""
    return NativeTransfer(call.chain_id, call.to, call.value, call.index)


def deployment(tx: TransactionRequest) -> Deployment:
    return Deployment(tx.chain_id, tx.value, len(tx.data))


def fees(tx: TransactionRequest) -> Fees:
    """The most the transaction can cost: gas times the highest price it accepts (+ blob gas)."""
    price = tx.gas_price if tx.tx_type in (0, 1) else tx.max_fee_per_gas
    blob_fee = 0
    if tx.tx_type == 3:
        blobs = len(tx.blob_versioned_hashes or ())
        blob_fee = blobs * GAS_PER_BLOB * (tx.max_fee_per_blob_gas or 0)
    return Fees(tx.chain_id, tx.gas, price or 0, blob_fee)
