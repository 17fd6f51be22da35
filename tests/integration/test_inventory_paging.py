"""Paging of the AMI and ECR inventories, through boto3, against a loopback stand-in.

moto 5.2.1 returns every item in one response for these calls, so these tests use
`AwsStandIn`, which pages as AWS does and records each request.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from imageprov.errors import SourceError
from imageprov.model import ImageKind
from imageprov.sources.aws.ami import AmiInventory
from imageprov.sources.aws.ecr import EcrInventory
from tests.helpers.aws_standin import Ami, AwsStandIn, ContainerImage, Repository

ACCOUNT = "111122223333"
SHARING_ACCOUNT = "444455556666"
STRANGER_ACCOUNT = "777788889999"
REGION = "us-east-1"
AMI_COUNT = 2500
SERVER_PAGE_SIZE = 200

# botocore retries throttling errors with exponential backoff, so the error tests turn
# retries off to let the first failure reach the inventory.
NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture
def standin() -> Iterator[AwsStandIn]:
    server = AwsStandIn(account=ACCOUNT, region=REGION, page_size=SERVER_PAGE_SIZE)
    with server:
        yield server


def make_client(service: str, standin: AwsStandIn, config: Config | None = None):
    # Explicit credentials keep botocore from probing the instance metadata service.
    return boto3.client(
        service,
        endpoint_url=standin.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        aws_session_token="testing",
        config=config,
    )


def owned_amis(count: int) -> list[Ami]:
    return [
        Ami(
            image_id=f"ami-{index:017x}",
            owner_id=ACCOUNT,
            name=f"base-{index:04d}",
            tags={"Builder": "packer", "Index": str(index)},
        )
        for index in range(count)
    ]


def ami_ref(owner: str, image_id: str) -> str:
    return f"arn:aws:ec2:{REGION}:{owner}:image/{image_id}"


def digest(number: int) -> str:
    return "sha256:" + f"{number:x}".rjust(64, "0")


def add_repository(standin: AwsStandIn, name: str, images: list[list[str]]) -> None:
    """Add a repository with one image per entry of `images`, each a list of tags."""
    standin.repositories.append(Repository(name=name, registry_id=ACCOUNT))
    for tags in images:
        number = len(standin.container_images) + 1
        standin.container_images.append(
            ContainerImage(
                registry_id=ACCOUNT,
                repository_name=name,
                digest=digest(number),
                tags=tags,
            )
        )


def container_ref(repository: str, image_digest: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}@{image_digest}"


def assert_token_chain(requests: list, token_name: str) -> None:
    """Each request after the first carries the token of the response before it."""
    assert token_name not in requests[0].params
    for previous, current in zip(requests, requests[1:], strict=False):
        assert previous.next_token is not None
        assert current.params[token_name] == previous.next_token
    assert requests[-1].next_token is None


# EC2 DescribeImages


def test_ami_pages_yield_every_image_once(standin: AwsStandIn) -> None:
    standin.amis = owned_amis(AMI_COUNT)
    inventory = AmiInventory(make_client("ec2", standin), REGION, [])

    images = list(inventory.images())

    refs = [image.ref for image in images]
    expected = {ami_ref(ACCOUNT, ami.image_id) for ami in standin.amis}
    assert len(refs) == AMI_COUNT
    assert len(set(refs)) == AMI_COUNT
    assert set(refs) == expected


def test_ami_fields_survive_the_wire(standin: AwsStandIn) -> None:
    standin.amis = owned_amis(3)
    inventory = AmiInventory(make_client("ec2", standin), REGION, [])

    image = next(inventory.images())

    assert image.ref == ami_ref(ACCOUNT, "ami-00000000000000000")
    assert image.kind is ImageKind.AMI
    assert image.native_id == "ami-00000000000000000"
    assert image.account == ACCOUNT
    assert image.region == REGION
    assert image.names == ("base-0000",)
    assert image.tags == {"Builder": "packer", "Index": "0"}
    assert image.created == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert image.state == "available"
    assert image.public is False
    assert image.inventory_source == "ec2:us-east-1"


def test_ami_requests_follow_next_token(standin: AwsStandIn) -> None:
    standin.amis = owned_amis(AMI_COUNT)
    inventory = AmiInventory(make_client("ec2", standin), REGION, [])

    list(inventory.images())

    requests = standin.requests_for("ec2", "DescribeImages")
    assert len(requests) == -(-AMI_COUNT // SERVER_PAGE_SIZE)
    for request in requests:
        assert request.status == 200
        assert request.params["Owner.1"] == "self"
        assert "Owner.2" not in request.params
        assert request.params["IncludeDisabled"] == "true"
        assert request.params["IncludeDeprecated"] == "true"
        assert request.params["MaxResults"] == "500"
    assert_token_chain(requests, "NextToken")


def test_ami_disabled_and_deprecated_included(standin: AwsStandIn) -> None:
    disabled = Ami("ami-0d15ab1ed00000001", ACCOUNT, "implant", state="disabled")
    deprecated = Ami(
        "ami-0de9eca7ed0000002",
        ACCOUNT,
        "old-base",
        deprecation_time="2025-03-01T00:00:00.000Z",
    )
    standin.amis = [disabled, deprecated]
    inventory = AmiInventory(make_client("ec2", standin), REGION, [])

    images = {image.native_id: image for image in inventory.images()}

    assert set(images) == {disabled.image_id, deprecated.image_id}
    assert images[disabled.image_id].state == "disabled"


def test_ami_shared_deprecated_image_included(standin: AwsStandIn) -> None:
    # Only an account that does not own a deprecated AMI needs IncludeDeprecated.
    shared = Ami(
        "ami-05ba4ed0000000003",
        SHARING_ACCOUNT,
        "shared-base",
        public=True,
        deprecation_time="2025-03-01T00:00:00.000Z",
    )
    stranger = Ami(
        "ami-0575a9e0000000004", STRANGER_ACCOUNT, "public-base", public=True
    )
    standin.amis = [*owned_amis(1), shared, stranger]
    owners = ["self", SHARING_ACCOUNT]
    inventory = AmiInventory(make_client("ec2", standin), REGION, owners)

    refs = {image.ref for image in inventory.images()}

    assert refs == {
        ami_ref(ACCOUNT, "ami-00000000000000000"),
        ami_ref(SHARING_ACCOUNT, shared.image_id),
    }
    request = standin.requests_for("ec2", "DescribeImages")[0]
    assert request.params["Owner.1"] == "self"
    assert request.params["Owner.2"] == SHARING_ACCOUNT


def test_standin_hides_disabled_and_deprecated(standin: AwsStandIn) -> None:
    # Without this check the inclusion tests above could pass against a server
    # that ignores IncludeDisabled and IncludeDeprecated.
    standin.amis = [
        Ami("ami-0d15ab1ed00000001", ACCOUNT, "implant", state="disabled"),
        Ami(
            "ami-05ba4ed0000000003",
            SHARING_ACCOUNT,
            "shared-base",
            public=True,
            deprecation_time="2025-03-01T00:00:00.000Z",
        ),
    ]
    client = make_client("ec2", standin)

    described = client.describe_images(Owners=["self", SHARING_ACCOUNT], MaxResults=50)

    assert described["Images"] == []


def test_ami_throttling_raises_source_error(standin: AwsStandIn) -> None:
    standin.amis = owned_amis(AMI_COUNT)
    standin.fail("ec2", "DescribeImages", "RequestLimitExceeded", status=503, after=2)
    client = make_client("ec2", standin, NO_RETRIES)
    inventory = AmiInventory(client, REGION, [])
    yielded = []

    with pytest.raises(SourceError) as raised:
        for image in inventory.images():
            yielded.append(image)

    assert raised.value.source == "ec2:us-east-1"
    assert "DescribeImages failed" in str(raised.value)
    assert "RequestLimitExceeded" in str(raised.value)
    assert isinstance(raised.value.__cause__, ClientError)
    error = raised.value.__cause__.response
    assert error["Error"]["Code"] == "RequestLimitExceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert len(yielded) == 2 * SERVER_PAGE_SIZE


# ECR DescribeRepositories and DescribeImages


@pytest.fixture
def registry(standin: AwsStandIn) -> AwsStandIn:
    """Five repositories and eleven images, served two items to a page."""
    standin.page_size = 2
    add_repository(standin, "api", [["v1"], ["v2", "latest"], [], ["v3"], []])
    add_repository(standin, "worker", [["1.0"], []])
    add_repository(standin, "empty", [])
    add_repository(standin, "web", [["prod"], ["stage"]])
    add_repository(standin, "batch", [[], ["nightly"]])
    return standin


def test_ecr_pages_yield_every_image_once(registry: AwsStandIn) -> None:
    inventory = EcrInventory(make_client("ecr", registry), REGION, [])

    images = list(inventory.images())

    refs = [image.ref for image in images]
    expected = {
        container_ref(image.repository_name, image.digest)
        for image in registry.container_images
    }
    assert len(refs) == 11
    assert len(set(refs)) == 11
    assert set(refs) == expected


def test_ecr_untagged_digests_included(registry: AwsStandIn) -> None:
    inventory = EcrInventory(make_client("ecr", registry), REGION, [])

    images = {image.digest: image for image in inventory.images()}

    untagged = [image.digest for image in registry.container_images if not image.tags]
    assert len(untagged) == 4
    for untagged_digest in untagged:
        assert images[untagged_digest].names == ()
    assert images[digest(2)].names == ("latest", "v2")
    assert images[digest(2)].repository == "api"
    assert images[digest(2)].registry == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    assert images[digest(2)].created == datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    assert images[digest(2)].state == "ACTIVE"
    assert images[digest(2)].inventory_source == "ecr:us-east-1"


def test_ecr_archived_image_included(registry: AwsStandIn) -> None:
    model = make_client("ecr", registry).meta.service_model
    image_status = (
        model.operation_model("DescribeImages")
        .input_shape.members["filter"]
        .members.get("imageStatus")
    )
    if image_status is None:
        pytest.skip("this botocore has no DescribeImages filter.imageStatus")
    registry.container_images[0].status = "ARCHIVED"
    inventory = EcrInventory(make_client("ecr", registry), REGION, [])

    states = {image.digest: image.state for image in inventory.images()}

    assert states[digest(1)] == "ARCHIVED"


def test_ecr_repository_requests_follow_next_token(registry: AwsStandIn) -> None:
    inventory = EcrInventory(make_client("ecr", registry), REGION, [])

    list(inventory.images())

    requests = registry.requests_for("ecr", "DescribeRepositories")
    assert len(requests) == 3
    for request in requests:
        assert request.status == 200
        assert request.params["maxResults"] == 1000
        assert "registryId" not in request.params
    assert_token_chain(requests, "nextToken")


def test_ecr_image_requests_send_tag_status_any(registry: AwsStandIn) -> None:
    inventory = EcrInventory(make_client("ecr", registry), REGION, [])

    list(inventory.images())

    requests = registry.requests_for("ecr", "DescribeImages")
    repositories = [request.params["repositoryName"] for request in requests]
    assert repositories == ["api"] * 3 + ["worker", "empty", "web", "batch"]
    for request in requests:
        assert request.status == 200
        assert request.params["registryId"] == ACCOUNT
        assert request.params["maxResults"] == 1000
        assert request.params["filter"]["tagStatus"] == "ANY"
    assert_token_chain(requests[:3], "nextToken")


def test_ecr_throttling_raises_source_error(registry: AwsStandIn) -> None:
    registry.fail(
        "ecr",
        "DescribeImages",
        "ThrottlingException",
        status=400,
        message="Rate exceeded",
    )
    client = make_client("ecr", registry, NO_RETRIES)
    inventory = EcrInventory(client, REGION, [])

    with pytest.raises(SourceError) as raised:
        list(inventory.images())

    assert raised.value.source == "ecr:us-east-1"
    assert "DescribeImages failed for repository" in str(raised.value)
    assert "ThrottlingException" in str(raised.value)
    assert isinstance(raised.value.__cause__, ClientError)
    error = raised.value.__cause__.response
    assert error["Error"]["Code"] == "ThrottlingException"
    assert error["Error"]["Message"] == "Rate exceeded"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
