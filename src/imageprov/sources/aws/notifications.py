"""CloudTrail files announced through SQS: S3 event notifications and their wrappers.

A message body names the objects to read in one of these shapes:

- an S3 event notification, `{"Records": [{"eventSource": "aws:s3", "s3": {...}}]}`,
  whose object keys are URL-encoded with `+` for a space;
- the same notification inside an SNS envelope (`Type: Notification`, `Message`);
- CloudTrail's own SNS notice, `{"s3Bucket": ..., "s3ObjectKey": [...]}`;
- an EventBridge "Object Created" event with `detail.bucket.name` and
  `detail.object.key`.

S3 test events name no object and are dropped. A message is deleted only after the
files it names are stored, so a process that dies redelivers it and the content hash
of each file keeps it from being stored twice.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterator
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from imageprov.errors import SourceError
from imageprov.sources import LogObject
from imageprov.sources.aws.cloudtrail import SOURCE
from imageprov.sources.aws.trail_locations import account_from_key
from imageprov.sources.files import failing

logger = logging.getLogger(__name__)

# Messages taken per receive call (the SQS maximum) and receive calls per read.
RECEIVE_BATCH = 10
MAX_RECEIVES = 100


def object_refs(body: str) -> list[tuple[str, str]]:
    """Return the (bucket, key) pairs a message body names.

    Raises:
        ValueError: the body is not JSON or not one of the known shapes.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"message body is not JSON: {error}") from None
    return _refs(document, depth=0)


def _refs(document: Any, depth: int) -> list[tuple[str, str]]:
    if not isinstance(document, dict) or depth > 2:
        raise ValueError("message body is not an S3, SNS or EventBridge notification")
    if document.get("Event") == "s3:TestEvent":
        return []
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        try:
            inner = orjson.loads(document["Message"])
        except orjson.JSONDecodeError as error:
            raise ValueError(f"SNS Message is not JSON: {error}") from None
        return _refs(inner, depth + 1)
    if isinstance(document.get("s3Bucket"), str) and isinstance(
            document.get("s3ObjectKey"), list):
        return [(document["s3Bucket"], key) for key in document["s3ObjectKey"]
                if isinstance(key, str)]
    if document.get("detail-type") == "Object Created":
        detail = document.get("detail") or {}
        bucket = (detail.get("bucket") or {}).get("name")
        key = (detail.get("object") or {}).get("key")
        if isinstance(bucket, str) and isinstance(key, str):
            return [(bucket, key)]
        raise ValueError("EventBridge Object Created event without bucket name and key")
    records = document.get("Records")
    if isinstance(records, list):
        found = []
        for record in records:
            s3 = record.get("s3") if isinstance(record, dict) else None
            if not isinstance(s3, dict):
                raise ValueError("S3 notification record without an s3 block")
            bucket = (s3.get("bucket") or {}).get("name")
            key = (s3.get("object") or {}).get("key")
            if not (isinstance(bucket, str) and isinstance(key, str)):
                raise ValueError("S3 notification record without bucket name and key")
            found.append((bucket, urllib.parse.unquote_plus(key)))
        return found
    raise ValueError("message body is not an S3, SNS or EventBridge notification")


class SqsTrail:
    """The log files that messages on an SQS queue announce."""

    def __init__(self, sqs: Any, s3: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.s3 = s3
        self.queue_url = queue_url
        self.name = f"sqs:{queue_url.rsplit('/', 1)[-1]}"
        self.receipts: list[str] = []

    def objects(self) -> Iterator[LogObject]:
        for _ in range(MAX_RECEIVES):
            messages = self._receive()
            if not messages:
                return
            for message in messages:
                self.receipts.append(message["ReceiptHandle"])
                yield from self._message_objects(message)

    def _receive(self) -> list[dict[str, Any]]:
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=RECEIVE_BATCH,
                WaitTimeSeconds=0, VisibilityTimeout=300)
        except (ClientError, BotoCoreError) as error:
            raise SourceError(self.name, f"ReceiveMessage failed: {error}") from error
        return response.get("Messages", [])

    def _message_objects(self, message: dict[str, Any]) -> Iterator[LogObject]:
        location = f"{self.name}/{message.get('MessageId', '?')}"
        try:
            refs = object_refs(message.get("Body", ""))
        except ValueError as error:
            yield LogObject(location, None, failing(location, str(error)), format=SOURCE)
            return
        for bucket, key in refs:
            yield LogObject(f"s3://{bucket}/{key}", account_from_key(key),
                            self._loader(bucket, key), format=SOURCE)

    def _loader(self, bucket: str, key: str) -> Any:
        def load() -> bytes:
            try:
                return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except (ClientError, BotoCoreError) as error:
                raise SourceError(f"s3://{bucket}/{key}",
                                  f"reading the object failed: {error}") from error
        return load

    def acknowledge(self) -> int:
        """Delete every message received so far; call once their files are stored."""
        deleted = 0
        for start in range(0, len(self.receipts), RECEIVE_BATCH):
            chunk = self.receipts[start:start + RECEIVE_BATCH]
            entries = [{"Id": str(n), "ReceiptHandle": handle} for n, handle in
                       enumerate(chunk)]
            try:
                response = self.sqs.delete_message_batch(QueueUrl=self.queue_url,
                                                         Entries=entries)
            except (ClientError, BotoCoreError) as error:
                raise SourceError(self.name, f"DeleteMessageBatch failed: {error}") from error
            deleted += len(response.get("Successful", []))
            for failure in response.get("Failed", []):
                logger.warning("%s: message not deleted, it will be read again: %s",
                               self.name, failure.get("Message"))
        self.receipts.clear()
        return deleted

