"""The `imageprov` command as a user runs it, on the bundled example."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "aws"
ACCOUNT = "111122223333"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture
def example(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the bundled example with its own database."""
    folder = tmp_path / "example"
    shutil.copytree(EXAMPLE, folder)
    shutil.copy(ROOT / "policies" / "example.yaml", tmp_path / "policy.yaml")
    config = yaml.safe_load((folder / "imageprov.yaml").read_text())
    config["policy"] = "../policy.yaml"
    (folder / "imageprov.yaml").write_text(yaml.safe_dump(config))
    return folder / "imageprov.yaml", f"sqlite:///{tmp_path / 'cli.db'}"


def _verdicts(database: str) -> dict[str, dict]:
    result = run_cli("verdicts", "--format", "json", "--database", database)
    assert result.returncode == 0, result.stderr
    return {item["image"]: item for item in json.loads(result.stdout)}


def test_scan_example_prints_table(example):
    config, database = example
    result = run_cli("scan", "--config", str(config), "--database", database)
    assert result.returncode == 0, result.stderr
    assert "imageprov verdicts" in result.stdout
    assert "flagged" in result.stdout
    assert "kind=inventory account=111122223333 region=us-east-1 images=6" in result.stderr
    assert "kind=cloudtrail account=111122223333 region=us-east-1 files=4" in result.stderr


def test_unreadable_inventory_entry_keeps_images(example):
    config, database = example
    assert run_cli("scan", "--config", str(config), "--database", database).returncode == 0
    before = _verdicts(database)
    inventory = config.parent / "inventory" / "ec2-describe-images.json"
    saved = json.loads(inventory.read_text())
    saved["Images"][0]["ImageId"] = 12345
    saved["Images"][3] = "not an image"
    inventory.write_text(json.dumps(saved))
    result = run_cli("scan", "--config", str(config), "--database", database)
    # The listing is incomplete, so the source failed, and no image of it is gone.
    assert result.returncode == 1, result.stderr
    assert "2 entries could not be read (indexes 0, 3)" in result.stderr
    assert set(_verdicts(database)) == set(before)


def test_verdicts_json_fields_and_names(example):
    config, database = example
    assert run_cli("scan", "--config", str(config), "--database", database,
                   "--no-show").returncode == 0
    verdicts = _verdicts(database)
    assert len(verdicts) == 8
    for item in verdicts.values():
        for field in ("image", "platform", "status", "flags", "actor", "source_ip",
                      "event_id", "rule"):
            assert field in item
    golden = verdicts[f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-0a1b2c3d4e5f60001"]
    assert golden["status"] == "approved"
    assert golden["platform"] == "aws"
    assert golden["rule"] == "golden-ami-pipeline"
    root = verdicts[f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-0a1b2c3d4e5f60003"]
    assert root["flags"][0] == "root"
    assert "external-network" in root["flags"]
    pushed = verdicts[f"{REGISTRY}/payments-api@sha256:{'b2' * 32}"]
    assert pushed["status"] == "flagged"
    assert "unexpected-actor" in pushed["flags"]
    assert pushed["actor"] == f"arn:aws:iam::{ACCOUNT}:user/mallory"
    assert pushed["source_ip"] == "172.64.1.1"
    legacy = verdicts[f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-0a1b2c3d4e5f60004"]
    assert legacy["status"] == "unattributed"
    assert "2026-11-30T08:00:00Z" in legacy["reason"]
    vendor = verdicts[f"arn:aws:ec2:us-east-1:{ACCOUNT}:image/ami-0a1b2c3d4e5f60006"]
    assert vendor["status"] == "excepted"


def test_scan_with_a_lost_log_file_exits_1_every_time(example):
    config, database = example
    (config.parent / "cloudtrail" / "broken.json.gz").write_bytes(b"\x1f\x8b\x08 truncated")
    for _ in range(2):
        result = run_cli("scan", "--config", str(config), "--database", database)
        assert result.returncode == 1, result.stderr
        assert "1 log file(s) could not be read at all" in result.stderr
    # Everything else was read and judged.
    assert len(_verdicts(database)) == 8


def test_verdicts_csv_and_filter(example):
    config, database = example
    run_cli("scan", "--config", str(config), "--database", database, "--no-show")
    result = run_cli("verdicts", "--format", "csv", "--status", "flagged",
                     "--database", database)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert result.returncode == 0
    assert len(rows) == 3
    assert {row["status"] for row in rows} == {"flagged"}


def test_explain_shows_event_and_tag_history(example):
    config, database = example
    run_cli("scan", "--config", str(config), "--database", database, "--no-show")
    result = run_cli("explain", f"sha256:{'b2' * 32}", "--database", database,
                     env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert "ecr.amazonaws.com:PutImage" in result.stdout
    assert "(decided)" in result.stdout
    assert "history of tag latest" in result.stdout
    assert f"sha256:{'a1' * 32}" in result.stdout
    assert "assumed-role/GitHubActionsECRPush/gha-run-91322" in result.stdout
    assert "172.64.1.1 [public]" in result.stdout
    assert "verdict history" in result.stdout


def test_explain_classes_address_by_the_judging_policy(example, tmp_path):
    config, database = example
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace(
        "internal_networks:\n  - 192.0.2.0/24",
        "internal_networks:\n  - 192.0.2.0/24\n  - 172.64.1.0/24"))
    run_cli("scan", "--config", str(config), "--database", database, "--no-show")
    result = run_cli("explain", f"sha256:{'b2' * 32}", "--database", database,
                     env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert "172.64.1.1 [internal]" in result.stdout
    assert "external-network" not in result.stdout


def test_explain_unknown_image_fails(example):
    config, database = example
    assert run_cli("scan", "--config", str(config), "--database", database).returncode == 0
    result = run_cli("explain", "ami-00000000000000000", "--database", database)
    assert result.returncode == 2
    assert "no image 'ami-00000000000000000'" in result.stderr


def test_explain_cuts_a_long_unknown_name(example):
    config, database = example
    assert run_cli("scan", "--config", str(config), "--database", database).returncode == 0
    result = run_cli("explain", "a" * 3000, "--database", database)
    assert result.returncode == 2
    assert "(3,000 characters)" in result.stderr
    assert len(result.stderr) < 600


@pytest.mark.parametrize("command", [["verdicts"], ["explain", "ami-00000000000000000"],
                                     ["quarantine", "list"], ["report"],
                                     ["ledger", "verify"], ["token", "list"]])
def test_reading_commands_refuse_missing_database(tmp_path, command):
    mistyped = tmp_path / "imagepov.db"
    result = run_cli(*command, "--database", f"sqlite:///{mistyped}")
    assert result.returncode == 2
    assert "no database at" in result.stderr
    assert "imagepov.db" in result.stderr
    assert not mistyped.exists()


def test_reading_command_refuses_empty_file(tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    result = run_cli("verdicts", "--database", f"sqlite:///{empty}")
    assert result.returncode == 2
    assert "no database at" in result.stderr
    assert empty.stat().st_size == 0


def test_policy_check_valid(tmp_path):
    result = run_cli("policy", "check", str(ROOT / "policies" / "example.yaml"))
    assert result.returncode == 0
    assert "valid, 3 builder(s), 1 exception(s)" in result.stdout


def test_policy_check_names_file_rule_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"builders": [
        {"name": "ci", "roles": ["arn:aws:iam::1:role/ci"], "networks": ["10.0.0.0/40"]}]}))
    result = run_cli("policy", "check", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "builders[0] (ci).networks[0]" in result.stderr
    assert "invalid CIDR '10.0.0.0/40'" in result.stderr


def test_scan_invalid_policy_touches_nothing(example, tmp_path):
    config, database = example
    (tmp_path / "policy.yaml").write_text("builders: []\n")
    result = run_cli("scan", "--config", str(config), "--database", database)
    assert result.returncode == 2
    assert "builders" in result.stderr
    assert not (tmp_path / "cli.db").exists()


def test_scan_invalid_policy_keeps_verdicts(example, tmp_path):
    config, database = example
    run_cli("scan", "--config", str(config), "--database", database, "--no-show")
    before = _verdicts(database)
    (tmp_path / "policy.yaml").write_text("builders:\n  - name: x\n")
    assert run_cli("scan", "--config", str(config), "--database", database).returncode == 2
    assert _verdicts(database) == before


def test_ingest_reports_quarantine(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "good.json").write_text(json.dumps({"Records": []}))
    (logs / "bad.json").write_text('{"Records": [{"eventName": "CreateImage"}]}')
    (logs / "broken.json").write_text("{not json")
    database = f"sqlite:///{tmp_path / 'q.db'}"
    result = run_cli("ingest", str(logs), "--database", database)
    # Everything readable is stored, and the exit code reports that a whole file was lost.
    assert result.returncode == 1, result.stderr
    assert "quarantined 2" in result.stderr
    assert "1 file(s) could not be read at all" in result.stderr
    listing = run_cli("quarantine", "list", "--format", "json", "--database", database)
    rows = json.loads(listing.stdout)
    assert {(Path(r["location"]).name, r["record"], r["field"]) for r in rows} == {
        ("bad.json", 0, "eventTime"), ("broken.json", -1, "(file)")}


def test_ingest_wrong_format_reads_again(tmp_path):
    logs = EXAMPLE / "cloudtrail"
    database = f"sqlite:///{tmp_path / 'format.db'}"
    wrong = run_cli("ingest", "--format", "gcp-audit", str(logs), "--database", database)
    assert wrong.returncode == 1, wrong.stderr
    assert "looks like cloudtrail" in wrong.stderr
    # Nothing was marked as read, so the files are read in full with their own format.
    right = run_cli("ingest", str(logs), "--database", database)
    assert right.returncode == 0, right.stderr
    assert "files 4 read and 0 already read" in right.stderr
    assert "image events 8" in right.stderr


def test_read_only_database_fails_in_one_line(tmp_path):
    path = tmp_path / "ro.db"
    created = run_cli("ingest", str(EXAMPLE / "cloudtrail"), "--database", f"sqlite:///{path}")
    assert created.returncode == 0, created.stderr
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "new.json").write_text(json.dumps({"Records": []}))
    before = path.read_bytes()
    result = run_cli("ingest", str(logs), "--database",
                     f"sqlite:///file:{path}?mode=ro&uri=true")
    assert result.returncode == 2, result.stderr
    assert "error: the database failed: OperationalError: attempt to write a readonly " \
        "database" in result.stderr
    # Neither a traceback nor the statement's parameters reach the terminal.
    assert "Traceback" not in result.stderr
    assert "new.json" not in result.stderr
    assert path.read_bytes() == before


def test_ingest_reads_past_a_bad_path(tmp_path):
    import os

    from tests.helpers import trail

    moment = trail.datetime(2026, 11, 30, 8, tzinfo=trail.UTC)
    record = trail.create_image(trail.user_identity("bob"), moment, "ami-0b0b000000000001")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"Records": [record]}))
    os.mkfifo(tmp_path / "pipe.json")
    missing = tmp_path / "missing.json"
    database = f"sqlite:///{tmp_path / 'bad-path.db'}"
    result = run_cli("ingest", str(missing), str(tmp_path / "pipe.json"), "/dev/zero",
                     str(good), "--database", database, env={"COLUMNS": "400"})
    # The good file is stored, and the exit code reports that whole files were lost.
    assert result.returncode == 1, result.stderr
    assert f"{good}: files 1 read" in result.stderr
    assert "image events 1 (1 new)" in result.stderr
    assert "3 file(s) could not be read at all" in result.stderr
    listing = run_cli("quarantine", "list", "--format", "json", "--database", database)
    rows = {row["location"]: row for row in json.loads(listing.stdout)}
    assert set(rows) == {str(missing), str(tmp_path / "pipe.json"), "/dev/zero"}
    # The row names the path, so its error does not repeat it.
    assert rows[str(missing)]["error"] == "no such file or folder"
    assert rows["/dev/zero"]["error"] == "not a regular file or folder"
    assert rows[str(tmp_path / "pipe.json")]["field"] == "(file)"


def test_database_from_environment(example, tmp_path):
    config, _ = example
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = run_cli("scan", "--config", str(config), "--no-show",
                     env={"IMAGEPROV_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").exists()
    assert len(_verdicts(url)) == 8


def test_db_upgrade_postgres(postgres_url):
    result = run_cli("db", "upgrade", "--database", postgres_url)
    assert result.returncode == 0, result.stderr
    assert "at revision head" in result.stdout


def test_scan_example_on_postgres(example, postgres_url):
    config, _ = example
    result = run_cli("scan", "--config", str(config), "--database", postgres_url, "--no-show")
    assert result.returncode == 0, result.stderr
    verdicts = _verdicts(postgres_url)
    assert len(verdicts) == 8
    statuses = sorted(v["status"] for v in verdicts.values())
    assert statuses.count("approved") == 3
    assert statuses.count("flagged") == 3


def test_explain_copy_names_source(example):
    config, database = example
    run_cli("scan", "--config", str(config), "--database", database, "--no-show")
    result = run_cli("explain", "ami-0a1b2c3d4e5f60002", "--database", database,
                     env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert "copy of ami-0f9e8d7c6b5a40001 in us-west-2, copied by" in result.stdout
    assert "ec2.amazonaws.com:CopyImage" in result.stdout


def test_impossible_policy_date_reported(tmp_path):
    bad = tmp_path / "date.yaml"
    bad.write_text("builders:\n  - {name: ci, roles: [r]}\nexceptions:\n"
                   "  - {image: ami-1, reason: x, expires: 2027-02-30}\n")
    result = run_cli("policy", "check", str(bad))
    assert result.returncode == 2
    assert "day is out of range" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("exceptions:\n  - {image: ami-1, reason: x, expires: 9999-12-31}\n",
         "exceptions[0] (ami-1).expires"),
        ("exceptions:\n  - {image: ami-1, reason: x, "
         "expires: \"9999-12-31T23:59:59-05:00\"}\n", "exceptions[0] (ami-1).expires"),
        ("delivery_window: 99999999999d\n", "delivery_window"),
        ("digest_window: 999999999999999999999s\n", "digest_window"),
    ],
    ids=["date-9999", "offset-9999", "delivery-window", "digest-window"],
)
def test_policy_check_out_of_range_reported(tmp_path, setting, field):
    bad = tmp_path / "range.yaml"
    bad.write_text("builders:\n  - {name: ci, roles: [r]}\n" + setting)
    result = run_cli("policy", "check", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "OverflowError" not in result.stderr
    assert f"{field}: Value error" in result.stderr.replace("\n", " ")


def test_scan_unconvertible_expiry_touches_nothing(example, tmp_path):
    config, database = example
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace(
        "expires: 2031-06-30", 'expires: "9999-12-31T23:59:59-05:00"'))
    result = run_cli("scan", "--config", str(config), "--database", database)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "outside the supported range" in result.stderr
    assert not (tmp_path / "cli.db").exists()


def test_policy_check_warns_of_trust_in_all(tmp_path):
    wide = tmp_path / "wide.yaml"
    wide.write_text("builders:\n  - {name: any, principals: ['*']}\n"
                    "internal_networks: [0.0.0.0/0, '::/0']\n")
    result = run_cli("policy", "check", str(wide), env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        f"warning: {wide}: internal_networks[0]: 0.0.0.0/0 makes every IPv4 address "
        "internal, so no IPv4 caller is flagged external-network",
        f"warning: {wide}: internal_networks[1]: ::/0 makes every IPv6 address "
        "internal, so no IPv6 caller is flagged external-network",
        f"warning: {wide}: builders[0] (any).principals[0]: pattern '*' matches every "
        "principal, so the builder approves any caller that meets its other criteria",
    ]


@pytest.mark.parametrize(("expires", "when"), [
    # A bare date lasts to its end, and the warning names the date the file gives.
    ("2020-01-01", "at the end of 2020-01-01 UTC"),
    ("'2020-01-01T18:30:00Z'", "at 2020-01-01T18:30:00+00:00"),
])
def test_policy_check_names_expired_exception(tmp_path, expires, when):
    old = tmp_path / "old.yaml"
    old.write_text("builders:\n  - {name: ci, roles: [r]}\nexceptions:\n"
                   f"  - {{image: ami-1, reason: vendor, expires: {expires}}}\n")
    result = run_cli("policy", "check", str(old), env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert (f"warning: {old}: exceptions[0]: the exception for ami-1 expired {when} "
            "and no longer applies") in result.stderr


def test_bad_cron_and_busy_port_reported(tmp_path):
    import socket

    policy = ROOT / "policies" / "example.yaml"
    config = tmp_path / "cron.yaml"
    config.write_text(yaml.safe_dump({"policy": str(policy),
                                      "schedule": {"logs": {"cron": "61 * * * *"}}}))
    result = run_cli("run", "--config", str(config), "--database",
                     f"sqlite:///{tmp_path / 'c.db'}")
    assert result.returncode == 2
    assert "invalid cron '61 * * * *'" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config.write_text(yaml.safe_dump({"policy": str(policy),
                                          "metrics": {"host": "127.0.0.1", "port": port}}))
        result = run_cli("run", "--config", str(config), "--database",
                         f"sqlite:///{tmp_path / 'c.db'}")
    assert result.returncode == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://admin@127.0.0.1:9/db?password=Hunter2Planted",
    "postgresql+psycopg://admin:Hun:ter2@Hunter2Planted@127.0.0.1:9/db",
])
def test_password_forms_hidden(url):
    result = run_cli("verdicts", "--database", url)
    assert result.returncode == 2
    assert "Hunter2Planted" not in result.stderr
    assert "Hunter2" not in result.stderr


def test_explain_strips_terminal_escapes(tmp_path):
    from tests.helpers import trail

    role = trail.role_identity("ImageBuild", "x", path="/build/")
    record = trail.create_image(role, trail.datetime(2026, 11, 30, 8, tzinfo=trail.UTC),
                                "ami-0e5c0000000000001",
                                agent="evil\x1b]0;owned\x07\x1b[2J[bold]agent")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.json").write_text(json.dumps({"Records": [record]}))
    database = f"sqlite:///{tmp_path / 'esc.db'}"
    assert run_cli("ingest", str(logs), "--database", database).returncode == 0
    inventory = tmp_path / "images.json"
    inventory.write_text(json.dumps({"Images": [{
        "ImageId": "ami-0e5c0000000000001", "OwnerId": ACCOUNT, "Name": "n\x1b[31m",
        "CreationDate": "2026-11-30T08:00:00.000Z", "State": "available"}]}))
    config = tmp_path / "esc.yaml"
    config.write_text(yaml.safe_dump({"policy": str(ROOT / "policies" / "example.yaml"),
                                      "aws": {"inventory_files": [
                                          {"path": str(inventory), "kind": "ami",
                                           "region": "us-east-1"}]}}))
    assert run_cli("scan", "--config", str(config), "--database", database).returncode == 0
    result = run_cli("explain", "ami-0e5c0000000000001", "--database", database,
                     env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "[bold]agent" in result.stdout


def test_explain_shows_import_joined_by_task_name(tmp_path):
    from tests.helpers import trail

    task = "import-ami-0f1e2d3c4b5a69788"
    record = trail.record("ImportImage", trail.user_identity("vendor-import"),
                          trail.datetime(2026, 11, 30, 9, tzinfo=trail.UTC),
                          request={"description": "appliance"},
                          response={"importTaskId": task, "status": "active"})
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "import.json").write_text(json.dumps({"Records": [record]}))
    database = f"sqlite:///{tmp_path / 'import.db'}"
    assert run_cli("ingest", str(logs), "--database", database).returncode == 0
    inventory = tmp_path / "images.json"
    inventory.write_text(json.dumps({"Images": [{
        "ImageId": "ami-0a11000000000abcd", "OwnerId": ACCOUNT, "Name": task,
        "CreationDate": "2026-11-30T10:00:00.000Z", "State": "available"}]}))
    config = tmp_path / "import.yaml"
    config.write_text(yaml.safe_dump({"policy": str(ROOT / "policies" / "example.yaml"),
                                      "aws": {"inventory_files": [
                                          {"path": str(inventory), "kind": "ami",
                                           "region": "us-east-1"}]}}))
    assert run_cli("scan", "--config", str(config), "--database", database).returncode == 0
    result = run_cli("explain", "ami-0a11000000000abcd", "--database", database,
                     env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert "ImportImage (decided)" in result.stdout
    assert "user/vendor-import" in result.stdout


def test_csv_cells_hold_no_escapes_or_formulas(tmp_path):
    from tests.helpers import trail

    identity = trail.user_identity("evil\x1b]0;pwned\x07")
    record = trail.create_image(identity, trail.datetime(2026, 11, 30, 8, tzinfo=trail.UTC),
                                "ami-0c5f000000000abcd", ip='=HYPERLINK("http://127.0.0.1/x")')
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.json").write_text(json.dumps({"Records": [record]}))
    database = f"sqlite:///{tmp_path / 'csv.db'}"
    assert run_cli("ingest", str(logs), "--database", database).returncode == 0
    inventory = tmp_path / "images.json"
    inventory.write_text(json.dumps({"Images": [{
        "ImageId": "ami-0c5f000000000abcd", "OwnerId": ACCOUNT, "Name": "n",
        "CreationDate": "2026-11-30T08:00:00.000Z", "State": "available"}]}))
    config = tmp_path / "csv.yaml"
    config.write_text(yaml.safe_dump({"policy": str(ROOT / "policies" / "example.yaml"),
                                      "aws": {"inventory_files": [
                                          {"path": str(inventory), "kind": "ami",
                                           "region": "us-east-1"}]}}))
    assert run_cli("scan", "--config", str(config), "--database", database).returncode == 0
    for command in (("verdicts", "--format", "csv"), ("report", "--format", "csv")):
        result = run_cli(*command, "--database", database)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout
        assert "\x07" not in result.stdout
        (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
        assert row["source_ip"] == "'=HYPERLINK(\"http://127.0.0.1/x\")"
        assert row["actor"].startswith("arn:aws:iam::")


def test_unknown_log_level_is_a_usage_error():
    result = run_cli("--log-level", "LOUD", "policy", "check",
                     str(ROOT / "policies" / "example.yaml"))
    assert result.returncode == 2
    assert "'LOUD' is not a level" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_takes_the_config(example):
    config, database = example
    result = run_cli("db", "upgrade", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "at revision head" in result.stdout


def test_unknown_platform_is_rejected(example):
    _, database = example
    result = run_cli("verdicts", "--platform", "nope", "--database", database)
    assert result.returncode == 2
    assert "unknown platform 'nope'" in result.stderr


def _moto_bucket(moto, name: str) -> tuple[dict[str, str], object]:
    """Create a bucket in moto; return the CLI's environment for it and an S3 client."""
    import boto3

    env = {"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "COLUMNS": "400"}
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=name)
    return env, s3


def test_ingest_from_bucket_twice_downloads_once(tmp_path, moto):
    from tests.helpers import trail

    env, s3 = _moto_bucket(moto, "twice")
    moment = trail.datetime(2026, 11, 30, 8, tzinfo=trail.UTC)
    for minutes in (5, 10):
        when = moment + trail.timedelta(minutes=minutes)
        s3.put_object(Bucket="twice", Key=trail.log_key(when),
                      Body=trail.log_file(trail.noise(moment, 2)))
    database = f"sqlite:///{tmp_path / 'twice.db'}"
    first = run_cli("ingest", "s3://twice/", "--database", database, env=env)
    assert "files 2 read and 0 already read" in first.stderr, first.stderr
    second = run_cli("ingest", "s3://twice/", "--database", database, env=env)
    assert second.returncode == 0, second.stderr
    assert "files 0 read and 2 already read" in second.stderr


def test_ingest_from_bucket_reads_in_named_format(tmp_path, moto):
    from tests.helpers import trail

    env, s3 = _moto_bucket(moto, "named")
    moment = trail.datetime(2026, 11, 30, 8, tzinfo=trail.UTC)
    key = trail.log_key(moment + trail.timedelta(minutes=5))
    s3.put_object(Bucket="named", Key=key, Body=trail.log_file(trail.noise(moment, 2)))
    database = f"sqlite:///{tmp_path / 'named.db'}"

    result = run_cli("ingest", "s3://named/", "--format", "azure-activity",
                     "--database", database, env=env)
    assert result.returncode == 1, result.stderr
    assert "1 file(s) could not be read at all" in result.stderr
    listing = run_cli("quarantine", "list", "--format", "json", "--database", database)
    (row,) = json.loads(listing.stdout)
    assert row["location"] == f"s3://named/{key}"
    assert "no azure-activity record found" in row["error"]
    assert "looks like cloudtrail" in row["error"]


def test_ingest_reads_past_a_bucket_that_cannot_be_listed(tmp_path, moto):
    from tests.helpers import trail

    moment = trail.datetime(2026, 11, 30, 8, tzinfo=trail.UTC)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"Records": [
        trail.create_image(trail.user_identity("bob"), moment, "ami-0b0b000000000002")]}))
    database = f"sqlite:///{tmp_path / 'bucket.db'}"
    env = {"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "COLUMNS": "400"}
    result = run_cli("ingest", "s3://no-such-bucket/", str(good), "--database", database,
                     env=env)
    assert result.returncode == 1, result.stderr
    assert f"{good}: files 1 read" in result.stderr
    assert "no-such-bucket" in result.stderr
    listing = run_cli("quarantine", "list", "--format", "json", "--database", database)
    assert [row["location"] for row in json.loads(listing.stdout)] == ["s3://no-such-bucket/"]
