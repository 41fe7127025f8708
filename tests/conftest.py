"""Shared fixtures. The data comes from $AWD_DATA_DIR (CI points it at ../shared/data); tests that train
are skipped with the reason when no copy of PTB is there."""
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = Path(os.environ.get("AWD_DATA_DIR", ""))
    if not os.environ.get("AWD_DATA_DIR") or not (root / "ptb" / "train.txt").exists():
        if os.environ.get("CI"):
            pytest.fail("CI must set AWD_DATA_DIR to a folder holding ptb/ (e.g. ../shared/data)")
        pytest.skip("set AWD_DATA_DIR to a folder holding ptb/train.txt etc. (e.g. ../shared/data)")
    return root

