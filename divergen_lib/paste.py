"""Generative copy-paste (X-Paste / DiverGen, METHOD_SPEC §7.3), engine-agnostic.

``paste_instances(image, annotations, crops, prior, cfg, rng)`` takes an H×W×3 uint8 image and LVIS-style
annotation dicts (``category_id``, ``bbox``, and ``segmentation`` or a boolean H×W ``mask``) and returns the pasted
image and updated annotations: ``n ~ U{0..max_samples-1}`` instances are drawn (``cas_random``: category uniformly,
then an instance; ``random``: any instance), sized by the category's area prior (else a random scale), flipped,
centred uniformly, and pasted in turn; each paste removes its pixels from the masks under it, their boxes are
recomputed from the masks, and an occluded instance is kept only if its box moved by at most 10 px on every side or
more than 300 px of its mask remain. New instances carry ``"pasted": True``. Randomness comes only from ``rng``.

Work stays local: an instance is blended only inside its own window, and an annotation is decoded (then kept as a
bitmap cropped to its tight box) only when a paste puts pixels inside its box. Annotations that no paste touches keep
their ``segmentation``, ``bbox`` and ``area`` as given. DiverGen instead replaces every box by its mask's tight box
after the first paste (§7.3 step 4); we keep the given box, since LVIS boxes are already tight to within rounding
and recomputing them would mean decoding every mask.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from .formats import AreaPrior, mask_to_rle, rle_bbox, rle_to_mask, segmentation_to_rle

KEEP_SHIFT_PX = 10
KEEP_AREA_PX = 300


@dataclass(frozen=True)
class PasteConfig:
    """``max_samples``: instances per image ~ U{0..max_samples-1}; ``sampling``: ``cas_random`` (category,
    then instance) or ``random`` (any instance); ``blend``: ``hard``, ``alpha`` or ``gaussian`` (5×5 blurred
    mask); ``random_scale``: the (min, max) fraction of the crop size for categories without an area prior."""

    max_samples: int = 20
    sampling: Literal["cas_random", "random"] = "cas_random"
    blend: Literal["hard", "alpha", "gaussian"] = "hard"
    random_scale: tuple[float, float] = (0.05, 0.3)
    aspect_jitter: float = 0.2
    flip_prob: float = 0.5


def area_prior(dataset: dict[str, Any]) -> AreaPrior:
    """Per category: mean and population std of sqrt(box area / image area) over its training annotations (the
    originals' ``area_mean_std2.json``, :mod:`.formats.area_prior`)."""
    sizes = {img["id"]: img["width"] * img["height"] for img in dataset["images"]}
    values: dict[int, list[float]] = defaultdict(list)
    for ann in dataset["annotations"]:
        w, h = ann["bbox"][2:]
        values[ann["category_id"]].append(np.sqrt(w * h / sizes[ann["image_id"]]))
    return {cid: (float(np.mean(v)), float(np.std(v))) for cid, v in values.items()}


def _target_size(
    crop: np.ndarray,
    prior: tuple[float, float] | None,
    height: int,
    width: int,
    cfg: PasteConfig,
    rng: np.random.Generator,
) -> tuple[int, int] | None:
    ch, cw = crop.shape[:2]
    if prior is not None:
        s = float(np.clip(rng.normal(*prior), 10 / height, 0.5))
        aspect = cw / ch * rng.uniform(1 - cfg.aspect_jitter, 1 + cfg.aspect_jitter)
        w = int(np.sqrt(aspect * s * s * height * width))
        h = int(w / aspect)
        if w < 5 or h < 5 or w >= width or h >= height:
            return None
        return w, h
    f = rng.uniform(*cfg.random_scale)
    w, h = int(f * cw), int(f * ch)
    return None if w < 3 or h < 3 or w >= width or h >= height else (w, h)


@dataclass
class _Instance:
    """An instance while pasting: its annotation, its current box and, once touched, its mask cropped to that box."""

    ann: dict[str, Any]
    box: list[float]
    mask: np.ndarray | None = None


def _tight(mask: np.ndarray, x: int, y: int) -> tuple[np.ndarray, list[float]]:
    """``mask`` (top-left pixel at (x, y)) cropped to its foreground, and the tight box of that (zeros if empty)."""
    rows, cols = np.asarray(mask.any(axis=1)), np.asarray(mask.any(axis=0))
    if not rows.any():
        return mask[:0, :0], [0.0, 0.0, 0.0, 0.0]
    y0, y1 = int(rows.argmax()), rows.size - int(rows[::-1].argmax())
    x0, x1 = int(cols.argmax()), cols.size - int(cols[::-1].argmax())
    return mask[y0:y1, x0:x1], [float(x + x0), float(y + y0), float(x1 - x0), float(y1 - y0)]


def _decode(ann: dict[str, Any], height: int, width: int) -> tuple[np.ndarray, list[float]]:
    """An annotation's mask (``mask`` array, else segmentation), copied and cropped to its tight box; that box."""
    if "mask" in ann:
        mask, box = _tight(np.asarray(ann["mask"], bool), 0, 0)
        return mask.copy(), box
    rle = segmentation_to_rle(ann["segmentation"], height, width)
    box = rle_bbox(rle)  # from the runs, without scanning the bitmap
    x, y, w, h = map(int, box)
    return rle_to_mask(rle)[y : y + h, x : x + w].copy(), box


def _touched(boxes: np.ndarray, new: np.ndarray, new_box: list[float]) -> np.ndarray:
    """Indices of the boxes (N×4 ``x, y, w, h``, pixel range ``int(x)..ceil(x + w)``) holding pixels of ``new``."""
    nx, ny = int(new_box[0]), int(new_box[1])
    x0 = np.maximum(boxes[:, 0].astype(np.int64), nx)
    y0 = np.maximum(boxes[:, 1].astype(np.int64), ny)
    x1 = np.minimum(np.ceil(boxes[:, 0] + boxes[:, 2]).astype(np.int64), nx + new.shape[1])
    y1 = np.minimum(np.ceil(boxes[:, 1] + boxes[:, 3]).astype(np.int64), ny + new.shape[0])
    overlap = np.flatnonzero((x0 < x1) & (y0 < y1))
    hit = [new[y0[k] - ny : y1[k] - ny, x0[k] - nx : x1[k] - nx].any() for k in overlap]
    return overlap[np.asarray(hit, bool)]


def _occlude(inst: _Instance, new: np.ndarray, new_box: list[float], height: int, width: int) -> bool:
    """Remove ``new``'s pixels from ``inst`` (decoded first if untouched), re-tighten its box; whether it is kept."""
    before = inst.box
    if inst.mask is None:
        inst.mask, inst.box = _decode(inst.ann, height, width)
    (x, y), (nx, ny) = map(int, inst.box[:2]), map(int, new_box[:2])
    x0, x1 = max(x, nx), min(x + inst.mask.shape[1], nx + new.shape[1])
    y0, y1 = max(y, ny), min(y + inst.mask.shape[0], ny + new.shape[0])
    if x0 < x1 and y0 < y1:
        inst.mask[y0 - y : y1 - y, x0 - x : x1 - x] &= ~new[y0 - ny : y1 - ny, x0 - nx : x1 - nx]
    inst.mask, inst.box = _tight(inst.mask, x, y)
    return _kept(before, inst.box, int(inst.mask.sum()))


def _blend(out: np.ndarray, part: np.ndarray, mask: np.ndarray, x: int, y: int, blend: str) -> None:
    """Composite the RGBA ``part`` (hard mask ``mask``) onto ``out`` at (x, y) in place, over only the pixels the
    blend can change. ``out`` is uint8 for ``hard`` blending, else float32."""
    h, w = mask.shape
    if blend == "hard":
        out[y : y + h, x : x + w][mask] = part[..., :3][mask]
        return
    if blend == "alpha":
        rgb, weight, window = part[..., :3], part[..., 3:].astype(np.float32) / 255.0, out[y : y + h, x : x + w]
    else:  # gaussian: the 5×5-blurred hard mask reaches 2 px further; a 4-px margin makes the blur's reflect-101
        # border at an inner window edge read only zeros, so the weights equal those of a full-canvas blur
        x0, y0 = max(x - 4, 0), max(y - 4, 0)
        x1, y1 = min(x + w + 4, out.shape[1]), min(y + h + 4, out.shape[0])
        hard = np.zeros((y1 - y0, x1 - x0), np.float32)
        hard[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = mask
        rgb = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
        rgb[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = part[..., :3]
        weight, window = cv2.GaussianBlur(hard, (5, 5), 0)[..., None], out[y0:y1, x0:x1]
    window *= 1 - weight
    window += rgb * weight


def _output(inst: _Instance, height: int, width: int) -> dict[str, Any]:
    """The returned annotation: as given if untouched (a ``mask`` array encoded as RLE), else with the RLE, tight box
    and pixel area of its remaining mask."""
    ann = {k: v for k, v in inst.ann.items() if k != "mask"}
    if inst.mask is None and "mask" not in inst.ann:
        return ann
    if inst.mask is None:
        full = np.asarray(inst.ann["mask"], bool)
        area = np.count_nonzero(full)
    else:
        x, y = int(inst.box[0]), int(inst.box[1])
        full = np.zeros((height, width), np.uint8, order="F")
        full[y : y + inst.mask.shape[0], x : x + inst.mask.shape[1]] = inst.mask
        area = np.count_nonzero(inst.mask)
    return {**ann, "bbox": inst.box, "area": int(area), "segmentation": mask_to_rle(full)}


def paste_instances(
    image: np.ndarray,
    annotations: list[dict[str, Any]],
    crops: Mapping[int, Sequence[np.ndarray]],
    prior: dict[int, tuple[float, float]],
    cfg: PasteConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Paste instances from ``crops`` (category id -> RGBA arrays) into ``image``; see the module docstring.

    Returns a new uint8 image of the same shape and new annotation dicts (``image`` and ``annotations`` themselves
    when no instance is drawn). Annotations that no paste touches keep their ``segmentation``, ``bbox`` and ``area``
    objects (one given as a ``mask`` array gets its RLE and pixel area); touched and pasted ones get a compressed RLE,
    the tight box of their mask and its pixel area."""
    height, width = image.shape[:2]
    categories = sorted(c for c, v in crops.items() if v)
    n = int(rng.integers(0, cfg.max_samples)) if categories else 0
    if n == 0:
        return image, annotations
    ends = np.cumsum([len(crops[c]) for c in categories])  # ``random``: instance j of the flattened pool
    out = image.astype(np.uint8 if cfg.blend == "hard" else np.float32)
    live = [_Instance(a, list(a["bbox"])) for a in annotations]
    for _ in range(n):
        if cfg.sampling == "cas_random":
            cid = categories[int(rng.integers(len(categories)))]
            crop = crops[cid][int(rng.integers(len(crops[cid])))]
        else:
            j = int(rng.integers(ends[-1]))
            c = int(np.searchsorted(ends, j, side="right"))
            cid = categories[c]
            crop = crops[cid][j - (int(ends[c - 1]) if c else 0)]
        size = _target_size(crop, prior.get(cid), height, width, cfg, rng)
        if size is None:
            continue
        rgba = cv2.resize(crop, size, interpolation=cv2.INTER_LINEAR)
        if rng.random() < cfg.flip_prob:
            rgba = rgba[:, ::-1]
        h, w = rgba.shape[:2]
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)  # the centre; the part outside the image is cut
        x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
        xa, ya = max(x0, 0), max(y0, 0)
        part = rgba[ya - y0 : min(y0 + h, height) - y0, xa - x0 : min(x0 + w, width) - x0]
        visible = part[..., 3] > 0
        new, new_box = _tight(visible, xa, ya)
        if new.size == 0:
            continue
        _blend(out, part, visible, xa, ya, cfg.blend)
        boxes = np.array([inst.box for inst in live], np.float64).reshape(-1, 4)
        dropped = {int(k) for k in _touched(boxes, new, new_box) if not _occlude(live[k], new, new_box, height, width)}
        live = [inst for k, inst in enumerate(live) if k not in dropped]
        live.append(_Instance({"category_id": cid, "pasted": True}, new_box, new))
    result = out if cfg.blend == "hard" else np.clip(out, 0, 255).astype(np.uint8)
    return result, [_output(inst, height, width) for inst in live]


def _kept(old_box: list[float], new_box: list[float], area: int) -> bool:
    """DiverGen's rule: every box edge moved by at most 10 px, or more than 300 px of mask left."""
    ox, oy, ow, oh = old_box
    nx, ny, nw, nh = new_box
    moved = max(abs(ox - nx), abs(oy - ny), abs(ox + ow - nx - nw), abs(oy + oh - ny - nh))
    return area > 0 and (moved <= KEEP_SHIFT_PX or area > KEEP_AREA_PX)
