"""Parameters of the toy world (the offline stand-in for LVIS v1)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ToyWorldReport:
    """Figures only (never part of the world's fingerprint): example images shown."""

    examples: int = 8


@dataclass(frozen=True)
class ToyWorldConfig:
    """Size and long-tail shape of the toy world; see ``params/demo/00_toyworld.yaml``."""

    n_categories: int = 40
    n_extra_categories: int = 16
    n_train_images: int = 600
    n_val_images: int = 200
    image_size: int = 128
    frequency_split: tuple[float, float, float] = (0.3, 0.4, 0.3)
    max_frequent_fraction: float = 0.25
    max_objects_per_image: int = 6
    multi_instance_prob: float = 0.3
    min_val_images_per_category: int = 3
    rare_train_slice: float = 0.25
    min_visible_fraction: float = 0.35
    not_exhaustive_prob: float = 0.1
    neg_categories_per_image: int = 3
    clutter_strokes: int = 6
    force: bool = False
    report: ToyWorldReport = field(default_factory=ToyWorldReport)

    def __post_init__(self) -> None:
        from .catalog import N_KINDS

        if self.n_categories < 3:
            raise ValueError("n_categories must be at least 3 (one per frequency group)")
        if self.n_categories + self.n_extra_categories > N_KINDS:
            raise ValueError(f"n_categories + n_extra_categories must be at most {N_KINDS} (shape x pattern kinds)")
        if abs(sum(self.frequency_split) - 1) > 1e-6 or min(self.frequency_split) <= 0:
            raise ValueError("frequency_split must be three positive fractions (r, c, f) summing to 1")
        if not 0 < self.rare_train_slice <= 1:
            raise ValueError("rare_train_slice must be in (0, 1]")
        if self.image_size < 32 or self.n_train_images < 10 or self.n_val_images < 1:
            raise ValueError("image_size >= 32, n_train_images >= 10 and n_val_images >= 1 are needed")
