"""Published LVIS v1 val numbers (CenterNet2 detectors), to show beside this repository's runs.

Sources: the DiverGen README / abstract (Swin-L) and the X-Paste README (ResNet-50, Swin-L). These are the
papers' numbers, not results of this repository.
"""

from __future__ import annotations

from typing import Any

COLUMNS = ("AP_box", "AP_mask", "APr_box", "APr_mask")

PAPER_RESULTS: list[dict[str, Any]] = [
    {"method": "CenterNet2 baseline", "backbone": "ResNet-50", "values": (34.5, 30.8, 24.0, 21.6), "source": "X-Paste"},
    {"method": "X-Paste", "backbone": "ResNet-50", "values": (37.4, 33.2, 33.9, 29.7), "source": "X-Paste"},
    {"method": "CenterNet2 baseline", "backbone": "Swin-L", "values": (47.5, 42.3, 41.4, 36.8), "source": "DiverGen"},
    {"method": "X-Paste", "backbone": "Swin-L", "values": (50.1, 44.4, 48.2, 43.3), "source": "DiverGen"},
    {"method": "DiverGen", "backbone": "Swin-L", "values": (51.2, 45.5, 50.1, 45.8), "source": "DiverGen"},
]


def comparison_table(summary: list[dict[str, Any]], with_paper: bool, source: str) -> list[dict[str, Any]]:
    """Our runs (``summarize`` rows, labelled ``source``, e.g. the profile) in the papers' four columns, followed
    by the published rows when ``with_paper``; every row names its detector."""
    ours: dict[str, dict[str, Any]] = {}
    for row in summary:
        entry = ours.setdefault(row["run"], {"method": row["run"], "detector": row["detector"], "source": source})
        suffix = "box" if row["iou"] == "bbox" else "mask"
        entry[f"AP_{suffix}"], entry[f"APr_{suffix}"] = row["AP"], row["APr"]
    rows = [{k: e.get(k) for k in ("method", "detector", *COLUMNS, "source")} for e in ours.values()]
    if with_paper:
        rows += [
            {"method": p["method"], "detector": f"CenterNet2 {p['backbone']}",
             **dict(zip(COLUMNS, p["values"], strict=True)), "source": f"{p['source']} paper"}
            for p in PAPER_RESULTS
        ]  # fmt: skip
    return rows
