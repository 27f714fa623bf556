"""The area-prior json of DiverGen / X-Paste (``INPUT.MEAN_STD2_PATH``, ``datasets/metadata/area_mean_std2.json``).

``{"<LVIS category id>": [mean, std], ...}``: per category, the mean and population std of
sqrt(box area / image area) over its training annotations (:func:`divergen_lib.paste.area_prior` computes it).
Pasted instances of a category with an entry are sized by it; the others by the random scale.
"""

from __future__ import annotations

import math
import os

from .atomic import read_json, write_json
from .errors import FormatError

AreaPrior = dict[int, tuple[float, float]]


def read_area_prior(path: str | os.PathLike) -> AreaPrior:
    """Category id -> (mean, std); a file of another layout raises :class:`FormatError` naming the first bad entry."""
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise FormatError(f'{path}: an area prior is a non-empty object {{"<category id>": [mean, std]}}')
    return dict(_entry(path, key, value) for key, value in data.items())


def _entry(path: str | os.PathLike, key: str, value: object) -> tuple[int, tuple[float, float]]:
    if str(key).isdigit() and isinstance(value, list) and len(value) == 2 and all(map(_is_number, value)):
        mean, std = float(value[0]), float(value[1])
        if 0 < mean <= 1 and std >= 0:
            return int(key), (mean, std)
    raise FormatError(f"{path}: entry {key!r}: {value!r} is not [mean, std] of a category id (0 < mean <= 1, std >= 0)")


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def write_area_prior(prior: AreaPrior, path: str | os.PathLike) -> None:
    """Write ``prior`` in the originals' layout, categories in id order."""
    write_json({str(cid): [prior[cid][0], prior[cid][1]] for cid in sorted(prior)}, path)
