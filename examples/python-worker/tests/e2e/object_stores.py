"""Object-store emulators for the end-to-end tests, each a private process on a free loopback
port: moto in server mode (S3) and Azurite (Azure Blob). `scripts/emulators` installs both into
`.tools/` in the repository (or BATON_TOOLS_DIR); CI runs it through `scripts/services`.

A test gets a bucket (container) of its own on the session's emulator; a test that stops its
store starts an emulator of its own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from email.utils import formatdate
from pathlib import Path

import pytest

from processes import Process, free_port

REPO = Path(__file__).resolve().parents[4]
TOOLS = Path(os.environ.get("BATON_TOOLS_DIR") or REPO / ".tools")
# The key prefix Baton is given in BATON_STORAGE_URL.
PREFIX = "baton"

# Azurite's one account and its published key (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_API_VERSION = "2021-08-06"


def installed_tool(relative: str) -> Path:
    """The emulator's program under TOOLS; the test fails, saying how to install it, when absent."""
    path = TOOLS / relative
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"the object-store emulator {path} is not installed: run scripts/emulators (CI runs it through "
            "scripts/services), or point BATON_TOOLS_DIR at a directory where it ran",
            pytrace=False,
        )
    return path


def unique_bucket_name() -> str:
    """Valid for S3 buckets and Azure containers: lowercase, 3 to 63 characters."""
    return f"t{uuid.uuid4().hex}"


class Emulator:
    """One emulator process; stopped and started again on the same port."""

    name = ""
    scheme = ""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port = free_port()
        self.starts = 0
        self.process: Process | None = None
        self.start()

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        assert self.process is None or not self.process.alive(), f"{self.name} is already running"
        self.starts += 1
        self.process = Process(self.name, self.argv(), dict(os.environ), self.tmp / f"{self.name}-{self.starts}.log")
        self._wait_ready()

    def stop(self) -> None:
        """Graceful (SIGTERM): Azurite writes its data out before it exits."""
        if self.process is not None:
            self.process.stop()

    def _wait_ready(self, deadline: float = 30) -> None:
        end = time.monotonic() + deadline
        while True:
            assert self.process.alive(), f"{self.name} exited at start\n{self.process.describe()}"
            try:
                with urllib.request.urlopen(f"{self.base_url}/", timeout=2):
                    return
            except urllib.error.HTTPError:  # any answer: it is listening
                return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > end:
                self.process.stop()
                pytest.fail(f"{self.name} did not answer on port {self.port}\n{self.process.describe()}")
            time.sleep(0.1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def store_url(self, bucket: str) -> str:
        """BATON_STORAGE_URL for the bucket."""
        return f"{self.scheme}://{bucket}/{PREFIX}"

    def env(self) -> dict[str, str]:
        """The standard variables that point a client (Baton, obstore) at this emulator."""
        raise NotImplementedError

    def create_bucket(self) -> str:
        raise NotImplementedError

    def keys(self, bucket: str) -> list[str]:
        """Every key in the bucket, sorted."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.process.describe() if self.process else f"--- {self.name}: never started ---"


class Moto(Emulator):
    """S3. Keeps everything in memory: a restart loses every bucket."""

    name = "moto"
    scheme = "s3"

    def argv(self) -> list[str]:
        return [str(installed_tool("moto-venv/bin/moto_server")), "-H", "127.0.0.1", "-p", str(self.port)]

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT": self.base_url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def create_bucket(self) -> str:
        bucket = unique_bucket_name()
        # moto checks no signatures.
        request = urllib.request.Request(f"{self.base_url}/{bucket}", method="PUT", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200, response.status
        return bucket

    def keys(self, bucket: str) -> list[str]:
        with urllib.request.urlopen(f"{self.base_url}/{bucket}?list-type=2", timeout=10) as response:
            tree = ET.fromstring(response.read())
        return sorted(e.text for e in tree.iter() if e.tag.endswith("}Key") or e.tag == "Key")


class Azurite(Emulator):
    """Azure Blob. Keeps its data in a directory across a graceful restart."""

    name = "azurite"
    scheme = "az"

    def argv(self) -> list[str]:
        data = self.tmp / "azurite-data"
        data.mkdir(exist_ok=True)
        return [
            str(installed_tool("azurite/node_modules/.bin/azurite-blob")),
            "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(data),
            # Clients speak newer API versions than Azurite 3.35 knows.
            "--skipApiVersionCheck", "--loose", "--silent",
            # Azurite reports usage to a public endpoint unless told not to.
            "--disableTelemetry",
        ]

    def env(self) -> dict[str, str]:
        return {
            "AZURE_STORAGE_USE_EMULATOR": "true",
            # Without the account: clients add it.
            "AZURITE_BLOB_STORAGE_URL": self.base_url,
            "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
            "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
        }

    def create_bucket(self) -> str:
        container = unique_bucket_name()
        status, _ = self._shared_key_request("PUT", f"/{container}", {"restype": "container"})
        assert status == 201, status
        return container

    def keys(self, bucket: str) -> list[str]:
        status, body = self._shared_key_request("GET", f"/{bucket}", {"restype": "container", "comp": "list"})
        assert status == 200, status
        tree = ET.fromstring(body)
        return sorted(e.text for e in tree.iter("Name") if e.text)

    def _shared_key_request(self, method: str, path: str, query: dict[str, str]) -> tuple[int, bytes]:
        """A request to the account signed with its key (Shared Key authorization): creating a
        container and listing one need it."""
        account_path = f"/{AZURITE_ACCOUNT}{path}"
        date = formatdate(usegmt=True)
        headers = {"x-ms-date": date, "x-ms-version": AZURE_API_VERSION}
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        # The account, then the URL's path (which for the emulator starts with the account again),
        # then each query parameter on a line of its own, sorted.
        resource = f"/{AZURITE_ACCOUNT}{account_path}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
        # Verb, then eleven standard headers, all empty (no body: Content-Length 0 signs as
        # empty), then the rest.
        string_to_sign = method + "\n" * 12 + canonical_headers + resource
        mac = hmac.new(base64.b64decode(AZURITE_KEY), string_to_sign.encode(), hashlib.sha256)
        headers["Authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{base64.b64encode(mac.digest()).decode()}"
        # http.client rather than urllib, which would add a Content-Type the signature leaves out.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, f"{account_path}?{urllib.parse.urlencode(query)}",
                               body=b"" if method == "PUT" else None, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status >= 300:
            pytest.fail(f"{method} {path} on Azurite answered {response.status}: {body[:500]!r}")
        return response.status, body
