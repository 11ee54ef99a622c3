"""What doctor found: one ``Check`` per question asked, and the ``Report`` of them all.

A check that does not apply here (no ``credential_process``, no ``--ca``), or whose
input an earlier failure took away, is ``ok`` with a message starting
``skipped: `` and saying why. Every ``warn`` and ``fail`` message says what is wrong
and, after ``Fix:``, what to do about it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["ok", "warn", "fail"]
SKIPPED = "skipped: "


class Check(BaseModel):
    """One line of the checklist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="stable identifier, e.g. `helper` or `certificate-expiry`")
    status: Status
    message: str = Field(description="what was found; for warn and fail, also the fix")

    @property
    def skipped(self) -> bool:
        return self.message.startswith(SKIPPED)


class Report(BaseModel):
    """The contract's ``--json`` shape: ``ok`` is true when no check failed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    checks: list[Check]

    @classmethod
    def of(cls, checks: list[Check]) -> Report:
        return cls(ok=all(check.status != "fail" for check in checks), checks=checks)

    def check(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)


def ok(name: str, message: str) -> Check:
    return Check(name=name, status="ok", message=message)


def warn(name: str, problem: str, fix: str) -> Check:
    return Check(name=name, status="warn", message=_with_fix(problem, fix))


def fail(name: str, problem: str, fix: str) -> Check:
    return Check(name=name, status="fail", message=_with_fix(problem, fix))


def skipped(name: str, why: str) -> Check:
    return Check(name=name, status="ok", message=SKIPPED + why)


def failed_with(name: str, error: Exception) -> Check:
    """A check failed with one of our errors, whose text already says how to fix it."""
    return Check(name=name, status="fail", message=str(error))


def _with_fix(problem: str, fix: str) -> str:
    problem = problem.rstrip()
    fix = fix.strip().rstrip(".")
    return f"{problem if problem.endswith('.') else problem + '.'} Fix: {fix}."
