"""imageprov: attribute every cloud image to the event that created it and judge it."""

__version__ = "0.1.0"
