"""The gate's commands: `serve`, `check` and `token create|revoke|list`."""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import ssl
import sys
import urllib.error
import urllib.request
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from imageprov.cli.render import safe

logger = logging.getLogger("imageprov.cli")

token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens of the gate's API.")

# The prefix lets secret scanners recognise a leaked token.
TOKEN_PREFIX = "ipg_"


class CheckFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_gate(config: Path, database: str | None, host: str | None, port: int | None,
               open_store: Any, fail: Any) -> None:
    """Load the configuration and policy, then run the gate under uvicorn until stopped."""
    import uvicorn

    from imageprov.api import Gate, create_app
    from imageprov.config import database_url, load_config
    from imageprov.errors import ImageprovError
    from imageprov.policy import load_policy

    try:
        settings = load_config(config)
        policy, text = load_policy(settings.policy)
    except ImageprovError as error:
        raise fail(error) from error
    serve = settings.serve
    host = host or serve.host
    port = serve.port if port is None else port
    tls = serve.tls
    for path in (tls.certificate, tls.key) if tls else ():
        if not path.is_file():
            raise fail(ImageprovError(f"{config}: serve.tls file {path} does not exist"))
    if tls is None and not _loopback(host):
        logger.warning("serving plain HTTP on %s: the Kubernetes API server calls "
                       "webhooks over HTTPS only; set serve.tls", host)
    # A gate on a new empty database would deny, or with fail-open allow, every image.
    store = open_store(database_url(database, settings), existing=True)
    gate = Gate(store, serve, settings.policy, policy, text)
    try:
        uvicorn.run(
            create_app(gate), host=host, port=port, lifespan="on",
            ssl_certfile=str(tls.certificate) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
            access_log=serve.access_log, server_header=False,
            log_level=logging.getLogger("imageprov").getEffectiveLevel(),
        )
    finally:
        store.close()


def _read_query(image: str) -> str:
    """Return the image to check; `-` reads a Terraform `external` query from stdin."""
    if image != "-":
        return image
    try:
        query = json.loads(sys.stdin.read() or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"stdin is not a JSON query: {error}") from None
    value = query.get("image") if isinstance(query, dict) else None
    if not isinstance(value, str) or not value:
        raise ValueError('the JSON query on stdin needs a string field "image"')
    return value


def _request_decision(url: str, token: str, image: str, ca_file: Path | None,
                      timeout: float) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/decisions", method="POST",
        data=json.dumps({"image": image}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read())
        except ValueError:
            body = {"error": error.reason}
        return error.code, body if isinstance(body, dict) else {"error": str(body)}


def check_image(image: str, url: str | None, token: str | None, token_file: Path | None,
                ca_file: Path | None, output: CheckFormat, timeout: float,
                out: Console, err: Console) -> int:
    """Ask the gate about one image; return 0 to allow, 1 to deny, 2 on an error."""
    if not url:
        err.print("error: give --url or set IMAGEPROV_GATE_URL", highlight=False)
        return 2
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            err.print(f"error: cannot read the token file: {safe(str(error))}",
                      highlight=False)
            return 2
    if not token:
        err.print("error: set IMAGEPROV_TOKEN or give --token-file", highlight=False)
        return 2
    try:
        image = _read_query(image)
        status, body = _request_decision(url, token, image, ca_file, timeout)
    except (ValueError, OSError) as error:
        err.print(f"error: cannot ask the gate at {safe(url)}: {safe(str(error))}",
                  highlight=False)
        return 2
    if status != 200:
        err.print(f"error: the gate answered {status}: "
                  f"{safe(str(body.get('error', body)))}", highlight=False)
        return 2
    allowed = body.get("decision") == "allow"
    named = body.get("ref") or image
    if output is CheckFormat.JSON:
        # Terraform's external data source takes an object of strings only.
        record = {key: "" if body.get(key) is None else str(body.get(key))
                  for key in ("image", "ref", "decision", "status", "reason", "rule",
                              "decided_at", "policy_hash", "tag")}
        sys.stdout.write(json.dumps(record) + "\n")
    else:
        out.print(safe(f"{body.get('decision')} {named}: {body.get('status')}: "
                       f"{body.get('reason')}"), highlight=False)
    if not allowed:
        err.print(safe(f"denied {named}: {body.get('status')}: {body.get('reason')}"),
                  highlight=False)
    return 0 if allowed else 1


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)
