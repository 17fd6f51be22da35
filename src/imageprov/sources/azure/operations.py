"""The Activity Log operations that create, change or delete images.

One row per operation name, lower-cased: the Activity Log writes the same name in
several casings (`MICROSOFT.COMPUTE/IMAGES/WRITE` in exports), so names are
compared lower-cased. `target` names how the image the operation acts on is found:
`resource` when the record's resource id is the image, `import` when the request
body's `targetTags` name ACR repositories and tags, `none` when the operation names
no image that an inventory lists. `source` is the path of the source in the request
body, a dotted path into that JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from imageprov.model import EventEffect


@dataclass(frozen=True)
class OperationRow:
    operation: str
    effect: EventEffect
    target: Literal["resource", "import", "none"]
    kind: Literal["managed-image", "gallery-image-version", "registry", "virtual-machine"]
    source: tuple[str, ...] = ()


ROWS: tuple[OperationRow, ...] = (
    OperationRow("microsoft.compute/images/write", EventEffect.CREATE, "resource",
                 "managed-image",
                 ("properties.sourceVirtualMachine.id",
                  "properties.storageProfile.osDisk.managedDisk.id",
                  "properties.storageProfile.osDisk.snapshot.id",
                  "properties.storageProfile.osDisk.blobUri")),
    OperationRow("microsoft.compute/images/delete", EventEffect.DELETE, "resource",
                 "managed-image"),
    OperationRow("microsoft.compute/galleries/images/versions/write", EventEffect.CREATE,
                 "resource", "gallery-image-version",
                 ("properties.storageProfile.source.id",
                  "properties.storageProfile.source.virtualMachineId",
                  "properties.storageProfile.osDiskImage.source.id")),
    OperationRow("microsoft.compute/galleries/images/versions/delete", EventEffect.DELETE,
                 "resource", "gallery-image-version"),
    # Legacy capture writes VHD blobs into a storage account, not a managed image, so
    # the event names no inventoried image. It is kept with the VM as its source.
    OperationRow("microsoft.compute/virtualmachines/capture/action", EventEffect.CREATE,
                 "none", "virtual-machine"),
    # `az acr import` copies an image into a registry. The request names the target
    # repositories and tags but not the digest, so the event is joined to the image
    # that carries one of those tags.
    OperationRow("microsoft.containerregistry/registries/importimage/action",
                 EventEffect.IMPORT, "import", "registry",
                 ("source.registryUri", "source.sourceImage", "source.resourceId")),
)

BY_OPERATION: dict[str, OperationRow] = {row.operation: row for row in ROWS}


def lookup(operation: str) -> OperationRow | None:
    """Return the row of an operation name in any casing, or None."""
    return BY_OPERATION.get(operation.lower())
