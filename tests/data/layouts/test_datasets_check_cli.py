"""``anaus-pl datasets check``: exit codes and messages for bad invocations."""

import numpy as np
import pytest
from layout_trees import run_check, write_image

from anaus_pl import cli
from anaus_pl.data.layouts import LAYOUTS

NAMES = [
    "busi",
    "butterfly",
    "camus",
    "datalist",
    "ddti",
    "folder",
    "frames",
    "hmcqu",
    "pocus",
    "pocus-uscl",
    "tg3k",
    "tn3k",
    "udiat",
    "us30k",
]


def test_every_layout_is_registered():
    from anaus_pl.data.layouts import _load_readers

    _load_readers()
    # other test modules register fake layouts of their own: only the package's readers are checked
    package_readers = sorted(name for name, cls in LAYOUTS.items() if cls.__module__.startswith("anaus_pl."))
    assert package_readers == NAMES


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--layout", "mnist"], "unknown layout 'mnist'"),
        (["--layout", "busi", "-o", "stride=2"], "layout 'busi' has no option ['stride']"),
        (["--layout", "tn3k"], "no folder holding 'trainval-image', 'trainval-mask'"),
    ],
)
def test_bad_invocations_exit_2_with_a_message(tmp_path, capsys, argv, message):
    code = cli.main(["datasets", "check", "--root", str(tmp_path), *argv])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and message in captured.err


def test_missing_root_exits_2(tmp_path, capsys):
    code = cli.main(["datasets", "check", "--layout", "udiat", "--root", str(tmp_path / "nowhere")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "nowhere: data root not found for layout 'udiat'" in captured.err


def test_clean_tree_exits_0_and_prints_one_json_object(tmp_path, capsys):
    (tmp_path / "video_mp4").mkdir()
    (tmp_path / "video_mp4" / "notes.txt").write_text("not a frame")
    assert cli.main(["datasets", "check", "--layout", "butterfly", "--root", str(tmp_path)]) == 2  # no frames at all
    capsys.readouterr()
    write_image(tmp_path / "video_mp4" / "video_mp4_frame0.jpg", np.zeros((8, 8), np.uint8))
    code, report = run_check(capsys, "butterfly", tmp_path)
    assert code == 0 and set(report) == {"layout", "root", "task", "n_items", "classes", "n_patients", "problems"}
