"""The cloud-neutral model shared by every source, the policy and the store."""

from imageprov.model.events import (
    INCOMPLETE_OPERATION,
    MAX_EVENT_TEXT,
    CreationEvent,
    EventEffect,
    LogValidation,
    Principal,
    PrincipalKind,
    RecordOrigin,
)
from imageprov.model.images import (
    DISPLACED_TAG,
    FAMILY_TAG,
    HEADS_FAMILY_TAG,
    Image,
    ImageKind,
    Platform,
    ami_arn,
    compute_image_ref,
    container_ref,
)
from imageprov.model.logs import (
    MAX_SPAN_ACCOUNT,
    MAX_SPAN_REGION,
    LogDocument,
    RecordProblem,
    widen_span,
)
from imageprov.model.verdicts import Flag, Verdict, VerdictStatus

__all__ = [
    "DISPLACED_TAG",
    "FAMILY_TAG",
    "HEADS_FAMILY_TAG",
    "INCOMPLETE_OPERATION",
    "MAX_EVENT_TEXT",
    "MAX_SPAN_ACCOUNT",
    "MAX_SPAN_REGION",
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
    "compute_image_ref",
    "container_ref",
    "widen_span",
]
