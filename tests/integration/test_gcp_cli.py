"""`imageprov scan`, `verdicts` and `explain` on GCP, as a user runs them: a
configuration with a `gcp:` section, the stand-in, and a folder of exported logs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from imageprov.api.gate import Answer, Gate
from imageprov.api.references import parse_reference
from imageprov.config import Serve, load_config
from imageprov.policy import load_policy
from imageprov.store import Store
from tests.conftest import run_cli
from tests.helpers import gcp_scenario as scenario
from tests.helpers.gcp_scenario import EU_IMAGE, US_IMAGE, ref
from tests.helpers.gcp_standin import GcpStandIn


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("gcp-cli")
    database = f"sqlite:///{folder / 'cli.db'}"
    with GcpStandIn() as standin:
        scenario.populate(standin)
        config = scenario.write_config(folder, standin, database)
        result = run_cli("scan", "--config", str(config), "--no-show", env={"COLUMNS": "200"})
        yield database, result.stderr + f"\nexit {result.returncode}", config


def test_scan_logs_gcp_sources(scanned):
    _, output, _ = scanned
    assert output.endswith("exit 0"), output
    assert "source=gce:shop-prod kind=inventory account=shop-prod region=global images=8" \
        in output
    assert "source=artifact-registry:shop-prod/us-central1 kind=inventory" in output
    assert "kind=gcp-audit account=shop-prod region=europe-west1,global files=6" in output
    assert "quarantined 0" in output


def test_verdicts_json_shows_gcp_refs(scanned):
    database, _, _ = scanned
    result = run_cli("verdicts", "--format", "json", "--platform", "gcp",
                     "--database", database)
    assert result.returncode == 0, result.stderr
    verdicts = {item["image"]: item for item in json.loads(result.stdout)}
    assert set(verdicts) == {ref(name) for name in scenario.IMAGES} | {US_IMAGE, EU_IMAGE}
    head = verdicts[ref("web-v42")]
    assert head["platform"] == "gcp"
    assert head["kind"] == "compute-image"
    assert head["account"] == "shop-prod"
    assert head["status"] == "flagged"
    assert head["flags"] == ["unexpected-actor", "family-takeover"]
    assert verdicts[ref("web-v41")]["status"] == "approved"
    assert verdicts[US_IMAGE]["kind"] == "container"
    assert verdicts[US_IMAGE]["status"] == "unattributed"


def test_explain_names_family_and_displaced(scanned):
    database, _, _ = scanned
    result = run_cli("explain", ref("web-v42"), "--database", database,
                     env={"COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "heads watched family web now" in text
    assert f"displaced {ref('web-v41')}" in text
    assert "contractor@shop-prod.iam.gserviceaccount.com" in text
    assert "incomplete-operation" in text
    assert "v1.compute.images.insert (decided)" in text


def test_explain_docker_image_by_digest(scanned):
    database, _, _ = scanned
    result = run_cli("explain", scenario.DIGEST_US, "--database", database,
                     env={"COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert US_IMAGE in text
    assert "DATA_WRITE" in text


def test_scan_without_token_fails_gcp_source(tmp_path: Path):
    with GcpStandIn() as standin:
        config = scenario.write_config(tmp_path, standin,
                                       f"sqlite:///{tmp_path / 'token.db'}",
                                       logs=scenario.DATA / "malformed")
        text = config.read_text().replace("credentials: anonymous",
                                          "credentials: token\n    token_env: GCP_TEST_TOKEN")
        config.write_text(text)
        result = run_cli("scan", "--config", str(config), "--no-show",
                         env={"GCP_TEST_TOKEN": ""})
    assert result.returncode == 1
    assert "environment variable GCP_TEST_TOKEN is missing or empty" in result.stderr
    assert "sources failed: gcp" in result.stderr


def test_ingest_quarantines_malformed_entries(tmp_path: Path):
    database = f"sqlite:///{tmp_path / 'ingest.db'}"
    result = run_cli("ingest", str(scenario.DATA / "malformed"), "--format", "gcp-audit",
                     "--database", database)
    assert result.returncode == 0, result.stderr
    assert "image events 1 (1 new), quarantined 7" in result.stderr
    listed = run_cli("quarantine", "list", "--format", "json", "--database", database)
    assert listed.returncode == 0, listed.stderr
    rows = {(row["record"], row["field"]) for row in json.loads(listed.stdout)}
    assert (1, "resource.labels.image_id") in rows
    assert (4, "insertId") in rows
    assert (5, "message.data") in rows
    for row in json.loads(listed.stdout):
        assert row["location"].endswith("malformed/entries.jsonl")
        assert row["source"] == "gcp-audit"


def test_report_lists_gcp_refs(scanned):
    database, _, _ = scanned
    result = run_cli("report", "--format", "json", "--platform", "gcp",
                     "--database", database)
    assert result.returncode == 0, result.stderr
    rows = {row["image"]: row for row in json.loads(result.stdout)["images"]}
    assert set(rows) == {ref(name) for name in scenario.IMAGES} | {US_IMAGE, EU_IMAGE}
    assert rows[ref("web-v42")]["status"] == "flagged"


def test_gate_answers_for_gcp_refs(scanned):
    database, _, config = scanned
    settings = load_config(config)
    policy, text = load_policy(settings.policy)
    store = Store.open(database)
    gate = Gate(store, Serve(), settings.policy, policy, text)

    async def decide(image: str) -> Answer:
        await asyncio.to_thread(gate.start)
        return await gate.decide(parse_reference(image))

    try:
        head = asyncio.run(decide(ref("web-v42")))
        earlier = asyncio.run(decide(ref("web-v41")))
    finally:
        store.close()
    assert (head.ref, head.allowed, head.status) == (ref("web-v42"), False, "flagged")
    assert (earlier.ref, earlier.allowed, earlier.status) == (ref("web-v41"), True,
                                                              "approved")
