"""`imageprov scan` with an `azure:` section, as a user runs it, then `verdicts`,
`explain`, the report and the gate on Azure resource ids and ACR references."""

from __future__ import annotations

import asyncio
import json

import yaml

from imageprov.api.gate import Answer, Gate
from imageprov.api.references import parse_reference
from imageprov.config import Serve, load_config
from imageprov.policy import load_policy
from imageprov.store import Store
from tests.conftest import run_cli
from tests.helpers import azure_scenario as scenario
from tests.helpers.azure_standin import AzureStandIn

TOKEN = "cli-test-token-d41d8cd98f00b204"


def test_scan_shows_azure_refs_in_verdicts_and_explain(tmp_path):
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {scenario.TOKEN_ENV: TOKEN}
    with AzureStandIn(scenario.state()) as standin:
        config = tmp_path / "imageprov.yaml"
        config.write_text(yaml.safe_dump(scenario.config(
            standin.url, standin.ca, scenario.AZURE / "policy.yaml")))
        scan = run_cli("scan", "--config", str(config), "--database", database,
                       "--no-show", env=env)
    assert scan.returncode == 0, scan.stderr
    assert (f"source=azure-compute:{scenario.SUBSCRIPTION} kind=inventory "
            f"account={scenario.SUBSCRIPTION} region=global images=3") in scan.stderr
    assert "kind=azure-activity" in scan.stderr
    assert "kind=acr-events" in scan.stderr
    assert TOKEN not in scan.stderr + scan.stdout

    listed = run_cli("verdicts", "--format", "json", "--database", database)
    assert listed.returncode == 0, listed.stderr
    verdicts = {item["image"]: item for item in json.loads(listed.stdout)}
    assert verdicts[scenario.GALLERY_VERSION]["status"] == "approved"
    assert verdicts[scenario.GALLERY_VERSION]["platform"] == "azure"
    assert verdicts[scenario.MANAGED_IMAGE]["status"] == "flagged"
    assert verdicts[scenario.IMPORTED]["status"] == "flagged"
    assert verdicts[scenario.PUSHED]["status"] == "approved"
    assert verdicts[scenario.UNKNOWN]["status"] == "unattributed"

    # The id as the portal writes it, in mixed case, finds the stored image.
    mixed = scenario.MANAGED_IMAGE.replace("resourcegroups/rg-images", "resourceGroups/RG-Images")
    explained = run_cli("explain", mixed, "--database", database)
    assert explained.returncode == 0, explained.stderr
    text = " ".join(explained.stdout.split())
    assert "mallory@contoso.com" in text
    assert "81.2.69.160" in text
    assert "external-network" in text

    pushed = run_cli("explain", scenario.PUSHED, "--database", database)
    assert pushed.returncode == 0, pushed.stderr
    assert "acr-ci-push" in " ".join(pushed.stdout.split())

    report = run_cli("report", "--format", "json", "--platform", "azure",
                     "--database", database)
    assert report.returncode == 0, report.stderr
    rows = {row["image"]: row for row in json.loads(report.stdout)["images"]}
    assert rows[scenario.MANAGED_IMAGE]["status"] == "flagged"
    assert rows[scenario.PUSHED]["status"] == "approved"

    # The gate finds the id in the case the portal writes it.
    settings = load_config(config)
    policy, text = load_policy(settings.policy)
    store = Store.open(database)
    gate = Gate(store, Serve(), settings.policy, policy, text)

    async def decide(image: str) -> Answer:
        await asyncio.to_thread(gate.start)
        return await gate.decide(parse_reference(image))

    try:
        answer = asyncio.run(decide(mixed))
    finally:
        store.close()
    assert (answer.ref, answer.allowed, answer.status) == (scenario.MANAGED_IMAGE, False,
                                                           "flagged")
