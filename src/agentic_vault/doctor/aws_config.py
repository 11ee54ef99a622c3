"""The AWS config file, the profile, the region and the profile's ``credential_process``.

    config-file          the SDK can parse it (no duplicated sections, no stray lines)
    profile              the profile asked for (--profile, AWS_PROFILE) is in it
    region               the region in effect, and a region name wherever one is written
    credential-process   one line, split as the SDK splits it, with the helper's flags

Reading is done by ``_aws_config``, the module start-up and the server's error
messages use too; this one judges what it read and words the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .._aws_config import (
    GUIDE,
    ConfigFile,
    CredentialProcess,
    config_path,
    credential_profiles,
    credentials_path,
    is_region_name,
    parse_credential_process,
    profile_in_effect,
    profile_region_mistake,
    read_config,
)
from .report import Check, fail, ok, skipped, warn

if TYPE_CHECKING:
    from .._config import SignerConfig
    from . import DoctorOptions

_HELPER_FLAGS = (
    "--certificate",
    "--private-key",
    "--trust-anchor-arn",
    "--profile-arn",
    "--role-arn",
)


@dataclass(frozen=True)
class AwsSetup:
    """What the later checks need from this area."""

    profile: str
    config: ConfigFile
    # The region the SDK will use, when it is a region name.
    region: str | None
    # The region written in the profile, when it is a region name (ARNs are compared to it).
    profile_region: str | None
    process: CredentialProcess | None
    # Why the SDK cannot work with this configuration (the live checks are skipped).
    blocker: str | None


def check_aws_config(
    options: DoctorOptions, settings: SignerConfig | None, environ: Mapping[str, str]
) -> tuple[list[Check], AwsSetup]:
    profile, profile_source = profile_in_effect(options.profile, environ)
    config = read_config(config_path(environ))
    in_credentials_file = profile in credential_profiles(credentials_path(environ))
    blockers: list[str] = []

    file_check = _config_file(config, profile, profile_source, in_credentials_file, environ)
    if file_check.status == "fail":
        blockers.append(f"the SDK cannot read {config.path} (see config-file)")

    profile_check = _profile(config, profile, profile_source, in_credentials_file, environ)
    if profile_check.status == "fail":
        blockers.append(f"profile {profile} does not exist (see profile)")

    settings_in = config.profiles.get(profile, {})
    written_region = settings_in.get("region", "").strip() or None
    region_check, region = _region(options, settings, environ, profile, config.path, written_region)
    if region_check.status == "fail":
        blockers.append("there is no usable region (see region)")

    raw_process = settings_in.get("credential_process")
    process = parse_credential_process(raw_process) if raw_process else None
    process_check = _credential_process(process, profile)
    if process_check.status == "fail":
        blockers.append("the profile's credential_process is broken (see credential-process)")

    setup = AwsSetup(
        profile=profile,
        config=config,
        region=region,
        profile_region=written_region
        if written_region and is_region_name(written_region)
        else None,
        process=process,
        blocker=blockers[0] if blockers else None,
    )
    return [file_check, profile_check, region_check, process_check], setup


def _config_file(
    config: ConfigFile,
    profile: str,
    profile_source: str | None,
    in_credentials_file: bool,
    environ: Mapping[str, str],
) -> Check:
    where = "AWS_CONFIG_FILE" if environ.get("AWS_CONFIG_FILE") else "the default location"
    if not config.exists:
        if profile_source and not in_credentials_file:
            return fail(
                "config-file",
                f"{config.path} ({where}) does not exist, but profile {profile} is asked for "
                f"by {profile_source}",
                f"create it with the profile (step 7 of {GUIDE}), or point AWS_CONFIG_FILE at "
                "the file that has it",
            )
        return skipped(
            "config-file",
            f"{config.path} does not exist (not needed when credentials come from the "
            "environment or an instance or task role)",
        )
    if config.duplicates:
        repeated = "; ".join(
            f"[{header}] on lines {', '.join(map(str, lines))}"
            for header, lines in config.duplicates.items()
        )
        return fail(
            "config-file",
            f"the AWS SDK cannot parse {config.path} (Unable to parse config file): sections "
            f"appear more than once: {repeated}; a block appended with `cat >>` ran twice",
            "delete the repeated sections so that each appears once, then run doctor again",
        )
    if config.error:
        return fail(
            "config-file",
            f"the AWS SDK cannot parse {config.path} (Unable to parse config file): {config.error}",
            f"correct that line (`cat -n {config.path}` shows line numbers)",
        )
    names = ", ".join(config.profiles) or "none"
    return ok("config-file", f"{config.path} ({where}) parses; profiles: {names}")


def _profile(
    config: ConfigFile,
    profile: str,
    profile_source: str | None,
    in_credentials_file: bool,
    environ: Mapping[str, str],
) -> Check:
    if profile in config.profiles:
        source = f" (from {profile_source})" if profile_source else ""
        return ok("profile", f"{profile}{source}, in {config.path}")
    if in_credentials_file:
        return ok("profile", f"{profile}, in {credentials_path(environ)}")
    if profile_source is None:
        return skipped(
            "profile",
            "no profile is named (--profile, AWS_PROFILE) and there is no [default]: the SDK "
            "looks for credentials in the environment and instance or task roles",
        )
    if profile in config.other_sections:
        hint = (
            f"{config.path} has a section [{profile}], but in the config file a profile "
            f"section is written [profile {profile}]"
        )
        fix = f"rename the section to [profile {profile}]"
    else:
        known = ", ".join(config.profiles) or "none"
        hint = f"the profiles in {config.path} are: {known}"
        fix = f"correct {profile_source}, or add a [profile {profile}] section (step 7 of {GUIDE})"
    return fail("profile", f"profile {profile} (from {profile_source}) does not exist; {hint}", fix)


def _region(
    options: DoctorOptions,
    settings: SignerConfig | None,
    environ: Mapping[str, str],
    profile: str,
    path: Path,
    written: str | None,
) -> tuple[Check, str | None]:
    explicit = _explicit_region(options, settings, environ)
    bad_written = written is not None and not is_region_name(written)
    if explicit is not None:
        region, source = explicit
        if not is_region_name(region):
            return fail(
                "region",
                f"{source}: {region!r} is not an AWS region name",
                f"set {source} to the region of your KMS key, e.g. us-east-1",
            ), None
        if bad_written and written is not None:
            return warn(
                "region",
                f"{region} (from {source}) is used, but "
                + profile_region_mistake(profile, path, written),
                "set `region = ` in the profile to the region of your KMS key; the AWS CLI "
                "and other tools use it",
            ), region
        return ok("region", f"{region} (from {source})"), region
    default_region = environ.get("AWS_DEFAULT_REGION", "").strip()
    if default_region:
        if not is_region_name(default_region):
            return fail(
                "region",
                f"AWS_DEFAULT_REGION: {default_region!r} is not an AWS region name; "
                "agentic-vault-mcp refuses to start with it",
                "set AWS_DEFAULT_REGION to the region of your KMS key (e.g. us-east-1), or "
                "unset it and pass --region",
            ), None
        return ok("region", f"{default_region} (from AWS_DEFAULT_REGION)"), default_region
    if written is not None:
        if bad_written:
            return fail(
                "region",
                profile_region_mistake(profile, path, written)
                + "; agentic-vault-mcp refuses to start with it",
                f"write the region of your KMS key in profile {profile}, e.g. "
                "`region = us-east-1`, or pass --region",
            ), None
        return ok("region", f"{written} (from profile {profile})"), written
    return fail(
        "region",
        "no region is configured",
        f"pass --region, set VAULT_REGION or AWS_REGION, or add `region = ...` to profile "
        f"{profile}",
    ), None


def _explicit_region(
    options: DoctorOptions, settings: SignerConfig | None, environ: Mapping[str, str]
) -> tuple[str, str] | None:
    """The region given outright, as the server takes it, and where it came from."""
    candidates = [
        (options.region, "--region"),
        (environ.get("VAULT_REGION"), "VAULT_REGION"),
        (settings.key_arn_region if settings else None, "the key ARN"),
        (environ.get("AWS_REGION"), "AWS_REGION"),
    ]
    for value, source in candidates:
        if value and value.strip():
            return value.strip(), source
    return None


def _credential_process(process: CredentialProcess | None, profile: str) -> Check:
    if process is None:
        return skipped(
            "credential-process",
            f"profile {profile} has no credential_process (no IAM Roles Anywhere helper to "
            "check); credentials come from elsewhere (see credentials)",
        )
    if process.problem:
        return fail(
            "credential-process",
            f"credential_process of profile {profile}: {process.problem}",
            "write it as one command line, with balanced quotes",
        )
    if process.continued_lines:
        lines = process.raw.count("\n") + 1
        return fail(
            "credential-process",
            f"credential_process of profile {profile} spans {lines} lines joined with "
            "backslashes; the SDK passes each backslash-newline on to the helper, which then "
            "sees no --certificate and answers 'unable to use cert store signer on linux'",
            "write the whole command on one line, without backslashes",
        )
    missing = [flag for flag in _HELPER_FLAGS if flag not in process.options]
    if process.is_signing_helper:
        if "--cert-selector" in process.options or _uses_pkcs11(process):
            missing = [m for m in missing if m not in ("--certificate", "--private-key")]
        if missing:
            return fail(
                "credential-process",
                f"credential_process of profile {profile} runs aws_signing_helper without "
                f"{', '.join(missing)}",
                "add them, with the paths and ARNs of steps 4 and 6 of " + GUIDE,
            )
        if process.argv[1:2] != ("credential-process",):
            return fail(
                "credential-process",
                "aws_signing_helper is not given the credential-process command as its first "
                "argument",
                "write `aws_signing_helper credential-process --certificate ...`",
            )
        if process.stray:
            return fail(
                "credential-process",
                f"credential_process passes words the helper does not expect: "
                f"{', '.join(repr(word) for word in process.stray)}",
                "remove them; every option is written --name value",
            )
    program = process.program or ""
    if "\n" in process.raw:
        return warn(
            "credential-process",
            f"credential_process of profile {profile} spans several lines; this SDK joins "
            "them, other tools may not",
            "write it on one line",
        )
    if not program.startswith(("/", "~", "$")) and "/" in program:
        return warn(
            "credential-process",
            f"credential_process runs {program}, a path relative to the directory the server "
            "is started in (MCP clients start it anywhere)",
            "write the absolute path of the helper",
        )
    if process.is_signing_helper:
        return ok(
            "credential-process",
            f"one line: {program} credential-process with --certificate "
            f"{process.options.get('--certificate', '(store)')} --private-key "
            f"{process.options.get('--private-key', '(store)')} and the three ARNs",
        )
    # Never echo the rest of the command: it may carry a password (--pkcs8-password...).
    return ok("credential-process", f"one line, running {program}")


def _uses_pkcs11(process: CredentialProcess) -> bool:
    return any(
        process.options.get(flag, "").startswith("pkcs11:")
        for flag in ("--certificate", "--private-key")
    )
