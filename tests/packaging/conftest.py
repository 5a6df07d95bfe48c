from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.wheel import installed_venv


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed (once per session)."""
    return installed_venv(tmp_path_factory.getbasetemp())
