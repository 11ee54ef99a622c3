"""MCP over Streamable HTTP: the stdio server's tools, behind a bearer-token gate.

    client ──(TLS)──▶ uvicorn ──▶ TokenGate ──▶ the SDK's Streamable HTTP app at /mcp ──▶ tools
                                   │ stopping: 503, nothing runs
                                   │ no token, an unknown or a revoked one: 401, nothing runs
                                   │ more than MAX_REQUESTS_PER_TOKEN at once: 429
                                   │ a new session past MAX_SESSIONS_PER_TOKEN: 429
                                   │ its name ──▶ request.state.token_name (the audit client)
                                   └ its policy ──▶ request.state.guard (judges its calls)

The token is looked up in the durable store on every request (one indexed
read), so a token revoked through any server on the store is refused by all
of them at once. Only refusals are remembered (``REFUSED_MEMORY`` of them): a
token unknown or revoked once stays so, since revocation is final and a new
token is always new random bytes, so a client retrying a dead token costs the
store nothing. The gate also sets the SDK's principal (``scope["user"]``
and the auth context): an MCP session, and a sealed request state, belong to
the token that made them. Host and Origin are checked by the SDK against the
names ``listen.HttpSettings`` allows (DNS rebinding: 421 and 403), and bodies
over ``MAX_REQUEST_BYTES`` are refused (413) before they are parsed.

Served by uvicorn (``_Connection``: headers due within ``HEADER_TIMEOUT``, at most
``connection_limit()`` connections) on a socket bound here (so port 0 works and the
URL logged is the real one), with our JSON log lines and no access log (no header is
ever logged, least of all Authorization), and with stdio's signal handling:
SIGTERM/SIGINT refuse new requests, let calls in flight finish, then close; SIGHUP
reloads the server's policy and the tokens' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.to_thread
import uvicorn
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecuritySettings
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from .._errors import StateUnavailable
from .._serve import log_start, reload_on_sighup, stop, stop_on_signal
from .._server import ToolRunner, build_server
from .._settings import VaultSettings, open_vault
from .._vault import Guard, Vault
from ..store import Store, tokens
from .listen import HttpSettings, host_in_url
from .stdio import MAX_REQUEST_BYTES

if TYPE_CHECKING:
    from ..policy import PolicyHolder

logger = logging.getLogger("agentic_vault.server")

# Requests one token may have in progress at once (the long-lived GET event stream of a
# session is not counted). The server's own bound is the tool-call pool, max_concurrency.
MAX_REQUESTS_PER_TOKEN = 16
# MCP sessions (without --stateless): per token, for the whole server, and how long an
# idle one lives (no request in progress, no event stream open).
MAX_SESSIONS_PER_TOKEN = 64
MAX_SESSIONS = 10_000
SESSION_IDLE_TIMEOUT = 1800.0
BACKLOG = 2048  # uvicorn's default
HEADER_TIMEOUT = 10.0  # seconds a connection has to send a request's headers
MAX_CONNECTIONS = 4096  # open at once (fewer if the file descriptor limit is low)
REFUSED_MEMORY = 4096  # hashes of tokens found unknown or revoked
# Once every call is answered, how long open event streams may take to close.
SHUTDOWN_GRACE = 1.0
REALM = 'Bearer realm="agentic-vault"'
TRANSPORT_REFUSAL = -32000  # JSON-RPC's implementation-defined server error; the text says why
Header = tuple[bytes, bytes]


class TokenPolicyUnusable(Exception):
    """A token's own policy file cannot be loaded: its requests are refused."""


class TokenPolicies:
    """A guard per token policy file, loaded on first use; each reloads when its file changes."""

    def __init__(self) -> None:
        self._guards: dict[str, Guard] = {}
        self._lock = threading.Lock()

    def guard(self, path: str) -> Guard:
        with self._lock:
            guard = self._guards.get(path)
            if guard is None:
                from ..policy import PolicyFileError, PolicyHolder

                try:
                    guard = Guard(PolicyHolder(path))
                except PolicyFileError as exc:
                    raise TokenPolicyUnusable(str(exc)) from None
                self._guards[path] = guard
            return guard

    def holders(self) -> list[PolicyHolder]:
        with self._lock:
            return [g.holder for g in self._guards.values() if g.holder is not None]


class _Slot:
    """One of a token's ``MAX_REQUESTS_PER_TOKEN``: held by an HTTP request, by the tool
    call it carries and by that call's worker thread, freed when all have ended. The SDK
    runs a call on after its client hangs up (stateful), or cancels it while its thread
    runs on (stateless); either way the slot stays taken, so hanging up cannot let a
    token run more. Used on the event loop only."""

    def __init__(self, counts: Counter[str], name: str) -> None:
        self._counts, self._name, self._holders = counts, name, 1
        counts[name] += 1

    def hold(self) -> None:
        if not self._holders:  # held again after every holder let go: counted again
            self._counts[self._name] += 1
        self._holders += 1

    def release(self) -> None:
        self._holders -= 1
        if not self._holders:
            self._counts[self._name] -= 1
            if not self._counts[self._name]:
                del self._counts[self._name]


@dataclass
class _Seen:
    """What the gate knows of one MCP session: when it was last used, and its requests."""

    last: float
    requests: int = 0


class _Sessions:
    """The MCP sessions each token has open, so that one token cannot take them all.

    The SDK caps sessions for the whole server (``MAX_SESSIONS``) and closes idle
    ones (``SESSION_IDLE_TIMEOUT``); this counts them per token from what passes
    the gate: a session is born with the ``mcp-session-id`` its opening answer
    carries, and forgotten when it is deleted, answered 404 (gone), or idle as
    long as the SDK lets one be.
    """

    def __init__(self) -> None:
        self._of: dict[str, dict[str, _Seen]] = {}

    def full(self, token: str, now: float) -> bool:
        mine = self._of.get(token, {})
        for session_id, seen in list(mine.items()):
            if not seen.requests and now - seen.last > SESSION_IDLE_TIMEOUT:
                del mine[session_id]
        return len(mine) >= MAX_SESSIONS_PER_TOKEN

    async def track(
        self,
        token: str,
        session_id: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        app: ASGIApp,
    ) -> None:
        """Serve the request (of session ``session_id``, or one that opens a session) with
        ``app``, keeping count of the token's sessions."""
        seen = self._of.get(token, {}).get(session_id) if session_id is not None else None
        if seen is not None:
            seen.requests += 1

        async def watch(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = message["status"]
                if session_id is None and status == 200:
                    opened = Headers(raw=message["headers"]).get("mcp-session-id")
                    if opened is not None:
                        self._of.setdefault(token, {})[opened] = _Seen(time.monotonic())
                elif session_id is not None and (
                    status == 404 or (scope["method"] == "DELETE" and status < 300)
                ):
                    self._of.get(token, {}).pop(session_id, None)
            await send(message)

        try:
            await app(scope, receive, watch)
        finally:
            if seen is not None:
                seen.requests -= 1
                seen.last = time.monotonic()
            if not self._of.get(token, True):
                del self._of[token]  # no session left: forget the token


class TokenGate:
    """Lets a request through to ``app`` only with a valid bearer token; see the module doc."""

    def __init__(
        self, app: ASGIApp, store: Store, runner: ToolRunner, *, stateless: bool = False
    ) -> None:
        self.app = app
        self.store = store
        self.runner = runner
        self.sessions = None if stateless else _Sessions()
        self.policies = TokenPolicies()
        self.in_progress: Counter[str] = Counter()
        self.refused: OrderedDict[str, None] = OrderedDict()
        self._refused_lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the SDK's session manager starts here
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # a WebSocket: nothing here speaks it, refuse the upgrade
            await send({"type": "websocket.close", "code": 1008})
            return
        if self.runner.stopping is not None:
            await _refuse(
                send,
                503,
                f"unavailable: the server is stopping ({self.runner.stopping}) and takes no new "
                "requests; send it again once it has restarted, or to another replica.",
                [(b"retry-after", b"5")],
            )
            return
        headers = Headers(scope=scope)
        token = _bearer_token(headers)
        if token is None:
            await _refuse(
                send,
                401,
                "unauthorized: this server needs the header Authorization: Bearer TOKEN; an "
                "operator makes a token with `agentic-vault token create NAME`.",
                [(b"www-authenticate", REALM.encode())],
            )
            return
        try:
            bearer, guard = await anyio.to_thread.run_sync(self._authenticate, token)
        except StateUnavailable as exc:
            logger.error("cannot check a bearer token: %s", exc.message)
            await _refuse(send, 503, str(exc), [(b"retry-after", b"5")])
            return
        except TokenPolicyUnusable as exc:
            logger.error("refused a request: %s", exc)
            await _refuse(
                send,
                500,
                f"internal: {exc}; nothing was run. The operator must fix the file (it is read "
                "again on the next request) or give this client a token without --policy.",
            )
            return
        if bearer is None:
            logger.warning(
                "refused an HTTP request from %s: unknown or revoked token", _peer(scope)
            )
            await _refuse(
                send,
                401,
                "unauthorized: the bearer token is unknown or was revoked; ask the operator "
                "for a new one (`agentic-vault token create NAME`).",
                [(b"www-authenticate", f'{REALM}, error="invalid_token"'.encode())],
            )
            return
        counted = scope["method"] != "GET"
        if counted and self.in_progress[bearer.name] >= MAX_REQUESTS_PER_TOKEN:
            await _refuse(
                send,
                429,
                f"too_many_requests: token {bearer.name!r} already has "
                f"{MAX_REQUESTS_PER_TOKEN} requests in progress, the most one token may have; "
                "send this one again when one has finished (or give each agent its own token).",
                [(b"retry-after", b"1")],
            )
            return
        session_id = headers.get("mcp-session-id")
        opening = session_id is None and scope["method"] == "POST"
        if (
            self.sessions is not None
            and opening
            and self.sessions.full(bearer.name, time.monotonic())
        ):
            await _refuse(
                send,
                429,
                f"too_many_sessions: token {bearer.name!r} already has "
                f"{MAX_SESSIONS_PER_TOKEN} MCP sessions open, the most one token may have; "
                "reuse a session, end unused ones (HTTP DELETE; MCP clients do it on close), "
                f"or wait for idle ones to close ({SESSION_IDLE_TIMEOUT / 60:g} min).",
                [(b"retry-after", b"60")],
            )
            return
        await self._admit(scope, receive, send, bearer, guard, counted, session_id)

    def _authenticate(self, token: str) -> tuple[tokens.Bearer | None, Guard | None]:
        """Who the token speaks for, and its own policy's guard; on a worker thread."""
        digest = tokens.token_sha256(token)
        with self._refused_lock:
            if digest in self.refused:
                return None, None
        bearer = self.store.read(lambda connection: tokens.lookup(connection, token))
        if bearer is None:
            with self._refused_lock:
                self.refused[digest] = None
                while len(self.refused) > REFUSED_MEMORY:
                    self.refused.popitem(last=False)
            return None, None
        if bearer.policy is None:
            return bearer, None
        try:
            return bearer, self.policies.guard(bearer.policy)
        except TokenPolicyUnusable as exc:
            raise TokenPolicyUnusable(
                f"token {bearer.name!r} is judged by {bearer.policy}, which cannot be loaded "
                f"({exc})"
            ) from None

    async def _admit(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        bearer: tokens.Bearer,
        guard: Guard | None,
        counted: bool,
        session_id: str | None,
    ) -> None:
        # The SDK's principal: sessions and sealed request states are bound to it. The
        # token itself stays out of it (nothing downstream needs the secret).
        principal = AccessToken(token="-", client_id=bearer.name, scopes=[])  # noqa: S106
        user = AuthenticatedUser(principal)
        scope["user"], scope["auth"] = user, AuthCredentials([])
        state = scope.setdefault("state", {})
        state["token_name"] = bearer.name  # read by _server.client_name for the audit trail
        state["guard"] = guard  # read by _server.caller_guard
        slot = _Slot(self.in_progress, bearer.name) if counted else None
        state["slot"] = slot  # held by the tool call too: see _server.ToolRunner.call
        reset = auth_context_var.set(user)
        try:
            if self.sessions is not None:
                await self.sessions.track(bearer.name, session_id, scope, receive, send, self.app)
            else:
                await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(reset)
            if slot is not None:
                slot.release()


def _bearer_token(headers: Headers) -> str | None:
    """The token of the first Authorization header, if it is a Bearer one."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "an unknown address"


async def _refuse(send: Send, status: int, message: str, headers: Sequence[Header] = ()) -> None:
    """A JSON-RPC error with a null id: MCP clients show its message (the body is not read)."""
    error = {"code": TRANSPORT_REFUSAL, "message": message}
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- the app and the server ---------------------------------------------------------------------


def build_app(vault: Vault, runner: ToolRunner, http: HttpSettings) -> TokenGate:
    """The stdio server's tools as a Streamable HTTP app at /mcp, behind the token gate."""
    server = build_server(vault, runner)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=http.host_patterns(),
        allowed_origins=http.origin_patterns(),
    )
    app = server.streamable_http_app(
        stateless_http=http.stateless,
        max_request_body_size=MAX_REQUEST_BYTES,
        session_idle_timeout=SESSION_IDLE_TIMEOUT,
        max_sessions=MAX_SESSIONS,
        transport_security=security,
        host=http.host,
    )
    return TokenGate(app, vault.store, runner, stateless=http.stateless)


class _Connection(H11Protocol):
    """uvicorn's HTTP/1.1 connection, with a deadline for headers and a cap on connections.

    uvicorn times a connection out only between requests once a response is sent:
    one that sends half a request line and waits holds its socket for ever, and
    enough of them (no token needed) use up the file descriptors, so signing fails
    on its next KMS or store connection. Here every request's headers must be
    complete within ``HEADER_TIMEOUT`` s, and past ``connection_limit()`` open
    connections the one idle the longest is closed to make room (the new one, if every
    connection has a request under way).
    """

    _deadline: asyncio.TimerHandle | None = None
    _idle_since = 0.0  # when it last had no request under way
    _warned_at: ClassVar[float] = -60.0  # when "too many connections" was last logged

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > connection_limit():
            # Make room by closing the connection idle the longest (no request under way),
            # not this one: a flood of idle connections then cannot lock clients out.
            idle = self._longest_idle()
            self._warn_full(len(self.connections) - 1, evicting=idle is not None)
            if idle is None:
                transport.abort()
                return
            idle.transport.abort()
        self._arm()

    def _longest_idle(self) -> _Connection | None:
        idle = [
            other
            for other in self.connections
            if isinstance(other, _Connection)
            and other is not self
            and other._waiting()
            and not other.transport.is_closing()  # closed already, not yet gone from the set
        ]
        return min(idle, key=lambda other: other._idle_since, default=None)

    def _waiting(self) -> bool:
        """No request under way: waiting for headers, or idle between requests."""
        return self.cycle is None or self.cycle.response_complete

    @classmethod
    def _warn_full(cls, open_connections: int, *, evicting: bool) -> None:
        """One log line every 10 s at most: a flood must not fill the log as well."""
        now = time.monotonic()
        if now - cls._warned_at >= 10.0:
            cls._warned_at = now
            logger.warning(
                "%d connections are open, the most this server keeps (%d); %s (a client "
                "that opens many and sends nothing?)",
                open_connections,
                connection_limit(),
                "closing the ones idle the longest"
                if evicting
                else "every one is busy, so new ones are closed until some end",
            )

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's headers are due in time too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._idle_since = time.monotonic()
        self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._headers_late)

    def _headers_late(self) -> None:
        if self._waiting() and not self.transport.is_closing():
            self.transport.close()


def _more_file_descriptors() -> None:
    """The soft limit of open files up to the hard one (at most 65,536): connections past
    ``connection_limit()`` are closed, but until they are accepted they take descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65_536 if hard == resource.RLIM_INFINITY else min(hard, 65_536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def connection_limit() -> int:
    """Open connections at most: a share of this process's file descriptors, ≤ 4096."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return min(MAX_CONNECTIONS, max(64, soft // 2))


class _Uvicorn(uvicorn.Server):
    """uvicorn without signal handlers of its own: ours stop it (see ``_serve.stop``);
    and with a TLS handshake due within ``HEADER_TIMEOUT`` (asyncio's default is 60 s,
    and a connection is not a ``_Connection`` until its handshake is done)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        create_server = loop.create_server

        async def with_handshake_deadline(*args: Any, **kwargs: Any) -> asyncio.Server:
            if kwargs.get("ssl") is not None:
                kwargs["ssl_handshake_timeout"] = HEADER_TIMEOUT
            return await create_server(*args, **kwargs)

        loop.create_server = with_handshake_deadline  # type: ignore[method-assign]
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server  # the loop's own method again

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(http: HttpSettings) -> socket.socket:
    """The listening socket; ``OSError`` (port in use, no permission) if it cannot be had."""
    family, kind, proto, _, address = socket.getaddrinfo(
        http.host, http.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and http.host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        sock.bind(address)
        sock.listen(BACKLOG)  # from here connections wait for uvicorn instead of failing
    except OSError:
        sock.close()
        raise
    return sock


def serve_http(settings: VaultSettings, http: HttpSettings) -> int:
    """Serve MCP over HTTP until a signal stops it; never returns (the process exits 0)."""
    from .._cli import fail

    try:
        sock = bind(http)
    except OSError as exc:
        fail(
            f"--listen/VAULT_LISTEN: cannot listen on {host_in_url(http.host)}:{http.port} "
            f"({exc.strerror or exc}); pick another address or port, or stop what holds it"
        )
    port = int(sock.getsockname()[1])
    _more_file_descriptors()
    vault = open_vault(settings)
    runner = ToolRunner(vault)
    gate = build_app(vault, runner, http)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("uvicorn").setLevel(logging.WARNING)  # start/stop chatter
    config = uvicorn.Config(
        gate,
        log_config=None,  # our handlers, our JSON lines
        access_log=False,
        server_header=False,
        lifespan="on",
        ssl_certfile=str(http.tls_cert) if http.tls_cert else None,
        ssl_keyfile=str(http.tls_key) if http.tls_key else None,
        backlog=BACKLOG,
        http=_Connection,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE) or 1,
    )
    server = _Uvicorn(config)
    stopped = anyio.Event()

    async def close_listener() -> None:
        server.should_exit = True
        with anyio.move_on_after(SHUTDOWN_GRACE + 1.0):
            await stopped.wait()

    async def serve() -> None:
        async with anyio.create_task_group() as tasks:
            await tasks.start(stop_on_signal, runner, vault, close_listener)
            await tasks.start(reload_on_sighup, vault, gate.policies.holders)
            log_start(vault, settings, http.url(port))
            try:
                await server.serve(sockets=[sock])
            finally:
                stopped.set()
            if runner.stopping is None:  # uvicorn ended by itself
                await stop(runner, vault, "the HTTP server stopped")
            await anyio.sleep_forever()  # the signal's stop() is exiting the process

    anyio.run(serve)
    return 0  # not reached: stop() exits
