"""Where the HTTP transport listens and whom it answers; checked before anything starts.

    --listen HOST:PORT ─┬─ loopback (127.0.0.1, ::1, localhost): plain HTTP is allowed
                        └─ anything else: --tls-cert and --tls-key, or the server refuses to start
    Host / Origin ────── the listen name (loopback names on loopback and wildcards), the
                         --allowed-host / --allowed-origin values: others are refused
                         (DNS rebinding: a web page cannot make a browser talk to us under
                         its own name)

Light on purpose: the command line validates these before the MCP SDK or
uvicorn is imported, so a mistake is one line and exit status 2, quickly.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_LISTEN = "127.0.0.1:8645"
MCP_PATH = "/mcp"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::")  # noqa: S104 - named so that they can be refused without TLS


class ListenAddress(NamedTuple):
    host: str
    port: int


def parse_listen(text: str) -> ListenAddress:
    """``HOST:PORT`` or ``[IPv6]:PORT``; raises ``ValueError`` saying what is expected."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8645")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(
            f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8645, [::1]:8645, 0.0.0.0:8645); "
            "PORT is 0-65535, 0 picks a free one"
        )
    return ListenAddress(host, int(port_text))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class HttpSettings(BaseModel):
    """How ``agentic-vault-mcp --transport http`` serves; every rule checked here."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    stateless: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def url(self, port: int | None = None) -> str:
        """Where clients reach the MCP endpoint (``port``: the one actually bound)."""
        host = host_in_url(self.host)
        if self.host in WILDCARDS:  # the first name clients use, without a port of its own
            name = self.allowed_hosts[0] if self.allowed_hosts else "127.0.0.1"
            host = name if name.endswith("]") else name.rpartition(":")[0] or name
        return f"{self.scheme}://{host}:{port or self.port}{MCP_PATH}"

    @model_validator(mode="after")
    def _check(self) -> HttpSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(
                "tls: --tls-cert and --tls-key go together: give both (the PEM certificate "
                "chain and its private key) or neither"
            )
        if not self.tls and not is_loopback(self.host):
            raise ValueError(
                f"listen: {host_in_url(self.host)}:{self.port} is not a loopback address, so "
                "tokens would cross the network in clear text: give --tls-cert FILE and "
                "--tls-key FILE, or listen on 127.0.0.1 behind a proxy that terminates TLS"
            )
        if self.host in WILDCARDS and not self.allowed_hosts:
            raise ValueError(
                f"allowed_hosts: --listen {host_in_url(self.host)}:{self.port} answers to any "
                "name, so the Host header cannot be checked against DNS rebinding: give "
                "--allowed-host NAME for each name clients use (e.g. vault.example.org)"
            )
        for name in self.allowed_hosts:
            bare_ipv6 = name.count(":") > 1 and not name.startswith("[")
            if not name or "/" in name or " " in name or bare_ipv6:
                raise ValueError(
                    f"allowed_hosts: {name!r} is not a host name (NAME or NAME:PORT, an IPv6 "
                    "address in brackets, no scheme)"
                )
        for origin in self.allowed_origins:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ValueError(
                    f"allowed_origins: {origin!r} is not an origin "
                    "(scheme://host[:port], e.g. https://app.example.org)"
                )
        if self.tls_cert is not None and self.tls_key is not None:
            check_tls_files(self.tls_cert, self.tls_key)
        return self

    # -- DNS-rebinding protection ----------------------------------------------------------

    def host_patterns(self) -> list[str]:
        """``Host`` header values accepted (the SDK's syntax: exact, or ``name:*``)."""
        names = list(self.allowed_hosts)
        if self.host not in WILDCARDS:
            names.append(host_in_url(self.host))
        if is_loopback(self.host) or self.host in WILDCARDS:
            names.extend(host_in_url(name) for name in LOOPBACK_NAMES)
        patterns: list[str] = []
        for name in names:
            # The name is what rebinding forges; any port of an allowed name is fine.
            has_port = name.rpartition(":")[2].isdigit() and not name.endswith("]")
            for pattern in (name,) if has_port else (name, f"{name}:*"):
                if pattern not in patterns:
                    patterns.append(pattern)
        return patterns

    def origin_patterns(self) -> list[str]:
        """``Origin`` header values accepted (requests without one are not from a browser)."""
        patterns = list(self.allowed_origins)
        for host in self.host_patterns():
            for scheme in ("http", "https"):
                pattern = f"{scheme}://{host}"
                if pattern not in patterns:
                    patterns.append(pattern)
        return patterns


def check_tls_files(cert: Path, key: Path) -> None:
    """The certificate and key load together, and the key is not readable by everyone."""
    try:
        mode = os.stat(key).st_mode
    except OSError as exc:
        raise ValueError(f"tls_key: cannot read {key}: {exc.strerror}") from None
    if mode & stat.S_IROTH:
        raise ValueError(
            f"tls_key: {key} is readable by every user of this machine; "
            f"run `chmod o-rwx {key}` (owner, or owner and the service's group only)"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ValueError(
            f"tls: cannot use --tls-cert {cert} with --tls-key {key} ({reason}); both must be "
            "PEM files readable by this user, the key the certificate's own"
        ) from None
