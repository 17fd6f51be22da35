"""The receiver of registry push notifications and Docker Hub webhooks."""

from __future__ import annotations

import os

from imageprov.config import Config
from imageprov.errors import ConfigError
from imageprov.receiver.app import NotificationReceiver, ReceiverSettings
from imageprov.receiver.server import AsgiServer
from imageprov.store import Store

__all__ = ["AsgiServer", "NotificationReceiver", "ReceiverSettings", "build_receiver"]


def _environment(config: Config, variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(str(config.source_path or "configuration"),
                          f"receiver: environment variable {variable} is not set")
    return value


def build_receiver(config: Config, store: Store) -> NotificationReceiver:
    """Build the receiver the configuration describes, reading its secrets now.

    Raises:
        ConfigError: the configuration has no receiver, or a secret is not set.
    """
    settings = config.receiver
    if settings is None:
        raise ConfigError(str(config.source_path or "configuration"),
                          "no receiver section")
    dockerhub = (_environment(config, settings.dockerhub_secret_env)
                 if settings.dockerhub_secret_env else None)
    return NotificationReceiver(store, ReceiverSettings(
        registries={item.name: item.host for item in config.registries},
        secret=_environment(config, settings.secret_env), header=settings.header,
        dockerhub_secret=dockerhub, max_body=settings.max_body))
