"""The KMS-backed Ethereum signer: one signing core fed by per-kind encoders.

    request ──encode──▶ 32-byte digest ──kms:Sign──▶ DER ──kms_signature_to_eth──▶ (r, s, parity)
                                                                                    │
    result ◀──────────────────────── encode the signed form (transactions only) ◀──┘

Encoders (``_transaction``, ``_typed_data``, ``_message``) validate strictly and
compute the digest without touching KMS; ``sign_digest`` is the only path to
``kms:Sign``. The public key is fetched once per process and every signature is
verified against it before it leaves this module.

The key is pinned: ``Sign`` names the key ARN that ``GetPublicKey`` answered,
never the configured alias, so re-pointing an alias cannot change the key (and
the address) a running server signs with; ``health`` reports such drift. With
``expected_address`` set, a key whose address differs is refused without the
agent ever seeing that address: only the operator's log names it, once.

Example (against a KMS endpoint; see the README for a local one)::

    signer = KmsSigner(SignerConfig(key_id="alias/agentic-vault-dev", region="us-east-1"))
    signed = signer.sign_message("hello")
    assert Account.recover_message(encode_defunct(text="hello"),
                                   signature=signed.signature) == signer.address
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._config import SignerConfig
from ._der import decode_secp256k1_public_key
from ._errors import AddressMismatch, InvalidInput, KmsKeyInvalid, VaultError
from ._kms import KmsClient
from ._message import MessageEncoding, PersonalMessage
from ._results import HealthReport, SignedMessage, SignedTransaction
from ._signature import EthSignature, kms_signature_to_eth
from ._transaction import TransactionRequest, UnsignedTransaction
from ._typed_data import TypedDataPayload, parse_typed_data

if TYPE_CHECKING:
    import boto3

logger = logging.getLogger("agentic_vault.signer")

REQUIRED_KEY_SPEC = "ECC_SECG_P256K1"
REQUIRED_KEY_USAGE = "SIGN_VERIFY"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What one ``GetPublicKey`` tells us; it never changes for a key ARN."""

    public_key: bytes
    address: str
    key_arn: str | None = None  # the key KMS answered for; every Sign names it


def address_of(public_key: bytes) -> str:
    """The EIP-55 address of a 65-byte uncompressed point: keccak256(X || Y)[12:]."""
    from eth_utils.address import to_checksum_address
    from eth_utils.crypto import keccak

    return str(to_checksum_address(keccak(public_key[1:])[12:]))


class KmsSigner:
    """Signs Ethereum digests, transactions, typed data and messages with a KMS key."""

    def __init__(
        self, config: SignerConfig, *, session: boto3.session.Session | None = None
    ) -> None:
        self.config = config
        self.kms = KmsClient(config, session)
        self._key_info: KeyInfo | None = None
        self._key_lock = threading.Lock()
        self._mismatch_logged = False

    # -- the key ----------------------------------------------------------------------

    def key_info(self) -> KeyInfo:
        """The key's public key and address: one ``GetPublicKey`` per process, thread-safe."""
        info = self._key_info
        if info is not None:
            return info
        with self._key_lock:
            if self._key_info is None:
                self._key_info = self._fetch_key_info()
            return self._key_info

    @property
    def address(self) -> str:
        return self.key_info().address

    def _fetch_key_info(self) -> KeyInfo:
        response = self.kms.get_public_key()
        usage = response.get("KeyUsage")
        if usage is not None and usage != REQUIRED_KEY_USAGE:
            raise KmsKeyInvalid(
                f"KMS key {self.config.key_id} has key usage {usage}; agentic-vault needs "
                f"{REQUIRED_KEY_SPEC} with key usage {REQUIRED_KEY_USAGE}. Create such a key "
                "and point --key-id at it."
            )
        public_key = decode_secp256k1_public_key(bytes(response["PublicKey"]))
        arn = response.get("KeyId")
        return KeyInfo(
            public_key=public_key,
            address=address_of(public_key),
            key_arn=arn if isinstance(arn, str) and arn.startswith("arn:") else None,
        )

    def pinned_key_info(self) -> KeyInfo:
        """``key_info()``, provided the address is the expected one (else ``AddressMismatch``).

        Everything that signs, or tells the address, goes through here: an agent hands
        its address out to be paid, so a wrong key is refused like a wrong signature.
        The refusal does not say the key's address (the agent could hand it out anyway);
        the operator's log does.
        """
        info = self.key_info()
        expected = self.config.expected_address
        if not self._is_expected(info):
            raise AddressMismatch(
                f"KMS key {self.config.key_id} is not the key of the expected address "
                f"{expected}; nothing was signed. The server's log names the key's address. "
                "Point --key-id (and --region, --profile) at the right key, or correct "
                "--expected-address."
            )
        return info

    def _is_expected(self, info: KeyInfo) -> bool:
        """Whether ``info`` has the expected address; logs the actual one, once, if not."""
        expected = self.config.expected_address
        if expected is None or info.address == expected:
            return True
        with self._key_lock:
            first, self._mismatch_logged = not self._mismatch_logged, True
        if first:
            logger.warning(
                "KMS key %s (%s) has address %s, not the expected %s: every signature and "
                "get_address are refused, and the agent is not told this address",
                self.config.key_id,
                info.key_arn or "ARN unknown",
                info.address,
                expected,
            )
        return False

    # -- the signing core -------------------------------------------------------------

    def sign_digest(self, digest: bytes) -> EthSignature:
        """Sign 32 bytes as given; the result is low-s and verified against our key."""
        if len(digest) != 32:
            raise InvalidInput(f"digest: must be 32 bytes, got {len(digest)}.")
        info = self.pinned_key_info()
        der = self.kms.sign(digest, key_id=info.key_arn)
        return kms_signature_to_eth(der, digest, info.public_key)

    # -- per-kind front ends ----------------------------------------------------------

    def sign_transaction(
        self, transaction: UnsignedTransaction | TransactionRequest | Mapping[str, Any]
    ) -> SignedTransaction:
        """Sign an ``eth_signTransaction`` object (or an already validated one)."""
        unsigned = prepare_transaction(transaction)
        info = self.pinned_key_info()
        claimed = unsigned.request.from_
        if claimed is not None and claimed != info.address:
            raise InvalidInput(
                f"transaction.from: is {claimed}, but this signer's address is "
                f"{info.address}; remove `from` or set it to the signer's address."
            )
        signature = self.sign_digest(unsigned.digest)
        return SignedTransaction.of(
            unsigned.encode(signature),
            info.address,
            unsigned.tx_type,
            unsigned.v_for(signature),
            signature,
        )

    def sign_typed_data(self, typed_data: TypedDataPayload | Any) -> SignedMessage:
        """Sign an EIP-712 v4 payload (object, JSON string, or already validated)."""
        payload = (
            typed_data if isinstance(typed_data, TypedDataPayload) else parse_typed_data(typed_data)
        )
        return SignedMessage.of(payload.digest, self.sign_digest(payload.digest))

    def sign_message(
        self, message: PersonalMessage | str, encoding: MessageEncoding = "utf8"
    ) -> SignedMessage:
        """EIP-191 ``personal_sign`` of UTF-8 text or of ``0x`` hex bytes."""
        prepared = (
            message
            if isinstance(message, PersonalMessage)
            else PersonalMessage.parse(message, encoding)
        )
        return SignedMessage.of(prepared.digest, self.sign_digest(prepared.digest))

    # -- health -----------------------------------------------------------------------

    def health(self) -> HealthReport:
        """``DescribeKey`` every time, the public key once; problems say how to fix them.

        ``DescribeKey`` on the configured key id (an alias resolves to its current
        target) is compared with the pinned key; when an alias has been re-pointed, the
        pinned key, the one still signing, is described as well and reported.
        """
        problems: list[str] = []
        started = time.perf_counter()
        metadata = self._describe(self.config.key_id, problems)
        latency_ms = round((time.perf_counter() - started) * 1000, 2) if metadata else None
        key_problems = key_metadata_problems(self.config.key_id, metadata)
        info = self._key_info
        if info is None and not problems and not key_problems:
            # Only a usable key is worth a GetPublicKey; its problems are listed below.
            try:
                info = self.key_info()
            except VaultError as exc:
                problems.append(str(exc))
        target = metadata.get("Arn")
        if info is not None and info.key_arn and target and target != info.key_arn:
            # The alias moved; what signs is still the pinned key: report that one.
            problems.append(_drift_problem(self.config.key_id, target, info.key_arn))
            metadata = self._describe(info.key_arn, problems)
            key_problems = key_metadata_problems(info.key_arn, metadata)
        problems.extend(key_problems)
        expected = self.config.expected_address
        unexpected = info is not None and not self._is_expected(info)
        if unexpected:
            problems.append(
                f"address_mismatch: the key's address is not the expected {expected}; signing "
                "is refused until --key-id or --expected-address is fixed (the server's log "
                "names the key's address)."
            )
        return HealthReport(
            status="ok" if not problems else "unhealthy",
            address=info.address if info is not None and not unexpected else None,
            key_id=self.config.key_id,
            key_arn=(info.key_arn if info is not None else None) or target or self.kms.key_arn,
            region=self.kms.region or "",
            key_spec=metadata.get("KeySpec") or metadata.get("CustomerMasterKeySpec"),
            key_usage=metadata.get("KeyUsage"),
            key_state=metadata.get("KeyState"),
            expected_address=expected,
            credentials=self.kms.credential_source(),
            kms_latency_ms=latency_ms,
            problems=problems,
        )

    def _describe(self, key_id: str, problems: list[str]) -> dict[str, Any]:
        """``KeyMetadata`` of ``key_id``, or ``{}`` with the reason added to ``problems``."""
        try:
            return self.kms.describe_key(key_id)
        except VaultError as exc:
            problems.append(str(exc))
            return {}


def prepare_transaction(
    transaction: UnsignedTransaction | TransactionRequest | Mapping[str, Any],
) -> UnsignedTransaction:
    """Validate and encode a transaction request (no KMS call)."""
    if isinstance(transaction, UnsignedTransaction):
        return transaction
    if not isinstance(transaction, TransactionRequest):
        transaction = TransactionRequest.parse(transaction)
    return UnsignedTransaction(transaction)


def _drift_problem(key_id: str, target: str, pinned: str) -> str:
    return (
        f"kms_key_invalid: {key_id} now points to key {target}, but this server signs "
        f"with key {pinned}, the one it pointed to at start-up (and whose address "
        "get_address reports). Restart the server to adopt the new key (its address will "
        f"differ), or point the alias back: `aws kms update-alias --alias-name {key_id} "
        f"--target-key-id {pinned}`."
    )


def key_metadata_problems(key_id: str, metadata: Mapping[str, Any]) -> list[str]:
    spec = metadata.get("KeySpec") or metadata.get("CustomerMasterKeySpec")
    usage = metadata.get("KeyUsage")
    state = metadata.get("KeyState")
    problems = []
    if spec is not None and spec != REQUIRED_KEY_SPEC:
        problems.append(
            f"kms_key_invalid: key {key_id} has key spec {spec}; create an "
            f"{REQUIRED_KEY_SPEC} key with usage {REQUIRED_KEY_USAGE} and use it instead."
        )
    if usage is not None and usage != REQUIRED_KEY_USAGE:
        problems.append(
            f"kms_key_invalid: key {key_id} has key usage {usage}; it must be {REQUIRED_KEY_USAGE}."
        )
    if state is not None and state != "Enabled":
        problems.append(
            f"kms_key_invalid: key {key_id} is {state}; enable it (`aws kms enable-key`), "
            "or cancel its deletion first if it is PendingDeletion."
        )
    return problems
