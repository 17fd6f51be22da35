"""Judging one image again gives the verdict a full evaluation gives."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import yaml

from imageprov.api.judge import reevaluate
from imageprov.policy import evaluate_images, load_policy
from imageprov.store import Store
from tests.conftest import run_cli

ROOT = Path(__file__).parents[2]


def _scanned(tmp_path: Path, database: str) -> Path:
    folder = tmp_path / "example"
    shutil.copytree(ROOT / "examples" / "aws", folder)
    config = yaml.safe_load((folder / "imageprov.yaml").read_text())
    config["policy"] = str(ROOT / "policies" / "example.yaml")
    (folder / "imageprov.yaml").write_text(yaml.safe_dump(config))
    result = run_cli("scan", "--config", str(folder / "imageprov.yaml"), "--database",
                     database, "--no-show")
    assert result.returncode == 0, result.stderr
    return folder


def test_reevaluate_matches_full_evaluation(tmp_path, database_url):
    _scanned(tmp_path, database_url)
    policy, _ = load_policy(ROOT / "policies" / "example.yaml")
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    store = Store.open(database_url)
    try:
        images = store.images()
        full = evaluate_images(images, store.events(), policy, store.coverage(), now)
        assert len(images) == 8
        for image in images:
            verdict = reevaluate(store, policy, image, now)
            assert verdict == full.verdicts[image.ref], image.ref
    finally:
        store.close()


def test_reevaluate_stores_only_changed_verdicts(tmp_path, sqlite_url):
    _scanned(tmp_path, sqlite_url)
    policy, _ = load_policy(ROOT / "policies" / "example.yaml")
    store = Store.open(sqlite_url)
    try:
        image = store.find_images("ami-0a1b2c3d4e5f60001")[0]
        before = store.verdict_history(image.ref)
        reevaluate(store, policy, image, datetime.now(UTC))
        assert store.verdict_history(image.ref) == before
    finally:
        store.close()
