"""Reading S3 object references out of SQS message bodies."""

from __future__ import annotations

import json

import pytest

from imageprov.sources.aws.notifications import object_refs

KEY = ("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/30/"
       "111122223333_CloudTrail_us-east-1_20261130T0805Z_A1b2C3d4E5f6G7h8.json.gz")
S3_EVENT = {"Records": [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
    "eventTime": "2026-11-30T08:05:12.000Z", "eventName": "ObjectCreated:Put",
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "trail",
           "bucket": {"name": "trail-bucket", "arn": "arn:aws:s3:::trail-bucket"},
           "object": {"key": KEY.replace(":", "%3A"), "size": 1024}}}]}


def test_s3_event_key_decoded():
    assert object_refs(json.dumps(S3_EVENT)) == [("trail-bucket", KEY)]


def test_plus_in_key_is_space():
    event = json.loads(json.dumps(S3_EVENT))
    event["Records"][0]["s3"]["object"]["key"] = "logs/a+b%2Bc.json.gz"
    assert object_refs(json.dumps(event)) == [("trail-bucket", "logs/a b+c.json.gz")]


def test_sns_envelope_unwrapped():
    envelope = {"Type": "Notification", "MessageId": "5b6f", "TopicArn":
                "arn:aws:sns:us-east-1:111122223333:trail", "Message": json.dumps(S3_EVENT)}
    assert object_refs(json.dumps(envelope)) == [("trail-bucket", KEY)]


def test_cloudtrail_notice_lists_keys():
    notice = {"Type": "Notification", "Message": json.dumps(
        {"s3Bucket": "trail-bucket", "s3ObjectKey": [KEY, KEY + "2"]})}
    assert object_refs(json.dumps(notice)) == [("trail-bucket", KEY),
                                               ("trail-bucket", KEY + "2")]


def test_eventbridge_object_created():
    event = {"version": "0", "detail-type": "Object Created", "source": "aws.s3",
             "detail": {"bucket": {"name": "trail-bucket"}, "object": {"key": KEY}}}
    assert object_refs(json.dumps(event)) == [("trail-bucket", KEY)]


def test_s3_test_event_names_nothing():
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent",
                  "Time": "2026-11-30T08:00:00.000Z", "Bucket": "trail-bucket"}
    assert object_refs(json.dumps(test_event)) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "message body is not JSON"),
        ('{"Records": [{"eventSource": "aws:s3"}]}', "without an s3 block"),
        ('{"hello": 1}', "not an S3, SNS or EventBridge notification"),
        ('{"Type": "Notification", "Message": "{bad"}', "SNS Message is not JSON"),
    ],
)
def test_bad_body_rejected(body, message):
    with pytest.raises(ValueError, match=message):
        object_refs(body)
