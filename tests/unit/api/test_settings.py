"""The `serve` section of the configuration and the deploy examples that use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imageprov.api.admission import POD_SPEC_PATHS
from imageprov.config import load_config
from imageprov.errors import ConfigError

ROOT = Path(__file__).parents[3]


def _write(tmp_path: Path, serve: dict) -> Path:
    path = tmp_path / "imageprov.yaml"
    path.write_text(yaml.safe_dump({"policy": "policy.yaml", "serve": serve}))
    return path


def test_serve_defaults_fail_closed_and_enforce(tmp_path):
    settings = load_config(_write(tmp_path, {})).serve
    assert settings.unknown_images == "fail-closed"
    assert settings.admission.mode_for("payments") == "enforce"
    assert settings.max_verdict_age.total_seconds() == 3600
    assert settings.tls is None


def test_namespace_modes_override_default(tmp_path):
    settings = load_config(_write(tmp_path, {"admission": {
        "mode": "warn", "namespaces": {"payments": "enforce"}}})).serve
    assert settings.admission.mode_for("payments") == "enforce"
    assert settings.admission.mode_for("other") == "warn"
    assert settings.admission.mode_for(None) == "warn"


def test_tls_paths_taken_from_config_folder(tmp_path):
    settings = load_config(_write(tmp_path, {"tls": {"certificate": "tls/gate.crt",
                                                     "key": "tls/gate.key"}})).serve
    assert settings.tls is not None
    assert settings.tls.certificate == tmp_path / "tls" / "gate.crt"
    assert settings.tls.key == tmp_path / "tls" / "gate.key"


@pytest.mark.parametrize(("serve", "message"), [
    ({"unknown_images": "maybe"}, "serve.unknown_images"),
    ({"admission": {"namespaces": {"dev": "block"}}}, "serve.admission.namespaces.dev"),
    ({"max_verdict_age": "0s"}, "max_verdict_age must be longer than zero"),
    ({"port": 70000}, "serve.port"),
    ({"tls": {"certificate": "gate.crt"}}, "serve.tls.key"),
])
def test_invalid_serve_settings_rejected(tmp_path, serve, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, serve))


def test_deploy_configuration_loads():
    settings = load_config(ROOT / "deploy" / "imageprov.yaml").serve
    assert settings.tls is not None
    assert settings.admission.mode_for("staging") == "warn"


def test_webhook_example_covers_every_judged_kind():
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "admission-webhook.yaml")
                                        .read_text()))
    webhook = documents[0]["webhooks"][0]
    assert documents[0]["kind"] == "ValidatingWebhookConfiguration"
    assert webhook["clientConfig"]["service"]["path"] == "/v1/admission"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert 1 <= webhook["timeoutSeconds"] <= 30
    assert webhook["failurePolicy"] in ("Fail", "Ignore")
    resources = {resource for rule in webhook["rules"] for resource in rule["resources"]}
    plural = {kind: kind.lower() + "s" for kind in POD_SPEC_PATHS}
    assert set(plural.values()) <= resources
    assert "pods/ephemeralcontainers" in resources
