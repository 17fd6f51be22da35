"""Serve an ASGI app from a thread of the standard library's HTTP server.

The daemon and `imageprov receive` need no ASGI server for one small app. Each
request is read by a handler thread and run to completion on one event loop that
a thread of its own keeps running. An ASGI server such as the one behind
`imageprov serve` can mount the same app instead.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

# Bodies longer than this are not read. The app reads the declared length and
# rejects the request.
MAX_READ = 64 * 2**20


class AsgiServer:
    """An HTTP/1.1 server on `host:port` that hands every request to `app`."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(target=self.loop.run_forever,
                                            name="receiver-loop", daemon=True)
        self.loop_thread.start()
        self.server = ThreadingHTTPServer((host, port), _handler(app, self.loop))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="receiver", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self.thread.start()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.close()

    def close(self) -> None:
        self.server.server_close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.loop_thread.join(timeout=10)


def _handler(app: Any, loop: asyncio.AbstractEventLoop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without this, Nagle's
        # algorithm and the client's delayed ACK hold every response about 40 ms.
        disable_nagle_algorithm = True

        def _run(self) -> None:
            length = self.headers.get("Content-Length", "0")
            body = b""
            if length.isdigit() and int(length) <= MAX_READ:
                body = self.rfile.read(int(length))
            elif length.isdigit():
                self.close_connection = True
            parts = urlsplit(self.path)
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": self.command, "scheme": "http", "path": parts.path,
                "raw_path": parts.path.encode(), "query_string": parts.query.encode(),
                "headers": [(name.lower().encode("latin-1"), value.encode("latin-1"))
                            for name, value in self.headers.items()],
                "client": self.client_address[:2], "server": self.server.server_address[:2],
            }
            sent: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
            delivered = False

            async def receive() -> dict[str, Any]:
                nonlocal delivered
                if delivered:
                    return {"type": "http.disconnect"}
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    sent["status"] = message["status"]
                    sent["headers"] = message.get("headers", [])
                elif message["type"] == "http.response.body":
                    sent["body"] += message.get("body", b"")

            try:
                asyncio.run_coroutine_threadsafe(app(scope, receive, send), loop).result()
            except Exception:  # noqa: BLE001 - one request must not stop the server
                # A defect in the app; the sender gets a 500 and sends again.
                logger.exception("receiver: request %s %s failed", self.command,
                                 parts.path.split("/")[1:2])
                sent = {"status": 500, "headers": [], "body": b'{"error": "internal error"}'}
            self.send_response(sent["status"])
            for name, value in sent["headers"]:
                self.send_header(name.decode("latin-1"), value.decode("latin-1"))
            self.send_header("Content-Length", str(len(sent["body"])))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(sent["body"])

        do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _run  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            # The path of a Docker Hub webhook contains its secret, so request lines
            # are not logged; the app logs what it stored or rejected.
            return

    return Handler
