"""The `azure:` section of the configuration file."""

from __future__ import annotations

import pytest
import yaml

from imageprov.config import load_config
from imageprov.errors import ConfigError


def _write(tmp_path, azure: dict) -> str:
    path = tmp_path / "imageprov.yaml"
    path.write_text(yaml.safe_dump({"policy": "policy.yaml", "azure": azure}))
    return str(path)


@pytest.mark.parametrize("azure,message", [
    ({"credential": {"kind": "static_token", "token_env": "T"},
      "subscriptions": [{"id": "s"}]}, "subscriptions need arm_endpoint"),
    ({"arm_endpoint": "https://127.0.0.1:1", "subscriptions": [{"id": "s"}]},
     "need a credential"),
    ({"credential": {"kind": "client_secret", "tenant_id": "t", "client_id": "c"}},
     "credential kind client_secret needs secret_env, authority_host"),
    ({"activity_logs": [{"path": "logs", "connection_string_env": "C"}]},
     "give exactly one of path or blob_account_url"),
    ({"acr_events": [{"path": "x", "format": "cloudtrail"}]}, "azure.acr_events.0.format"),
])
def test_invalid_azure_section_rejected(tmp_path, azure, message):
    with pytest.raises(ConfigError) as raised:
        load_config(_write(tmp_path, azure))
    assert message in str(raised.value)


def test_relative_paths_resolved(tmp_path):
    config = load_config(_write(tmp_path, {
        "ca_bundle": "ca.pem", "activity_logs": [{"path": "logs"}],
        "credential": {"kind": "certificate", "tenant_id": "t", "client_id": "c",
                       "certificate_path": "sp.pem", "authority_host": "https://127.0.0.1"}}))
    assert config.azure.ca_bundle == tmp_path / "ca.pem"
    assert config.azure.activity_logs[0].path == tmp_path / "logs"
    assert config.azure.credential.certificate_path == tmp_path / "sp.pem"


@pytest.mark.parametrize("kind", ["azure-activity", "acr-events"])
def test_local_azure_logs_read_in_their_list_format(tmp_path, kind):
    from imageprov.config import AzureLogLocation
    from imageprov.cycle import _azure_objects

    (tmp_path / "PT1H.json").write_text("{}")
    location = AzureLogLocation(path=tmp_path)
    (item,) = _azure_objects(None, None, location, kind)
    assert item.format == kind
    named = AzureLogLocation(path=tmp_path, format="acr-events")
    assert [item.format for item in _azure_objects(None, None, named, kind)] == [
        "acr-events"]
