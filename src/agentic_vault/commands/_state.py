"""``--state-dir`` / ``--state-url``: where every command finds the durable store."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from ..store import Store, open_store


def add_state_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--state-dir",
        metavar="DIR",
        help="the SQLite store's directory (default $XDG_STATE_HOME/agentic-vault, else "
        "~/.local/state/agentic-vault) [env: VAULT_STATE_DIR]",
    )
    where.add_argument(
        "--state-url",
        metavar="URL",
        help="a PostgreSQL store shared by several servers, postgresql://… [env: VAULT_STATE_URL]",
    )


def state_location(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> tuple[str | None, str | None]:
    """``(state_dir, state_url)``: flags first, then the environment; a URL wins over a dir."""
    state_dir = getattr(args, "state_dir", None)
    state_url = getattr(args, "state_url", None)
    if state_dir or state_url:
        return state_dir, state_url
    url = environ.get("VAULT_STATE_URL", "").strip() or None
    if url:
        return None, url
    return environ.get("VAULT_STATE_DIR", "").strip() or None, None


def store_from(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Store:
    state_dir, state_url = state_location(args, environ)
    return open_store(state_dir, state_url, environ)
