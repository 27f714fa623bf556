from __future__ import annotations

import importlib
import json
import os
import struct
import subprocess
import sys
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from divergen_lib.config import load_config
from divergen_lib.formats import PoolEntry, encode_png, read_lvis, write_instance_pool, write_png
from divergen_lib.toyworld import build_toyworld

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE_PARAMS = REPO_ROOT / "params" / "smoke" / "00_toyworld.yaml"
SMOKE_FILTRATION = REPO_ROOT / "params" / "smoke" / "04_filtration.yaml"
SMOKE_TRAINING = REPO_ROOT / "params" / "smoke" / "05_training.yaml"
EXTRA_ID = 1000


def pytest_configure(config):
    """``DIVERGEN_REQUIRE_DETECTRON2=1`` (CI, where it is built): its tests must run, so a missing or broken
    detectron2 stops the session instead of skipping them."""
    if os.environ.get("DIVERGEN_REQUIRE_DETECTRON2") == "1":
        try:
            importlib.import_module("detectron2._C")
        except ImportError as err:
            raise pytest.UsageError(f"DIVERGEN_REQUIRE_DETECTRON2=1 but detectron2 does not import: {err}") from None


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


def smoke_generation_overrides(out, world):
    """``--set`` values for toy generations of ``world`` into ``out``: both styles, 2 per category for 10
    categories (8 target, 2 extra)."""
    style = "{{name: toy_{0}, backend: toy, options: {{world: {1}, style: {0}, size: 96}}}}"
    return [
        f"output_dir={out}",
        f"generation.categories.toyworld={world.root}",
        "generation.categories.ids=[1, 2, 3, 4, 5, 6, 7, 8, 31, 32]",
        "generation.images_per_category=2",
        f"generation.models=[{style.format('flat', world.root)}, {style.format('soft', world.root)}]",
    ]


@pytest.fixture(scope="session")
def smoke_generation(tmp_path_factory, smoke_world):
    """Toy generations (:func:`smoke_generation_overrides`) for the annotation and later stages."""
    from divergen_lib.generation import stage

    overrides = smoke_generation_overrides(tmp_path_factory.mktemp("generation"), smoke_world)
    return stage.run(load_config(REPO_ROOT / "params" / "smoke" / "02_generation.yaml", overrides))


@pytest.fixture(scope="session")
def smoke_toy_clip(tmp_path_factory, smoke_world):
    """A CLIP cache folder holding the toy CLIP of the smoke filtration params for the smoke world, trained once per
    test session (copy it to ``<output_dir>/clip``)."""
    from divergen_lib.clip_models import toy_clip

    cache = tmp_path_factory.mktemp("clip")
    toy_clip(smoke_world, load_config(SMOKE_FILTRATION).section("filtration").toy_clip, cache)
    return cache


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


def png_claiming(width, height):
    """An RGBA PNG whose header says ``width``×``height`` (its data holds one pixel): only decoding would tell."""
    data = bytearray(encode_png(np.zeros((1, 1, 4), np.uint8)))
    struct.pack_into(">II", data, 16, width, height)  # IHDR data follows the signature, chunk length and type
    struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))
    return bytes(data)


def rgba(h, w, colour):
    crop = np.zeros((h, w, 4), np.uint8)
    crop[..., :3] = colour
    crop[1:-1, 1:-1, 3] = 255
    return crop


@pytest.fixture(scope="session")
def pool_world(tmp_path_factory, smoke_world):
    """The smoke world plus a category metadata file with one extra category and a pool of solid crops for two
    target categories and the extra one."""
    root = tmp_path_factory.mktemp("pool")
    categories = read_lvis(smoke_world.json_path("train"))["categories"]
    extra = {**categories[0], "id": EXTRA_ID, "name": "toy_extra", "synonyms": ["toy_extra"], "image_count": 0}
    metadata = [*categories, extra]
    (root / "categories.json").write_text(json.dumps(metadata))
    index = {c["id"]: i for i, c in enumerate(sorted(metadata, key=lambda c: c["id"]))}
    pool = {}
    for n, cid in enumerate((categories[0]["id"], categories[1]["id"], EXTRA_ID)):
        pool[index[cid]] = []
        for k in range(3):
            write_png(rgba(12 + 4 * k, 16, (60 * n, 200, 40 * k)), root / f"{cid}_{k}.png")
            pool[index[cid]].append(PoolEntry(f"{cid}_{k}.png", preprocessed=True))
    write_instance_pool(pool, root / "pool.json")
    return smoke_world, root


def smoke_training_overrides(out, world):
    """``--set`` values pointing the smoke training params at ``world`` and ``out``, one baseline run."""
    return [
        f"output_dir={out}",
        f"training.train.annotations={world.json_path('train')}",
        f"training.train.image_root={world.root}",
        f"training.val.annotations={world.json_path('val')}",
        f"training.val.image_root={world.root}",
        "training.categories=null",
        "training.runs=[{name: baseline}]",
    ]


def smoke_training(out, world, *overrides):
    return load_config(SMOKE_TRAINING, [*smoke_training_overrides(out, world), *overrides])


def pool_runs(root, name="divergen"):
    return [
        f"training.categories={root / 'categories.json'}",
        f"training.runs=[{{name: {name}, pool: {root / 'pool.json'}}}]",
    ]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, pool_world):
    """A 4-step run with the pool (extra category, so truncated) on the smoke world."""
    world, root = pool_world
    out = tmp_path_factory.mktemp("trained")
    config = smoke_training(out, world, *pool_runs(root))
    from divergen_lib.training import stage

    (output,) = stage.run(config)
    return config, output
