"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

# The shared data folder sits beside the repository root (absent in a user's fresh clone).
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent")
    return SHARED
