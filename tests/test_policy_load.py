"""Loading a policy file: who may change it, and errors that name the key, the line and the fix;
reloading it: a new good file takes effect, a broken one leaves the old in force."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agentic_vault import PersonalMessage
from agentic_vault.policy import PolicyFileError, PolicyHolder, evaluate, load_policy_file

from .policy_cases import EXAMPLE

WALLET = "0x52908400098527886E0F7030069857D2E4169EE7"
ROUTER = "0x5a9e000000000000000000000000000000000004"
HEAD = f'version = 1\nchains = [1, 8453]\n\n[addresses]\nrouter = "{ROUTER}"\n'
USDC_ETH = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
USDC = f"""
[tokens.usdc]
decimals = 6
address = {{ 1 = "{USDC_ETH}", 8453 = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913" }}
to = ["router"]
max_per_tx = "500"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_example_policy_loads_with_its_hash_and_time(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    before = datetime.now(UTC)
    loaded = load_policy_file(path)
    assert loaded.path == str(path)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.loaded_at.tzinfo is not None
    assert before <= loaded.loaded_at <= datetime.now(UTC)
    assert loaded.policy.rules.chains == {1, 8453}


def test_the_example_policy_says_what_the_docs_say(tmp_path: Path) -> None:
    rules = load_policy_file(write(tmp_path, EXAMPLE)).policy.rules
    usdc = rules.tokens["usdc"]
    assert (usdc.max_per_tx, usdc.max_per_day, usdc.max_allowance) == (
        500 * 10**6,
        2000 * 10**6,
        1000 * 10**6,
    )
    assert len(usdc.to) == 3
    assert rules.max_validity == 1800
    assert rules.native.max_per_day == 10**17
    assert rules.siwe_domains == {"app.example.org", "dashboard.example.com"}
    assert not rules.delegates
    assert not rules.text
    assert not rules.hex
    assert set(rules.contracts) == {"router"}


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o664, "group"), (0o646, "others"), (0o666, "group and others"), (0o620, "group")],
)
def test_a_file_others_can_write_is_refused_with_the_fix(
    tmp_path: Path, mode: int, who: str
) -> None:
    path = write(tmp_path, EXAMPLE, mode)
    with pytest.raises(PolicyFileError) as raised:
        load_policy_file(path)
    message = raised.value.message
    assert f"writable by {who} (mode {mode:04o})" in message
    assert f"chmod 600 {path}" in message


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o400, 0o444])
def test_owner_only_writable_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    assert load_policy_file(write(tmp_path, EXAMPLE, mode)).policy.version == 1


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    path = write(shared, EXAMPLE)
    shared.chmod(0o777)
    with pytest.raises(PolicyFileError, match=r"writable by group and others \(mode 0777\)"):
        load_policy_file(path)
    shared.chmod(0o1777)  # sticky, like /tmp: others cannot replace the file
    assert load_policy_file(path).policy.version == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    os.chown(path, 54321, -1)
    with pytest.raises(PolicyFileError, match="belongs to user id 54321"):
        load_policy_file(path)


def test_missing_and_non_regular_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="does not exist"):
        load_policy_file(tmp_path / "absent.toml")
    with pytest.raises(PolicyFileError, match="not a regular file"):
        load_policy_file(tmp_path)


def test_a_symlink_is_judged_by_the_file_it_points_to(tmp_path: Path) -> None:
    target = write(tmp_path, EXAMPLE, 0o664, "real.toml")
    link = tmp_path / "policy.toml"
    link.symlink_to(target)
    with pytest.raises(PolicyFileError, match="writable by group"):
        load_policy_file(link)


# Each: the file, the line the error must name, the key, and words of the problem or fix.
BAD_FILES = [
    ("chains = [1]\n", None, "version", "is required"),
    ("version = 2\nchains = [1]\n", 1, "version", "must be 1"),
    ("version = 1\nchains = []\n", 2, "chains", "at least 1"),
    ("version = 1\nchains = [1, 1]\n", 2, "chains", "twice"),
    ('version = 1\nchains = [1]\nallow_deploy = "yes"\n', 3, "allow_deploy", "boolean"),
    ("version = 1\nchains = [1]\ncolour = 1\n", 3, "colour", "not a policy key"),
    (
        HEAD + USDC.replace("max_per_tx", "max_per_dya"),
        11,
        "tokens.usdc.max_per_dya",
        "did you mean 'max_per_day'",
    ),
    (HEAD + USDC.replace('"500"', '"500.1234567"'), 11, "tokens.usdc.max_per_tx", "more decimals"),
    (
        HEAD + USDC.replace('"500"', "500.5"),
        11,
        "tokens.usdc.max_per_tx",
        'write it as a string, e.g. "500.5"',
    ),
    (HEAD + USDC.replace('"500"', '"-5"'), 11, "tokens.usdc.max_per_tx", "decimal string"),
    (HEAD + USDC.replace('"500"', '"1e3"'), 11, "tokens.usdc.max_per_tx", "decimal string"),
    (HEAD + USDC.replace("decimals = 6", 'decimals = "6"'), 8, "tokens.usdc.decimals", "integer"),
    (HEAD + USDC.replace("decimals = 6\n", ""), 7, "tokens.usdc.decimals", "is required"),
    (
        HEAD + USDC.replace('to = ["router"]', 'to = ["router", "tresury"]'),
        10,
        "tokens.usdc.to[1]",
        "'tresury' is neither a 0x address nor a name in [addresses] (router)",
    ),
    (
        HEAD + USDC.replace("{ 1 =", "{ 10 ="),
        9,
        "tokens.usdc.address.10",
        "chain 10 is not in chains",
    ),
    (HEAD + USDC.replace("{ 1 =", '{ "x1" ='), 9, "tokens.usdc.address.x1", "is not a chain id"),
    (
        HEAD
        + USDC.replace(
            "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
            "0xa0B86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
        ),
        9,
        "tokens.usdc.address.1",
        "checksum",
    ),
    (
        HEAD + USDC + USDC.replace("tokens.usdc", "tokens.usdc2"),
        15,
        "tokens.usdc2.address",
        "is already tokens.usdc",
    ),
    (
        HEAD + '\n[tokens.usdc]\ndecimals = 78\naddress = "router"\n',
        8,
        "tokens.usdc.decimals",
        "less than or equal to 77",
    ),
    (HEAD + "\n[tokens.usd-c.x]\ndecimals = 6\n", 7, "tokens.usd-c.decimals", "is required"),
    (
        HEAD + '\n[native]\nmax_per_tx = "0.0000000000000000001"\n',
        8,
        "native.max_per_tx",
        "more decimals than ether has (18)",
    ),
    (
        HEAD + '\n[fees]\nmax_fee_per_gas = "1.0000000001"\n',
        8,
        "fees.max_fee_per_gas",
        "more decimals than gwei has (9)",
    ),
    (
        HEAD + '\n[contracts.r]\naddress = "router"\nfunctions = ["transfer(address,uint)"]\n',
        9,
        "contracts.r.functions[0]",
        "uint256, not uint",
    ),
    (
        HEAD + '\n[contracts.r]\naddress = "router"\nfunctions = ["transfer(address, uint256)"]\n',
        9,
        "contracts.r.functions[0]",
        "without spaces",
    ),
    (
        HEAD + '\n[contracts.r]\naddress = "router"\nfunctions = ["0x1234"]\n',
        9,
        "contracts.r.functions[0]",
        "4 bytes",
    ),
    (
        HEAD
        + '\n[contracts.r]\naddress = "router"\n'
        + 'functions = ["0xa9059cbb", "transfer(address,uint256)"]\n',
        9,
        "contracts.r.functions[1]",
        "listed twice",
    ),
    (
        HEAD + '\n[contracts.r]\naddress = "router"\nfunctions = []\n',
        9,
        "contracts.r.functions",
        "at least 1",
    ),
    (
        HEAD
        + '\n[contracts.r]\naddress = "router"\nfunctions = ["f()"]\n'
        + '[contracts.s]\naddress = "router"\nfunctions = ["g()"]\n',
        11,
        "contracts.s.address",
        "merge",
    ),
    (
        HEAD + "\n[messages]\npatterns = ['(unclosed']\n",
        8,
        "messages.patterns[0]",
        "not a valid regular expression",
    ),
    (
        HEAD + '\n[messages]\nsiwe_domains = ["https://app.example.org"]\n',
        8,
        "messages.siwe_domains[0]",
        "no scheme or path",
    ),
    (HEAD + "\n[rate]\nmax_per_hour = 0\n", 8, "rate.max_per_hour", "greater than or equal to 1"),
    (HEAD + "\n[rate]\n", 7, "rate.max_per_hour", "is required"),
    (
        HEAD
        + '\n[[typed_data.allow]]\nverifying_contract = "router"\nprimary_types = ["A"]\n'
        + '\n[[typed_data.allow]]\nverifying_contract = "router"\n',
        11,
        "typed_data.allow[1].primary_types",
        "is required",
    ),
    (
        HEAD
        + '\n[[typed_data.allow]]\nverifying_contract = "router"\nprimary_types = ["not a type"]\n',
        9,
        "typed_data.allow[0].primary_types[0]",
        "pattern",
    ),
    (HEAD + '\n[delegation]\ndelegates = ["0x12"]\n', 8, "delegation.delegates[0]", "20-byte"),
    (
        f'version = 1\nchains = [1]\n[addresses]\n"0xbad" = "{ROUTER}"\n',
        4,
        "addresses.0xbad",
        "not a valid name",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), BAD_FILES, ids=[b[2] for b in BAD_FILES])
def test_a_bad_file_names_the_line_the_key_and_the_problem(
    tmp_path: Path, text: str, line: int | None, key: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyFileError) as raised:
        load_policy_file(path)
    message = raised.value.message
    where = f", line {line}" if line else ""
    assert message.startswith(f"policy file {path}{where}: {key}: "), message
    assert words in message
    assert "\n" not in message


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version = 1\nchains = [1]\nallow_deploy = tru\n")
    with pytest.raises(PolicyFileError, match=r"is not valid TOML: .*line 3"):
        load_policy_file(path)


def test_several_problems_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "version = 1\nchains = [1]\na = 1\nb = 2\nc = 3\n")
    with pytest.raises(PolicyFileError, match=r"\(and 2 more problems\)$"):
        load_policy_file(path)


def test_not_utf8_and_too_large(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b"version = 1\nchains = [1]\n# \xff\n")
    path.chmod(0o600)
    with pytest.raises(PolicyFileError, match="not UTF-8"):
        load_policy_file(path)
    path.write_bytes(b"# " + b"x" * (1024 * 1024) + b"\n")
    with pytest.raises(PolicyFileError, match="larger than 1024 KiB"):
        load_policy_file(path)


# -- the holder ---------------------------------------------------------------------------

TEXT_ON = "version = 1\nchains = [1]\n\n[messages]\ntext = true\n"
TEXT_OFF = "version = 1\nchains = [1]\n\n[messages]\ntext = false\nhex = false\n"


def outcome(holder: PolicyHolder) -> str:
    decision = evaluate(
        holder.current, PersonalMessage.parse("hello"), signer=WALLET, now=datetime.now(UTC)
    )
    return decision.outcome


def replace(path: Path, text: str, mode: int = 0o600) -> None:
    """Write a new version the way editors and config tools do: a new file renamed over."""
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    fresh.chmod(mode)
    fresh.rename(path)


def test_reload_takes_a_valid_new_file_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT_ON)
    holder = PolicyHolder(path)
    first = holder.current
    assert outcome(holder) == "allow"
    replace(path, TEXT_OFF)
    assert holder.reload() is True
    assert holder.current.sha256 == hashlib.sha256(TEXT_OFF.encode()).hexdigest()
    assert holder.current.loaded_at >= first.loaded_at
    assert outcome(holder) == "deny"


def test_a_broken_new_file_keeps_the_old_policy_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, TEXT_ON)
    holder = PolicyHolder(path)
    first = holder.current
    replace(path, TEXT_OFF.replace("text = false", "text = nope"))
    with caplog.at_level(logging.WARNING, logger="agentic_vault.policy"):
        assert holder.reload() is False
    assert holder.current is first
    assert outcome(holder) == "allow"
    (record,) = [r for r in caplog.records if r.name == "agentic_vault.policy"]
    assert record.levelno == logging.WARNING
    assert "stays in force" in record.getMessage()
    assert "is not valid TOML" in record.getMessage()
    assert first.sha256[:16] in record.getMessage()


def test_a_new_file_others_can_write_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT_ON)
    holder = PolicyHolder(path)
    replace(path, TEXT_OFF, mode=0o664)
    assert holder.reload_if_changed() is False
    assert outcome(holder) == "allow"
    path.chmod(0o600)  # the fix: the same content, now safe, is taken on the next check
    assert holder.reload_if_changed() is True
    assert outcome(holder) == "deny"


def test_chmod_after_loading_is_noticed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, TEXT_ON)
    holder = PolicyHolder(path)
    path.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="agentic_vault.policy"):
        assert holder.reload_if_changed() is False
    assert "writable by group and others" in caplog.text


def test_reload_if_changed_does_nothing_until_the_file_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, TEXT_ON)
    holder = PolicyHolder(path)
    first = holder.current
    assert holder.reload_if_changed() is False
    assert holder.current is first
    replace(path, "version = 1\nchains = [\n")
    with caplog.at_level(logging.WARNING, logger="agentic_vault.policy"):
        assert holder.reload_if_changed() is False
        assert holder.reload_if_changed() is False  # the same broken file: tried and logged once
    assert len([r for r in caplog.records if r.name == "agentic_vault.policy"]) == 1
    assert holder.current is first
    replace(path, TEXT_OFF)
    assert holder.reload_if_changed() is True
    assert holder.current is not first
    assert outcome(holder) == "deny"


def test_an_edit_in_place_is_noticed(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT_ON)
    holder = PolicyHolder(path)
    path.write_text(TEXT_OFF)
    later = datetime.now(UTC) + timedelta(seconds=5)
    os.utime(path, (later.timestamp(), later.timestamp()))
    assert holder.reload_if_changed() is True
    assert outcome(holder) == "deny"


def test_a_deleted_file_keeps_the_policy(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT_ON)
    holder = PolicyHolder(path)
    path.unlink()
    assert holder.reload_if_changed() is False
    assert holder.reload() is False
    assert outcome(holder) == "allow"


def test_concurrent_checks_reload_once(tmp_path: Path) -> None:
    path = write(tmp_path, TEXT_ON)
    holder = PolicyHolder(path)
    replace(path, TEXT_OFF)
    results: list[bool] = []
    start = threading.Barrier(8)

    def check() -> None:
        start.wait()
        results.append(holder.reload_if_changed())

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert outcome(holder) == "deny"


def test_the_first_load_of_a_bad_file_raises(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError):
        PolicyHolder(write(tmp_path, "version = 3\nchains = [1]\n"))
