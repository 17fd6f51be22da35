"""The one tree of errors that imageprov raises on purpose."""

from __future__ import annotations

from typing import Any

from imageprov.model.logs import RecordProblem


class ImageprovError(Exception):
    """Root of every error imageprov raises for bad input or a failed source."""


class ConfigError(ImageprovError):
    """A configuration file is missing or invalid."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {detail}")


class PolicyError(ImageprovError):
    """A policy file is invalid; each problem names the rule and the field."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid policy {path}:\n{listed}")


class RecordError(ImageprovError):
    """One log record could not be read; the rest of its file is still read."""

    def __init__(self, location: str, index: int, field: str, detail: str) -> None:
        self.problem = RecordProblem(location, index, field, detail)
        super().__init__(str(self.problem))


class SourceError(ImageprovError):
    """A cloud API or a storage location failed while a source was read."""

    def __init__(self, source: str, detail: str) -> None:
        self.source = source
        self.detail = detail
        super().__init__(f"{source}: {detail}")


class IncompleteListing(SourceError):
    """An inventory listing of which some entries could not be read.

    `images` contains the entries that were read. The images the listing reported
    before stay present, since an unreadable entry may be any of them.
    """

    def __init__(self, source: str, detail: str, images: list[Any]) -> None:
        super().__init__(source, detail)
        self.images = images


class LedgerKeyError(ImageprovError):
    """A ledger key file is missing, unreadable or not an Ed25519 key."""


class EvidenceError(ImageprovError):
    """An evidence bundle cannot be written or read."""
