"""Azurite (Microsoft's Azure Storage emulator, from npm: `npm install -g azurite`), its blob
service on an OS-chosen loopback port with telemetry off. Tests skip when it is absent."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import stop_process, wait_for

# Azurite's well-known development account (public, documented; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")


class Azurite:
    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("azurite-blob")
        if binary is None:
            pytest.skip("Azurite is not installed (npm install -g azurite)")
        self.log = tmp / "azurite.log"
        with open(self.log, "wb") as output:
            self.proc = subprocess.Popen(
                [binary, "--blobHost", "127.0.0.1", "--blobPort", "0", "--location", str(tmp),
                 "--disableTelemetry", "--skipApiVersionCheck", "--loose"],
                stdout=output, stderr=subprocess.STDOUT)
        found = wait_for(lambda: re.search(r"listens on (http://127\.0\.0\.1:\d+)",
                                           self.log.read_text(errors="replace"))
                         or self.proc.poll() is not None, 30, 0.05, "Azurite")
        if self.proc.poll() is not None:
            raise AssertionError("Azurite exited:\n" + self.log.read_text())
        self.url = found.group(1)
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.url}/{ACCOUNT};")

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()
