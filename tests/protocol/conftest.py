"""Fixtures for the protocol tests: throwaway PKIs made with secfepas_sdk.certs."""

from __future__ import annotations

from pathlib import Path

import pytest

from secfepas_sdk.certs import Pki, init_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return init_pki(tmp_path_factory.mktemp("pki") / "site")


@pytest.fixture(scope="session")
def foreign_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another site's CA: its certificates must be refused by ours."""
    return init_pki(tmp_path_factory.mktemp("pki") / "other", site="another site CA")


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path
