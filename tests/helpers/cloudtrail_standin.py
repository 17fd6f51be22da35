"""A loopback HTTPS stand-in for CloudTrail LookupEvents, which moto does not serve.

It follows the JSON 1.1 protocol that botocore speaks: `POST /` with
`X-Amz-Target: com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents`,
a body with `LookupAttributes` (one `EventSource` attribute), `StartTime` and
`EndTime` as epoch seconds, `MaxResults` (1 to 50, default 50) and `NextToken`.
Events come newest first, each with `EventId`, `EventName`, `ReadOnly` as a string,
`EventTime` as epoch seconds, `EventSource`, `Username`, `Resources` and the record
as a JSON string in `CloudTrailEvent`; `NextToken` is present while pages remain.

Like the real API it allows two calls a second: a call sooner than 0.5 s after the
one before it gets `ThrottlingException` (HTTP 400), and `throttle_next` makes the
next calls fail the same way. It serves TLS with a self-signed certificate for
127.0.0.1 made at start. It leaves out every other action and lookup attribute,
`EventCategory` and the Insights history.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TARGET = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """Write a certificate and key for 127.0.0.1 and return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "standin.pem"
    key_path = folder / "standin.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class LookupEventsStandin:
    def __init__(self, records: list[dict]) -> None:
        self.records = records
        self.calls: list[dict] = []
        self.call_times: list[float] = []
        self.too_fast = 0
        self.throttle_next = 0
        self.lock = threading.Lock()
        self.folder = Path(tempfile.mkdtemp(prefix="lookup-standin-"))
        self.cert, key = self_signed(self.folder)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> LookupEventsStandin:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, body: dict) -> tuple[int, dict]:
        with self.lock:
            now = time.monotonic()
            if self.call_times and now - self.call_times[-1] < 0.5:
                self.too_fast += 1
                self.call_times.append(now)
                return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
            self.call_times.append(now)
            self.calls.append(body)
            if self.throttle_next:
                self.throttle_next -= 1
                return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
        attributes = body.get("LookupAttributes") or []
        source = attributes[0]["AttributeValue"] if attributes else None
        start = body.get("StartTime", 0)
        end = body.get("EndTime", time.time())
        matching = [
            record for record in self.records
            if (source is None or record["eventSource"] == source)
            and start <= _epoch(record["eventTime"]) <= end
        ]
        matching.sort(key=lambda record: record["eventTime"], reverse=True)
        offset = int(body.get("NextToken") or 0)
        size = min(int(body.get("MaxResults") or 50), 50)
        page = matching[offset:offset + size]
        response: dict = {"Events": [_event(record) for record in page]}
        if offset + size < len(matching):
            response["NextToken"] = str(offset + size)
        return 200, response

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.headers.get("X-Amz-Target") != TARGET:
                    status, document = 400, {"__type": "UnknownOperationException"}
                else:
                    status, document = standin.answer(body)
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

        return Handler


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


def _event(record: dict) -> dict:
    identity = record.get("userIdentity") or {}
    return {
        "EventId": record["eventID"], "EventName": record["eventName"],
        "ReadOnly": "false", "AccessKeyId": identity.get("accessKeyId", ""),
        "EventTime": _epoch(record["eventTime"]), "EventSource": record["eventSource"],
        "Username": identity.get("userName") or identity.get("arn", "").rsplit("/", 1)[-1],
        "Resources": [], "CloudTrailEvent": json.dumps(record),
    }
