"""The audit-log formats imageprov reads, and the choice of one for a document.

A location's configuration may name its format; otherwise each format is asked in
turn whether it recognises the document's first bytes. CloudTrail comes last and
reads whatever no other format claims, since it also recognises the notices and
digest files that sit beside trail files and reports unknown JSON as such.
"""

from __future__ import annotations

from imageprov.model import LogDocument, RecordProblem
from imageprov.sources import LogFormat
from imageprov.sources.aws import trail_documents
from imageprov.sources.azure import acr_documents, activity_documents
from imageprov.sources.compression import head
from imageprov.sources.gcp import audit_documents
from imageprov.sources.oci import dockerhub, evidence_documents, notifications

FALLBACK = trail_documents.FORMAT
FORMATS: tuple[LogFormat, ...] = (
    activity_documents.FORMAT,
    acr_documents.FORMAT,
    audit_documents.FORMAT,
    notifications.FORMAT,
    dockerhub.FORMAT,
    evidence_documents.FORMAT,
    FALLBACK,
)
BY_NAME = {item.name: item for item in FORMATS}


def choose(data: bytes, name: str | None = None) -> LogFormat:
    """Return the named format, or the one that recognises the document."""
    if name is not None:
        return BY_NAME[name]
    start = head(data)
    for item in FORMATS:
        if item is not FALLBACK and item.recognises(start):
            return item
    return FALLBACK


def read(data: bytes, location: str, fallback_account: str | None = None,
         name: str | None = None) -> LogDocument:
    """Read one document with its format; an unknown format name is a problem of
    the file, not an error."""
    try:
        chosen = choose(data, name)
    except KeyError:
        document = LogDocument(location=location, source=name or "", platform="")
        document.problems.append(RecordProblem(
            location, -1, "(file)",
            f"unknown log format {name!r}; known: {', '.join(sorted(BY_NAME))}"))
        return document
    return chosen.read(data, location, fallback_account)
