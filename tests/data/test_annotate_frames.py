"""Indexing and decoding of annotate inputs: folders, videos, layouts, corrupt files, odd sizes."""

import cv2
import numpy as np
import pytest
import torch

from anaus_pl.data.datamodules.annotate import ContiguousShardSampler, LetterboxedFrames, collate_frames
from anaus_pl.data.frame_sources import FrameDecoder, FrameInput, index_inputs
from anaus_pl.data.io import read_video_frame
from anaus_pl.data.layouts import LAYOUTS, Layout, Sample, SampleRef, register
from anaus_pl.data.letterbox import unletterbox


def _video(path, frames, size=(40, 30)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for k in range(frames):
        writer.write(np.full((size[1], size[0], 3), 10 * k, np.uint8))
    writer.release()


def test_folders_globs_videos_stride_and_dedup(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x1.png", "a/x10.png", "a/x2.png", "a/b/y.jpg", "a/skip_me.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8), np.uint8))
    (tmp_path / "a" / "notes.txt").write_text("not a frame")
    _video(tmp_path / "a" / "v.avi", 9)
    inputs = [
        FrameInput(str(tmp_path / "a"), exclude=["skip_*"], frame_stride=3, max_frames_per_video=2),
        FrameInput(str(tmp_path / "a" / "x1.png")),
    ]  # listed twice: kept once
    refs, layouts = index_inputs(inputs)
    names = [r.source.replace(str(tmp_path / "a") + "/", "") for r in refs]
    assert names == ["b/y.jpg", "v.avi#0", "v.avi#3", "x1.png", "x2.png", "x10.png"]
    only_png, _ = index_inputs([FrameInput(str(tmp_path / "a"), include=["*.png"], exclude=["*skip*"])])
    assert len(only_png) == 3 and layouts == [None, None]
    with pytest.raises(FileNotFoundError, match="inputs\\[0\\].path"):
        index_inputs([FrameInput(str(tmp_path / "missing"))])


def test_video_decoder_reads_exact_frames_forward_and_back(tmp_path):
    _video(tmp_path / "v.avi", 8)
    refs, layouts = index_inputs([FrameInput(str(tmp_path / "v.avi"))])
    decoder = FrameDecoder(layouts)
    for k in (1, 2, 5, 0, 7):
        np.testing.assert_array_equal(decoder.decode(refs[k]), read_video_frame(tmp_path / "v.avi", k))


def test_corrupt_files_become_skip_records_naming_the_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00 junk")
    cv2.imwrite(str(tmp_path / "good.png"), np.full((32, 64), 200, np.uint8))
    refs, layouts = index_inputs([FrameInput(str(tmp_path))])
    dataset = LetterboxedFrames(refs, FrameDecoder(layouts), 16)
    batch = collate_frames([dataset[i] for i in range(len(dataset))])
    assert batch["images"].shape == (1, 16, 16) and batch["valid_hw"].tolist() == [[8, 16]]
    assert [s.rsplit("/", 1)[1] for s, _ in batch["skipped"]] == ["bad.jpg", "bad.mp4#0"]
    assert all(source.split("#")[0] in error for source, error in batch["skipped"])
    empty = collate_frames([dataset[0]])
    assert empty["images"].shape[0] == 0 and len(empty["skipped"]) == 1


def test_odd_sized_frame_round_trips_through_letterbox_and_valid_hw(tmp_path):
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (1080, 1928), dtype=np.uint8), (0, 0), 25)
    cv2.imwrite(str(tmp_path / "wide.png"), frame)
    refs, layouts = index_inputs([FrameInput(str(tmp_path))])
    item = LetterboxedFrames(refs, FrameDecoder(layouts), 256)[0]
    h, w = item["valid_hw"]
    assert (h, w) == (143, 256) and not item["image"][h:].any()
    back = unletterbox(item["image"].numpy(), (h, w), frame.shape)
    assert back.shape == frame.shape
    assert np.abs(back.astype(int) - frame.astype(int)).mean() < 2.0


def test_contiguous_shards_are_disjoint_and_cover_everything():
    data = list(range(11))
    shards = [list(ContiguousShardSampler(data, 3, r)) for r in range(3)]
    assert sum(shards, []) == data and [len(s) for s in shards] == [3, 4, 4]


class _FakeFrames(Layout):
    name = "fake_frames_for_annotate_test"
    task = "frames"

    def index(self):
        return [SampleRef(f"{self.root}/seq.nii#{k}") for k in range(6)] + [SampleRef(f"{self.root}/still.png")]

    def load(self, ref):
        value = int(ref.source.rsplit("#", 1)[1]) * 10 if "#" in ref.source else 255
        return Sample(image=np.full((12, 8), value, np.uint8), source=ref.source, mask=np.zeros((12, 8), np.uint8))


def test_layout_input_uses_the_reader_and_strides_its_sequences(tmp_path):
    register(_FakeFrames)
    try:
        refs, layouts = index_inputs(
            [FrameInput(str(tmp_path), layout=_FakeFrames.name, frame_stride=2, max_frames_per_video=2)]
        )
        assert [r.source.rsplit("/", 1)[1] for r in refs] == ["seq.nii#0", "seq.nii#2", "still.png"]
        decoder = FrameDecoder(layouts)
        assert decoder.decode(refs[1])[0, 0] == 20 and decoder.decode(refs[2])[0, 0] == 255
    finally:
        LAYOUTS.pop(_FakeFrames.name)


def test_frame_table_round_trips_refs_and_subsets(tmp_path):
    from anaus_pl.data.frame_sources import FrameRef, FrameTable

    layout_ref = SampleRef(source=str(tmp_path / "seq.nii#2"), patient="p1", files={"masks": ("m.png",)})
    refs = [
        FrameRef(str(tmp_path / "v.avi#3"), 0),
        FrameRef(str(tmp_path / "v.avi#4"), 0),
        FrameRef(str(tmp_path / "odd#name.png"), 1),
        FrameRef(str(tmp_path / "tail#07"), 1),  # '#07' is not a frame number
        FrameRef(str(tmp_path / "broken.mp4#0"), 1, error="cannot open"),
        FrameRef(layout_ref.source, 2, layout_ref=layout_ref),
    ]
    table = FrameTable.from_refs(refs)
    assert list(table) == refs and table.sources() == [r.source for r in refs] and table[-1] == refs[-1]
    assert len(table._paths) == 5  # v.avi stored once for both frames
    part = table.subset([5, 0])
    assert list(part) == [refs[5], refs[0]] and len(part) == 2
    with pytest.raises(IndexError):
        table[len(refs)]
    assert len(FrameTable.from_refs([])) == 0


def test_input_classes_become_per_frame_class_masks(tmp_path):
    cv2.imwrite(str(tmp_path / "heart.png"), np.zeros((32, 32), np.uint8))
    cv2.imwrite(str(tmp_path / "neck.png"), np.zeros((32, 32), np.uint8))
    names = ("thyroid_gland", "lv", "la")
    inputs = [FrameInput(str(tmp_path / "heart.png"), classes=["la", "lv"]), FrameInput(str(tmp_path / "neck.png"))]
    masks = np.stack([spec.class_mask(names) for spec in inputs])
    np.testing.assert_array_equal(masks, [[False, True, True], [True, True, True]])
    refs, layouts = index_inputs(inputs)
    batch = collate_frames([LetterboxedFrames(refs, FrameDecoder(layouts), 16, masks)[i] for i in range(2)])
    assert batch["classes"].dtype == torch.bool and batch["classes"].tolist() == masks.tolist()
    assert collate_frames([LetterboxedFrames(refs, FrameDecoder(layouts), 16)[0]])["classes"] is None
    with pytest.raises(ValueError, match="classes must name each class once"):
        FrameInput(str(tmp_path), classes=[])


def test_symlinked_folders_are_followed_once_and_files_reached_twice_indexed_once(tmp_path, caplog):
    import logging

    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    cv2.imwrite(str(outside / "deep" / "o.png"), np.zeros((8, 8), np.uint8))
    root = tmp_path / "in"
    root.mkdir()
    cv2.imwrite(str(root / "x.png"), np.zeros((8, 8), np.uint8))
    (root / "linked").symlink_to(outside)  # a symlinked folder: followed
    (root / "loop").symlink_to(root)  # a link loop: cut
    (root / "again.png").symlink_to(root / "x.png")  # the same file under a second name: once, under its real path
    (root / "gone.png").symlink_to(tmp_path / "missing.png")  # dangling: logged
    (root / "notes.txt").write_text("no frame")  # no reader: logged
    with caplog.at_level(logging.WARNING, logger="anaus_pl"):
        refs, _ = index_inputs([FrameInput(str(root))])
    assert [s.replace(str(root) + "/", "") for s in refs.sources()] == ["linked/deep/o.png", "x.png"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert f"skipped 1 dangling symlinks (their targets do not exist): {root / 'gone.png'}" in warned
    assert "skipped 1 files that no reader supports (images, videos, DICOM): notes.txt" in warned
    twice, _ = index_inputs([FrameInput(str(root / "x.png")), FrameInput(str(root / "again.png"))])
    assert len(twice) == 1
