"""Shared fixtures: paths to the real sample data that sits beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`: real M-AILABS and LibriSpeech samples (never copied into the repo)."""
    if not (SHARED_DATA / "SOURCES.txt").is_file():
        pytest.fail(f"the real sample data is missing: expected {SHARED_DATA} beside the repository")
    return SHARED_DATA
