"""The signer's configuration: one validated model shared by the CLI and library users."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._fields import Address

_HEX = "[0-9a-fA-F]"
_KEY_UUID = rf"(?:mrk-{_HEX}{{32}}|{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})"
_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"
_KEY_ARN = re.compile(
    rf"arn:aws[a-z-]*:kms:(?P<region>{_REGION}):[0-9]{{12}}:(?:key/{_KEY_UUID}|{_ALIAS})"
)
_KEY_ID = re.compile(rf"{_KEY_UUID}|{_ALIAS}")
_REGION_RE = re.compile(_REGION)

DEFAULT_KMS_TIMEOUT = 10.0
# Per attempt. An attempt starts only if it can finish before the KMS timeout, so these
# also decide how long retries go on: 10 s - (1 s + 3 s) = 6 s of retrying by default.
DEFAULT_CONNECT_TIMEOUT = 1.0
DEFAULT_READ_TIMEOUT = 3.0
DEFAULT_MAX_CONCURRENCY = 64


class SignerConfig(BaseModel):
    """Where the key is and how hard to try reaching it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(description="key id, key ARN, alias/NAME or alias ARN")
    region: str | None = Field(default=None, description="KMS region; None: the SDK's choice")
    profile: str | None = Field(default=None, description="named profile from ~/.aws/config")
    expected_address: Address | None = Field(
        default=None, description="refuse to sign unless the key's address is this"
    )
    kms_timeout: float = Field(
        default=DEFAULT_KMS_TIMEOUT,
        gt=0,
        le=300,
        description="seconds one KMS operation may take, retries included",
    )
    connect_timeout: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT,
        gt=0,
        le=60,
        description="seconds per connection attempt (default: 1, at most kms_timeout / 5)",
    )
    read_timeout: float = Field(
        default=DEFAULT_READ_TIMEOUT,
        gt=0,
        le=120,
        description="seconds to wait for an answer (default: 3, at most 0.3 * kms_timeout)",
    )
    max_concurrency: int = Field(
        default=DEFAULT_MAX_CONCURRENCY,
        ge=1,
        le=1024,
        description="KMS calls in flight at once (worker threads and HTTP connections)",
    )

    @model_validator(mode="before")
    @classmethod
    def _attempt_timeouts_follow_the_budget(cls, data: Any) -> Any:
        # One attempt must fit in the budget; a short budget shortens the defaults.
        if isinstance(data, dict) and data.get("kms_timeout") is not None:
            try:
                budget = float(data["kms_timeout"])
            except (TypeError, ValueError):
                return data
            data = dict(data)
            data.setdefault("connect_timeout", min(DEFAULT_CONNECT_TIMEOUT, budget / 5))
            data.setdefault("read_timeout", min(DEFAULT_READ_TIMEOUT, budget * 0.3))
        return data

    @field_validator("key_id")
    @classmethod
    def _key_id_shape(cls, value: str) -> str:
        if not (_KEY_ID.fullmatch(value) or _KEY_ARN.fullmatch(value)):
            raise ValueError(
                f"{value!r} is not a KMS key id, key ARN, alias/NAME or alias ARN "
                "(e.g. 1234abcd-12ab-34cd-56ef-1234567890ab or alias/agentic-vault)"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region_shape(cls, value: str | None) -> str | None:
        if value is not None and not _REGION_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not an AWS region name (e.g. us-east-1)")
        return value

    @field_validator("profile")
    @classmethod
    def _profile_shape(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 256):
            raise ValueError("a profile name must be non-empty")
        return value

    @model_validator(mode="after")
    def _timeouts_fit_the_budget(self) -> SignerConfig:
        if self.connect_timeout + self.read_timeout > self.kms_timeout:
            raise ValueError(
                f"connect timeout ({self.connect_timeout}s) plus read timeout "
                f"({self.read_timeout}s) exceed the KMS timeout ({self.kms_timeout}s); one "
                "attempt must fit in the budget"
            )
        arn_region = self.key_arn_region
        if self.region and arn_region and self.region != arn_region:
            raise ValueError(
                f"the key ARN is in {arn_region} but the region is {self.region}; "
                "a key can only be used in its own region (drop --region or fix it)"
            )
        return self

    @property
    def call_timeout(self) -> float:
        """The longest a tool call may take: two KMS operations, plus first-use imports.

        botocore bounds network waits, but not a ``credential_process`` helper that
        never exits or a DNS lookup that hangs; past this, the call is abandoned.
        """
        return 2 * self.kms_timeout + 5

    @property
    def key_arn_region(self) -> str | None:
        """The region named by a key or alias ARN, if ``key_id`` is one."""
        match = _KEY_ARN.fullmatch(self.key_id)
        return match.group("region") if match else None
