"""The agentic-vault demo: a local KMS, the MCP server, three signatures verified.

Run it with scripts/demo (which builds its own virtual environment). It starts
`agentic-vault local-kms` on a free port, points `agentic-vault-mcp` at it with
the environment that command prints (no flags), drives the server with the
official MCP client like an agent would, checks every signature with
eth-account, prints a summary and stops everything it started.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

BIN = Path(sys.executable).parent
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
SPENDER = "0x000000000022D473030F116dDEE9F6B43aC78BA3"  # Uniswap's Permit2
RECIPIENT = "0x52908400098527886E0F7030069857D2E4169EE7"


def start_local_kms() -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`agentic-vault local-kms --port 0`, and the variables its `export` lines set."""
    process = subprocess.Popen(
        [str(BIN / "agentic-vault"), "local-kms", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    if process.stdout is None:
        raise SystemExit("could not read agentic-vault local-kms output")
    exported: dict[str, str] = {}
    for line in process.stdout:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exported[name] = value
        if line.startswith("# serving on"):
            return process, exported
    process.wait()
    raise SystemExit("agentic-vault local-kms stopped before it was ready")


def permit(owner: str) -> dict[str, Any]:
    deadline = int(dt.datetime.now(dt.UTC).timestamp()) + 3600
    return {
        "types": {
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ]
        },
        "primaryType": "Permit",
        "domain": {"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC},
        "message": {
            "owner": owner,
            "spender": SPENDER,
            "value": "250000000",
            "nonce": 0,
            "deadline": deadline,
        },
    }


def sign_in_message(address: str) -> str:
    issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        "example.org wants you to sign in with your Ethereum account:\n"
        f"{address}\n\n"
        "Sign in to the agentic-vault demo.\n\n"
        "URI: https://example.org/login\n"
        "Version: 1\n"
        "Chain ID: 1\n"
        "Nonce: 8f3kq02ma1\n"
        f"Issued At: {issued}"
    )


def require(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"demo failed: {what}")


def result_of(result: Any) -> dict[str, Any]:
    if result.is_error:
        raise SystemExit(f"the server refused: {result.content[0].text}")
    return dict(result.structured_content)


async def run(env: dict[str, str]) -> list[str]:
    params = StdioServerParameters(command=str(BIN / "agentic-vault-mcp"), args=[], env=env)
    with open(os.devnull, "w") as server_log:
        async with Client(stdio_client(params, errlog=server_log)) as client:
            tools = [tool.name for tool in (await client.list_tools()).tools]
            address = result_of(await client.call_tool("get_address", {}))["address"]
            report = [f"  MCP tools          {', '.join(tools)}", f"  address            {address}"]

            transfer = {
                "chainId": 1,
                "nonce": 0,
                "gas": 21000,
                "maxFeePerGas": "30000000000",
                "maxPriorityFeePerGas": "1000000000",
                "to": RECIPIENT,
                "value": "10000000000000000",
            }
            signed = result_of(
                await client.call_tool("sign_transaction", {"transaction": transfer})
            )
            require(
                Account.recover_transaction(signed["raw_transaction"]) == address,
                "the transaction does not recover to the address",
            )
            report.append(
                f"  EIP-1559 transfer  verified  0.01 ETH to {RECIPIENT[:10]}…, "
                f"tx {signed['hash'][:18]}…"
            )

            payload = permit(address)
            signed = result_of(await client.call_tool("sign_typed_data", {"typed_data": payload}))
            domain_type = [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ]
            full = {**payload, "types": {**payload["types"], "EIP712Domain": domain_type}}
            recovered = Account.recover_message(
                encode_typed_data(full_message=full), signature=signed["signature"]
            )
            require(recovered == address, "the permit does not recover to the address")
            report.append(
                "  EIP-2612 permit    verified  250 USDC for Permit2, "
                f"digest {signed['digest'][:18]}…"
            )

            text = sign_in_message(address)
            signed = result_of(await client.call_tool("sign_message", {"message": text}))
            recovered = Account.recover_message(
                encode_defunct(text=text), signature=signed["signature"]
            )
            require(recovered == address, "the sign-in message does not recover to the address")
            report.append("  sign-in message    verified  EIP-4361 for example.org (personal_sign)")
            return report


def main() -> int:
    kms, exported = start_local_kms()
    try:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "")}
        env |= exported
        # Nothing from the host's AWS setup: the demo needs no AWS account.
        env |= {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        report = anyio.run(run, env)
    finally:
        kms.terminate()
        kms.wait(timeout=10)
    print("agentic-vault demo: a local KMS emulator (development only), no AWS account used")
    print("\n".join(report))
    print("All 3 signatures verified with eth-account; the private key never left the KMS.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
