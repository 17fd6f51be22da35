"""Adapters that turn cloud inventories and audit logs into model objects.

Each cloud is a package here. An image source yields `Image` objects; an event
source turns audit-log documents into `CreationEvent` objects. Neither writes to the
store or applies the policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from imageprov.model import Image


class ImageSource(Protocol):
    """An inventory of the images that exist now in one account or registry."""

    name: str

    def images(self) -> Iterator[Image]:
        """Yield every image the source can see, paging through the API."""
        ...
