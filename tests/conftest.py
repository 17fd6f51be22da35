"""Shared fixtures: a moto server, a PostgreSQL server, and AWS settings that can
reach nothing but loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Any boto3 client built without an explicit endpoint lands on the discard port of
# loopback, so a test that omits its endpoint fails instead of calling AWS.
os.environ.update({
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
})
os.environ.pop("AWS_PROFILE", None)
# The Google libraries get credentials passed in; should anything look for default
# credentials, it finds none, and a metadata-server probe lands on loopback.
os.environ.update({
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
    "NO_GCE_CHECK": "True",
})
os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
os.environ.pop("CLOUDSDK_CONFIG", None)
os.environ.pop("IMAGEPROV_DATABASE_URL", None)

DATA = Path(__file__).parent / "data"
# The public audit-log corpus: IMAGEPROV_CORPUS, or the shared folder beside the checkout.
CORPUS = Path(os.environ.get("IMAGEPROV_CORPUS")
              or Path(__file__).resolve().parents[2] / "shared" / "corpus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class MotoServer:
    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


@pytest.fixture(scope="session")
def moto_process() -> Iterator[MotoServer]:
    """A real `moto_server` process on loopback."""
    executable = shutil.which("moto_server")
    if executable is None:
        pytest.fail("moto_server is not installed: pip install 'moto[server]'")
    port = free_port()
    env = dict(os.environ, MOTO_EC2_LOAD_DEFAULT_AMIS="false")
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/moto-api/")
        yield MotoServer(url)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def moto(moto_process: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """The moto server, emptied, with boto3 pointed at it."""
    moto_process.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_process.url)
    return moto_process


def _postgres_binaries() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _server_answers(host: str, port: int) -> bool:
    try:
        import psycopg

        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                             connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means no usable server
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[tuple[str, int]]:
    """A PostgreSQL server: the machine's on 127.0.0.1:5432, or a private one."""
    if _server_answers("127.0.0.1", 5432):
        yield ("127.0.0.1", 5432)
        return
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.fail("no PostgreSQL on 127.0.0.1:5432 and no initdb to start one")
    folder = Path(tempfile.mkdtemp(prefix="imageprov-pg-"))
    data = folder / "data"
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root.
        shutil.chown(folder, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
                    "-A", "trust"], check=True, capture_output=True)
    subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l",
                    str(folder / "log"), "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
                    "start"], check=True, capture_output=True)
    try:
        yield ("127.0.0.1", port)
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: tuple[str, int]) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server, dropped after the test."""
    import psycopg

    host, port = postgres_server
    name = f"imageprov_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                         autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@{host}:{port}/{name}"
    with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                         autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'imageprov.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'imageprov.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Each backend in turn: a call that returns the URL of a new, empty database."""
    created: list[str] = []
    server = request.getfixturevalue("postgres_server") if request.param != "sqlite" else None

    def make() -> str:
        name = f"imageprov_test_{uuid.uuid4().hex[:12]}"
        if server is None:
            return f"sqlite:///{tmp_path / (name + '.db')}"
        import psycopg

        host, port = server
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg://postgres@{host}:{port}/{name}"

    yield make
    if server is not None and created:
        import psycopg

        host, port = server
        with psycopg.connect(host=host, port=port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            for name in created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_cli(*args: str, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `imageprov` command as a user would."""
    return subprocess.run([sys.executable, "-m", "imageprov", *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd, timeout=300)


# The Azure SDKs read no credential or endpoint from here, and Azure CLI settings
# from the home folder are out of reach.
for _name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
              "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT",
              "MSI_ENDPOINT", "AZURE_STORAGE_CONNECTION_STRING"):
    os.environ.pop(_name, None)
os.environ["AZURE_CONFIG_DIR"] = os.devnull

# The well-known development account every Azurite instance serves (Azurite README).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")


def _azurite_executable() -> str | None:
    local = Path(__file__).resolve().parents[1] / ".cache" / "npm-azurite" / "node_modules"
    candidate = local / ".bin" / "azurite-blob"
    if candidate.exists():
        return str(candidate)
    return shutil.which("azurite-blob")


def _wait_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A real Azurite blob service on loopback; yields its connection string."""
    executable = _azurite_executable()
    if executable is None:
        pytest.fail("azurite is not installed: npm install --prefix .cache/npm-azurite "
                    "azurite")
    port = free_port()
    log = tempfile.TemporaryFile()
    # --disableTelemetry: Azurite otherwise reports usage to a remote endpoint.
    # --skipApiVersionCheck: azure-storage-blob sends a newer x-ms-version than
    # Azurite's baseline and would be rejected with HTTP 400.
    process = subprocess.Popen(
        [executable, "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--inMemoryPersistence", "--disableTelemetry",
         "--skipApiVersionCheck", "--silent"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port)
        yield (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
               f"AccountKey={AZURITE_KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};")
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
