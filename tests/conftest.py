from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from divergen_lib.config import load_config
from divergen_lib.toyworld import build_toyworld

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE_PARAMS = REPO_ROOT / "params" / "smoke" / "00_toyworld.yaml"


@pytest.fixture(scope="session")
def smoke_config():
    return load_config(SMOKE_PARAMS)


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory, smoke_config):
    """The smoke-profile toy world, built once per test session."""
    root = tmp_path_factory.mktemp("toyworld")
    return build_toyworld(smoke_config.section("toyworld"), root, seed=smoke_config.common.seed)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m divergen_lib ARGS`` from the repository root, output captured."""
    cmd = [sys.executable, "-m", "divergen_lib", *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.fixture(scope="session")
def smoke_generation(tmp_path_factory, smoke_world):
    """Toy generations (both styles, 2 per category for 10 categories) for the annotation and later stages."""
    from divergen_lib.generation import stage

    out = tmp_path_factory.mktemp("generation")
    style = "{{name: toy_{0}, backend: toy, options: {{world: {1}, style: {0}, size: 96}}}}"
    models = f"generation.models=[{style.format('flat', smoke_world.root)}, {style.format('soft', smoke_world.root)}]"
    overrides = [
        f"output_dir={out}",
        f"generation.categories.toyworld={smoke_world.root}",
        "generation.categories.ids=[1, 2, 3, 4, 5, 6, 7, 8, 31, 32]",
        "generation.images_per_category=2",
        models,
    ]
    return stage.run(load_config(REPO_ROOT / "params" / "smoke" / "02_generation.yaml", overrides))


class Interrupted(BaseException):
    """Stands in for a kill: not an ``Exception``, so no stage records it as an item error."""


@contextmanager
def interrupted_after(cls: type, n_calls: int):
    """Within the block, ``cls.__call__`` raises :class:`Interrupted` on call ``n_calls + 1``; the block must
    be interrupted by it."""
    original = cls.__call__
    calls = 0

    def interrupting(self, *args):
        nonlocal calls
        if calls == n_calls:
            raise Interrupted
        calls += 1
        return original(self, *args)

    cls.__call__ = interrupting
    try:
        with pytest.raises(Interrupted):
            yield
    finally:
        cls.__call__ = original
