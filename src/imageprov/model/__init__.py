"""The cloud-neutral model shared by every source, the policy and the store."""

from imageprov.model.events import (
    CreationEvent,
    EventEffect,
    LogValidation,
    Principal,
    PrincipalKind,
    RecordOrigin,
)
from imageprov.model.images import Image, ImageKind, Platform, ami_arn, container_ref
from imageprov.model.logs import LogDocument, RecordProblem
from imageprov.model.verdicts import Flag, Verdict, VerdictStatus

__all__ = [
    "CreationEvent",
    "EventEffect",
    "Flag",
    "Image",
    "LogDocument",
    "LogValidation",
    "RecordProblem",
    "ImageKind",
    "Platform",
    "Principal",
    "PrincipalKind",
    "RecordOrigin",
    "Verdict",
    "VerdictStatus",
    "ami_arn",
    "container_ref",
]
