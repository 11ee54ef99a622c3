"""The live checks, through the AWS SDK exactly as the server uses it.

    credentials        the SDK's credential chain finds credentials (which kind, never a value)
    caller-identity    STS GetCallerIdentity: the account and the ARN they belong to
    kms-key            DescribeKey: spec ECC_SECG_P256K1, usage SIGN_VERIFY, state Enabled
    address            GetPublicKey: the key's Ethereum address
    expected-address   it is the --expected-address / VAULT_EXPECTED_ADDRESS, if one is set
    sign-test          with --sign-test: one signature through the server's pipeline,
                       verified with eth-account

One boto3 session serves every call, so the helper runs once for all of them; the
SDK honours ``AWS_ENDPOINT_URL_STS`` / ``_KMS`` / ``AWS_ENDPOINT_URL`` by itself.
Failures are worded by ``_kms_errors``, the same words the server's tools use.

The sign test is a ``sign_message`` call like any other: the vault built from the
server's settings (``--policy``/``VAULT_POLICY``, ``--state-dir``/``--state-url``)
judges it and records it on the audit trail as client ``doctor:USER``, and it counts
towards the policy's rate. A policy that refuses doctor's fixed message is a warning
naming the policy KEY, not a failure: a policy that signs no free text is a good one
(``examples/policy.toml`` is such a policy), and nothing in the setup is broken;
the warning says kms:Sign was not tried and how to try it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._aws_config import CredentialProcess
from .._config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, SignerConfig
from .._errors import InternalError, PolicyDenied, VaultError
from .._kms_errors import HOW_TO_PROVIDE_CREDENTIALS, KmsCallContext, classify, is_sdk_failure
from .report import Check, fail, failed_with, ok, skipped, warn

if TYPE_CHECKING:
    import boto3

    from .._signer import KmsSigner
    from .._vault import Vault

SIGN_TEST_MESSAGE = "agentic-vault doctor sign test"
NAMES = ("credentials", "caller-identity", "kms-key", "address", "expected-address", "sign-test")

_KINDS = {
    "env": "environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    "custom-process": "the profile's credential_process",
    "shared-credentials-file": "the shared credentials file",
    "config-file": "keys written in the config file",
    "sso": "an AWS SSO session",
    "assume-role": "a role assumed from another profile",
    "assume-role-with-web-identity": "a web identity token (IRSA)",
    "iam-role": "the instance's role (EC2 metadata)",
    "container-role": "the task or pod role",
}


@dataclass(frozen=True)
class SignTest:
    """Where the test signature goes: the policy and the store the server would use."""

    policy: Path | None
    state_dir: str | None
    state_url: str | None

    @classmethod
    def resolve(
        cls,
        policy: Path | None,
        state_dir: str | None,
        state_url: str | None,
        environ: Mapping[str, str],
    ) -> SignTest:
        """Flags first, then ``VAULT_POLICY``, ``VAULT_STATE_URL``, ``VAULT_STATE_DIR``."""
        from ..commands._state import state_location

        if policy is None and environ.get("VAULT_POLICY", "").strip():
            policy = Path(environ["VAULT_POLICY"].strip())
        where = argparse.Namespace(state_dir=state_dir, state_url=state_url)
        state_dir, state_url = state_location(where, environ)
        return cls(policy, state_dir, state_url)


def check_live(
    settings: SignerConfig | None,
    profile: str | None,
    region: str | None,
    process: CredentialProcess | None,
    blocker: str | None,
    sign_test: SignTest | None,
) -> list[Check]:
    if blocker is not None:
        return [skipped(name, f"{blocker}") for name in NAMES]
    return list(_checks(settings, profile, region, process, sign_test))


def _checks(
    settings: SignerConfig | None,
    profile: str | None,
    region: str | None,
    process: CredentialProcess | None,
    sign_test: SignTest | None,
) -> Iterator[Check]:
    import boto3

    session = boto3.session.Session(profile_name=profile)
    context = _context(settings, profile, region)
    credentials_check = _credentials(session, process, context)
    yield credentials_check
    if credentials_check.status == "fail":
        for name in NAMES[1:]:
            yield skipped(name, "no credentials (see credentials)")
        return
    yield _caller_identity(session, region, settings, context)
    if settings is None:
        for name in NAMES[2:]:
            yield skipped(name, "no usable KMS key id (see settings)")
        return
    from .._signer import KmsSigner

    signer = KmsSigner(settings, session=session)
    key_check = _kms_key(signer)
    yield key_check
    if key_check.status == "fail":
        for name in NAMES[3:]:
            yield skipped(name, "the key cannot be used (see kms-key)")
        return
    address_check, address = _address(signer)
    yield address_check
    if address is None:
        for name in NAMES[4:]:
            yield skipped(name, "the key's address is unknown (see address)")
        return
    expected_check = _expected(settings, address)
    yield expected_check
    if sign_test is None:
        yield skipped("sign-test", "pass --sign-test to sign a test message with kms:Sign")
    elif expected_check.status == "fail":
        yield skipped("sign-test", "the key is not the expected one (see expected-address)")
    else:
        yield _sign_test(signer, address, sign_test)


def _context(
    settings: SignerConfig | None, profile: str | None, region: str | None
) -> KmsCallContext:
    return KmsCallContext(
        operation="the credential lookup",
        key_id=settings.key_id if settings else "(none)",
        region=region,
        profile=profile or os.environ.get("AWS_PROFILE") or None,
    )


def _sdk_error(error: Exception, context: KmsCallContext) -> VaultError:
    if is_sdk_failure(error):
        return classify(error, context)[0]
    return InternalError(f"unexpected error during {context.operation}: {type(error).__name__}")


def _credentials(
    session: boto3.session.Session, process: CredentialProcess | None, context: KmsCallContext
) -> Check:
    try:
        credentials = session.get_credentials()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed check
        return failed_with("credentials", _sdk_error(exc, context))
    if credentials is None:
        return fail(
            "credentials",
            "the AWS SDK found no credentials",
            HOW_TO_PROVIDE_CREDENTIALS,
        )
    method = str(getattr(credentials, "method", "unknown"))
    kind = _KINDS.get(method, method)
    if process is not None and method != "custom-process":
        return warn(
            "credentials",
            f"{method}: the SDK uses {kind}, not the profile's credential_process",
            "unset AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (they come first when the "
            "profile is chosen with AWS_PROFILE), or pass --profile to the server",
        )
    return ok("credentials", f"{method}: {kind}")


def _caller_identity(
    session: boto3.session.Session,
    region: str | None,
    settings: SignerConfig | None,
    context: KmsCallContext,
) -> Check:
    from botocore.config import Config

    sts_context = KmsCallContext(
        operation="GetCallerIdentity",
        key_id=context.key_id,
        region=region,
        profile=context.profile,
        service="STS",
    )
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 2},
        connect_timeout=settings.connect_timeout if settings else DEFAULT_CONNECT_TIMEOUT,
        read_timeout=settings.read_timeout if settings else DEFAULT_READ_TIMEOUT,
    )
    try:
        sts: Any = session.client("sts", region_name=region, config=config)
        identity = sts.get_caller_identity()
    except Exception as exc:  # noqa: BLE001 - every failure becomes a failed check
        return failed_with("caller-identity", _sdk_error(exc, sts_context))
    return ok("caller-identity", f"account {identity['Account']}, {identity['Arn']}")


def _kms_key(signer: KmsSigner) -> Check:
    from .._signer import key_metadata_problems

    try:
        metadata = signer.kms.describe_key()
    except VaultError as exc:
        return failed_with("kms-key", exc)
    spec = metadata.get("KeySpec") or metadata.get("CustomerMasterKeySpec")
    usage = metadata.get("KeyUsage")
    state = metadata.get("KeyState")
    problems = key_metadata_problems(signer.config.key_id, metadata)
    if problems:
        return Check(name="kms-key", status="fail", message=" ".join(problems))
    return ok("kms-key", f"{metadata.get('Arn', signer.config.key_id)}: {spec}, {usage}, {state}")


def _address(signer: KmsSigner) -> tuple[Check, str | None]:
    try:
        address = signer.key_info().address
    except VaultError as exc:
        return failed_with("address", exc), None
    return ok("address", f"{address} (from GetPublicKey)"), address


def _expected(settings: SignerConfig, address: str) -> Check:
    expected = settings.expected_address
    if expected is None:
        return skipped(
            "expected-address",
            "no --expected-address or VAULT_EXPECTED_ADDRESS; setting it to "
            f"{address} makes the server refuse any other key",
        )
    if expected != address:
        return fail(
            "expected-address",
            f"the key's address is {address}, not the expected {expected}; the server "
            "refuses to sign",
            "point --key-id (and --region, --profile) at the right key, or correct "
            "--expected-address / VAULT_EXPECTED_ADDRESS",
        )
    return ok("expected-address", f"the key's address is the expected {expected}")


def _sign_test(signer: KmsSigner, address: str, where: SignTest) -> Check:
    from .._settings import VaultSettings, open_vault
    from ..policy import PolicyFileError

    settings = VaultSettings(
        signer=signer.config,
        policy=where.policy,
        state_dir=where.state_dir,
        state_url=where.state_url,
    )
    try:
        vault = open_vault(settings, signer=signer)
    except PolicyFileError as exc:
        return fail(
            "sign-test",
            f"--policy/VAULT_POLICY: {exc}; agentic-vault-mcp refuses to start with it",
            "correct the policy file (`agentic-vault policy check FILE` names the problem)",
        )
    try:
        return _sign_through(vault, address)
    finally:
        vault.store.close()


def _sign_through(vault: Vault, address: str) -> Check:
    """The test message through the vault: policy, audit records, kms:Sign, eth-account."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from .._results import SignedMessage
    from .._vault import Call, Subject
    from ..commands.sign import _user

    call = Call("sign_message", f"doctor:{_user()}")
    try:
        prepared = vault.prepare(Subject.of_message(SIGN_TEST_MESSAGE), call)
        if prepared.needs_approval:
            # Doctor files no approval request: nobody asked for this signature but doctor.
            return warn(
                "sign-test",
                f"kms:Sign was not tried: the policy sends doctor's test message "
                f"{SIGN_TEST_MESSAGE!r} to a person ({prepared.decision.key})",
                _TRY_KMS_SIGN,
            )
        signed = vault.execute(prepared, call)
    except PolicyDenied as exc:
        return warn(
            "sign-test",
            f"kms:Sign was not tried: the policy refuses doctor's test message "
            f"{SIGN_TEST_MESSAGE!r} ({exc}). The refusal is on the audit trail",
            _TRY_KMS_SIGN,
        )
    except VaultError as exc:
        return failed_with("sign-test", exc)
    assert isinstance(signed, SignedMessage)
    recovered = str(
        Account.recover_message(encode_defunct(text=SIGN_TEST_MESSAGE), signature=signed.signature)
    )
    if recovered != address:
        return failed_with(
            "sign-test",
            InternalError(
                f"the test signature recovers to {recovered}, not {address}; please report it"
            ),
        )
    judged = (
        f"the policy allows it ({prepared.decision.key})"
        if prepared.policy_sha256 is not None
        else "no policy is configured"
    )
    return ok(
        "sign-test",
        f"kms:Sign signed {SIGN_TEST_MESSAGE!r} ({judged}); eth-account recovers "
        f"{recovered} from it; on the audit trail as client {call.client}",
    )


_TRY_KMS_SIGN = (
    "nothing is broken if your agents need no such message. To test kms:Sign, let the "
    "policy sign it for a moment (messages.text = true, and a messages.patterns entry that "
    "matches it if the policy lists patterns), or run doctor --sign-test once without "
    "--policy/VAULT_POLICY"
)
