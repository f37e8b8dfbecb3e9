import pickle
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from anaus_pl.data.anatomy_store import AnatomyStore, AnatomyStoreWriter, StoreError, partial_path


def _batch(start, n, size=8, classes=2):
    images = np.stack([np.full((size, size), start + i, np.uint8) for i in range(n)])
    masks = (images % 3).astype(np.uint8)
    return (
        images,
        masks,
        np.full((n, 2), size, np.int32),
        np.zeros((n, classes), np.float32),
        [f"f{start + i}.png" for i in range(n)],
    )


def test_write_resume_finalize_and_read(tmp_path):
    path = tmp_path / "store.h5"
    writer = AnatomyStoreWriter(path, ["a", "b"], 8, attrs={"lpsam_sha256": "x" * 64, "config": {"k": 1}})
    writer.append(*_batch(0, 3))
    writer.close()  # as if killed after a flush
    resumed = AnatomyStoreWriter(path, ["a", "b"], 8)
    assert resumed.written_sources == {"f0.png", "f1.png", "f2.png"}
    resumed.append(*_batch(3, 2))
    assert not path.exists()
    resumed.finalize()
    assert path.exists() and not partial_path(path).exists()
    store = AnatomyStore(path)
    assert len(store) == 5 and store.classes == ["a", "b"] and store.size == 8
    item = store[4]
    assert item["source"] == "f4.png" and item["image"][0, 0] == 4 and item["mask"][0, 0] == 1
    clone = pickle.loads(pickle.dumps(store))
    assert clone[1]["source"] == "f1.png"
    with h5py.File(path) as handle:
        assert handle["images"].chunks == (1, 8, 8) and handle["images"].compression == "gzip"


def test_resume_with_other_classes_is_refused(tmp_path):
    path = tmp_path / "s.h5"
    AnatomyStoreWriter(path, ["a"], 8).close()
    with pytest.raises(StoreError, match="delete it"):
        AnatomyStoreWriter(path, ["a", "b"], 8)


def test_missing_store_mentions_partial(tmp_path):
    AnatomyStoreWriter(tmp_path / "s.h5", ["a"], 8).close()
    with pytest.raises(StoreError, match="unfinished"):
        AnatomyStore(tmp_path / "s.h5")


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_h5dump_reads_the_store(tmp_path):
    writer = AnatomyStoreWriter(tmp_path / "s.h5", ["a", "b"], 8)
    writer.append(*_batch(0, 2))
    writer.finalize()
    out = subprocess.run(["h5dump", "-H", str(tmp_path / "s.h5")], capture_output=True, text=True, check=True).stdout
    assert 'DATASET "images"' in out and 'DATASET "source"' in out


def test_shards_merge_in_input_order_with_counters_and_skips(tmp_path):
    from anaus_pl.data.anatomy_store import completed_sources, merge_shards, shard_path, shard_paths

    path = tmp_path / "s.h5"
    a = AnatomyStoreWriter(path, ["a", "b"], 8, partial=shard_path(path, 0, 0))
    a.append(*_batch(2, 2), dropped=["empty.png"], skipped=["bad.png"])
    a.close()
    b = AnatomyStoreWriter(path, ["a", "b"], 8, partial=shard_path(path, 1, 0))
    b.append(*_batch(0, 2), skipped=["bad.png", "gone.png"])
    b.close()
    assert shard_paths(path) == [shard_path(path, 0, 0), shard_path(path, 1, 0)]
    assert completed_sources(path) == {"f0.png", "f1.png", "f2.png", "f3.png", "empty.png"}
    counters = merge_shards(path, shard_paths(path), order=["f0.png", "f1.png", "f2.png", "f3.png"])
    assert counters["frames_written"] == 4 and counters["frames_skipped"] == 2 and counters["frames_dropped_empty"] == 1
    # masks are value % 3 of 0..3 -> classes a (1) in f1, b (2) in f2
    assert counters["class_frames"].tolist() == [1, 1] and counters["class_pixels"].tolist() == [64, 64]
    assert not shard_paths(path)
    store = AnatomyStore(path)
    assert [store[i]["source"] for i in range(4)] == ["f0.png", "f1.png", "f2.png", "f3.png"]
    assert [int(store[i]["image"][0, 0]) for i in range(4)] == [0, 1, 2, 3]
    with h5py.File(path) as handle:
        assert handle["images"].compression == "gzip" and handle["images"].chunks == (1, 8, 8)


def test_torn_append_is_not_kept(tmp_path):
    path = tmp_path / "s.h5"
    writer = AnatomyStoreWriter(path, ["a", "b"], 8)
    writer.append(*_batch(0, 2))
    writer._file["source"].resize(3, axis=0)  # as if killed inside the next append, before its commit
    writer.close()
    resumed = AnatomyStoreWriter(path, ["a", "b"], 8)
    assert (
        len(resumed) == 2 and resumed._file["source"].shape == (2,) and resumed.written_sources == {"f0.png", "f1.png"}
    )


def test_merge_statistics_count_each_merged_row_once(tmp_path):
    """Two runs that annotated the same frames (before stores were locked) must not double the coverage."""
    from anaus_pl.data.anatomy_store import merge_shards, shard_path, shard_paths

    path = tmp_path / "s.h5"
    for attempt in (0, 1):
        writer = AnatomyStoreWriter(path, ["a", "b"], 8, partial=shard_path(path, 0, attempt))
        writer.append(*_batch(0, 4))
        writer.close()
    counters = merge_shards(path, shard_paths(path), order=[f"f{i}.png" for i in range(4)])
    assert counters["frames_written"] == 4
    assert counters["class_frames"].tolist() == [1, 1] and counters["class_pixels"].tolist() == [64, 64]
    assert counters["valid_pixels"] == 4 * 64


def test_clearing_flags_is_advised_only_for_a_file_hdf5_reports_unclosed(tmp_path):
    import sys
    import textwrap

    from anaus_pl.data.anatomy_store import open_error

    killed = tmp_path / "killed.h5"
    script = f"""
        import os, h5py
        handle = h5py.File({str(killed)!r}, "w", libver="v110")
        handle.create_dataset("x", (4,), "i8", maxshape=(None,))
        handle.swmr_mode = True
        handle.flush()
        os._exit(0)  # killed: never closed
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True)
    with pytest.raises(
        StoreError, match=rf"{killed}: HDF5 reports this file was not closed by its writer .*h5clear -s {killed}"
    ):
        AnatomyStoreWriter(tmp_path / "store.h5", ["a"], 8, partial=killed)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5" * 100)
    try:
        h5py.File(garbage, "r")
    except OSError as error:
        message = str(open_error(garbage, error))
    assert message.startswith(f"{garbage}: HDF5 cannot read this file") and "h5clear" not in message
    assert "delete it and rerun annotate" in message


def test_a_partial_file_without_per_row_statistics_resumes(tmp_path):
    """Partial files of earlier versions lack ``class_pixels``; resuming counts their committed rows."""
    from anaus_pl.data.anatomy_store import merge_shards

    path = tmp_path / "store.h5"
    writer = AnatomyStoreWriter(path, ["a", "b"], 8)
    writer.append(*_batch(0, 2))
    writer.close()
    with h5py.File(partial_path(path), "a") as handle:
        del handle["class_pixels"]
    resumed = AnatomyStoreWriter(path, ["a", "b"], 8)
    resumed.append(*_batch(2, 2))
    resumed.close()
    counters = merge_shards(tmp_path / "merged.h5", [partial_path(path)], remove_shards=False)
    assert counters["class_frames"].tolist() == [1, 1] and counters["class_pixels"].tolist() == [64, 64]


def test_shard_and_store_follow_the_schema_table(tmp_path):
    from anaus_pl.data.anatomy_store import COLUMNS, merge_shards, shard_path

    path = tmp_path / "s.h5"
    shard = shard_path(path, 0, 0)
    writer = AnatomyStoreWriter(path, ["a", "b", "c"], 8, partial=shard)
    writer.append(*_batch(0, 3, classes=3), dropped=["empty.png"])
    writer.close()
    with h5py.File(shard) as handle:
        assert list(handle) == sorted(COLUMNS)
        for name, column in COLUMNS.items():
            row = column.row_shape(8, 3)
            assert handle[name].shape == (int(handle.attrs[column.committed]), *row), name
            assert handle[name].maxshape == (None, *row) and handle[name].chunks == (
                (1 if column.frame else 1024),
                *row,
            )
            assert h5py.check_string_dtype(handle[name].dtype) or handle[name].dtype == column.dtype
    # the layout the writer had before the table: spot checks against the former hand-written calls
    with h5py.File(shard) as handle:
        assert handle["scores"].dtype == np.float32 and handle["scores"].chunks == (1024, 3)
        assert handle["valid_hw"].dtype == np.int32 and handle["class_pixels"].dtype == np.int64
    merge_shards(path, [shard])
    with h5py.File(path) as handle:
        assert set(handle) == {n for n, c in COLUMNS.items() if not c.shard_only}
        assert handle["images"].shape == (3, 8, 8) and handle["images"].chunks == (1, 8, 8)
        assert handle["scores"].shape == (3, 3) and handle["scores"].chunks == (3, 3)
        assert handle["source"].chunks == (3,) and handle["dropped_empty"].shape == (1,)
        assert handle["images"].maxshape == (3, 8, 8)  # a finished store does not grow


def test_a_run_that_dropped_every_frame_merges_into_an_empty_store(tmp_path):
    from anaus_pl.data.anatomy_store import merge_shards, shard_path

    path = tmp_path / "s.h5"
    writer = AnatomyStoreWriter(path, ["a"], 8, partial=shard_path(path, 0, 0))
    empty = np.zeros((0, 8, 8), np.uint8)
    writer.append(empty, empty, np.zeros((0, 2), np.int32), np.zeros((0, 1), np.float32), [], dropped=["empty.png"])
    writer.close()
    counters = merge_shards(path, [shard_path(path, 0, 0)])
    assert counters["frames_written"] == 0 and counters["frames_dropped_empty"] == 1
    assert len(AnatomyStore(path)) == 0
