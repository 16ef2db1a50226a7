"""Writable destinations, checked before any test runs, not found broken after it: the report folder here,
the snapshot file by gates/snapshot.py with the same rule for its folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import MangaAssistInputError
from .settings import Settings


def check_report_folder(settings: Settings) -> None:
    report = settings.report_dir
    if report is None:
        return
    if report.exists() and not report.is_dir():
        raise MangaAssistInputError(
            f"--mangaassist-report {report} is a file; the report is a folder (results.json, report.html).",
            "Pass --mangaassist-report (ini mangaassist_report) a folder, new or existing, not a file.")
    check_writable(report, "--mangaassist-report")


def check_writable(folder: Path, flag: str) -> None:
    """`folder` exists and is writable, or can be created: its nearest existing ancestor is a writable folder."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise MangaAssistInputError(f"{flag}: {folder} cannot be created, because {existing} is a file.",
                                    f"Pass {flag} a path under a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MangaAssistInputError(f"{flag}: {existing} is not writable, so {folder} cannot be written.",
                                    f"Pass {flag} a path in a writable folder.")
