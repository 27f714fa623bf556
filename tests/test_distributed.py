import os
import time
from datetime import timedelta

import pytest

from divergen_lib.distributed import DistInfo, dist_info, merge_shards, resumable_map, shard
from divergen_lib.formats import read_manifest

IDS = [f"item{i:02d}" for i in range(23)]


def square(item: str) -> dict:
    n = int(item[4:])
    return {"status": "ok", "value": n * n}


def test_two_ranks_cover_every_id_exactly_once():
    parts = [shard(IDS, r, 2) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(IDS)
    assert not set(parts[0]) & set(parts[1])
    assert parts[0] == IDS[0::2]


def test_dist_info_reads_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_info() == DistInfo(1, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(RuntimeError, match="outside WORLD_SIZE"):
        dist_info()


def test_single_process_without_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert dist_info() == DistInfo(0, 1, 0)


def test_single_process_stages_refuse_torchrun(monkeypatch):
    from divergen_lib.distributed import require_single_process
    from divergen_lib.errors import InputError

    require_single_process("the evaluate stage")  # one process: fine
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(InputError, match="the evaluate stage runs in one process; start it without torchrun"):
        require_single_process("the evaluate stage")


class Stop(BaseException):
    """Simulates an interruption (not an item error)."""


def test_resume_after_interruption_does_exactly_the_rest(tmp_path):
    reference = resumable_map(IDS, square, tmp_path / "ref", "squares", info=DistInfo())
    calls: list[str] = []

    def stops_after_7(item):
        if len(calls) == 7:
            raise Stop
        calls.append(item)
        return square(item)

    with pytest.raises(Stop):
        resumable_map(IDS, stops_after_7, tmp_path / "run", "squares", info=DistInfo())
    assert calls == IDS[:7]
    assert not (tmp_path / "run" / "squares.jsonl").exists()

    rerun_calls: list[str] = []
    rows = resumable_map(
        IDS, lambda i: rerun_calls.append(i) or square(i), tmp_path / "run", "squares", info=DistInfo()
    )
    assert rerun_calls == IDS[7:]
    assert rows == reference
    assert (tmp_path / "run" / "squares.jsonl").read_bytes() == (tmp_path / "ref" / "squares.jsonl").read_bytes()


def test_two_rank_run_merges_to_the_single_process_manifest(tmp_path):
    single = resumable_map(IDS, square, tmp_path / "one", "squares", info=DistInfo())
    assert resumable_map(IDS, square, tmp_path / "two", "squares", info=DistInfo(1, 2, 1)) is None
    merged = resumable_map(IDS, square, tmp_path / "two", "squares", info=DistInfo(0, 2, 0))
    assert merged == single
    assert (tmp_path / "two" / "squares.jsonl").read_bytes() == (tmp_path / "one" / "squares.jsonl").read_bytes()


def test_resume_with_a_different_world_size(tmp_path):
    resumable_map(IDS, square, tmp_path, "squares", info=DistInfo(1, 2, 1))  # half done by a 2-rank job
    calls: list[str] = []
    rows = resumable_map(IDS, lambda i: calls.append(i) or square(i), tmp_path, "squares", info=DistInfo())
    assert calls == IDS[0::2]
    assert [r["id"] for r in rows] == IDS


def test_merge_refuses_while_a_rank_is_unfinished(tmp_path):
    resumable_map(IDS, square, tmp_path, "squares", info=DistInfo(1, 2, 1))
    with pytest.raises(RuntimeError, match="12 ids have no result yet"):
        merge_shards(tmp_path, "squares", IDS)


def test_item_errors_are_recorded_and_do_not_stop_the_map(tmp_path):
    def fragile(item):
        if item == "item03":
            raise ValueError("corrupt input")
        return square(item)

    rows = resumable_map(IDS, fragile, tmp_path, "squares", info=DistInfo())
    bad = [r for r in rows if r.get("status") == "error"]
    assert bad == [{"id": "item03", "status": "error", "reason": "ValueError: corrupt input"}]
    assert len(rows) == len(IDS)


def test_failed_items_are_retried_by_the_next_run_and_nothing_else_is_redone(tmp_path):
    flaky_io = {"item03", "item07"}  # a network file system's I/O errors (a full disk stops the map instead)
    calls = []

    def flaky(item):
        calls.append(item)
        if item in flaky_io:
            raise OSError(5, "Input/output error")
        return square(item)

    first = resumable_map(IDS, flaky, tmp_path, "squares", info=DistInfo())
    assert [r["id"] for r in first if r.get("status") == "error"] == ["item03", "item07"]
    flaky_io.discard("item03")  # the fault is gone for one of them
    calls.clear()
    second = resumable_map(IDS, flaky, tmp_path, "squares", info=DistInfo())
    assert calls == ["item03", "item07"]
    assert [r["id"] for r in second if r.get("status") == "error"] == ["item07"]
    flaky_io.clear()
    third = resumable_map(IDS, flaky, tmp_path, "squares", info=DistInfo())
    assert third == resumable_map(IDS, square, tmp_path / "uninterrupted", "squares", info=DistInfo())


def test_torn_shard_line_is_redone(tmp_path):
    resumable_map(IDS, square, tmp_path, "squares", info=DistInfo())
    shard_file = next((tmp_path / "shards").glob("squares.rank*.jsonl"))
    text = shard_file.read_text()
    shard_file.write_text(text[: text.rindex('{"id"') + 12])  # last row cut mid-line, as by a kill
    calls: list[str] = []
    rows = resumable_map(IDS, lambda i: calls.append(i) or square(i), tmp_path, "squares", info=DistInfo())
    assert calls == IDS[-1:]
    assert len(read_manifest(shard_file)) == len(IDS) and len(rows) == len(IDS)


def test_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not unique"):
        resumable_map(["a", "a"], square, tmp_path, "x", info=DistInfo())


def test_batched_map_equals_item_map_and_isolates_a_failing_item(tmp_path):
    single = resumable_map(IDS, square, tmp_path / "one", "squares", info=DistInfo())
    sizes = []

    def batched(items):
        sizes.append(len(items))
        if "item05" in items:
            raise ValueError("bad item05")
        return [square(i) for i in items]

    rows = resumable_map(IDS, batched, tmp_path / "batched", "squares", info=DistInfo(), batch_size=4)
    assert sizes[:2] == [4, 4]  # the batch holding item05 is then retried one item at a time
    assert [r for r in rows if r["id"] != "item05"] == [r for r in single if r["id"] != "item05"]
    assert rows[5] == {"id": "item05", "status": "error", "reason": "ValueError: bad item05"}


def test_rows_made_by_other_settings_are_redone_whatever_the_world_size_of_either_run(tmp_path):
    """A 2-rank run with offset 0, then a 1-rank run where some items' settings changed (offset 100 for them): those
    are redone, the rest kept, and the merged rows are the new settings' (the old rows stay in the 2-rank shards,
    which sort after the 1-rank one)."""

    def made_by(offset: int):
        return lambda item: {"status": "ok", "value": int(item[4:]) + offset}

    old = {i: "offset0" for i in IDS}
    for rank in (1, 0):
        resumable_map(IDS, made_by(0), tmp_path, "values", info=DistInfo(rank, 2, rank), settings=old)
    new = {i: "offset100" if int(i[4:]) % 3 == 0 else "offset0" for i in IDS}
    calls: list[str] = []

    def counted(item):
        calls.append(item)
        return made_by(100 if new[item] == "offset100" else 0)(item)

    rows = resumable_map(IDS, counted, tmp_path, "values", info=DistInfo(), settings=new)
    assert calls == [i for i in IDS if new[i] == "offset100"]
    assert [r["value"] for r in rows] == [int(i[4:]) + (100 if new[i] == "offset100" else 0) for i in IDS]
    assert [r["settings"] for r in rows] == [new[i] for i in IDS]
    assert resumable_map(IDS, counted, tmp_path, "values", info=DistInfo(), settings=new) == rows
    assert len(calls) == len([i for i in IDS if new[i] == "offset100"])  # nothing redone twice


def test_a_full_disk_stops_the_map_instead_of_failing_every_later_item(tmp_path):
    from divergen_lib.errors import DiskFullError

    def fills_up(item):
        if item == "item05":
            raise OSError(28, "No space left on device")
        return square(item)

    with pytest.raises(DiskFullError, match=r"no space left on the device; free some and rerun"):
        resumable_map(IDS, fills_up, tmp_path, "squares", info=DistInfo())
    rows = resumable_map(IDS, square, tmp_path, "squares", info=DistInfo())
    assert rows == resumable_map(IDS, square, tmp_path / "uninterrupted", "squares", info=DistInfo())


def values_by(tag: str):
    """Work whose rows depend on ``tag`` (its settings)."""
    return lambda item: {"status": "ok", "value": f"{tag}{int(item[4:])}"}


GROUP_TIMEOUT = timedelta(seconds=5)  # far shorter than the slow rank's delay


def rank_main(rank: int, out: str, tag: str, slow_s: float) -> None:
    """Rank ``rank`` of 2 (gloo, timeout :data:`GROUP_TIMEOUT`) maps ``IDS`` by settings ``tag``; rank 1 sleeps
    ``slow_s`` before its last item."""
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    init = f"file://{out}.{tag}.group"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2, timeout=GROUP_TIMEOUT)
    work = values_by(tag)

    def late(item: str) -> dict:
        if item == IDS[1::2][-1]:
            time.sleep(slow_s)
        return work(item)

    resumable_map(IDS, late if rank == 1 else work, out, "values", settings=dict.fromkeys(IDS, tag))
    dist.destroy_process_group()


def run_two_ranks(out, tag: str, slow_s: float = 0.0) -> None:
    """:func:`rank_main` in 2 spawned processes."""
    import torch.multiprocessing as mp

    mp.spawn(rank_main, args=(str(out), tag, slow_s), nprocs=2)


def test_a_rank_finishing_long_after_the_group_timeout_is_waited_for_and_old_markers_are_not(tmp_path):
    """A first 2-rank run leaves its done markers; a second with new settings, where rank 1 finishes 20 s after rank
    0 (the process group's timeout is 5 s), still merges the 1-process result of the new settings."""
    single = resumable_map(
        IDS, values_by("b"), tmp_path / "one", "values", info=DistInfo(), settings=dict.fromkeys(IDS, "b")
    )
    run_two_ranks(tmp_path / "two", "a")
    assert sorted(p.name for p in (tmp_path / "two" / "shards").glob("*.done")) == [
        "values.rank000-of-002.done",
        "values.rank001-of-002.done",
    ]
    run_two_ranks(tmp_path / "two", "b", slow_s=20.0)
    assert read_manifest(tmp_path / "two" / "values.jsonl") == single


def test_a_marker_of_another_run_is_not_trusted_and_the_wait_times_out(tmp_path, monkeypatch):
    from divergen_lib.distributed import done_marker, wait_for_ranks

    done_marker(tmp_path, "values", 1, 2).parent.mkdir()
    done_marker(tmp_path, "values", 1, 2).write_text("earlier-run")
    monkeypatch.setenv("DIVERGEN_BARRIER_TIMEOUT_S", "0")
    with pytest.raises(RuntimeError, match=r"values: ranks 1 did not finish within 0 s \(DIVERGEN_BARRIER_TIMEOUT_S\)"):
        wait_for_ranks(tmp_path, "values", DistInfo(0, 2, 0), "this-run")
    assert done_marker(tmp_path, "values", 0, 2).read_text() == "this-run"
