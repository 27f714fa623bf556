"""The area prior: the originals' ``area_mean_std2.json`` read and written in their layout, and our recomputation of
it (``paste.area_prior``) against that file on LVIS-shaped data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from divergen_lib.formats import FormatError, read_area_prior, write_area_prior
from divergen_lib.paste import area_prior

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "data" / "divergen_reference"
XPASTE_PRIOR = SHARED / "third_party" / "XPaste" / "datasets" / "metadata" / "area_mean_std2.json"
needs_reference = pytest.mark.skipif(
    not (REFERENCE / "area_mean_std2.json").is_file(), reason="DiverGen's reference files (../shared) are absent"
)
SIZES = [(640, 480), (480, 640), (640, 427), (500, 333), (612, 612)]


def test_area_prior_files_round_trip_and_a_bad_entry_is_one_line(tmp_path):
    prior = {3: (0.2, 0.05), 1: (0.1, 0.0)}
    write_area_prior(prior, tmp_path / "prior.json")
    assert list(json.loads((tmp_path / "prior.json").read_text())) == ["1", "3"]
    assert read_area_prior(tmp_path / "prior.json") == prior
    for bad, match in [
        ({"1": [0.2, -0.1]}, r"entry '1': \[0.2, -0.1\] is not \[mean, std\]"),
        ({"a": [0.2, 0.1]}, "entry 'a'"),
        ({"1": [0.2, 0.1, 3]}, "entry '1'"),
        ({"1": [True, 0.1]}, "entry '1'"),
        ([[0.2, 0.1]], "non-empty object"),
    ]:
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(FormatError, match=match):
            read_area_prior(tmp_path / "bad.json")


def sample_with(mean: float, std: float, n: int) -> list[float] | None:
    """``n`` values in (0, 1] whose mean is ``mean`` and population std is ``std``: k at a low value and n - k at
    a high one, or, where the high one would pass 1 (a box as large as its image), one value at 1 and the others
    so (None if no such values exist)."""
    if n == 1:
        return [mean] if std == 0 else None
    for k in range(n - 1, 0, -1):
        low, high = mean - std * np.sqrt((n - k) / k), mean + std * np.sqrt(k / (n - k))
        if low > 0 and high <= 1:
            return [low] * k + [high] * (n - k)
    rest_mean = (n * mean - 1) / (n - 1)
    rest_var = (n * (std**2 + mean**2) - 1) / (n - 1) - rest_mean**2
    rest = sample_with(rest_mean, float(np.sqrt(rest_var)), n - 1) if rest_mean > 0 and rest_var >= 0 else None
    return None if rest is None else [*rest, 1.0]


def lvis_shaped(reference: dict[int, tuple[float, float]], cat_info: list[dict], rng: np.random.Generator) -> dict:
    """A training json of LVIS's shape: its 1203 categories with their frequencies, images of LVIS's sizes holding
    instances of several categories (boxes of any aspect, polygon masks), and images without annotations. Each
    category holds up to 8 instances (1 where LVIS has 1) whose sqrt(box area / image area) have the reference's
    mean and population std."""
    images, annotations = [], []
    for info in cat_info:
        values = sample_with(*reference[info["id"]], min(info["instance_count"], 8))
        assert values is not None, info["name"]
        for v in values:
            if not images or len(annotations) % 5 == 0:  # a new image every 5 instances, and an empty one
                for _ in range(1 + (len(images) % 7 == 0)):
                    width, height = SIZES[len(images) % len(SIZES)]
                    images.append({"id": len(images) + 1, "width": width, "height": height})
            image = images[-1]
            aspect = rng.uniform(max(v, 0.5), min(1 / v, 2.0))
            w, h = v * image["width"] * aspect, v * image["height"] / aspect
            x, y = rng.uniform(0, image["width"] - w), rng.uniform(0, image["height"] - h)
            polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image["id"],
                    "category_id": info["id"],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "segmentation": [polygon],
                }  # fmt: skip
            )
    categories = [{k: c[k] for k in ("id", "name", "synonyms", "def", "frequency", "synset")} for c in cat_info]
    return {"images": images, "annotations": annotations, "categories": categories}


@needs_reference
def test_recomputed_prior_has_the_originals_layout_and_values_on_lvis_shaped_data(tmp_path):
    """The 44 LVIS categories with a single training instance have std 0.0 in the originals' file: a population std
    (a sample std would be undefined there), which is what we compute."""
    reference = read_area_prior(REFERENCE / "area_mean_std2.json")
    cat_info = json.loads((REFERENCE / "lvis_v1_train_cat_info.json").read_text())
    assert sorted(reference) == list(range(1, 1204))
    single = [c["id"] for c in cat_info if c["instance_count"] == 1]
    assert len(single) == 44 and all(reference[cid][1] == 0.0 for cid in single)

    dataset = lvis_shaped(reference, cat_info, np.random.default_rng(0))
    assert any(not any(a["image_id"] == i["id"] for a in dataset["annotations"]) for i in dataset["images"][:10])
    write_area_prior(area_prior(dataset), tmp_path / "area_mean_std2.json")
    ours = json.loads((tmp_path / "area_mean_std2.json").read_text())
    theirs = json.loads((REFERENCE / "area_mean_std2.json").read_text())
    assert sorted(ours, key=int) == sorted(theirs, key=int)  # the same keys: LVIS ids 1..1203 as strings
    assert all(len(ours[k]) == 2 for k in ours)
    for key, (mean, std) in theirs.items():
        assert ours[key] == pytest.approx([mean, std], rel=1e-9, abs=1e-12), key


@pytest.mark.skipif(not XPASTE_PRIOR.is_file(), reason="the X-Paste snapshot (../shared) is absent")
@needs_reference
def test_xpastes_and_divergens_area_prior_files_are_the_same_prior():
    assert read_area_prior(XPASTE_PRIOR) == read_area_prior(REFERENCE / "area_mean_std2.json")
