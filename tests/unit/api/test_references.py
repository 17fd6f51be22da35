"""Image references as launches name them."""

from __future__ import annotations

import pytest

from imageprov.api.references import InvalidReference, ReferenceKind, parse_reference

ECR = "111122223333.dkr.ecr.us-east-1.amazonaws.com"
DIGEST = "sha256:" + "a1" * 32


@pytest.mark.parametrize(("text", "kind", "lookup"), [
    ("arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b2c3d4e5f60001", ReferenceKind.REF,
     "arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b2c3d4e5f60001"),
    ("ami-0a1b2c3d4e5f60001", ReferenceKind.AMI_ID, "ami-0a1b2c3d4e5f60001"),
    ("ami-1234abcd", ReferenceKind.AMI_ID, "ami-1234abcd"),
    ("/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/images/golden",
     ReferenceKind.REF,
     "/subscriptions/0000/resourcegroups/rg/providers/microsoft.compute/images/golden"),
    ("projects/acme/global/images/golden-1", ReferenceKind.REF,
     "projects/acme/global/images/golden-1"),
    (DIGEST, ReferenceKind.DIGEST, DIGEST),
    (f"{ECR}/payments-api@{DIGEST}", ReferenceKind.CONTAINER_DIGEST,
     f"{ECR}/payments-api@{DIGEST}"),
    (f"{ECR}/payments-api:v2@{DIGEST}", ReferenceKind.CONTAINER_DIGEST,
     f"{ECR}/payments-api@{DIGEST}"),
    (f"{ECR}/team/payments-api:latest", ReferenceKind.CONTAINER_TAG,
     f"{ECR}/team/payments-api"),
    ("localhost:5000/app:1.0", ReferenceKind.CONTAINER_TAG, "localhost:5000/app"),
    ("nginx", ReferenceKind.CONTAINER_TAG, "docker.io/library/nginx"),
    ("bitnami/redis:7", ReferenceKind.CONTAINER_TAG, "docker.io/bitnami/redis"),
])
def test_parse_reference_kinds(text, kind, lookup):
    reference = parse_reference(text)
    assert reference.kind is kind
    assert reference.lookup == lookup


def test_tag_defaults_to_latest():
    reference = parse_reference(f"{ECR}/payments-api")
    assert reference.tag == "latest"
    assert reference.tag_name == f"{ECR}/payments-api:latest"


def test_registry_port_is_not_a_tag():
    reference = parse_reference("registry.local:5000/team/app")
    assert reference.registry == "registry.local:5000"
    assert reference.repository == "team/app"
    assert reference.tag == "latest"


@pytest.mark.parametrize(("text", "message"), [
    ("", "the image reference is empty"),
    ("a" * 1025, "1025 characters long"),
    ("ami-123 ", "whitespace, control characters"),
    ("nginx\x00", "whitespace, control characters"),
    ("nginx:þ", "outside ASCII"),
    (f"{ECR}/app@sha256:xyz", "is not a digest"),
    (f"{ECR}/app:bad!tag", "is not a valid tag"),
    (f"{ECR}/App:1", "is not a repository name"),
])
def test_invalid_references_rejected(text, message):
    with pytest.raises(InvalidReference, match=message):
        parse_reference(text)


def test_trailing_newline_is_not_visible_text():
    with pytest.raises(InvalidReference, match="whitespace, control characters"):
        parse_reference("ami-0a1b2c3d4e5f60001\n")


def test_upper_case_ami_id_is_looked_up_in_lower_case():
    reference = parse_reference("ami-0A1B2C3D4E5F60001")
    assert (reference.kind, reference.lookup) == (ReferenceKind.AMI_ID,
                                                  "ami-0a1b2c3d4e5f60001")
