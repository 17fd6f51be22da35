"""Kubernetes admission: the images of an AdmissionReview v1 request and the response.

The request's object is a Pod or a workload kind that carries a pod template. Every
container, init container and ephemeral container is judged. See
https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/
for the AdmissionReview fields used here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

API_VERSION = "admission.k8s.io/v1"

# The path to the pod spec in each kind.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")
# The API server keeps warnings short; longer ones may be cut.
MAX_WARNING = 256


class InvalidReview(ValueError):
    """A request body is not an AdmissionReview v1 request."""


@dataclass(frozen=True)
class ContainerImage:
    """One container of the pod spec: its field, its name and its image."""

    field: str
    name: str
    image: str

    @property
    def label(self) -> str:
        return f"{self.field}[{self.name}]"


@dataclass(frozen=True)
class AdmissionRequest:
    uid: str
    kind: str
    namespace: str | None
    name: str | None
    operation: str
    images: tuple[ContainerImage, ...]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidReview(f"{where} must be an object")
    return value


def parse_review(body: Any) -> AdmissionRequest:
    """Read an AdmissionReview v1 body.

    Raises:
        InvalidReview: the body is not an AdmissionReview v1 request, or a container
            in its pod spec has no image.
    """
    review = _mapping(body, "the body")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise InvalidReview(f"expected apiVersion {API_VERSION} and kind AdmissionReview, "
                            f"got {review.get('apiVersion')!r} and {review.get('kind')!r}")
    request = _mapping(review.get("request"), "request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise InvalidReview("request.uid must be a non-empty string")
    kind = _mapping(request.get("kind"), "request.kind").get("kind")
    if not isinstance(kind, str):
        raise InvalidReview("request.kind.kind must be a string")
    operation = request.get("operation")
    images: tuple[ContainerImage, ...] = ()
    # DELETE carries the old object only, and nothing is launched by it.
    if operation in ("CREATE", "UPDATE") and kind in POD_SPEC_PATHS:
        images = tuple(_container_images(request.get("object"), kind))
    namespace = request.get("namespace")
    name = request.get("name")
    return AdmissionRequest(uid, kind, namespace if isinstance(namespace, str) else None,
                            name if isinstance(name, str) else None, str(operation),
                            images)


def _container_images(document: Any, kind: str) -> list[ContainerImage]:
    node: Any = _mapping(document, "request.object")
    where = "request.object"
    for step in POD_SPEC_PATHS[kind]:
        where += f".{step}"
        node = _mapping(node.get(step), where)
    found = []
    for field in CONTAINER_FIELDS:
        containers = node.get(field)
        if containers is None:
            continue
        if not isinstance(containers, list):
            raise InvalidReview(f"{where}.{field} must be a list")
        for index, container in enumerate(containers):
            container = _mapping(container, f"{where}.{field}[{index}]")
            name = container.get("name")
            image = container.get("image")
            label = name if isinstance(name, str) else str(index)
            if not isinstance(image, str) or not image:
                raise InvalidReview(f"{where}.{field}[{label}] has no image")
            found.append(ContainerImage(field, label, image))
    return found


def review_response(uid: str, allowed: bool, message: str | None = None,
                    warnings: list[str] | None = None,
                    annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """Build an AdmissionReview v1 response for the request `uid`."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if message is not None:
        response["status"] = {"code": 200 if allowed else 403, "message": message}
    if warnings:
        response["warnings"] = [_short(text) for text in warnings]
    if annotations:
        response["auditAnnotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def _short(text: str) -> str:
    return text if len(text) <= MAX_WARNING else text[: MAX_WARNING - 3] + "..."
