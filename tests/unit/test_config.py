"""Reading the configuration file."""

from __future__ import annotations

import pytest

from imageprov.config import load_config
from imageprov.errors import ConfigError


def test_repeated_config_key_rejected(tmp_path):
    path = tmp_path / "imageprov.yaml"
    path.write_text("database: sqlite:///a.db\ndatabase: sqlite:///b.db\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "found key 'database' a second time (first on line 1)" in str(caught.value)
