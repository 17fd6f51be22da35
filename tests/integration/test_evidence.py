"""Evidence bundles: exported from a scan, checked with nothing but the bundle."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from imageprov.ledger.bundle import read_bundle, verify_bundle
from imageprov.ledger.keys import load_public_key
from tests.conftest import run_cli

ROOT = Path(__file__).parents[2]
GOLDEN = "arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b2c3d4e5f60001"
ROOT_MADE = "ami-0a1b2c3d4e5f60002"
# The vendor image has a verdict entry and then an exception-granted entry.
EXCEPTED = "arn:aws:ec2:us-east-1:111122223333:image/ami-0a1b2c3d4e5f60006"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled example scanned with a ledger key, and a bundle of two images."""
    base = tmp_path_factory.mktemp("evidence")
    folder = base / "example"
    shutil.copytree(ROOT / "examples" / "aws", folder)
    shutil.copy(ROOT / "policies" / "example.yaml", base / "policy.yaml")
    created = run_cli("keys", "create", str(base / "ledger.key"))
    assert created.returncode == 0, created.stderr
    config = yaml.safe_load((folder / "imageprov.yaml").read_text())
    config.update(policy="../policy.yaml", ledger_key="../ledger.key",
                  database=f"sqlite:///{base / 'evidence.db'}")
    (folder / "imageprov.yaml").write_text(yaml.safe_dump(config))
    scan = run_cli("scan", "--config", str(folder / "imageprov.yaml"), "--no-show")
    assert scan.returncode == 0, scan.stderr
    bundle = base / "bundle.json"
    export = run_cli("evidence", "export", GOLDEN, ROOT_MADE, EXCEPTED, "--out", str(bundle),
                     "--config", str(folder / "imageprov.yaml"))
    assert export.returncode == 0, export.stderr
    return {"bundle": bundle, "key": base / "ledger.key", "config": folder / "imageprov.yaml",
            "base": base}


@pytest.fixture
def bundle(scanned) -> dict:
    return copy.deepcopy(read_bundle(scanned["bundle"]))


def _first(bundle: dict) -> str:
    report = verify_bundle(bundle)
    assert not report.ok, "the edit was not found"
    return str(report.problems[0])


def _whole(bundle: dict) -> list[dict]:
    return [entry for entry in bundle["chain"] if "content" in entry]


def test_bundle_holds_history_events_policy(bundle):
    assert len(bundle["images"]) == 3
    assert GOLDEN in bundle["verdicts"]
    assert bundle["verdicts"][GOLDEN][0]["verdict"]["status"] == "approved"
    assert [entry["kind"] for entry in _whole(bundle) if entry["image"] == EXCEPTED] == [
        "verdict", "exception-granted"]
    assert len(bundle["events"]) == 2
    assert len(bundle["policies"]) == 1
    stubs = [entry for entry in bundle["chain"] if "content" not in entry]
    assert stubs, "entries of other images should appear as stubs"
    assert all(set(stub) == {"seq", "content_hash"} for stub in stubs)


def test_bundle_verifies_offline(scanned, tmp_path: Path):
    """`evidence verify` in an empty folder, with no configuration or database."""
    empty = tmp_path / "auditor"
    empty.mkdir()
    copied = shutil.copy(scanned["bundle"], empty / "bundle.json")
    result = run_cli("evidence", "verify", str(copied), "--public-key",
                     str(scanned["key"]) + ".pub", cwd=empty,
                     env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bundle verified" in result.stdout
    assert sorted(p.name for p in empty.iterdir()) == ["bundle.json"]


def test_changed_entry_byte_is_named(bundle):
    entry = _whole(bundle)[0]
    entry["content"] = entry["content"].replace("approved", "approvee", 1)
    assert _first(bundle).startswith(f"entry {entry['seq']} (")


def test_changed_stub_byte_is_named(bundle):
    stub = next(entry for entry in bundle["chain"] if "content" not in entry)
    flipped = "1" if stub["content_hash"][0] != "1" else "2"
    stub["content_hash"] = flipped + stub["content_hash"][1:]
    problems = [str(p) for p in verify_bundle(bundle).problems]
    assert any("signs hash" in p for p in problems), problems


def test_reordered_entries_are_named(bundle):
    chain = bundle["chain"]
    chain[0], chain[1] = chain[1], chain[0]
    assert _first(bundle).startswith(f"entry {chain[1]['seq']}")


def test_deleted_entry_is_named(bundle):
    whole = next(entry for entry in _whole(bundle)[1:] if entry["kind"] == "verdict")
    bundle["chain"] = [entry for entry in bundle["chain"] if entry is not whole]
    problems = [str(p) for p in verify_bundle(bundle).problems]
    assert problems[0].startswith(f"entry {whole['seq'] + 1}")
    assert f"entry {whole['seq']} missing before it" in problems[0]
    assert any(p.startswith(f"verdict row {whole['verdict_id']} ({whole['image']})")
               and "no ledger entry" in p for p in problems)


def test_dropped_first_image_is_named(bundle):
    """The chain's first entry and its verdict removed leave an image with no proof."""
    first = bundle["chain"].pop(0)
    bundle["verdicts"][first["image"]] = []
    problems = [str(p) for p in verify_bundle(bundle).problems]
    assert problems == [f"image {first['image']}: the bundle holds no ledger entry for it"]


def test_edited_verdict_is_named(bundle):
    history = bundle["verdicts"][GOLDEN]
    history[0]["verdict"]["actor"] = "arn:aws:iam::111122223333:user/someone-else"
    first = _first(bundle)
    assert first.startswith(f"verdict row {history[0]['id']} ({GOLDEN})")
    assert "actor is" in first


def test_dropped_verdict_is_named(bundle):
    history = bundle["verdicts"][GOLDEN]
    dropped = history.pop()
    assert f"records verdict row {dropped['id']}" in _first(bundle)


def test_hidden_older_entry_is_named(bundle):
    """An older entry turned into a stub, with its verdict dropped, is still found."""
    first, second = (entry for entry in _whole(bundle) if entry["image"] == EXCEPTED)
    index = bundle["chain"].index(first)
    bundle["chain"][index] = {"seq": first["seq"], "content_hash": first["content_hash"]}
    bundle["verdicts"][EXCEPTED] = []
    problems = [str(p) for p in verify_bundle(bundle).problems]
    assert problems == [f"entry {second['seq']} ({EXCEPTED}): follows entry "
                        f"{first['seq']} of the same image, which the bundle lacks"]


def test_edited_raw_event_is_named(bundle):
    bundle["events"][0]["raw"] = bundle["events"][0]["raw"].replace("10.", "11.", 1)
    assert "does not match the hash the entry recorded" in _first(bundle)


def test_edited_policy_is_named(bundle):
    digest = next(iter(bundle["policies"]))
    bundle["policies"][digest] += "\n# edited"
    assert _first(bundle) == f"policy {digest}: the text does not match its hash"


def test_swapped_key_fails(bundle, scanned):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from imageprov.ledger.keys import public_pem

    bundle["public_key"] = public_pem(Ed25519PrivateKey.generate().public_key())
    assert "not by the key given" in _first(bundle)
    report = verify_bundle(read_bundle(scanned["bundle"]),
                           load_public_key(Path(str(scanned["key"]) + ".pub")))
    assert report.ok, report.problems


def test_cli_names_tampered_entry(scanned, tmp_path: Path):
    content = json.loads(scanned["bundle"].read_text())
    entry = next(e for e in content["chain"] if "content" in e)
    entry["content"] = entry["content"].replace("approved", "flagged", 1)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(content))
    result = run_cli("evidence", "verify", str(tampered))
    assert result.returncode == 1
    assert f"FAILED at entry {entry['seq']}" in result.stdout


def test_ledger_verify_cli(scanned):
    result = run_cli("ledger", "verify", "--config", str(scanned["config"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ledger verified" in result.stdout


def test_keys_create_keeps_existing_key(scanned):
    before = scanned["key"].read_bytes()
    result = run_cli("keys", "create", str(scanned["key"]))
    assert result.returncode == 2
    assert f"{scanned['key']} exists" in result.stderr
    assert scanned["key"].read_bytes() == before
    assert oct(scanned["key"].stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("mangle", [
    lambda b: b.update(images=7),
    lambda b: b["chain"][0].update(seq="first"),
    lambda b: b["chain"].__setitem__(0, "not an entry"),
    lambda b: b.update(head=[]),
    lambda b: b.update(verdicts={"x": [{"no": "id"}]}),
    lambda b: b.pop("chain"),
])
def test_badly_shaped_bundle_fails_without_traceback(bundle, mangle):
    mangle(bundle)
    report = verify_bundle(bundle)
    assert not report.ok
    assert report.problems[-1].where == "bundle"
    assert report.problems[-1].detail.startswith("malformed (")
