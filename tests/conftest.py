"""Shared fixtures: the real reference bundles in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
CHR22 = DATA / "grch37_chr22_20-21Mb"
CHR2 = DATA / "grch37_chr2_160-162Mb"


@pytest.fixture(scope="session")
def chr22() -> Path:
    if not CHR22.is_dir():
        pytest.fail(f"shared data bundle missing: {CHR22}")
    return CHR22


@pytest.fixture(scope="session")
def chr2() -> Path:
    if not CHR2.is_dir():
        pytest.fail(f"shared data bundle missing: {CHR2}")
    return CHR2
