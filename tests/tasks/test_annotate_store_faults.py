"""Annotate against disk and store faults: locks, full disks, bad shards, read-only outputs, changed configs."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import yaml
from annotate_runs import read_store, run_annotate, start_annotate, wait_for_commits, write_config
from stub_lpsam import write_checkpoint

from anaus_pl.cli import main
from anaus_pl.data import anatomy_store
from anaus_pl.data.anatomy_store import StoreError, StoreLock, completed_sources, merge_shards, shard_paths


def annotate(config: Path, *extra: str) -> int:
    return main(["annotate", "--config", str(config), *extra])


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1] if lines else ""


def test_a_second_run_on_a_locked_store_fails_at_once_naming_the_holder(
    annotate_inputs, stub_checkpoint, tmp_path, capsys
):
    store = tmp_path / "anatomy.h5"
    config = write_config(tmp_path / "cfg.yaml", annotate_inputs, store, stub_checkpoint)
    lock = StoreLock(store)
    lock.acquire()  # another run holds the store
    try:
        assert annotate(config) == 1
        message = error_line(capsys)
        assert f"{store}: another annotate run is writing this store (pid {os.getpid()} on " in message
        assert not shard_paths(store) and not store.exists()
    finally:
        lock.release()
    assert annotate(config) == 0 and store.exists()


def test_disk_full_stops_with_the_space_needed_keeps_committed_frames_and_the_rerun_resumes(
    reference_store, annotate_inputs, stub_checkpoint, tmp_path, monkeypatch, capsys
):
    store = tmp_path / "anatomy.h5"
    config = write_config(tmp_path / "cfg.yaml", annotate_inputs, store, stub_checkpoint, flush_frames=4)
    usage = namedtuple("usage", "total used free")
    calls = []

    def filling_disk(path):  # room for two appends, then full
        calls.append(path)
        return usage(1 << 40, 1 << 40, (1 << 40) if len(calls) <= 2 else 1 << 20)

    monkeypatch.setattr(anatomy_store.shutil, "disk_usage", filling_disk)
    assert annotate(config) == 1
    message = error_line(capsys)
    assert f"{shard_paths(store)[0]}: disk full: the next batch needs about 64 MiB, 1 MiB are free" in message
    assert "committed frames are kept" in message
    done = len(completed_sources(store))  # two committed appends
    assert 4 <= done < len(read_store(reference_store)["source"]) and not store.exists()
    monkeypatch.undo()
    assert annotate(config) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_already_done"] == done
    resumed, reference = read_store(store), read_store(reference_store)
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)


@pytest.fixture
def small_disk(tmp_path):
    """An 80 MiB tmpfs of its own (needs root: mounting is refused to others)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill it needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=80m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk``, as another program writing there would."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            handle.write(bytes(shutil.disk_usage(disk).free))
        except OSError:  # the last partial page
            pass
    return filler


@pytest.mark.slow
def test_a_really_full_disk_stops_cleanly_naming_the_shard_keeps_committed_frames_and_the_rerun_resumes(
    reference_store, annotate_inputs, small_disk, tmp_path
):
    store = small_disk / "anatomy.h5"
    checkpoint = write_checkpoint(tmp_path / "slow.json", image_size=64, delay=0.4)
    config = write_config(tmp_path / "cfg.yaml", annotate_inputs, store, checkpoint)
    process = start_annotate(config)
    done = wait_for_commits(process, store, at_least=4)
    filler = fill(small_disk)  # the disk fills up while annotate runs
    _, stderr = process.communicate(timeout=120)
    message = stderr.decode().strip().splitlines()[-1]
    assert process.returncode == 1, stderr.decode()[-2000:]  # an error, not HDF5's segfault (139)
    assert f"{shard_paths(store)[0]}: disk full: the next batch needs about 64 MiB, 0 MiB are free" in message
    kept = completed_sources(store)
    assert len(kept) >= len(done) >= 4 and len(kept) < len(read_store(reference_store)["source"])
    filler.unlink()
    run_annotate(config)
    assert json.loads((small_disk / "summary.json").read_text())["frames_already_done"] == len(kept)
    resumed, reference = read_store(store), read_store(reference_store)
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)


def test_a_file_size_limit_stops_cleanly_naming_the_shard_and_the_limit(
    reference_store, annotate_inputs, stub_checkpoint, tmp_path
):
    store = tmp_path / "anatomy.h5"
    config = write_config(tmp_path / "cfg.yaml", annotate_inputs, store, stub_checkpoint)

    def limit_file_size() -> None:  # ulimit -f 1024 (KiB); HDF5 used to crash (exit 139) on the refused write
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    process = start_annotate(config, preexec_fn=limit_file_size)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr.decode()[-2000:]
    message = stderr.decode().strip().splitlines()[-1]
    shard = anatomy_store.shard_path(store, 0, 0)
    assert f"{shard}: file size limit reached: creating the shard needs about 64 MiB" in message
    assert "(ulimit -f, 1 MiB)" in message and not shard.exists()  # stopped before HDF5 wrote anything
    run_annotate(config)  # without the limit
    resumed, reference = read_store(store), read_store(reference_store)
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)


def test_a_merge_that_would_not_fit_stops_before_writing_and_keeps_the_shards(reference_store, tmp_path, monkeypatch):
    store = tmp_path / "anatomy.h5"
    shard = anatomy_store.shard_path(store, 0, 0)
    shutil.copy(reference_store, shard)  # a finished store reads as a shard with everything committed
    with anatomy_store.h5py.File(shard, "a") as handle:
        handle.attrs.update({"committed_frames": len(handle["source"]), "committed_skipped": 0, "committed_dropped": 0})
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(anatomy_store.shutil, "disk_usage", lambda path: usage(1 << 30, 1 << 30, 64 << 20))
    with pytest.raises(
        StoreError, match=re.escape(f"{store}.partial: disk full: merging the shards needs about 64 MiB")
    ):
        merge_shards(store, [shard])
    assert shard.is_file() and not store.exists() and not anatomy_store.partial_path(store).exists()


def test_a_zero_byte_shard_is_named_with_what_to_do(annotate_inputs, stub_checkpoint, tmp_path, capsys):
    store = tmp_path / "anatomy.h5"
    shard = anatomy_store.shard_path(store, 0, 0)
    shard.write_bytes(b"")
    assert annotate(write_config(tmp_path / "cfg.yaml", annotate_inputs, store, stub_checkpoint)) == 1
    message = error_line(capsys)
    assert (
        f"{shard}: zero-byte file" in message and "delete it and rerun annotate" in message and "h5clear" not in message
    )


@pytest.mark.skipif(os.access("/sys", os.W_OK) and not Path("/sys").is_mount(), reason="needs a read-only folder")
def test_a_read_only_output_fails_before_the_model_loads_without_h5clear_advice(
    annotate_inputs, stub_checkpoint, tmp_path, capsys
):
    config = write_config(
        tmp_path / "cfg.yaml", annotate_inputs, Path("/sys/anatomy.h5"), stub_checkpoint, loader="no_such_module:load"
    )  # loading a model first would fail on the import instead
    assert annotate(config) == 1
    message = error_line(capsys)
    assert "/sys/anatomy.h5: permission denied or read-only file system" in message
    assert "store.path to a writable folder" in message and "h5clear" not in message


def test_missing_input_and_bad_checkpoint_fail_before_the_model_loads_in_one_line(annotate_inputs, tmp_path, capsys):
    html = tmp_path / "last.ckpt"
    html.write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    config = write_config(
        tmp_path / "cfg.yaml", tmp_path / "missing", tmp_path / "anatomy.h5", html, loader="no_such_module:load"
    )
    assert annotate(config) == 1
    assert f"annotate input {tmp_path / 'missing'} does not exist" in error_line(capsys)
    config = write_config(
        tmp_path / "cfg.yaml", annotate_inputs, tmp_path / "anatomy.h5", html, loader="anaus_pl.tasks.adapt:load_lpsam"
    )
    assert annotate(config) == 1
    message = error_line(capsys)
    assert f"{html}: is an HTML page, not a checkpoint" in message and "weights_only" not in message


def test_a_store_written_under_another_config_is_refused_unless_overwritten(
    reference_store,
    annotate_inputs,
    stub_checkpoint,
    tmp_path,
    capsys,
):
    store = tmp_path / "anatomy.h5"
    config = write_config(tmp_path / "cfg.yaml", annotate_inputs, store, stub_checkpoint)
    shutil.copy(reference_store, store)
    settings = yaml.safe_load(config.read_text())
    settings["data"]["init_args"]["num_workers"] = 1  # speed settings do not change the configuration
    settings["data"]["init_args"]["batch_size"] = 3
    config.write_text(yaml.safe_dump(settings))
    assert annotate(config) == 0 and not (tmp_path / "summary.json").exists()  # same config: nothing to do
    settings["model"]["init_args"]["postprocess"]["threshold"] = 0.9
    config.write_text(yaml.safe_dump(settings))
    assert annotate(config) == 1
    message = error_line(capsys)
    assert f"{store}: written under another configuration" in message and "--overwrite true" in message
    assert annotate(config, "--overwrite", "true") == 0
    assert (
        json.loads((tmp_path / "summary.json").read_text())["frames_processed"] == len(read_store(store)["source"]) > 0
    )
    assert (read_store(store)["masks"] != read_store(reference_store)["masks"]).any()
