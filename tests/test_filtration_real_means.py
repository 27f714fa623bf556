"""The real-instance category means, streamed over chunks of real images (:mod:`divergen_lib.filtration.real_means`)."""

import shutil
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np
import pytest

from divergen_lib import crops
from divergen_lib.clip_models import toy_clip
from divergen_lib.config import load_config
from divergen_lib.crops import annotation_crops
from divergen_lib.distributed import DistInfo
from divergen_lib.filtration import real_means
from divergen_lib.filtration.layout import FiltrationLayout
from divergen_lib.filtration.rules import category_mean
from divergen_lib.formats import image_file, read_lvis, read_manifest

from .conftest import SMOKE_FILTRATION

CHUNK = 16  # real images per chunk here: the smoke world's 120 train images make 8 chunks
DIGEST = "settings"


@pytest.fixture(scope="module")
def clip(smoke_world, smoke_toy_clip):
    return toy_clip(smoke_world, load_config(SMOKE_FILTRATION).section("filtration").toy_clip, smoke_toy_clip).clip


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(real_means, "CHUNK_IMAGES", CHUNK)


def settings(world, *extra):
    overrides = [f"filtration.real.annotations={world.json_path('train')}", f"filtration.real.image_root={world.root}"]
    return load_config(SMOKE_FILTRATION, [*overrides, "filtration.num_workers=0", *extra]).section("filtration")


def category_ids(world):
    return sorted(c["id"] for c in read_lvis(world.json_path("train"))["categories"])


def means(clip, cfg, world, out):
    return real_means.category_means(clip, cfg, category_ids(world), out, DIGEST, DistInfo())


def part_arrays(out):
    """Every part file's arrays, by file name."""
    parts = sorted((out / "shards" / "real_means").glob("*.npz"))
    assert parts
    return {p.name: dict(np.load(p)) for p in parts}


@pytest.mark.parametrize("cap", [None, 3])
def test_streamed_means_equal_each_category_embedded_in_one_go(tmp_path, smoke_world, clip, cap):
    cfg = settings(smoke_world, f"filtration.inter_similarity.max_real_per_category={cap or 'null'}")
    streamed = means(clip, cfg, smoke_world, tmp_path)
    data = read_lvis(smoke_world.json_path("train"))
    images = {img["id"]: img for img in data["images"]}
    by_category = defaultdict(list)
    for ann in sorted(data["annotations"], key=lambda a: a["id"]):
        by_category[ann["category_id"]].append(ann)
    sim = cfg.inter_similarity
    for c in category_ids(smoke_world):
        selected = by_category[c][:cap]
        real, _ = annotation_crops(images, selected, smoke_world.root, sim.crop_padding, sim.blur_kernel)
        assert len(real) == len(selected)
        np.testing.assert_allclose(streamed[c], category_mean(clip.encode_images(real)), atol=1e-6)
    held = {a["image_id"] for anns in by_category.values() for a in anns[:cap]}
    assert len(part_arrays(tmp_path)) == -(-len(held) // CHUNK)


def test_each_real_image_is_read_once(tmp_path, smoke_world, clip, monkeypatch):
    reads = Counter()
    read_image = crops.read_image

    def counted(path, *args, **kwargs):
        reads[str(path)] += 1
        return read_image(path, *args, **kwargs)

    monkeypatch.setattr(crops, "read_image", counted)
    means(clip, settings(smoke_world), smoke_world, tmp_path)
    annotated = {a["image_id"] for a in read_lvis(smoke_world.json_path("train"))["annotations"]}
    assert len(reads) == len(annotated) and set(reads.values()) == {1}


def test_crops_are_encoded_a_batch_at_a_time_and_summed_as_they_go(tmp_path, smoke_world, clip, monkeypatch):
    small = replace(clip, batch_size=8)
    batches, held = [], []
    encode, add = small.encode_pixels, real_means._ChunkSums.add

    def recorded(pixels):
        batches.append(len(pixels))
        return encode(pixels)

    def watched(self, categories, pixels):
        add(self, categories, pixels)
        held.append(sum(len(p) for p in self.pending))
        assert held[-1] == len(self.categories) < small.batch_size  # the rest is in the sums already

    monkeypatch.setattr(small, "encode_pixels", recorded)
    monkeypatch.setattr(real_means._ChunkSums, "add", watched)
    means(small, settings(smoke_world), smoke_world, tmp_path)
    per_chunk = [int(part["counts"].sum()) for part in part_arrays(tmp_path).values()]
    expected = [n for crops_ in per_chunk for n in [8] * (crops_ // 8) + [crops_ % 8] if n]
    assert batches == expected and max(held) > 0


def test_a_rerun_redoes_only_a_missing_chunk_and_new_settings_redo_all(tmp_path, smoke_world, clip, monkeypatch):
    cfg = settings(smoke_world)
    means(clip, cfg, smoke_world, tmp_path)
    layout = FiltrationLayout(tmp_path)
    first = layout.real_means.read_bytes()
    layout.real_means_part(DIGEST, CHUNK, 3).unlink()
    chunks = []
    item = real_means._RealImages.__getitem__

    def recorded(self, i):
        chunks.append(self.images[i][0])
        return item(self, i)

    monkeypatch.setattr(real_means._RealImages, "__getitem__", recorded)
    means(clip, cfg, smoke_world, tmp_path)
    assert set(chunks) == {3} and layout.real_means.read_bytes() == first
    chunks.clear()
    real_means.category_means(clip, cfg, category_ids(smoke_world), tmp_path, "other", DistInfo())
    assert set(chunks) == set(range(8))


def test_loader_workers_change_no_sum(tmp_path, smoke_world, clip):
    means(clip, settings(smoke_world), smoke_world, tmp_path / "main")
    means(clip, settings(smoke_world, "filtration.num_workers=2"), smoke_world, tmp_path / "workers")
    main, workers = part_arrays(tmp_path / "main"), part_arrays(tmp_path / "workers")
    assert main.keys() == workers.keys()
    for name, arrays in main.items():
        assert all(np.array_equal(arrays[key], workers[name][key]) for key in ("category_ids", "sums", "counts"))
    assert FiltrationLayout(tmp_path / "main").real_means.read_bytes() == (
        FiltrationLayout(tmp_path / "workers").real_means.read_bytes()
    )


def test_an_unreadable_real_image_is_skipped_not_a_crash(tmp_path, smoke_world, clip):
    root = tmp_path / "world"
    shutil.copytree(smoke_world.root, root)
    data = read_lvis(smoke_world.json_path("train"))
    victim = data["annotations"][0]
    image = next(img for img in data["images"] if img["id"] == victim["image_id"])
    image_file(image, root).write_bytes(b"broken")
    lost = Counter(a["category_id"] for a in data["annotations"] if a["image_id"] == victim["image_id"])
    cfg = settings(smoke_world, f"filtration.real.image_root={root}", "filtration.num_workers=2")
    means(clip, cfg, smoke_world, tmp_path / "out")
    rows = {r["category_id"]: r["n_real"] for r in read_manifest(FiltrationLayout(tmp_path / "out").real_means)}
    total = Counter(a["category_id"] for a in data["annotations"])
    assert rows == {c: total[c] - lost[c] for c in category_ids(smoke_world)}
