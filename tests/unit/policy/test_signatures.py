"""Verification of cosign signatures and DSSE attestations against policy keys."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from imageprov.errors import PolicyError
from imageprov.model import CreationEvent, EventEffect, Principal, PrincipalKind, RecordOrigin
from imageprov.policy.schema import load_policy, parse_policy
from imageprov.policy.signatures import check, load_public_key, source_matches
from tests.helpers import registry as oci

DIGEST = "sha256:" + "12" * 32
OTHER = "sha256:" + "34" * 32


def _event(effect: EventEffect, evidence: dict[str, Any]) -> CreationEvent:
    return CreationEvent(
        source="cosign", key="cosign:r:1", event_id="sha256:" + "aa" * 32,
        time=datetime(2026, 12, 1, tzinfo=UTC), action=f"cosign:{effect.value}",
        effect=effect, platform="oci", account="r", region="",
        principal=Principal(kind=PrincipalKind.UNKNOWN, id="unverified"),
        target=DIGEST, registry="r", repository="team/app",
        origin=RecordOrigin(location="oci://r/team/app", index=0, shape="cosign-evidence"),
        evidence=json.dumps(evidence).encode())


def _signature(key: Any, payload: bytes, signed: bytes | None = None) -> CreationEvent:
    _, blob, annotations = oci.signature_layer(key, payload, signed)
    return _event(EventEffect.SIGN, {
        "kind": "signature", "payload": base64.b64encode(blob).decode(),
        "signature": annotations["dev.cosignproject.cosign/signature"]})


def _attestation(key: Any, statement: bytes) -> CreationEvent:
    _, blob, _ = oci.dsse_layer(key, statement)
    return _event(EventEffect.ATTEST, {"kind": "attestation", "envelope": json.loads(blob)})


def _keys(**keys: Any) -> dict[str, Any]:
    return {name: load_public_key(oci.public_pem(key)) for name, key in keys.items()}


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_signature_verifies_each_key_type(kind: str) -> None:
    key = oci.new_key(kind)
    event = _signature(key, oci.simple_signing_payload("r/team/app", DIGEST))

    finding = check(event, _keys(other=oci.new_key("ecdsa"), signer=key))

    assert finding is not None
    assert finding.valid
    assert finding.key == "signer"


def test_signature_by_unlisted_key_counts_as_none() -> None:
    event = _signature(oci.new_key(), oci.simple_signing_payload("r/team/app", DIGEST))

    finding = check(event, _keys(listed=oci.new_key()))

    assert finding is not None
    assert finding.key is None
    assert finding.problem is not None
    assert "does not verify under any policy key (listed)" in finding.problem


def test_tampered_payload_rejected() -> None:
    key = oci.new_key()
    signed = oci.simple_signing_payload("r/team/app", DIGEST)
    event = _signature(key, signed.replace(DIGEST.encode(), OTHER.encode()), signed)

    finding = check(event, _keys(ci=key))

    assert finding is not None
    assert finding.problem is not None
    assert "the payload was changed after signing" in finding.problem


def test_signature_for_other_digest_rejected() -> None:
    key = oci.new_key()
    event = _signature(key, oci.simple_signing_payload("r/team/app", OTHER))

    finding = check(event, _keys(ci=key))

    assert finding is not None
    assert finding.key == "ci"
    assert finding.problem == f"signature by ci is for '{OTHER}', not this image"


def test_attestation_reads_slsa_v02() -> None:
    key = oci.new_key("ed25519")
    event = _attestation(key, oci.slsa_statement(DIGEST, "r/team/app",
                                                 "https://ci.example/b@v1"))

    finding = check(event, _keys(ci=key))

    assert finding is not None and finding.valid
    assert finding.provenance is not None
    assert finding.provenance.builder_id == "https://ci.example/b@v1"
    assert finding.provenance.build_type == "https://ci.example/build-types/container@v1"
    assert finding.provenance.source_repository == \
        "git+https://git.example/team/app@refs/heads/main"
    assert finding.provenance.revision == "0123456789abcdef0123456789abcdef01234567"


def test_attestation_reads_slsa_v1() -> None:
    key = oci.new_key()
    statement = json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "r/team/app", "digest": {"sha256": DIGEST[7:]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {
                    "repository": "https://github.com/team/app", "ref": "refs/heads/main",
                    "path": ".github/workflows/build.yml"}},
                "resolvedDependencies": [{"uri": "git+https://github.com/team/app@main",
                                          "digest": {"gitCommit": "abc123"}}]},
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}}}}
    ).encode()

    finding = check(_attestation(key, statement), _keys(ci=key))

    assert finding is not None and finding.provenance is not None
    assert finding.provenance.builder_id == "https://github.com/actions/runner"
    assert finding.provenance.source_repository == "https://github.com/team/app"
    assert finding.provenance.revision == "abc123"


def test_attestation_about_other_image_rejected() -> None:
    key = oci.new_key()
    event = _attestation(key, oci.slsa_statement(OTHER, "r/team/app", "b"))

    finding = check(event, _keys(ci=key))

    assert finding is not None
    assert finding.problem == f"statement signed by ci is about {OTHER}, not this image"


def test_source_matches_without_scheme_prefix_and_ref() -> None:
    assert source_matches("git+https://git.example/team/app@refs/heads/main",
                          ["https://git.example/team/*"])
    assert source_matches("https://git.example/team/app.git", ["https://git.example/team/app"])
    assert not source_matches("git+https://git.example/other/app@main",
                              ["https://git.example/team/*"])


_BASE = "builders:\n  - name: ci\n    principals: [ci]\n"


@pytest.mark.parametrize(("extra", "message"), [
    ("keys:\n  - name: k\n    public_key: not a key\n", "not a PEM public key"),
    ("registries:\n  - name: r\n    repositories: ['*']\n    signed_by: [missing]\n",
     "names keys that keys does not list: missing"),
    ("registries:\n  - name: r\n    repositories: ['*']\n",
     "must require signed_by, provenance or both"),
])
def test_policy_rejects_bad_evidence_rules(extra: str, message: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(_BASE + extra, "policy.yaml")

    assert message in str(raised.value)


def test_policy_rejects_p384_key() -> None:
    pem = oci.public_pem(ec.generate_private_key(ec.SECP384R1()))
    indented = "\n".join("      " + line for line in pem.splitlines())
    text = _BASE + f"keys:\n  - name: k\n    public_key: |\n{indented}\n"

    with pytest.raises(PolicyError) as raised:
        parse_policy(text, "policy.yaml")

    assert "secp384r1 is not supported; use P-256" in str(raised.value)


def test_registry_example_policy_valid() -> None:
    path = Path(__file__).resolve().parents[3] / "policies" / "registry-example.yaml"

    policy, _ = load_policy(path)

    assert [key.name for key in policy.keys] == ["release-signing"]
    assert policy.registries[0].signed_by == ["release-signing"]
