"""Text from logs and the command line printed by `imageprov` as it was written.

Rich reads `[...]` as markup: a closing tag that closes nothing raises MarkupError,
and a valid tag is styled and disappears from the output. File names, record fields
and arguments must come out verbatim, with control characters replaced.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.helpers import trail

ROOT = Path(__file__).parents[2]
WIDE = {"COLUMNS": "400"}


def _database(tmp_path: Path) -> str:
    database = f"sqlite:///{tmp_path / 'text.db'}"
    assert run_cli("db", "upgrade", "--database", database).returncode == 0
    return database


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert "MarkupError" not in stderr


def test_quarantine_table_shows_markup_fields(tmp_path):
    moment = datetime(2026, 11, 30, 7, 3, tzinfo=UTC)
    record = trail.create_image(trail.user_identity("bob"), moment, "ami-0a1b2c3d4e5f60004")
    record["eventTime"] = "[/]"
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "markup.json").write_text(json.dumps({"Records": [record]}))
    database = f"sqlite:///{tmp_path / 'q.db'}"
    assert run_cli("ingest", str(logs), "--database", database).returncode == 0

    result = run_cli("quarantine", "list", "--database", database, env=WIDE)
    assert result.returncode == 0, result.stderr
    assert "invalid time '[/]'" in result.stdout
    _no_traceback(result.stderr)


@pytest.mark.parametrize(("command", "expected"), [
    (["explain", "[/]"], "no image '[/]'"),
    (["explain", "[bold]ami-1"], "no image '[bold]ami-1'"),
    (["evidence", "export", "[/]", "--out", "bundle.json"], "no image '[/]'"),
    (["token", "revoke", "[/x]"], "no active token named '[/x]'"),
    (["db", "upgrade", "[/]"], "revision identified by '[/]'"),
])
def test_argument_markup_in_errors_verbatim(tmp_path, command, expected):
    result = run_cli(*command, "--database", _database(tmp_path), env=WIDE,
                     cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    _no_traceback(result.stderr)


def test_policy_check_missing_markup_path(tmp_path):
    missing = tmp_path / "[/x]"
    result = run_cli("policy", "check", str(missing), env=WIDE)
    assert result.returncode == 2
    assert f"invalid policy {missing}:" in result.stderr
    _no_traceback(result.stderr)


def test_policy_check_valid_markup_path(tmp_path):
    policy = tmp_path / "[red]policy.yaml"
    policy.write_bytes((ROOT / "policies" / "example.yaml").read_bytes())
    result = run_cli("policy", "check", str(policy), env=WIDE)
    assert result.returncode == 0, result.stderr
    assert f"{policy}: valid" in result.stdout


def test_ingest_summary_keeps_markup_path(tmp_path):
    logs = tmp_path / "[red]dir"
    logs.mkdir()
    (logs / "a.json").write_text(json.dumps({"Records": []}))
    result = run_cli("ingest", str(logs), "--database", f"sqlite:///{tmp_path / 'i.db'}",
                     env=WIDE)
    assert result.returncode == 0, result.stderr
    assert f"{logs}: files 1 read" in result.stderr


def test_ingest_notice_keeps_markup_field(tmp_path):
    envelope = {"version": "0", "detail-type": "[/]Build", "source": "aws.[bold]x",
                "detail": {}}
    (tmp_path / "event.json").write_text(json.dumps(envelope))
    result = run_cli("ingest", str(tmp_path / "event.json"), "--database",
                     f"sqlite:///{tmp_path / 'n.db'}", env=WIDE)
    assert result.returncode == 0, result.stderr
    assert "EventBridge event '[/]Build' from 'aws.[bold]x'" in result.stderr
    _no_traceback(result.stderr)


def test_ingest_output_replaces_control_characters(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    # A file name may contain any byte but `/` and NUL, escape sequences included.
    (logs / "a\x1b]0;owned\x07\x1b[2J.json").write_text("{not json")
    result = run_cli("ingest", str(logs), "--database", f"sqlite:///{tmp_path / 'c.db'}",
                     env=WIDE)
    assert result.returncode == 1
    assert "\x1b" not in result.stderr
    assert "\x07" not in result.stderr
    # The warning that names the file is logged, with the escapes replaced.
    assert "quarantined " in result.stderr
    assert "\N{REPLACEMENT CHARACTER}]0;owned" in result.stderr
