"""Rank/world from torchrun's environment, ``ids[rank::world]`` sharding, and a resumable map.

Every heavy stage runs its per-item work through :func:`resumable_map`: each rank appends finished rows to
its own shard manifest (one fsync'd line per item), so a killed run loses at most the item in flight; a
rerun first clears the temp files of writes the kill cut short (:func:`stage_session`), then
skips every id already recorded by any shard (unless its row is an error, or was made by other settings: each
row records the digest of the settings that made it); rank 0 merges the shards into one manifest whose row
order follows the input ids, so the result does not depend on the number of processes.

Ranks may finish a map hours apart (uneven resumes, slower GPUs), longer than a process group's timeout, so the
end of a map is a file barrier, not a collective: each rank writes ``<name>.rank<r>-of-<W>.done`` beside its shard
once the shard is flushed, holding a token rank 0 drew for this call, and every rank polls until all markers hold it
(``DIVERGEN_BARRIER_TIMEOUT_S``, 48 h by default); a marker of an earlier run holds another token and is not trusted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DiskFullError, InputError, disk_full, no_space_left
from .folder_lock import folder_lock
from .formats import append_row, appending, atomic_write_text, read_manifest, remove_temp_files, write_manifest
from .progress import progress

if TYPE_CHECKING:
    from torch.nn import Module

log = logging.getLogger(__name__)

SETTINGS_KEY = "settings"  # the manifest column holding the digest of the settings that made a row
BARRIER_TIMEOUT_ENV = "DIVERGEN_BARRIER_TIMEOUT_S"  # how long a rank waits for the others at the end of a map
DEFAULT_BARRIER_TIMEOUT_S = 48 * 3600.0
POLL_S = 5.0  # seconds between two looks at the other ranks' markers
REPORT_S = 300.0  # seconds between two "waiting for ranks ..." log lines


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as set by torchrun; a single process when absent."""
    try:
        rank = int(os.environ.get("RANK", 0))
        world = int(os.environ.get("WORLD_SIZE", 1))
        local = int(os.environ.get("LOCAL_RANK", rank))
    except ValueError as err:
        raise RuntimeError(f"malformed torchrun environment: {err}") from None
    if world < 1 or not 0 <= rank < world:
        raise RuntimeError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return DistInfo(rank, world, local)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def shard(ids: Sequence[Any], rank: int | None = None, world_size: int | None = None) -> list[Any]:
    """This rank's share of ``ids``: ``ids[rank::world_size]`` (defaults from :func:`dist_info`)."""
    info = dist_info()
    rank = info.rank if rank is None else rank
    world_size = info.world_size if world_size is None else world_size
    return list(ids[rank::world_size])


def resolve_device(device: str, info: DistInfo | None = None) -> str:
    """``auto`` -> this rank's GPU when CUDA is available, else ``cpu``; ``cuda`` -> ``cuda:<local rank>``."""
    import torch

    info = info or dist_info()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is available (use device: auto or cpu)")
        return f"cuda:{info.local_rank}"
    return device


def init_process_group(info: DistInfo | None = None) -> None:
    """Join torchrun's process group (NCCL on GPUs, gloo otherwise) when several processes run."""
    import torch
    import torch.distributed as dist

    info = info or dist_info()
    if info.world_size > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def group_up() -> bool:
    """Whether a torch.distributed process group is up."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every rank when a torch.distributed process group is up; a no-op otherwise (a collective: for short
    waits only, under the group's timeout)."""
    if group_up():
        import torch.distributed as dist

        dist.barrier()


@contextmanager
def stage_session(out_dir: Path) -> Iterator[DistInfo]:
    """A sharded stage writing under ``out_dir``: join the process group (under torchrun); rank 0 takes the folder's
    writer lock (:mod:`.folder_lock`: a second run on the folder is refused) and removes the temp files a killed
    run's atomic writes left there, while every rank waits."""
    info = dist_info()
    init_process_group(info)
    with folder_lock(out_dir) if info.is_main else contextlib.nullcontext():
        if info.is_main:
            leftovers = remove_temp_files(out_dir)
            if leftovers:
                log.info("%s: removed %d temp files of interrupted writes", out_dir, len(leftovers))
        barrier()
        yield info


def shard_path(out_dir: Path, name: str, rank: int, world_size: int) -> Path:
    """File of one rank's shard manifest."""
    return out_dir / "shards" / f"{name}.rank{rank:03d}-of-{world_size:03d}.jsonl"


def done_marker(out_dir: Path, name: str, rank: int, world_size: int) -> Path:
    """File saying one rank has finished its share of map ``name`` (beside its shard, named like it)."""
    return shard_path(out_dir, name, rank, world_size).with_suffix(".done")


def run_token(info: DistInfo) -> str | None:
    """A token every rank of this call shares and no earlier call had: rank 0 draws it and broadcasts it (a short
    collective, as all ranks start a map together); ``None`` without a process group of several ranks."""
    if info.world_size == 1 or not group_up():
        return None
    import torch
    import torch.distributed as dist

    device = f"cuda:{info.local_rank}" if dist.get_backend() == "nccl" else "cpu"
    token = torch.tensor([secrets.randbits(63) if info.is_main else 0], dtype=torch.int64, device=device)
    dist.broadcast(token, src=0)
    return f"{int(token.item()):016x}"


def barrier_timeout_s() -> float:
    """Seconds :func:`wait_for_ranks` waits: ``DIVERGEN_BARRIER_TIMEOUT_S``, else 48 h."""
    raw = os.environ.get(BARRIER_TIMEOUT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_BARRIER_TIMEOUT_S
    except ValueError:
        raise InputError(f"{BARRIER_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


def _holds(path: Path, token: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == token
    except FileNotFoundError:
        return False


def wait_for_ranks(out_dir: Path, name: str, info: DistInfo, token: str) -> None:
    """Mark this rank's share of map ``name`` done with ``token``, then wait until every rank's marker holds it,
    polling every :data:`POLL_S` seconds for up to :func:`barrier_timeout_s` (rank 0 logs who it waits for)."""
    markers = [done_marker(out_dir, name, r, info.world_size) for r in range(info.world_size)]
    atomic_write_text(markers[info.rank], token)
    timeout = barrier_timeout_s()
    start = time.monotonic()
    reported = start - REPORT_S
    while True:
        waiting = [r for r, marker in enumerate(markers) if not _holds(marker, token)]
        if not waiting:
            return
        now = time.monotonic()
        ranks = ", ".join(map(str, waiting))
        if now - start >= timeout:
            raise RuntimeError(
                f"{name}: ranks {ranks} did not finish within {timeout:.0f} s ({BARRIER_TIMEOUT_ENV}); "
                "rerun the stage to resume"
            )
        if info.is_main and now - reported >= REPORT_S:
            done = info.world_size - len(waiting)
            log.info("%s: waiting for ranks %s (finished %d of %d)", name, ranks, done, info.world_size)
            reported = now
        time.sleep(POLL_S)


def _failed(row: dict[str, Any]) -> bool:
    return row.get("status") == "error"


def is_done(row: dict[str, Any] | None, digest: str | None = None) -> bool:
    """Whether ``row`` finishes its item: it exists, did not fail and (given the item's settings ``digest``) was made
    by those settings."""
    return row is not None and not _failed(row) and (digest is None or row.get(SETTINGS_KEY) == digest)


def completed_rows(out_dir: Path, name: str, settings: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Rows recorded by any shard of any earlier run (whatever its world size), keyed by id: an item's first row
    that :func:`is_done` (by its digest in ``settings``, id -> digest, when given), else the last row read (an error or
    one made by other settings, which the next run redoes, see :func:`resumable_map`)."""
    settings = settings or {}
    done: dict[str, dict[str, Any]] = {}
    for path in sorted((out_dir / "shards").glob(f"{name}.rank*-of-*.jsonl")):
        for row in read_manifest(path, tolerate_torn_tail=True):
            earlier = done.get(row["id"])
            if earlier is None or not is_done(earlier, settings.get(row["id"])):  # a finished row stays
                done[row["id"]] = row
    return done


def has_pending(out_dir: Path, name: str, settings: Mapping[str, str]) -> bool:
    """Whether any item of ``settings`` (id -> digest) is not done yet: a stage builds its model only then."""
    done = completed_rows(out_dir, name, settings)
    return any(not is_done(done.get(i), digest) for i, digest in settings.items())


def _rewrite_without_torn_tail(path: Path) -> None:
    """Drop an interrupted last line so appends start on a clean line."""
    if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        write_manifest(read_manifest(path, tolerate_torn_tail=True), path)


def resumable_map(
    items: Sequence[Any],
    fn: Callable[[Any], Any],
    out_dir: str | os.PathLike,
    name: str,
    *,
    id_of: Callable[[Any], str] = str,
    info: DistInfo | None = None,
    record_errors: bool = True,
    desc: str | None = None,
    batch_size: int | None = None,
    settings: Mapping[str, str] | None = None,
) -> list[dict[str, Any]] | None:
    """Apply ``fn`` to this rank's share of ``items``, skipping ids already done, and merge the shards.

    ``fn(item)`` returns a JSON-ready row; it writes its own files (atomically) *before* returning, so a
    recorded row always means complete outputs. The row gets ``id`` = ``id_of(item)``. With
    ``record_errors`` an exception becomes a row ``{"id", "status": "error", "reason"}`` and the map goes on;
    every later run retries the items whose row is an error (a row with ``status: error`` written by ``fn`` too),
    so a transient fault (a network file system, an out-of-memory batch) loses nothing. A full disk or quota stops
    the map instead (:class:`..errors.DiskFullError`: every later item would fail too); the rerun does the rest.

    ``settings`` (id -> a digest of the method settings that decide the item's output, e.g.
    :func:`..config.settings_digest` of the item and its model's settings) is recorded in each row; a later run whose
    digest of an id differs redoes that item, so no row outlives the settings that made it.

    With ``batch_size``, ``fn`` takes a list of up to that many items and returns one row per item; a failing
    batch is retried item by item so that only the culprit gets an error row.

    Returns the merged rows (in ``items`` order) on rank 0, written to ``<out_dir>/<name>.jsonl``;
    ``None`` on other ranks. Under a process group every rank returns only once all have finished
    (:func:`wait_for_ranks`, however long after the group's timeout that is).
    """
    info = info or dist_info()
    out_dir = Path(out_dir)
    ids = [id_of(item) for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: work item ids are not unique")
    token = run_token(info)
    mine = shard(list(zip(ids, items, strict=True)), info.rank, info.world_size)
    digests = settings or {}
    done = completed_rows(out_dir, name, digests)
    todo = [(i, item) for i, item in mine if not is_done(done.get(i), digests.get(i))]
    own_shard = shard_path(out_dir, name, info.rank, info.world_size)
    own_shard.parent.mkdir(parents=True, exist_ok=True)
    _rewrite_without_torn_tail(own_shard)
    if mine:
        retried = sum(i in done and _failed(done[i]) for i, _ in todo)
        log.info(
            "%s: rank %d has %d items, %d already done, %d failed before and retried, %d made by other settings "
            "and redone",
            name,
            info.rank,
            len(mine),
            len(mine) - len(todo),
            retried,
            sum(i in done for i, _ in todo) - retried,
        )
    call: Callable[[list[Any]], list[dict[str, Any]]] = fn if batch_size else lambda batch: [fn(batch[0])]
    step = batch_size or 1
    batches = [todo[k : k + step] for k in range(0, len(todo), step)]
    with appending(own_shard) as fh:
        bar = progress(total=len(todo), desc=desc or name, disable=not info.is_main or not todo, leave=False)
        for batch in batches:
            for item_id, row in zip([i for i, _ in batch], _run_batch(call, batch, name, record_errors), strict=True):
                append_row(fh, {"id": item_id, **row} | ({SETTINGS_KEY: digests[item_id]} if settings else {}))
            bar.update(len(batch))
        bar.close()
    if token is not None:
        wait_for_ranks(out_dir, name, info, token)
    if not info.is_main:
        return None
    return merge_shards(out_dir, name, ids, settings)


def _run_batch(
    call: Callable[[list[Any]], list[dict[str, Any]]], batch: list[tuple[str, Any]], name: str, record_errors: bool
) -> list[dict[str, Any]]:
    """Rows of one batch; on failure retry one item at a time and turn each remaining failure into an error row."""
    items = [item for _, item in batch]
    try:
        rows = call(items)
        if len(rows) != len(items):
            raise RuntimeError(f"{name}: {len(rows)} rows for a batch of {len(items)} items")
        return rows
    except Exception as err:  # noqa: BLE001 - recorded per item by design
        if not record_errors or isinstance(err, DiskFullError):
            raise  # a full disk stops the stage: every later item would fail too, and the rerun does them
        if no_space_left(err):
            raise disk_full(getattr(err, "filename", None) or f"{name} item {batch[0][0]}") from None
        if len(batch) > 1:
            return [_run_batch(call, [pair], name, record_errors)[0] for pair in batch]
        log.debug("%s: %s failed\n%s", name, batch[0][0], traceback.format_exc())
        return [{"status": "error", "reason": f"{type(err).__name__}: {err}"}]


def merge_shards(
    out_dir: str | os.PathLike, name: str, ids: Sequence[str], settings: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Merge every shard of ``name`` into ``<out_dir>/<name>.jsonl``, rows in ``ids`` order.

    Raises if an id has no row by its current ``settings`` yet (a rank has not finished).
    """
    out_dir = Path(out_dir)
    settings = settings or {}
    done = completed_rows(out_dir, name, settings)
    missing = [i for i in ids if i not in done or not (_failed(done[i]) or is_done(done[i], settings.get(i)))]
    if missing:
        raise RuntimeError(f"{name}: {len(missing)} ids have no result yet (first: {missing[0]}); rerun the stage")
    rows = [done[i] for i in ids]
    write_manifest(rows, out_dir / f"{name}.jsonl")
    return rows


def unwrap_ddp(model: Module) -> Module:
    """The module inside a ``DistributedDataParallel`` wrapper (the model itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def require_single_process(what: str) -> None:
    """Refuse to run ``what`` under torchrun with several processes (each would repeat all of it)."""
    info = dist_info()
    if info.world_size > 1:
        from .errors import InputError

        raise InputError(f"{what} runs in one process; start it without torchrun (found {info.world_size} processes)")
