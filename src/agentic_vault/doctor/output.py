"""The report for people (a checklist) and for programs (the contract's JSON)."""

from __future__ import annotations

import json
import shutil
import textwrap

from .report import SKIPPED, Check, Report

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}
_NAME_WIDTH = 24


def render_json(report: Report) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2)


def render_checklist(report: Report) -> str:
    width = max(72, min(shutil.get_terminal_size((100, 24)).columns, 120))
    lines = ["agentic-vault doctor", ""]
    lines += [_line(check, width) for check in report.checks]
    lines += ["", _summary(report)]
    return "\n".join(lines)


def _line(check: Check, width: int) -> str:
    mark = "skip" if check.skipped else _MARK[check.status]
    head = f"  {mark:<5} {check.name:<{_NAME_WIDTH}} "
    return textwrap.fill(
        check.message.removeprefix(SKIPPED),
        width=width,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_long_words=False,
        break_on_hyphens=False,
    )


def _summary(report: Report) -> str:
    failed = sum(check.status == "fail" for check in report.checks)
    warned = sum(check.status == "warn" for check in report.checks)
    skipped = sum(check.skipped for check in report.checks)
    passed = len(report.checks) - failed - warned - skipped
    counts = f"{failed} failed, {warned} warnings, {passed} ok, {skipped} skipped."
    if failed:
        return f"{counts} Fix the failures from the top: later ones often follow from them."
    if warned:
        return f"{counts} Nothing failed; the warnings say what to fix before it does."
    return f"{counts} The server is ready to run with these settings."
