"""End-to-end annotate runs with the stand-in LP-SAM: store content, resume after SIGKILLs, DDP."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from annotate_runs import read_store, run_annotate, start_annotate, subprocess_env, wait_for_commits, write_config
from stub_lpsam import write_checkpoint

from anaus_pl.cli import main
from anaus_pl.data.anatomy_store import AnatomyStore, shard_paths
from anaus_pl.data.io import read_image
from anaus_pl.data.letterbox import letterbox

EXPECTED_SOURCES = 12 + 1 + 5  # frame folders, empty.png, every 2nd video frame capped at 5
SKIPPED = {"bad.png", "broken.avi#0"}


def test_store_content_summary_and_preview(reference_store, annotate_inputs):
    store = AnatomyStore(reference_store)
    assert len(store) == EXPECTED_SOURCES and store.classes == ["bright", "dark"] and store.size == 64
    sources = [store[i]["source"] for i in range(len(store))]
    names = [Path(s).name for s in sources]
    assert names[:5] == [f"clip.avi#{k}" for k in (0, 2, 4, 6, 8)]  # natural path order, every 2nd video frame
    assert names[5] == "empty.png" and names[6:12] == [f"Cov-case0_mp4_frame{k}.png" for k in range(6)]
    # the mask of a still frame is the stub's rule applied to the letterboxed frame, zero outside valid_hw
    index = next(i for i, s in enumerate(sources) if s.endswith("Cov-case1_mp4_frame3.png"))
    item = store[index]
    boxed, valid = letterbox(read_image(item["source"]), 64)
    np.testing.assert_array_equal(item["image"], boxed)
    assert item["valid_hw"] == valid == (48, 64)
    expected = np.where(boxed / 255 > 0.6, 1, np.where(boxed / 255 < 0.25, 2, 0)).astype(np.uint8)
    expected[valid[0] :] = 0
    np.testing.assert_array_equal(item["mask"], expected)
    with h5py.File(reference_store) as handle:
        assert {Path(s.decode()).name for s in handle["skipped"][:]} == SKIPPED
        assert handle.attrs["frames_skipped"] == 2 and handle.attrs["frames_in"] == EXPECTED_SOURCES + 2
        assert len(handle.attrs["lpsam_sha256"]) == 64 and "AnnotateTask" in handle.attrs["config"]
    summary = json.loads(reference_store.with_name("summary.json").read_text())
    assert summary["frames_written"] == EXPECTED_SOURCES and summary["frames_skipped"] == 2
    assert summary["coverage"]["bright"]["frames"] == pytest.approx((EXPECTED_SOURCES - 1) / EXPECTED_SOURCES, abs=1e-3)
    assert reference_store.with_name("preview.png").stat().st_size > 10_000
    assert list((reference_store.parent / "tb").rglob("events.out.tfevents.*"))
    assert not shard_paths(reference_store)


def test_corrupt_inputs_are_named_in_the_log_and_empty_frames_dropped(
    annotate_inputs, stub_checkpoint, tmp_path, caplog
):
    config = write_config(
        tmp_path / "cfg.yaml", annotate_inputs, tmp_path / "anatomy.h5", stub_checkpoint, keep_empty=False
    )
    with caplog.at_level(logging.WARNING, logger="anaus_pl"):
        run_annotate(config)
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert str(annotate_inputs / "bad.png") in warned and str(annotate_inputs / "broken.avi") in warned
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_dropped_empty"] == 1 and summary["frames_written"] == EXPECTED_SOURCES - 1
    assert not any(s.endswith("empty.png") for s in AnatomyStore(tmp_path / "anatomy.h5").handle["source"].asstr()[:])


def with_inputs(config: Path, inputs: list[dict]) -> Path:
    """``config`` with ``data.init_args.inputs`` replaced."""
    settings = yaml.safe_load(config.read_text())
    settings["data"]["init_args"]["inputs"] = inputs
    config.write_text(yaml.safe_dump(settings))
    return config


def test_an_input_restricted_to_some_classes_never_gets_the_others(
    reference_store, annotate_inputs, stub_checkpoint, tmp_path
):
    store = tmp_path / "anatomy.h5"
    config = with_inputs(
        write_config(tmp_path / "cfg.yaml", annotate_inputs, store, stub_checkpoint),
        [
            {"path": str(annotate_inputs / "frames"), "classes": ["dark"]},
            {"path": str(annotate_inputs), "frame_stride": 2, "max_frames_per_video": 5},
        ],
    )
    run_annotate(config)
    restricted, reference = read_store(store), read_store(reference_store)
    by_source = {s: i for i, s in enumerate(reference["source"])}
    folder = (str(annotate_inputs / "frames") + "/").encode()
    for j, source in enumerate(restricted["source"]):
        mask, expected = restricted["masks"][j], reference["masks"][by_source[source]]
        if source.startswith(folder):  # "bright" pixels become background, "dark" ones stay
            np.testing.assert_array_equal(mask, np.where(expected == 2, 2, 0), err_msg=source)
            assert restricted["scores"][j, 0] == 0 and restricted["scores"][j, 1] > 0
        else:
            np.testing.assert_array_equal(mask, expected, err_msg=source)
    assert sum(s.startswith(folder) for s in restricted["source"]) == 12
    assert (restricted["masks"] == 1).any()  # the unrestricted video frames keep "bright"
    with h5py.File(store) as handle:
        assert yaml.safe_load(handle.attrs["config"])["annotate"]["data"]["init_args"]["inputs"][0]["classes"] == [
            "dark"
        ]


def test_an_unknown_input_class_fails_naming_it_and_the_valid_ones(annotate_inputs, stub_checkpoint, tmp_path, capsys):
    config = with_inputs(
        write_config(tmp_path / "cfg.yaml", annotate_inputs, tmp_path / "anatomy.h5", stub_checkpoint),
        [{"path": str(annotate_inputs / "frames"), "classes": ["dark", "lv"]}],
    )
    assert main(["annotate", "--config", str(config)]) == 1
    assert (
        "classes ['lv'] are not classes of the LP-SAM checkpoint; valid classes: bright, dark"
        in capsys.readouterr().err
    )
    with pytest.raises(ValueError, match=r"classes \['lv'\] are not classes of the LP-SAM checkpoint"):
        main(["annotate", "--config", str(config), "--debug"])
    assert not shard_paths(tmp_path / "anatomy.h5")


@pytest.mark.slow
def test_a_run_sigkilled_twice_resumes_to_the_uninterrupted_store(reference_store, annotate_inputs, tmp_path):
    checkpoint = write_checkpoint(tmp_path / "slow.json", image_size=64, delay=0.4)
    store = tmp_path / "anatomy.h5"
    config = write_config(tmp_path / "cfg.yaml", annotate_inputs, store, checkpoint)
    done: set[str] = set()
    for kill in range(2):  # kill, rerun, kill again: each run leaves its own shard
        process = start_annotate(config)
        done_before, done = done, wait_for_commits(process, store, at_least=len(done) + 4)
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
        assert done > done_before and len(done) >= 4 * (kill + 1) and len(done) < EXPECTED_SOURCES
        assert not store.exists() and len(shard_paths(store)) == kill + 1
    run_annotate(config)  # rerun: same command, same output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_already_done"] >= len(done) and summary["frames_processed"] < EXPECTED_SOURCES - 4
    resumed, reference = read_store(store), read_store(reference_store)
    assert len(set(resumed["source"])) == len(resumed["source"]) == EXPECTED_SOURCES
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)
    assert not shard_paths(store)


@pytest.mark.ddp
@pytest.mark.slow
def test_two_process_ddp_matches_one_process(reference_store, annotate_inputs, stub_checkpoint, tmp_path):
    store = tmp_path / "anatomy.h5"
    config = write_config(tmp_path / "cfg.yaml", annotate_inputs, store, stub_checkpoint, devices=2, strategy="ddp")
    result = subprocess.run(
        [sys.executable, "-m", "anaus_pl.cli", "annotate", "--config", str(config)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2
    distributed, single = read_store(store), read_store(reference_store)
    assert set(distributed["source"]) == set(single["source"])
    by_source = {s: i for i, s in enumerate(single["source"])}
    for j, source in enumerate(distributed["source"]):
        np.testing.assert_array_equal(distributed["masks"][j], single["masks"][by_source[source]], err_msg=source)


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_h5dump_reads_the_annotated_store(reference_store):
    out = subprocess.run(
        ["h5dump", "-H", "-p", str(reference_store)], capture_output=True, text=True, check=True
    ).stdout
    for name in ("images", "masks", "valid_hw", "scores", "source"):
        assert f'DATASET "{name}"' in out
    assert "DEFLATE" in out and 'ATTRIBUTE "lpsam_sha256"' in out


def test_finished_store_is_not_rewritten(reference_store, annotate_inputs, stub_checkpoint, tmp_path):
    store = tmp_path / "anatomy.h5"
    shutil.copy(reference_store, store)
    before = store.stat().st_mtime_ns
    run_annotate(write_config(tmp_path / "cfg.yaml", annotate_inputs, store, stub_checkpoint))
    assert store.stat().st_mtime_ns == before and not (tmp_path / "summary.json").exists()
