"""The floor of the gate benchmark: a bare ASGI app answering from a Python dict.

It loads the current verdicts of a database once, keeps one JSON body per ref,
and answers `GET /v1/verdicts/{ref}` from the dict with no routing framework, no
token check and no freshness rule. It runs under uvicorn with the options
`imageprov serve` uses, so the difference between the two is the gate's own work.

Usage: python benchmarks/gate_floor.py DATABASE_URL PORT
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import uvicorn

from imageprov.store import Store

PREFIX = "/v1/verdicts/"
_HEADERS = [(b"content-type", b"application/json")]


def load_bodies(url: str) -> dict[str, bytes]:
    store = Store.open(url)
    try:
        verdicts = store.current_verdicts()
    finally:
        store.close()
    return {
        # The same fields as the gate's answer, so both send bodies of one size.
        ref: orjson.dumps({
            "image": ref, "ref": ref,
            "decision": "allow" if verdict.status.value == "approved" else "deny",
            "status": verdict.status.value, "reason": verdict.reason,
            "flags": [flag.value for flag in verdict.flags], "rule": verdict.rule,
            "decided_at": verdict.decided_at, "checked_at": verdict.decided_at,
            "policy_hash": verdict.policy_hash, "tag": None})
        for ref, verdict in verdicts.items()
    }


def make_app(bodies: dict[str, bytes]) -> Any:
    missing = b'{"error":"not found"}'

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        body = bodies.get(path[len(PREFIX):]) if path.startswith(PREFIX) else None
        status = 200 if body is not None else 404
        body = body if body is not None else missing
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    url, port = sys.argv[1], int(sys.argv[2])
    bodies = load_bodies(url)
    print(f"floor: {len(bodies)} bodies loaded", file=sys.stderr, flush=True)
    # The same server options as `imageprov serve`: uvicorn's defaults pick uvloop
    # and httptools when installed; no access log and no Server header.
    uvicorn.run(make_app(bodies), host="127.0.0.1", port=port, lifespan="off",
                access_log=False, server_header=False, log_level="warning")


if __name__ == "__main__":
    main()
