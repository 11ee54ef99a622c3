"""A keep-alive KMS stub for the benchmark: Sign, GetPublicKey and DescribeKey, nothing else.

The local emulator (moto on werkzeug) closes the connection after every answer
and spends about 2 ms of CPU per Sign, which hides a server's own overhead
behind connection setup. This stub speaks KMS's JSON protocol over HTTP/1.1
with keep-alive, signs the 32-byte digest as given with a secp256k1 key
(cryptography, prehashed), and answers in tens of microseconds. Benchmarks only:
it checks no signature on requests and keeps its key in memory.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

REGION = "us-east-1"
ACCOUNT = "123456789012"


class KmsStub:
    """One secp256k1 key, reachable by its id, its ARN and any alias."""

    def __init__(self, port: int = 0) -> None:
        self.key = ec.generate_private_key(ec.SECP256K1())
        self.key_id = str(uuid.uuid4())
        self.arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{self.key_id}"
        self.latency = 0.0
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: answers carry Content-Length
            # Headers and body leave in two writes: with Nagle on, the second waits for
            # the client's delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                status, answer = stub.answer(operation, json.loads(body or b"{}"))
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # 64 clients connect at once; the default backlog is 5

        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> KmsStub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def answer(self, operation: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
        if operation == "Sign":
            if self.latency:
                time.sleep(self.latency)
            digest = base64.b64decode(request["Message"])
            signature = self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            return 200, {
                "KeyId": self.arn,
                "Signature": base64.b64encode(signature).decode(),
                "SigningAlgorithm": "ECDSA_SHA_256",
            }
        if operation == "GetPublicKey":
            spki = self.key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return 200, {
                "KeyId": self.arn,
                "PublicKey": base64.b64encode(spki).decode(),
                "KeySpec": "ECC_SECG_P256K1",
                "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": ["ECDSA_SHA_256"],
            }
        if operation == "DescribeKey":
            return 200, {
                "KeyMetadata": {
                    "KeyId": self.key_id,
                    "Arn": self.arn,
                    "KeySpec": "ECC_SECG_P256K1",
                    "KeyUsage": "SIGN_VERIFY",
                    "KeyState": "Enabled",
                    "Enabled": True,
                }
            }
        return 400, {"__type": "UnsupportedOperationException", "message": operation}

    def environment(self, key_id: str) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_KMS": self.endpoint,
            "AWS_ACCESS_KEY_ID": "bench-placeholder",
            "AWS_SECRET_ACCESS_KEY": "bench-placeholder",
            "AWS_REGION": REGION,
            "VAULT_REGION": REGION,
            "VAULT_KEY_ID": key_id,
        }
