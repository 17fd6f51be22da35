"""Every public registry notification sample in the shared corpus is read.

Each file's counts are written here: notification events read, manifest events
kept as image events, events reported as malformed, and the shapes recognised.
Blob and pull events are counted as read and left out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imageprov import formats
from imageprov.ingest import ingest
from imageprov.model import EventEffect
from imageprov.sources.files import LocalFolder
from imageprov.store import Store
from tests.conftest import CORPUS

REGISTRY = CORPUS / "registry"

# path: (events read, image events, malformed events, shapes)
EXPECTED = {
    # One pull, one manifest push without a tag and two layer pushes in one envelope.
    "distribution-docs/notification-envelopes.json": (4, 1, 0, {"registry-envelope-list"}),
    "imagespy/manifest-pull-envelope.json": (1, 0, 0, {"registry-envelope"}),
    "imagespy/manifest-push-envelope.json": (1, 1, 0, {"registry-envelope"}),
    # Docker 1.7 era: manifests pushed with mediaType application/octet-stream.
    "jenkins-plugin/private-registry-payload-1-repository.json": (
        1, 1, 0, {"registry-envelope"}),
    "jenkins-plugin/private-registry-payload-2-repositories.json": (
        2, 2, 0, {"registry-envelope"}),
}

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not REGISTRY.is_dir(), reason=f"no corpus at {REGISTRY}"),
]


def _corpus_files() -> list[str]:
    return sorted(str(p.relative_to(REGISTRY)) for p in REGISTRY.rglob("*") if p.is_file())


def test_every_corpus_file_has_expectations():
    assert _corpus_files() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_counts(name):
    records, events, problems, shapes = EXPECTED[name]
    data = (REGISTRY / name).read_bytes()

    assert formats.choose(data).name == "registry-notifications"
    document = formats.read(data, name)

    assert document.records == records
    assert len(document.events) == events
    assert len(document.problems) == problems
    assert document.shapes == shapes
    for event in document.events:
        assert event.effect is EventEffect.PUSH
        assert event.target is not None and event.target.startswith("sha256:")
        assert event.registry
        assert event.repository


def test_corpus_push_fields():
    data = (REGISTRY / "imagespy/manifest-push-envelope.json").read_bytes()
    [event] = formats.read(data, "push.json").events

    assert event.event_id == "c405c239-0e47-436e-8677-ad138e14e224"
    assert event.registry == "127.0.0.1:52854"
    assert event.repository == "golang"
    assert event.tag == "1.12.4"
    assert event.principal.id == "anonymous"
    assert event.source_ip == "172.18.0.1"
    assert event.user_agent is not None and event.user_agent.startswith("docker/18.09.2")
    assert event.time.isoformat() == "2019-06-05T13:37:28.612683+00:00"


def test_corpus_ingest_stores_each_event_once(tmp_path: Path):
    store = Store.open(f"sqlite:///{tmp_path / 'corpus.db'}")
    summary = ingest(store, LocalFolder(REGISTRY).objects(), workers=1)

    assert summary.files == len(EXPECTED)
    assert summary.records == sum(v[0] for v in EXPECTED.values())
    assert summary.problems == 0
    # Both Jenkins plugin files carry event 9d9e2ab1-... from the same registry.
    assert store.event_count() == sum(v[1] for v in EXPECTED.values()) - 1
