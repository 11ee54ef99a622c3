"""The key a server signs with is the one it found at start-up, and a wrong one stays unnamed.

An alias can be re-pointed while a server runs: it must keep signing with the
key whose address it has handed out (``Sign`` names the key ARN, not the
alias), and ``health_check`` must say the alias moved and how to fix it. With
``--expected-address``, a key whose address differs is refused without the
agent ever seeing that address; the operator's log names it, once.

Addresses are derived here from the emulator's public key with cryptography and
eth-utils, not with the code under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from agentic_vault._local_kms import CONTROL, LocalKms

from .bad_inputs import CHECKSUMMED, mail, signed_tx
from .mcp_helpers import log_lines, mcp_client, server_env, structured, text_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def _address_of(emulator: LocalKms, key_id: str) -> str:
    der = emulator.client().get_public_key(KeyId=key_id)["PublicKey"]
    point = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return str(to_checksum_address(keccak(point[1:])[12:]))


def _recovered(text: str, signature: str) -> str:
    return str(Account.recover_message(encode_defunct(text=text), signature=signature))


async def test_a_re_pointed_alias_does_not_change_the_signing_key(
    emulator: LocalKms, tmp_path: Path
) -> None:
    alias = "alias/pinning-drift"
    first = emulator.create_key(alias=alias)
    second = emulator.create_key()
    first_address = _address_of(emulator, first["Arn"])
    assert first_address != _address_of(emulator, second["Arn"])
    kms = emulator.client()
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=alias)
    async with mcp_client(env) as client:
        assert structured(await client.call_tool("get_address", {}))["address"] == first_address
        before = structured(await client.call_tool("sign_message", {"message": "before"}))
        assert _recovered("before", before["signature"]) == first_address
        assert structured(await client.call_tool("health_check", {}))["problems"] == []

        kms.update_alias(AliasName=alias, TargetKeyId=second["KeyId"])
        assert kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"] == second["Arn"]

        after = structured(await client.call_tool("sign_message", {"message": "after"}))
        assert _recovered("after", after["signature"]) == first_address
        signed = structured(await client.call_tool("sign_transaction", signed_tx()))
        assert Account.recover_transaction(signed["raw_transaction"]) == first_address
        assert CONTROL.key_ids["Sign"] == [first["Arn"]] * 3

        health = structured(await client.call_tool("health_check", {}))
        assert health["status"] == "unhealthy"
        assert health["address"] == first_address
        assert health["key_arn"] == first["Arn"]
        assert health["key_state"] == "Enabled"
        [drift] = health["problems"]
        assert drift.startswith("kms_key_invalid: ")
        for needed in (alias, second["Arn"], first["Arn"], "Restart", "update-alias"):
            assert needed in drift, (needed, drift)

        # The fix the problem names, applied: healthy again.
        kms.update_alias(AliasName=alias, TargetKeyId=first["KeyId"])
        health = structured(await client.call_tool("health_check", {}))
        assert (health["status"], health["problems"]) == ("ok", [])


async def test_a_drifted_alias_reports_the_state_of_the_key_still_signing(
    emulator: LocalKms, tmp_path: Path
) -> None:
    alias = "alias/pinning-disabled"
    first = emulator.create_key(alias=alias)
    second = emulator.create_key()
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=alias)
    async with mcp_client(env) as client:
        structured(await client.call_tool("get_address", {}))
        kms = emulator.client()
        kms.update_alias(AliasName=alias, TargetKeyId=second["KeyId"])
        kms.disable_key(KeyId=first["KeyId"])
        health = structured(await client.call_tool("health_check", {}))
        refused = await client.call_tool("sign_message", {"message": "x"})
    assert health["key_arn"] == first["Arn"]
    assert health["key_state"] == "Disabled"
    assert len(health["problems"]) == 2
    assert second["Arn"] in health["problems"][0]
    assert health["problems"][1].startswith(f"kms_key_invalid: key {first['Arn']} is Disabled")
    assert text_of(refused).startswith("kms_key_invalid: ")
    assert CONTROL.key_ids["Sign"] == [first["Arn"]]


async def test_an_unexpected_key_is_refused_without_telling_the_agent_its_address(
    emulator: LocalKms, tmp_path: Path
) -> None:
    alias = "alias/pinning-unexpected"
    key = emulator.create_key(alias=alias)
    actual = _address_of(emulator, key["Arn"])
    assert actual != CHECKSUMMED
    log = tmp_path / "server.log"
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=alias)
    shown: list[str] = []
    async with mcp_client(env, args=["--expected-address", CHECKSUMMED], log=log) as client:
        for _ in range(2):
            for tool, arguments in (
                ("get_address", {}),
                ("sign_transaction", signed_tx()),
                ("sign_typed_data", {"typed_data": mail()}),
                ("sign_message", {"message": "hi"}),
            ):
                result = await client.call_tool(tool, arguments)
                assert result.is_error, tool
                assert text_of(result).startswith("address_mismatch: "), text_of(result)
                assert CHECKSUMMED in text_of(result)
                shown.append(text_of(result))
            health = await client.call_tool("health_check", {})
            report = structured(health)
            shown.append(text_of(health))
            assert report["status"] == "unhealthy"
            assert report["address"] is None
            assert report["expected_address"] == CHECKSUMMED
            assert [p[:17] for p in report["problems"]] == ["address_mismatch:"]
    for text in shown:
        assert actual[2:].lower() not in text.lower(), text
    assert CONTROL.calls["Sign"] == 0
    # The operator's log names the actual address, in one warning.
    lines = [line for line in log_lines(log) if actual[2:].lower() in str(line).lower()]
    assert len(lines) == 1, lines
    assert lines[0]["level"] == "warning"
    assert CHECKSUMMED in lines[0]["message"]
