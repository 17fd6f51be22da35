"""The timeouts and retries every AWS client gets."""

from __future__ import annotations

import boto3
from botocore.config import Config

from imageprov import cycle


def _session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                         region_name="us-east-1")


def test_client_gets_short_timeouts():
    client = cycle.aws_client(_session(), "s3", "us-east-1")
    assert client.meta.config.connect_timeout == 5
    assert client.meta.config.read_timeout == 20
    assert client.meta.config.retries == {"total_max_attempts": 3, "mode": "standard"}


def test_client_config_merges_retries():
    client = cycle.aws_client(_session(), "cloudtrail", "us-east-1",
                              Config(retries={"total_max_attempts": 1}))
    assert client.meta.config.read_timeout == 20
    assert client.meta.config.retries["total_max_attempts"] == 1
