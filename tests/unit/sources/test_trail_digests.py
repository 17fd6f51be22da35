"""Digest validation on a local copy of a trail, built and signed as CloudTrail does."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imageprov.errors import SourceError
from imageprov.model import LogValidation
from imageprov.sources.aws import trail_digests
from tests.helpers import trail
from tests.helpers.digests import Signer, build_chain

BUCKET = "org-cloudtrail-logs"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


class LocalTrail:
    """Three log files over two hours and their two digests, in a local folder."""

    def __init__(self, root: Path, signer: Signer, form: str = "pkcs1") -> None:
        self.root = root
        self.logs: dict[str, bytes] = {}
        hours = []
        for hour, count in ((0, 2), (1, 1)):
            files = []
            for index in range(count):
                when = T0 + timedelta(hours=hour, minutes=5 + index * 10)
                key = trail.log_key(when, suffix=f"Log{hour}{index}aaaaaaaaaa")
                data = trail.log_file(trail.noise(when, 3))
                self.logs[key] = data
                files.append((key, data))
            hours.append((T0 + timedelta(hours=hour), files))
        self.digests = build_chain(signer, BUCKET, trail.ACCOUNT, trail.REGION, hours)
        for key, data in self.logs.items():
            self.write(key, data)
        for digest in self.digests:
            self.write(digest.key, digest.body)
            self.write(digest.key + ".signature", digest.signature.encode())
        self.keys_file = root / "public-keys.json"
        self.keys_file.write_text(json.dumps(signer.public_key_list(form)))

    def path(self, key: str) -> Path:
        return self.root / key

    def write(self, key: str, data: bytes) -> None:
        self.path(key).parent.mkdir(parents=True, exist_ok=True)
        self.path(key).write_bytes(data)

    def stored(self) -> list[tuple[int, str, str | None]]:
        """The log files as ingest stores them: id, location, uncompressed hash."""
        found = []
        for index, key in enumerate(sorted(self.logs), start=1):
            path = self.path(key)
            if path.exists():
                text = gzip.decompress(path.read_bytes())
                found.append((index, str(path), hashlib.sha256(text).hexdigest()))
        return found

    def check(self):
        keys = trail_digests.load_public_keys(self.keys_file)
        result = trail_digests.validate_digests(trail_digests.local_digests(self.root), keys)
        outcomes, missing = trail_digests.match_log_files(result, self.stored())
        return result, outcomes, result.problems + missing


@pytest.fixture
def local(tmp_path: Path, signer: Signer) -> LocalTrail:
    return LocalTrail(tmp_path, signer)


@pytest.mark.parametrize("form", ["pkcs1", "x509"])
def test_valid_chain_passes(tmp_path, signer, form):
    local = LocalTrail(tmp_path, signer, form)
    result, outcomes, problems = local.check()
    assert problems == []
    assert result.digests == 2
    assert result.valid == 2
    assert len(outcomes) == 3
    assert {outcome for outcome, _ in outcomes.values()} == {LogValidation.VALIDATED}


def test_older_digest_checked_by_successor(local):
    local.path(local.digests[0].key + ".signature").unlink()
    result, outcomes, problems = local.check()
    assert problems == []
    assert result.valid == 2


def test_edited_log_file_fails(local):
    key = sorted(local.logs)[0]
    records = json.loads(gzip.decompress(local.logs[key]))["Records"]
    records[0]["sourceIPAddress"] = "203.0.113.9"
    local.write(key, trail.log_file(records))
    _, outcomes, problems = local.check()
    assert len(problems) == 1
    assert problems[0].file == str(local.path(key))
    assert problems[0].kind == "hash-mismatch"
    failed = [detail for outcome, detail in outcomes.values()
              if outcome is LogValidation.FAILED]
    assert len(failed) == 1


def test_removed_log_file_fails(local):
    key = sorted(local.logs)[1]
    local.path(key).unlink()
    _, _, problems = local.check()
    assert len(problems) == 1
    assert problems[0].file == key
    assert problems[0].kind == "missing-log-file"
    assert local.digests[0].key in problems[0].detail


def test_broken_chain_fails(local):
    older = local.digests[0]
    local.path(older.key).unlink()
    local.path(older.key + ".signature").unlink()
    result, outcomes, problems = local.check()
    gaps = [p for p in problems if p.kind == "chain-gap"]
    assert len(gaps) == 1
    assert gaps[0].file == str(local.path(local.digests[1].key))
    assert older.key in gaps[0].detail
    # The hour whose digest is gone is no longer proven.
    unproven = [o for o, _ in outcomes.values() if o is LogValidation.UNVALIDATED]
    assert len(unproven) == 2


def test_edited_older_digest_breaks_chain(local):
    older = local.digests[0]
    fields = dict(older.fields, logFiles=older.fields["logFiles"][:1])
    local.write(older.key, gzip.compress(json.dumps(fields).encode()))
    _, _, problems = local.check()
    kinds = {(p.kind, p.file) for p in problems}
    assert ("chain-gap", str(local.path(local.digests[1].key))) in kinds
    assert ("bad-signature", str(local.path(older.key))) in kinds


def test_bad_signature_fails(local):
    newest = local.digests[1]
    forged = Signer().sign(b"something else")
    local.write(newest.key + ".signature", forged.encode())
    result, outcomes, problems = local.check()
    assert len(problems) == 1
    assert problems[0].file == str(local.path(newest.key))
    assert problems[0].kind == "bad-signature"
    failed = [detail for outcome, detail in outcomes.values()
              if outcome is LogValidation.FAILED]
    assert len(failed) == 1
    assert "failed: the signature does not verify" in failed[0]


def test_moved_digest_fails(local):
    newest = local.digests[1]
    moved = newest.key.replace(".json.gz", "-copy.json.gz")
    local.write(moved, local.path(newest.key).read_bytes())
    local.write(moved + ".signature", newest.signature.encode())
    _, _, problems = local.check()
    assert [p.kind for p in problems] == ["moved-digest"]
    assert problems[0].file == str(local.path(moved))


def test_unknown_key_fails(local):
    local.keys_file.write_text(json.dumps(Signer().public_key_list()))
    _, _, problems = local.check()
    assert {p.kind for p in problems} == {"unknown-key"}
    assert len(problems) == 2


def test_unlisted_file_stays_unvalidated(local):
    when = T0 + timedelta(minutes=30)
    forged = trail.log_key(when, suffix="ForgedForgedForg")
    local.write(forged, trail.log_file(trail.noise(when, 1)))
    local.logs[forged] = b""
    _, outcomes, problems = local.check()
    assert problems == []
    states = sorted(outcome.value for outcome, _ in outcomes.values())
    assert states == ["unvalidated", "validated", "validated", "validated"]


def test_public_keys_file_errors(tmp_path):
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps({"PublicKeyList": [{"Fingerprint": "ab", "Value": "AAAA"}]}))
    with pytest.raises(SourceError, match=r"PublicKeyList\[0\]\.Value"):
        trail_digests.load_public_keys(bad)
    bad.write_text("[]")
    with pytest.raises(SourceError, match="PublicKeyList array"):
        trail_digests.load_public_keys(bad)


def test_file_read_without_hash_stays_unvalidated(local):
    result, _, _ = local.check()
    stored = [(file_id, location, None) for file_id, location, _ in local.stored()]
    outcomes, problems = trail_digests.match_log_files(result, stored)
    assert problems == []
    assert {outcome for outcome, _ in outcomes.values()} == {LogValidation.UNVALIDATED}
    assert all("read before digest checks" in detail for _, detail in outcomes.values())


def test_content_hash_only_on_request(local, tmp_path):
    from imageprov.ingest import ingest
    from imageprov.sources import LogObject
    from imageprov.store import Store

    keys = sorted(local.logs)
    store = Store.open(f"sqlite:///{tmp_path / 'hashes.db'}")
    ingest(store, [LogObject(key, None, lambda key=key: local.logs[key],
                             content_hash=key == keys[0]) for key in keys])
    stored = {location: content for _, location, content in store.log_file_contents()}
    store.close()
    assert stored[keys[0]] == hashlib.sha256(gzip.decompress(local.logs[keys[0]])).hexdigest()
    assert stored[keys[1]] is None
    assert stored[keys[2]] is None


def test_validate_logs_command(local):
    from tests.conftest import run_cli

    command = ["validate-logs", str(local.root), "--public-keys", str(local.keys_file)]
    result = run_cli(*command)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 digests, 2 valid; log files 3 validated, 0 failed" in result.stdout
    key = sorted(local.logs)[2]
    local.write(key, trail.log_file(trail.noise(T0, 1)))
    result = run_cli(*command)
    assert result.returncode == 1
    assert f"{local.path(key)}: hash-mismatch" in result.stdout


def test_validate_logs_fails_a_trail_whose_digests_were_removed(local):
    from tests.conftest import run_cli

    for digest in local.digests:
        for path in local.root.rglob(Path(digest.key).name + "*"):
            path.unlink()
    command = ["validate-logs", str(local.root), "--public-keys", str(local.keys_file)]
    result = run_cli(*command)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 digests, 0 valid; log files 0 validated, 0 failed, 3 not listed" in result.stdout
    assert "listed in no valid digest" in result.stdout
    assert run_cli(*command, "--allow-unlisted").returncode == 0
