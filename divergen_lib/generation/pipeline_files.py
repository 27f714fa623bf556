"""Where a diffusers pipeline's files are: a local folder or a Hugging Face repo in the local cache (no torch
or diffusers import, so the preflight check can use it)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id

from ..config import ConfigError
from ..paths import from_root


def _is_repo_id(text: str) -> bool:
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def locate_pipeline(path: str | None, what: str, allow_download: bool) -> tuple[str, Path]:
    """(what to pass to ``from_pretrained``, the folder holding its ``model_index.json``), or one ConfigError.

    A relative folder is taken from the repository root; a repo id is looked up in the local cache only, unless
    ``allow_download``."""
    if not path:
        raise ConfigError(f"{what}: no path given (a diffusers pipeline folder or Hugging Face repo id)")
    local = from_root(Path(path).expanduser())
    if local.exists():
        if not (local / "model_index.json").is_file():
            raise ConfigError(f"{what}: no diffusers pipeline at {local} (no model_index.json)")
        return str(local), local
    if not _is_repo_id(path):
        raise ConfigError(f"{what}: no diffusers pipeline at {path} (no such folder)")
    try:
        index = hf_hub_download(path, "model_index.json", local_files_only=not allow_download)
    except LocalEntryNotFoundError:
        reason = "downloads are off (allow_download: false)" if not allow_download else "offline"
        raise ConfigError(
            f"{what}: no diffusers pipeline at {path} (no such folder, not in the Hugging Face cache "
            f"{constants.HF_HUB_CACHE}) and {reason}"
        ) from None
    return path, Path(index).parent
