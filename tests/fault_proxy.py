"""A misbehaving network between the server and the KMS emulator, on 127.0.0.1.

The server under test is pointed at the proxy (``AWS_ENDPOINT_URL_KMS``); each
request it forwards to the emulator, unless a fault is scheduled for it:

    throttle   400 ThrottlingException, as KMS answers above the request quota
    error500   500 KMSInternalException
    error503   503 ServiceUnavailableException
    reset      the TCP connection is reset before any answer
    silent     the request is read and never answered (until ``release()``)
    slow:S     the answer comes S seconds late

``down()`` closes the listening socket (connections are refused) and ``up()``
opens it again on the same port. The proxy also records, per request, the
operation and the access key id it was signed with.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_CREDENTIAL = re.compile(r"Credential=([^/]+)/")


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self.port = 0
        self.seen: Counter[str] = Counter()
        self.access_keys: list[str] = []
        self._lock = threading.Lock()
        self._plan: list[str] = []
        self._standing: str | None = None
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    # -- control ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def schedule(self, faults: Iterable[str]) -> None:
        """Faults for the next requests, one each, then back to forwarding."""
        with self._lock:
            self._plan = list(faults)

    def always(self, fault: str | None) -> None:
        """A fault for every request from now on (``None``: forward again)."""
        with self._lock:
            self._standing = fault
        if fault != "silent":
            self._release.set()
            self._release = threading.Event()

    def release(self) -> None:
        """Let silent requests go (they are then dropped)."""
        self._release.set()

    def up(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        """Refuse new connections and cut the open ones (keep-alive would outlive a close)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _next_fault(self, operation: str, access_key: str | None) -> str | None:
        with self._lock:
            self.seen[operation] += 1
            if access_key:
                self.access_keys.append(access_key)
            if self._plan:
                return self._plan.pop(0)
            return self._standing


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        credential = _CREDENTIAL.search(self.headers.get("Authorization", ""))
        fault = self.owner._next_fault(operation, credential.group(1) if credential else None)
        if fault == "throttle":
            self._json(400, "ThrottlingException", "Rate exceeded")
        elif fault == "error500":
            self._json(500, "KMSInternalException", "The request was rejected (internal).")
        elif fault == "error503":
            self._json(503, "ServiceUnavailableException", "Service unavailable.")
        elif fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif fault == "silent":
            self.owner._release.wait(timeout=120)
            self.close_connection = True
        else:
            if fault is not None and fault.startswith("slow:"):
                time.sleep(float(fault.partition(":")[2]))
            self._forward(body)

    def _forward(self, body: bytes) -> None:
        upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request("POST", self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in (
                "content-length",
                "connection",
                "transfer-encoding",
                "date",
                "server",
            ):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def _json(self, status: int, code: str, message: str) -> None:
        payload = json.dumps({"__type": code, "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
