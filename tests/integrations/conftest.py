"""Fixtures that start real servers on free loopback ports (helpers in the testkits)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testkit.integrations import FhirServer, Mosquitto, Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path / "mosquitto", pki)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    """Token-protected; knows Patient/p-1."""
    server = FhirServer(tmp_path_factory.mktemp("fhir"), token="s3cret", patients=("p-1",))
    yield server
    server.stop()
