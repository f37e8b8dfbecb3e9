"""The phantom writes the public layouts exactly as the readers expect them."""

import json

import pytest

from anaus_pl.data.layouts.cli import main as datasets_main
from anaus_pl.data.phantom.writers import WRITERS


@pytest.mark.parametrize("layout", sorted(WRITERS))
def test_datasets_check_passes_on_every_phantom_layout(layout, tiny_phantom, capsys):
    code = datasets_main(["check", "--layout", layout, "--root", str(tiny_phantom / layout)])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["problems"]
    assert report["problems"] == [] and report["n_items"] > 0
    if report["task"] == "segmentation":
        assert all(count > 0 for count in report["classes"].values())


def test_busi_normals_read_as_empty_masks_whatever_their_png_mode(tiny_phantom):
    from anaus_pl.data.layouts import get_layout

    layout = get_layout("busi", str(tiny_phantom / "busi"))
    normal = layout.class_names.index("normal")
    samples = [layout.load(ref) for ref in layout.index() if ref.label == normal]
    assert samples and all(not sample.mask.any() for sample in samples)
