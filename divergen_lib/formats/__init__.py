"""Shared file formats: atomic writes, COCO RLE masks, LVIS json, JSONL manifests, the instance-pool json, the area
prior json."""

from .area_prior import AreaPrior, read_area_prior, write_area_prior
from .atomic import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_text,
    encode_png,
    read_json,
    remove_temp_files,
    write_json,
    write_png,
)
from .errors import FormatError
from .images import read_image
from .instance_pool import (
    InstancePool,
    PoolEntry,
    merge_instance_pools,
    read_instance_pool,
    resolve_pool_paths,
    write_instance_pool,
)
from .lvis_json import (
    annotation_mask,
    assign_frequencies,
    category_index,
    frequency_of,
    frequency_thresholds,
    image_file,
    read_lvis,
    validate_lvis,
    write_lvis,
)
from .manifest import append_row, appending, read_manifest, write_manifest
from .masks import check_same_size, mask_bbox, mask_to_rle, rle_area, rle_bbox, rle_to_mask, segmentation_to_rle
from .results import MAX_DETS, check_results, detections_to_results, read_results, top_detections, write_results

__all__ = [
    "MAX_DETS",
    "AreaPrior",
    "read_area_prior",
    "write_area_prior",
    "FormatError",
    "annotation_mask",
    "image_file",
    "InstancePool",
    "PoolEntry",
    "append_row",
    "appending",
    "assign_frequencies",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "category_index",
    "check_results",
    "check_same_size",
    "detections_to_results",
    "encode_png",
    "frequency_of",
    "frequency_thresholds",
    "mask_bbox",
    "mask_to_rle",
    "merge_instance_pools",
    "read_image",
    "read_instance_pool",
    "read_json",
    "read_lvis",
    "read_manifest",
    "read_results",
    "remove_temp_files",
    "resolve_pool_paths",
    "rle_area",
    "rle_bbox",
    "rle_to_mask",
    "segmentation_to_rle",
    "top_detections",
    "validate_lvis",
    "write_instance_pool",
    "write_json",
    "write_lvis",
    "write_manifest",
    "write_png",
    "write_results",
]
