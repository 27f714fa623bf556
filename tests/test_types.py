"""The type hints of the modules listed under ``[tool.basedpyright]`` in pyproject.toml hold (zero errors)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_type_checker_finds_no_error():
    checker = shutil.which("basedpyright", path=str(Path(sys.executable).parent)) or shutil.which("basedpyright")
    if checker is None:
        pytest.skip("basedpyright is not installed (it is in the dev extra: pip install -e '.[dev]')")
    done = subprocess.run([checker], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert "0 errors" in done.stdout
