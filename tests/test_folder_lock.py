"""One writer per stage folder: a second run is refused naming the first, a dead owner's lock is taken over."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys

import pytest

from divergen_lib.errors import InputError
from divergen_lib.folder_lock import LOCK_NAME, folder_lock

from .conftest import REPO_ROOT, run_cli, smoke_generation_overrides, smoke_training_overrides

HOLD = "import sys, time\nfrom divergen_lib.folder_lock import folder_lock\nwith folder_lock(sys.argv[1]):\n"
HOLD += "    print('held', flush=True)\n    time.sleep(120)\n"


def holder(folder):
    """A process that holds ``folder``'s lock until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_and_a_dead_owners_lock_taken_over(tmp_path, caplog):
    proc = holder(tmp_path)
    try:
        with pytest.raises(InputError, match=rf"being written by pid {proc.pid} on host {socket.gethostname()}"):
            with folder_lock(tmp_path):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / LOCK_NAME).exists()  # a SIGKILL leaves it behind
    with caplog.at_level(logging.WARNING), folder_lock(tmp_path):
        assert f"pid {proc.pid}" in caplog.text and "no longer running" in caplog.text
        with folder_lock(tmp_path):  # the same process may take it again
            pass
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_reported_with_how_to_remove_it(tmp_path):
    (tmp_path / LOCK_NAME).write_text('{"host": "node-7", "pid": 4242, "since": 0}')
    with pytest.raises(InputError, match=rf"pid 4242 on host node-7 .*remove {tmp_path / LOCK_NAME}"):
        with folder_lock(tmp_path):
            pass


def test_cli_generate_into_a_folder_another_run_writes_is_one_line(tmp_path, smoke_world):
    out = tmp_path / "out"
    proc = holder(out / "generation")
    try:
        sets = [x for s in smoke_generation_overrides(out, smoke_world) for x in ("--set", s)]
        done = run_cli("generate", "--params", "params/smoke/02_generation.yaml", *sets)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"is being written by pid {proc.pid}" in done.stderr
    assert not (out / "generation" / "manifest.jsonl").exists() and os.listdir(out / "generation") == [LOCK_NAME]


def test_cli_train_of_a_run_another_process_trains_is_one_line(tmp_path, smoke_world):
    out = tmp_path / "out"
    proc = holder(out / "training" / "baseline")
    try:
        sets = [x for s in smoke_training_overrides(out, smoke_world) for x in ("--set", s)]
        done = run_cli("train", "--params", "params/smoke/05_training.yaml", *sets)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"is being written by pid {proc.pid}" in done.stderr
    assert os.listdir(out / "training" / "baseline") == [LOCK_NAME]  # no run.json, no checkpoint


def test_a_run_that_writes_nothing_leaves_no_folder(tmp_path):
    with pytest.raises(RuntimeError), folder_lock(tmp_path / "out" / "generation"):
        raise RuntimeError("bad input found before anything was written")
    assert not (tmp_path / "out").exists()
    with folder_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "file").write_text("x")
    assert (tmp_path / "kept" / "file").exists() and not (tmp_path / "kept" / LOCK_NAME).exists()
