"""The one place where boto3/botocore failures become our errors.

    botocore failure                                   → our error            retried
    ───────────────────────────────────────────────────────────────────────────────────
    ClientError AccessDeniedException                   KmsAccessDenied        no
    ClientError NotFoundException                       KmsKeyInvalid          no
    ClientError DisabledException                       KmsKeyInvalid          no
    ClientError KMSInvalidStateException                KmsKeyInvalid          no
    ClientError InvalidKeyUsageException,
                UnsupportedOperationException           KmsKeyInvalid          no
    ClientError ThrottlingException & co.               KmsUnavailable         yes
    ClientError KMSInternalException, 5xx               KmsUnavailable         yes
    ClientError expired/invalid token or signature      KmsUnavailable         no
    NoCredentialsError, PartialCredentialsError         KmsUnavailable         no
    TokenRetrievalError & other SSO token errors        KmsUnavailable         no
    CredentialRetrievalError (credential_process)       KmsUnavailable         no
    any other error raised inside botocore's
      credential providers: OSError from running the
      credential_process helper (missing, not executable,
      Exec format error), its output not JSON           KmsUnavailable         no
    ProfileNotFound, config parse errors, NoRegionError KmsUnavailable         no
    EndpointConnectionError, timeouts, resets           KmsUnavailable         yes
    RuntimeError "refreshed credentials are still
                  expired" (a provider's stale answer)  KmsUnavailable         no
    anything else from botocore                         InternalError          no

Messages say what to fix. They may quote AWS's own message (it names the
principal and the action, never a secret) but never a credential value, and a
password in an endpoint URL (``http://user:PASSWORD@host``) is masked wherever a
message could show it. What a broken ``credential_process`` helper is and how to
fix it comes from ``_aws_config``, the code ``agentic-vault doctor`` uses too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._errors import (
    InternalError,
    KmsAccessDenied,
    KmsKeyInvalid,
    KmsUnavailable,
    VaultError,
)
from ._redact import redact_url_credentials

_THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)
_TRANSIENT = frozenset(
    {
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_BAD_CREDENTIALS = frozenset(
    {
        "ExpiredTokenException",
        "ExpiredToken",
        "RequestExpired",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)

HOW_TO_PROVIDE_CREDENTIALS = (
    "Provide credentials in one of these ways: `aws sso login --profile NAME` and pass "
    "--profile NAME (or set AWS_PROFILE); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(plus AWS_SESSION_TOKEN for temporary keys); a profile with credential_process "
    "(IAM Roles Anywhere's aws_signing_helper); or run on EC2/ECS with an instance or "
    "task role."
)
MINIMUM_PERMISSIONS = "kms:Sign, kms:GetPublicKey and kms:DescribeKey"


@dataclass(frozen=True)
class KmsCallContext:
    """What a message may name: the operation, the key and where we looked for it."""

    operation: str
    key_id: str
    region: str | None
    key_arn: str | None = None
    profile: str | None = None
    endpoint: str | None = None
    # The AWS service called: "KMS", or "STS" for doctor's caller identity.
    service: str = "KMS"

    def __post_init__(self) -> None:
        # Masked here, at the source, so that no message built from it can show a password.
        if self.endpoint:
            object.__setattr__(self, "endpoint", redact_url_credentials(self.endpoint))

    @property
    def key_resource(self) -> str:
        if self.key_arn:
            return self.key_arn
        if self.key_id.startswith("arn:"):
            return self.key_id
        return "arn:aws:kms:REGION:ACCOUNT:key/KEY_ID"

    @property
    def where(self) -> str:
        return f"region {self.region or '(none)'}"

    @property
    def profile_flag(self) -> str:
        return f"--profile {self.profile}" if self.profile else "--profile NAME"


_STALE_REFRESH = "refreshed credentials are still expired"


def is_sdk_failure(error: Exception) -> bool:
    """Whether ``classify`` knows ``error``; anything else is a bug and keeps its traceback."""
    from botocore import exceptions as bx

    if isinstance(error, RuntimeError) and _STALE_REFRESH in str(error):
        return True
    return isinstance(error, bx.BotoCoreError | bx.ClientError) or _raised_by_credential_provider(
        error
    )


def _raised_by_credential_provider(error: BaseException) -> bool:
    """Whether ``error`` came out of botocore's credential providers, not wrapped by them.

    botocore runs ``credential_process`` with ``subprocess.Popen`` and parses its output
    with ``json.loads``, and lets their errors (``OSError``, ``ValueError``) through as
    they are: a helper that cannot be run is a credential failure, not a bug of ours.
    """
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_globals.get("__name__") == "botocore.credentials":
            return True
        frame = frame.tb_next
    return False


def classify(error: Exception, ctx: KmsCallContext) -> tuple[VaultError, bool]:
    """Map a boto3/botocore failure to ``(our error, retry it?)``."""
    from botocore import exceptions as bx

    if isinstance(error, RuntimeError) and _STALE_REFRESH in str(error):
        return KmsUnavailable(
            "the credential provider keeps returning credentials that have already expired. "
            "Check the system clock, and that the credential_process helper or SSO session "
            f"issues fresh credentials (`aws sts get-caller-identity {ctx.profile_flag}`)."
        ), False
    if isinstance(error, bx.ClientError):
        return _client_error(error, ctx)
    if not isinstance(error, bx.BotoCoreError) and _raised_by_credential_provider(error):
        return _credential_provider_error(error, ctx), False
    if isinstance(error, bx.NoCredentialsError | bx.PartialCredentialsError):
        return KmsUnavailable(f"{_clip(error)}. {HOW_TO_PROVIDE_CREDENTIALS}"), False
    if isinstance(error, bx.CredentialRetrievalError):
        known = _known_helper_error(error, ctx)
        return KmsUnavailable(
            f"the credential_process of the AWS profile failed: {_clip(error)}.{known} Check "
            "the helper path in ~/.aws/config (one line, no backslash continuations), that the "
            "--certificate and --private-key files exist and are readable by this user, that "
            "the trust anchor, profile and role ARNs are right and enabled, and that the "
            f"certificate has not expired; `{_doctor(ctx)}` checks each of these."
        ), False
    if _is_sso_token_error(error):
        return KmsUnavailable(
            f"the AWS SSO session is missing or expired ({_clip(error)}). Run "
            f"`aws sso login {ctx.profile_flag}`; the server picks the new session up "
            "without a restart."
        ), False
    if isinstance(error, bx.ProfileNotFound):
        return KmsUnavailable(
            f"{_clip(error)}. Check the name passed to --profile or AWS_PROFILE against "
            "~/.aws/config (`aws configure list-profiles`)."
        ), False
    if isinstance(error, bx.ConfigParseError | bx.InvalidConfigError):
        return KmsUnavailable(
            f"the AWS configuration cannot be used: {_clip(error)}. Fix ~/.aws/config "
            "(a duplicated profile or a multi-line credential_process are common causes)."
        ), False
    if isinstance(error, bx.NoRegionError):
        return KmsUnavailable(
            "no AWS region is configured. Pass --region (or set VAULT_REGION or AWS_REGION), "
            "or add `region = ...` to the profile."
        ), False
    if isinstance(
        error,
        bx.EndpointConnectionError
        | bx.ConnectionClosedError
        | bx.ConnectTimeoutError
        | bx.ReadTimeoutError
        | bx.ProxyConnectionError
        | bx.HTTPClientError,
    ):
        return KmsUnavailable(
            f"cannot reach {ctx.service} in {ctx.where}{_at(ctx)} ({_clip(error)}). Check the "
            f"network, any HTTPS proxy, the region, and AWS_ENDPOINT_URL_{ctx.service} if you "
            f"set one; calls work again as soon as {ctx.service} is reachable."
        ), True
    if isinstance(error, bx.BotoCoreError):
        return InternalError(f"unexpected AWS SDK error during {ctx.operation}: {_clip(error)}"), (
            False
        )
    return InternalError(f"unexpected error during {ctx.operation}: {type(error).__name__}"), False


def _client_error(error: Exception, ctx: KmsCallContext) -> tuple[VaultError, bool]:
    response = getattr(error, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    aws_message = str(response.get("Error", {}).get("Message", "")).strip()
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    said = f" AWS said: {_clip(aws_message)}" if aws_message else ""
    key = ctx.key_id
    if code == "AccessDeniedException":
        return KmsAccessDenied(
            f"KMS denied {ctx.operation} on key {key}. Allow {MINIMUM_PERMISSIONS} on "
            f"{ctx.key_resource} for the role or user this server runs as (and in the key "
            f"policy).{said}"
        ), False
    if code == "NotFoundException":
        return KmsKeyInvalid(
            f"KMS key {key} was not found in {ctx.where}. Check --key-id (a key id, key ARN, "
            "alias/NAME or alias ARN) and --region; a key lives in one region and account."
            f"{said}"
        ), False
    if code == "DisabledException":
        return KmsKeyInvalid(
            f"KMS key {key} is disabled. Enable it with `aws kms enable-key --key-id "
            f"{_key_for_cli(ctx)} --region {ctx.region or 'REGION'}`.{said}"
        ), False
    if code == "KMSInvalidStateException":
        return KmsKeyInvalid(
            f"KMS key {key} is not usable in its current state (pending deletion or import?). "
            "If it is pending deletion, run `aws kms cancel-key-deletion` and then "
            f"`aws kms enable-key` for it.{said}"
        ), False
    if code in ("InvalidKeyUsageException", "UnsupportedOperationException") or (
        code == "ValidationException" and "usage" in aws_message.lower()
    ):
        return KmsKeyInvalid(
            f"KMS key {key} cannot sign: agentic-vault needs key spec ECC_SECG_P256K1 with "
            "key usage SIGN_VERIFY. Create such a key and point --key-id at it."
            f"{said}"
        ), False
    if code in _THROTTLING:
        return KmsUnavailable(
            f"KMS is throttling {ctx.operation} requests and retries did not get through in "
            "time. Lower the signing rate, or ask AWS for a higher KMS request quota."
        ), True
    if code in _TRANSIENT or status >= 500:
        return KmsUnavailable(
            f"KMS had an internal or transient error ({code or status}) and retries did not "
            f"succeed in time; try again shortly.{said}"
        ), True
    if code in _BAD_CREDENTIALS:
        return KmsUnavailable(
            f"{ctx.service} rejected the credentials ({code}): they are expired, invalid or the "
            f"system clock is off (or the region is wrong). {HOW_TO_PROVIDE_CREDENTIALS}{said}"
        ), False
    return InternalError(f"KMS refused {ctx.operation} with {code or status}.{said}"), False


def _credential_provider_error(error: Exception, ctx: KmsCallContext) -> VaultError:
    """A helper that cannot be run, or whose output is not credentials: path, cause, fix."""
    from ._aws_config import inspect_program, profile_credential_process, profile_in_effect

    profile, _ = profile_in_effect(ctx.profile, os.environ)
    then = f"Then check the whole setup with `{_doctor(ctx)}`."
    if isinstance(error, OSError) and error.filename:
        finding = inspect_program(os.fsdecode(error.filename), os.environ)
        cause = finding.problem or (
            f"it is {finding.description}, yet the system refused to run it (a truncated "
            "or corrupt download?)"
        )
        fix = finding.fix or "replace it with a working copy of the helper"
        return KmsUnavailable(
            f"the credential_process helper {finding.path} of profile {profile} cannot be run "
            f"({error.strerror}): {cause}. Fix: {fix}. {then}"
        )
    if isinstance(error, ValueError):
        process = profile_credential_process(ctx.profile, os.environ)
        if process is not None and process.problem:
            return KmsUnavailable(
                f"the credential_process of profile {profile} cannot be run: {process.problem}. "
                f"Fix its quotes so that it reads as one command line. {then}"
            )
        # The message of a JSON or UTF-8 decoding error names a position, never the text.
        return KmsUnavailable(
            f"the credential_process of profile {profile} did not print credentials "
            f"({type(error).__name__}: {_clip(error, 160)}). Run it by hand: it must print one "
            "JSON object with Version 1, AccessKeyId, SecretAccessKey, SessionToken and "
            f"Expiration. {then}"
        )
    return KmsUnavailable(
        f"the AWS credential provider of profile {profile} failed ({type(error).__name__}); "
        f"run its credential_process by hand to see why. {then}"
    )


def _known_helper_error(error: Exception, ctx: KmsCallContext) -> str:
    """`` That means CAUSE; fix: FIX.`` for an error ``aws_signing_helper`` is known to print."""
    from ._aws_config import explain_helper_error, profile_credential_process

    said = str(getattr(error, "kwargs", {}).get("error_msg") or error)
    diagnosis = explain_helper_error(said, profile_credential_process(ctx.profile, os.environ))
    if diagnosis is None:
        return ""
    return f" That means {diagnosis.cause}; fix: {diagnosis.fix}."


def _doctor(ctx: KmsCallContext) -> str:
    return (
        f"agentic-vault doctor --profile {ctx.profile}" if ctx.profile else "agentic-vault doctor"
    )


def _is_sso_token_error(error: Exception) -> bool:
    from botocore import exceptions as bx

    names = ("TokenRetrievalError", "SSOTokenLoadError", "UnauthorizedSSOTokenError", "SSOError")
    kinds = tuple(getattr(bx, name) for name in names if hasattr(bx, name))
    return isinstance(error, kinds)


def _key_for_cli(ctx: KmsCallContext) -> str:
    # enable-key takes a key id or key ARN, not an alias.
    if ctx.key_arn:
        return ctx.key_arn
    return "KEY_ID" if "alias/" in ctx.key_id else ctx.key_id


def _at(ctx: KmsCallContext) -> str:
    return f" at {ctx.endpoint}" if ctx.endpoint else ""


def _clip(value: object, limit: int = 400) -> str:
    text = redact_url_credentials(" ".join(str(value).split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
