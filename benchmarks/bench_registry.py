"""Measure registry inventory and the notification receiver beside skopeo.

Starts Debian's docker-registry on loopback, pushes `--images` images built with
umoci to each of `--repositories` repositories with skopeo, then times:

1. imageprov's `RegistryInventory` over the whole registry (catalog, tags, each
   manifest and config blob);
2. the same reads with skopeo, one process per call: `skopeo list-tags` per
   repository, then `skopeo inspect --config` per tag, which fetches the manifest
   and the config blob as imageprov does;
3. the receiver storing `--envelopes` notification envelopes posted one after the
   other into SQLite, each with one manifest push event.

Run: `PYTHONPATH=. .venv/bin/python benchmarks/bench_registry.py`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import urllib3

from imageprov.receiver import AsgiServer, NotificationReceiver, ReceiverSettings
from imageprov.sources.oci.inventory import RegistryInventory
from imageprov.sources.oci.registry import Credentials, RegistryClient
from imageprov.store import Store
from tests.conftest import free_port
from tests.helpers import registry as oci

SECRET = "bench-secret"


def _push_all(registry: oci.Registry, layout: Path, repositories: int, images: int) -> None:
    for number in range(images):
        oci.build_image(layout, f"i{number}", {f"data/{number}": b"x" * (number + 1)})
    for repository in range(repositories):
        for number in range(images):
            registry.push(layout, f"i{number}", f"bench/r{repository:03d}", f"t{number}",
                          "ci")


def _imageprov_inventory(registry: oci.Registry) -> tuple[float, int]:
    client = RegistryClient(registry.url, Credentials("reader", oci.ACCOUNTS["reader"]))
    started = time.perf_counter()
    count = len(list(RegistryInventory(client, registry.host).images()))
    return time.perf_counter() - started, count


def _skopeo_inventory(registry: oci.Registry, repositories: int) -> tuple[float, int]:
    creds = f"reader:{oci.ACCOUNTS['reader']}"
    started = time.perf_counter()
    count = 0
    for repository in range(repositories):
        name = f"docker://{registry.host}/bench/r{repository:03d}"
        listed = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", "--creds",
                                 creds, name], check=True, capture_output=True)
        for tag in json.loads(listed.stdout)["Tags"]:
            subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false",
                            "--creds", creds, f"{name}:{tag}"], check=True,
                           capture_output=True)
            count += 1
    return time.perf_counter() - started, count


def _receiver(folder: Path, envelopes: int) -> float:
    store = Store.open(f"sqlite:///{folder / 'receiver.db'}")
    server = AsgiServer(NotificationReceiver(store, ReceiverSettings(
        registries={"bench": "127.0.0.1:5000"}, secret=SECRET)), "127.0.0.1", 0)
    server.start()
    http = urllib3.PoolManager()
    url = f"http://127.0.0.1:{server.port}/registry/bench"
    headers = {"Authorization": f"Bearer {SECRET}",
               "Content-Type": "application/vnd.docker.distribution.events.v1+json"}
    digest = "sha256:" + "ab" * 32
    started = time.perf_counter()
    for _ in range(envelopes):
        event = {"id": str(uuid.uuid4()), "timestamp": "2026-12-01T10:00:00Z",
                 "action": "push",
                 "target": {"mediaType": oci.OCI_MANIFEST, "digest": digest,
                            "repository": "bench/app", "tag": "v1",
                            "url": f"http://127.0.0.1:5000/v2/bench/app/manifests/{digest}"},
                 "request": {"addr": "127.0.0.1:4000", "host": "127.0.0.1:5000"},
                 "actor": {"name": "ci"}}
        response = http.request("POST", url, body=json.dumps({"events": [event]}),
                                headers=headers)
        assert response.status == 200, response.data
    seconds = time.perf_counter() - started
    server.stop()
    store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--envelopes", type=int, default=500)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imageprov-bench-registry-") as name:
        folder = Path(name)
        (folder / "registry").mkdir()
        # Notifications go to a closed port: the registry queues them in memory.
        registry = oci.Registry(folder / "registry",
                                f"http://127.0.0.1:{free_port()}/", SECRET)
        registry.start()
        try:
            started = time.perf_counter()
            _push_all(registry, folder / "layout", arguments.repositories,
                      arguments.images)
            print(f"pushed {arguments.repositories * arguments.images} tags with skopeo "
                  f"in {time.perf_counter() - started:.1f} s")
            seconds, count = _imageprov_inventory(registry)
            print(f"imageprov inventory: {count} images in {seconds:.2f} s "
                  f"({count / seconds:.0f} images/s)")
            seconds, count = _skopeo_inventory(registry, arguments.repositories)
            print(f"skopeo list-tags + inspect --config: {count} images in "
                  f"{seconds:.2f} s ({count / seconds:.0f} images/s)")
        finally:
            registry.stop()
        seconds = _receiver(folder, arguments.envelopes)
        print(f"receiver: {arguments.envelopes} envelopes stored in {seconds:.2f} s "
              f"({arguments.envelopes / seconds:.0f} envelopes/s, SQLite)")


if __name__ == "__main__":
    main()
