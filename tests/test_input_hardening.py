"""Input hardening (issue #8): hostile or sloppy inputs get a clear ``invalid_input``, fast.

Each case is checked twice: against the parsers in this process, and through
the installed ``agentic-vault-mcp`` over stdio with the official MCP client (one
server for the whole table, which must keep answering). Where the official
client cannot carry the input (a lone surrogate is not encodable JSON text), the
input travels inside a JSON *string* argument, which is how an agent sends it.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from agentic_vault import InvalidInput, KmsSigner, VaultError
from agentic_vault._local_kms import CONTROL, LocalKms

from .bad_inputs import (
    ADDRESS,
    AUTHORIZATION,
    MAIL_TYPES,
    call_signer,
    mail,
    signed_tx,
    tx,
)
from .mcp_helpers import mcp_client, server_env, structured, text_of

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_KEY = Account.create().key


@pytest.fixture
def key_alias(emulator: LocalKms, request: pytest.FixtureRequest) -> str:
    alias = "alias/hardening-" + "".join(c if c.isalnum() else "-" for c in request.node.name[:40])
    emulator.create_key(alias=alias)
    return alias


def _stress() -> ModuleType:
    """scripts/stress.py, whose payloads these tests send (the script measures them)."""
    spec = importlib.util.spec_from_file_location("stress", ROOT / "scripts" / "stress.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STRESS = _stress()


@dataclass(frozen=True)
class Case:
    id: str
    tool: str
    arguments: dict[str, Any]
    must: tuple[str, ...]  # every one of these is in the error text
    must_not: tuple[str, ...] = ()
    server_only: bool = False  # about the tool call's own arguments


def typed_json(payload: Any) -> dict[str, Any]:
    return {"typed_data": json.dumps(payload)}


def with_types(**types: Any) -> dict[str, Any]:
    return mail(types={**MAIL_TYPES, **types})


def primary_struct(name: str) -> dict[str, Any]:
    """A payload whose primary type has an atomic type's name."""
    return mail(types={name: [{"name": "n", "type": "uint8"}]}, primaryType=name, message={"n": 1})


def surrogate_in(text: str) -> dict[str, Any]:
    """``typed_data`` as a JSON string in which ``text`` spells a lone surrogate escape."""
    return {"typed_data": text}


MAIL_JSON = json.dumps(mail())


def _mail_json_with(old: str, new: str) -> str:
    assert old in MAIL_JSON, old
    return MAIL_JSON.replace(old, new, 1)


def authorization(**changes: Any) -> dict[str, Any]:
    return signed_tx(type=4, authorizationList=[{**AUTHORIZATION, **changes}])


CASES = [
    # -- 9: struct names that are atomic type names -------------------------------------
    *[
        Case(
            f"struct named {name}",
            "sign_typed_data",
            {"typed_data": primary_struct(name)},
            (f"typed_data.types.{name}", "atomic"),
        )
        for name in ("uint", "int", "bytes", "string", "address", "bool", "bytes33", "uint7")
    ],
    Case(
        "struct named uint1024 used as a field type",
        "sign_typed_data",
        {"typed_data": with_types(uint1024=[{"name": "n", "type": "uint8"}])},
        ("typed_data.types.uint1024",),
    ),
    Case(
        "struct named int0",
        "sign_typed_data",
        {"typed_data": primary_struct("int0")},
        ("typed_data.types.int0",),
    ),
    # -- 10: booleans and floats are not quantities --------------------------------------
    Case("type true", "sign_transaction", signed_tx(type=True), ("transaction.type", "boolean")),
    Case("type 2.0", "sign_transaction", signed_tx(type=2.0), ("transaction.type", "number")),
    Case("type false", "sign_transaction", signed_tx(type=False), ("transaction.type",)),
    Case("type 1.5", "sign_transaction", signed_tx(type=1.5), ("transaction.type",)),
    Case(
        "yParity true",
        "sign_transaction",
        authorization(yParity=True),
        ("transaction.authorizationList[0].yParity", "boolean"),
    ),
    Case(
        "yParity 1.0",
        "sign_transaction",
        authorization(yParity=1.0),
        ("transaction.authorizationList[0].yParity",),
    ),
    Case(
        "yParity false",
        "sign_transaction",
        authorization(yParity=False),
        ("transaction.authorizationList[0].yParity",),
    ),
    Case(
        "yParity 0.0",
        "sign_transaction",
        authorization(yParity=0.0),
        ("transaction.authorizationList[0].yParity",),
    ),
    Case("chainId 1.0", "sign_transaction", signed_tx(chainId=1.0), ("transaction.chainId",)),
    Case(
        "authorization nonce true",
        "sign_transaction",
        authorization(nonce=True),
        ("transaction.authorizationList[0].nonce",),
    ),
    Case(
        "typed-data domain chainId true",
        "sign_typed_data",
        {"typed_data": mail(domain={"name": "x", "chainId": True})},
        ("typed_data.domain.chainId",),
    ),
    Case(
        "typed-data int8 as a float",
        "sign_typed_data",
        {
            "typed_data": mail(
                types={"T": [{"name": "n", "type": "int8"}]}, primaryType="T", message={"n": -1.0}
            )
        },
        ("typed_data.message.n",),
    ),
    # -- 11: lone surrogates in typed data -----------------------------------------------
    Case(
        "surrogate in a string value",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"Hello, Bob!"', '"Hello, \\ud800"')),
        ("typed_data.message.contents", "surrogate"),
    ),
    Case(
        "surrogate in a nested string value",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"name": "Bob"', '"name": "\\udfff"')),
        ("typed_data.message.from.name", "surrogate"),
    ),
    Case(
        "surrogate in the domain name",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"Ether Mail"', '"Ether \\ud83d Mail"')),
        ("typed_data.domain.name", "surrogate"),
    ),
    Case(
        "surrogate as a message key",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"contents": "Hello', '"\\ud800": 1, "contents": "Hello')),
        ('typed_data.message["\\ud800"]',),
    ),
    Case(
        "surrogate as a type name",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"Person": [', '"P\\ud800": [], "Person": [')),
        ('typed_data.types["P\\ud800"]',),
    ),
    Case(
        "surrogate as a field name",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"name": "wallet"', '"name": "w\\ud800"')),
        ("typed_data.types.Person[1].name",),
    ),
    Case(
        "surrogate as a field type",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"type": "address"', '"type": "addr\\ud800"')),
        ("typed_data.types.Person[1].type",),
    ),
    Case(
        "surrogate as the primary type",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"primaryType": "Mail"', '"primaryType": "M\\ud800"')),
        ("typed_data.primaryType",),
    ),
    Case(
        "surrogate as a top-level key",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"primaryType"', '"\\ud800": 1, "primaryType"')),
        ('typed_data["\\ud800"]',),
    ),
    Case(
        "surrogate as a domain key",
        "sign_typed_data",
        surrogate_in(_mail_json_with('"name": "Ether Mail"', '"\\ud800": 1, "name": "Ether Mail"')),
        ("typed_data.types.EIP712Domain", '"\\ud800"'),
    ),
    Case(
        "surrogate as an unknown transaction field",
        "sign_transaction",
        {"transaction": json.dumps(tx()).replace('"nonce"', '"\\ud800": 1, "nonce"')},
        ('transaction["\\ud800"]',),
    ),
    Case(
        "surrogate in a transaction address",
        "sign_transaction",
        {"transaction": json.dumps(tx(to="0x" + "1" * 39 + "X")).replace("X", "\\ud800")},
        ("transaction.to",),
    ),
    # -- 6: duplicate keys in a JSON string ----------------------------------------------
    Case(
        "duplicate top-level key",
        "sign_typed_data",
        {"typed_data": MAIL_JSON[:-1] + ', "primaryType": "Person"}'},
        ('"primaryType"', "typed_data", "twice"),
    ),
    Case(
        "duplicate key in the message",
        "sign_typed_data",
        {"typed_data": _mail_json_with('"contents": ', '"contents": "a", "contents": ')},
        ('"contents"', "typed_data.message:"),
    ),
    Case(
        "duplicate key in a nested struct value",
        "sign_typed_data",
        {"typed_data": _mail_json_with('"wallet": ', f'"wallet": "{ADDRESS}", "wallet": ')},
        ('"wallet"', "typed_data.message.from:"),
    ),
    Case(
        "duplicate key in a type's field",
        "sign_typed_data",
        {"typed_data": _mail_json_with('"type": "address"', '"type": "string", "type": "address"')},
        ('"type"', "typed_data.types.Person[1]:"),
    ),
    Case(
        "duplicate key in the domain",
        "sign_typed_data",
        {"typed_data": _mail_json_with('"chainId": 1', '"chainId": 1, "chainId": 5')},
        ('"chainId"', "typed_data.domain:"),
    ),
    Case(
        "duplicate key in a transaction string",
        "sign_transaction",
        {"transaction": json.dumps(tx())[:-1] + f', "to": "{"0x" + "22" * 20}"}}'},
        ('"to"', "transaction:", "twice"),
    ),
    # -- 16: wording and hints -----------------------------------------------------------
    Case(
        "hex message of 64 KiB + 1",
        "sign_message",
        {"message": "0x" + "00" * (64 * 1024 + 1), "encoding": "hex"},
        ("message", "64 KiB"),
        must_not=("131074", "String should"),
        server_only=True,
    ),
    Case(
        "text message of 128 Ki characters",
        "sign_message",
        {"message": "x" * (128 * 1024 + 3)},
        ("message", "64 KiB"),
        must_not=("131074", "String should"),
        server_only=True,
    ),
    Case(
        "transaction string that is no JSON",
        "sign_transaction",
        {"transaction": "0x02f8"},
        ("transaction", "JSON"),
        must_not=("dictionary", "instance of"),
    ),
    Case(
        "transaction JSON string of an array",
        "sign_transaction",
        {"transaction": "[1, 2]"},
        ("transaction", "object"),
        must_not=("dictionary", "instance of"),
    ),
    Case("gasLimit", "sign_transaction", signed_tx(gasLimit=21000), ("gasLimit", "`gas`")),
    Case("gas_limit", "sign_transaction", signed_tx(gas_limit=21000), ("gas_limit", "`gas`")),
    Case("chainID", "sign_transaction", signed_tx(chainID=1), ("chainID", "`chainId`")),
    Case("chain_id", "sign_transaction", signed_tx(chain_id=1), ("chain_id", "`chainId`")),
    Case("gas_price", "sign_transaction", signed_tx(gas_price=1), ("gas_price", "`gasPrice`")),
    Case("maxFee", "sign_transaction", signed_tx(maxFee=1), ("maxFee", "`maxFeePerGas`")),
    Case(
        "maxPriorityFee",
        "sign_transaction",
        signed_tx(maxPriorityFee=1),
        ("maxPriorityFee", "`maxPriorityFeePerGas`"),
    ),
    Case("typo nonse", "sign_transaction", signed_tx(nonse=1), ("nonse", "`nonce`")),
    Case(
        "typo maxFeePerGass",
        "sign_transaction",
        signed_tx(maxFeePerGass=1),
        ("maxFeePerGass", "`maxFeePerGas`"),
    ),
    Case(
        "access-list entry storage_keys",
        "sign_transaction",
        signed_tx(accessList=[{"address": ADDRESS, "storage_keys": []}]),
        ("transaction.accessList[0].storage_keys", "`storageKeys`"),
    ),
    Case(
        "authorization chain_id",
        "sign_transaction",
        authorization(chain_id=1),
        ("transaction.authorizationList[0].chain_id", "`chainId`"),
    ),
    Case(
        "authorization v",
        "sign_transaction",
        authorization(v=27),
        ("transaction.authorizationList[0].v", "`yParity`"),
    ),
    Case(
        "unknown field without a close match lists the fields",
        "sign_transaction",
        signed_tx(memo="hi"),
        ("transaction.memo", "maxPriorityFeePerGas"),
    ),
    Case(
        "top-level argument typo",
        "sign_transaction",
        {"transactoin": tx()},
        ("transactoin", "`transaction`"),
        server_only=True,
    ),
]


# -- the parsers, in this process ---------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if not c.server_only], ids=lambda c: c.id)
def test_hostile_input_is_invalid_input_naming_the_field(signer: KmsSigner, case: Case) -> None:
    with pytest.raises(VaultError) as caught:
        call_signer(signer, case.tool, case.arguments)
    text = str(caught.value)
    assert text.startswith("invalid_input: "), text
    for expected in case.must:
        assert expected in text, (expected, text)
    for unexpected in case.must_not:
        assert unexpected not in text, (unexpected, text)
    assert CONTROL.calls["Sign"] == 0


def test_a_transaction_as_a_json_string_is_signed_like_the_object(signer: KmsSigner) -> None:
    from agentic_vault._signer import prepare_transaction

    request = tx(nonce=3, data="0xdeadbeef")
    assert prepare_transaction(json.dumps(request)).digest == prepare_transaction(request).digest
    signed = signer.sign_transaction(json.dumps(request))
    assert Account.recover_transaction(signed.raw_transaction) == signer.address


# -- the strict JSON parser ------------------------------------------------------------------


def test_strict_json_finds_the_repeated_key_and_its_path() -> None:
    from agentic_vault._json import DuplicateKey, loads

    for text, path, key in [
        ('{"a": 1, "a": 2}', (), "a"),
        ('{"a": {"b": [0, {"c": 1, "d": 2, "c": 3}]}}', ("a", "b", 1), "c"),
        (b'[[], [{"x": {}}, {"y": 1, "y": 1}]]', (1, 1), "y"),
        ('{"\\ud800": 1, "\\ud800": 2}', (), "\ud800"),
    ]:
        with pytest.raises(DuplicateKey) as caught:
            loads(text)
        assert (caught.value.path, caught.value.key) == (path, key), text
    assert loads('{"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]}')["b"][1] == {"a": 2}


def test_strict_json_refuses_what_is_not_json_with_its_own_errors() -> None:
    from agentic_vault._json import InvalidJson, TooDeep, loads

    with pytest.raises(TooDeep):
        loads("[" * 200_000 + "]" * 200_000)
    with pytest.raises(TooDeep):
        loads('{"a":' * 100_000 + "1" + "}" * 100_000)
    for text in ["NaN", '{"a": Infinity}', "[-Infinity]", '{"a": 1', "", b"\xff\xfe\xfa"]:
        with pytest.raises(InvalidJson):
            loads(text)
    # Deep but within the parser's reach is fine, and so is a lone surrogate.
    nested: list[Any] = []
    for _ in range(499):
        nested = [nested]
    assert loads("[" * 500 + "]" * 500) == nested
    assert loads('"\\ud800"') == "\ud800"


def test_strict_json_docstring_examples_run() -> None:
    import agentic_vault._json

    results = doctest.testmod(agentic_vault._json)
    assert results.attempted >= 3
    assert results.failed == 0


# -- typed-data limits ------------------------------------------------------------------------


def test_typed_data_limits_are_refused_naming_the_limit() -> None:
    from agentic_vault import parse_typed_data
    from agentic_vault._typed_data import (
        MAX_FIELDS_PER_STRUCT,
        MAX_STRUCT_VALUES,
        MAX_TYPES,
        MAX_VALUES,
    )

    too_many_types = {f"T{i}": [{"name": "n", "type": "uint8"}] for i in range(MAX_TYPES)}
    too_many_types["P"] = [{"name": "n", "type": "uint8"}]
    too_many_fields = [{"name": f"f{i}", "type": "bool"} for i in range(MAX_FIELDS_PER_STRUCT + 1)]
    for payload, words in [
        (mail(types={**too_many_types}, primaryType="P", message={"n": 1}), "types"),
        (
            mail(
                types={"P": too_many_fields},
                primaryType="P",
                message={f["name"]: True for f in too_many_fields},
            ),
            "fields",
        ),
        (
            mail(
                types={"P": [{"name": "s", "type": "S[]"}], "S": []},
                primaryType="P",
                message={"s": [{}] * MAX_STRUCT_VALUES},
            ),
            "struct",
        ),
        (
            mail(
                types={"P": [{"name": "n", "type": "uint8[]"}]},
                primaryType="P",
                message={"n": [0] * MAX_VALUES},
            ),
            "values",
        ),
    ]:
        with pytest.raises(InvalidInput) as caught:
            parse_typed_data(payload)
        text = str(caught.value)
        assert words in text, text
        assert "limit" in text, text


def test_the_worst_typed_data_within_the_limits_is_accepted_and_fast() -> None:
    from agentic_vault import parse_typed_data

    for name, payload in STRESS.worst_typed_data_within_limits().items():
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        started = time.process_time()
        digest = parse_typed_data(text).digest
        elapsed = time.process_time() - started
        # A regression guard, generous for a shared machine; scripts/stress.py measures.
        assert elapsed < 2.5, (name, elapsed)
        if name == "issue 8 within the limits":
            continue  # eth-account needs seconds for it; a short cut of it is checked below
        reference = Account.sign_message(encode_typed_data(full_message=payload), REFERENCE_KEY)
        assert digest == bytes(reference.message_hash), name


def test_the_issue_8_shape_hashes_like_eth_account_when_small() -> None:
    from agentic_vault import parse_typed_data

    payload = STRESS.issue_8_typed_data(structs=12, entries=40)
    payload["message"]["items"][3]["x"] = [
        {**{f"f{j}": j for j in range(60)}, **{f"b{i}": [] for i in range(1, 12)}}
    ]
    reference = Account.sign_message(encode_typed_data(full_message=payload), REFERENCE_KEY)
    assert parse_typed_data(payload).digest == bytes(reference.message_hash)


# -- the server ------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.anyio
async def test_hostile_inputs_through_the_server(
    emulator: LocalKms, key_alias: str, tmp_path: Path
) -> None:
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    async with mcp_client(env) as client:
        address = structured(await client.call_tool("get_address", {}))["address"]
        for case in CASES:
            result = await client.call_tool(case.tool, case.arguments)
            text = text_of(result)
            assert result.is_error, f"{case.id}: {text}"
            assert text.startswith("invalid_input: "), f"{case.id}: {text}"
            for expected in case.must:
                assert expected in text, f"{case.id}: {expected!r} not in {text}"
            for unexpected in case.must_not:
                assert unexpected not in text, f"{case.id}: {unexpected!r} in {text}"
        assert CONTROL.calls["Sign"] == 0
        signed = structured(
            await client.call_tool("sign_transaction", {"transaction": json.dumps(tx(nonce=9))})
        )
        assert signed["from"] == address
        assert structured(await client.call_tool("get_address", {}))["address"] == address


@pytest.mark.e2e
@pytest.mark.anyio
async def test_the_issue_8_typed_data_is_answered_in_seconds(
    emulator: LocalKms, key_alias: str, tmp_path: Path
) -> None:
    payload = STRESS.issue_8_typed_data()
    assert len(json.dumps(payload, separators=(",", ":"))) <= 256 * 1024
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    async with mcp_client(env) as client:
        await client.call_tool("get_address", {})
        started = time.perf_counter()
        with anyio.fail_after(10):  # it took 40 s of CPU, then blamed credential_process
            result = await client.call_tool("sign_typed_data", {"typed_data": payload})
        elapsed = time.perf_counter() - started
        text = text_of(result)
        if result.is_error:
            assert text.startswith("invalid_input: typed_data"), text
            assert "limit" in text, text
        else:
            reference = encode_typed_data(full_message=payload)
            assert Account.recover_message(reference, signature=structured(result)["signature"])
        assert elapsed < 10
        assert structured(await client.call_tool("get_address", {}))["address"].startswith("0x")


@pytest.mark.e2e
@pytest.mark.anyio
async def test_deeply_nested_json_strings_after_a_signature_are_refused_not_fatal(
    emulator: LocalKms, key_alias: str, tmp_path: Path
) -> None:
    # Signing imports eth-account, whose py_ecc raises the recursion limit to 100,000: the
    # C JSON parser then overflowed the thread's stack (SIGSEGV) before raising.
    env = server_env(emulator, tmp_path, VAULT_KEY_ID=key_alias)
    async with mcp_client(env) as client:
        address = structured(await client.call_tool("sign_transaction", signed_tx()))["from"]
        for tool, argument, deep in [
            ("sign_typed_data", "typed_data", "[" * 100_000 + "]" * 100_000),
            ("sign_typed_data", "typed_data", '{"a":' * 40_000 + "1" + "}" * 40_000),
            ("sign_transaction", "transaction", '{"a":' * 40_000 + "1" + "}" * 40_000),
        ]:
            result = await client.call_tool(tool, {argument: deep})
            text = text_of(result)
            assert result.is_error, text
            assert text.startswith(f"invalid_input: {argument}: is nested too deeply"), text
        assert structured(await client.call_tool("get_address", {}))["address"] == address
