"""Shared fixtures: a corrected moto KMS over real HTTP, and signers pointed at it.

Every test runs with an AWS environment of its own: no real profile, config
file, credentials or instance metadata can leak in from the machine running
the tests, and boto3 reaches the emulator through ``AWS_ENDPOINT_URL_KMS``,
exactly as an operator's SDK would reach KMS.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings

from agentic_vault import KmsSigner, SignerConfig
from agentic_vault._local_kms import CONTROL, LocalKms

from .conftest_postgres import postgres_control, postgres_server, postgres_url, store_at  # noqa: F401
from .disk_faults import tiny_tmpfs  # noqa: F401

settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_AWS_VARIABLES_TO_DROP = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "VAULT_KEY_ID",
    "VAULT_REGION",
    "VAULT_EXPECTED_ADDRESS",
    "VAULT_KMS_TIMEOUT",
)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKms]:
    """One corrected moto KMS on 127.0.0.1 for the whole run, and an isolated AWS env."""
    home = tmp_path_factory.mktemp("aws-home")
    with pytest.MonkeyPatch.context() as env, LocalKms() as kms:
        for name in _AWS_VARIABLES_TO_DROP:
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", str(home / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name, value in kms.environment("unused").items():
            if not name.startswith("VAULT_"):
                env.setenv(name, value)
        yield kms


@pytest.fixture(autouse=True)
def _fresh_emulator_counters() -> Iterator[None]:
    CONTROL.reset()
    yield
    CONTROL.reset()


@pytest.fixture
def signing_key(emulator: LocalKms) -> dict[str, Any]:
    """A new ECC_SECG_P256K1 signing key (its KeyMetadata)."""
    return emulator.create_key()


SignerFactory = Callable[..., KmsSigner]


@pytest.fixture
def make_signer(emulator: LocalKms) -> SignerFactory:
    """``make_signer(key_id, session=None, **config)``: a signer on its own boto3 session."""

    def make(key_id: str, session: boto3.session.Session | None = None, **config: Any) -> KmsSigner:
        config.setdefault("region", emulator.region)
        return KmsSigner(SignerConfig(key_id=key_id, **config), session=session)

    return make


@pytest.fixture
def signer(signing_key: dict[str, Any], make_signer: SignerFactory) -> KmsSigner:
    return make_signer(signing_key["KeyId"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
