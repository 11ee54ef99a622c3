"""Everything a vault is built from, validated once; the server and the shell share it.

VaultSettings ──open_vault──▶ Vault(KmsSigner, Store, Guard(PolicyHolder), approval ttl)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from ._config import SignerConfig
from ._vault import DEFAULT_APPROVAL_TTL, Guard, Vault

if TYPE_CHECKING:
    from ._signer import KmsSigner


class VaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signer: SignerConfig
    policy: Path | None = Field(default=None, description="the policy file; None: no policy")
    state_dir: Path | None = Field(default=None, description="the SQLite store's directory")
    state_url: str | None = Field(default=None, description="a PostgreSQL store's URL")
    approval_ttl: float = Field(
        default=DEFAULT_APPROVAL_TTL,
        gt=0,
        le=7 * 24 * 3600,
        description="seconds a request waits for a person before it expires",
    )


def open_vault(settings: VaultSettings, *, signer: KmsSigner | None = None) -> Vault:
    """The vault these settings describe. Loads the policy (``PolicyFileError`` if bad);
    connects to nothing: KMS and the store are reached on first use. ``signer``: one
    already made of ``settings.signer`` (doctor's, on the session its checks used)."""
    from ._signer import KmsSigner
    from .store import open_store

    holder = None
    if settings.policy is not None:
        from .policy import PolicyHolder

        holder = PolicyHolder(settings.policy)
    return Vault(
        signer or KmsSigner(settings.signer),
        open_store(settings.state_dir, settings.state_url),
        Guard(holder),
        approval_ttl=settings.approval_ttl,
    )
