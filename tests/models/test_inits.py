"""The init string parsed once: round trips, labels, and clear errors."""

from __future__ import annotations

import pytest

from anaus_pl.models.inits import Init, init_label


@pytest.mark.parametrize(
    ("text", "kind", "path", "label"),
    [
        ("random", "random", "", "random"),
        ("encoder:runs/pretrain/my run/encoder.pt", "encoder", "runs/pretrain/my run/encoder.pt", "encoder-my_run"),
        ("encoder:runs/pretrain/x", "encoder", "runs/pretrain/x", "encoder-x"),
        (
            "torchvision:/w/resnet18-imagenet.pth",
            "torchvision",
            "/w/resnet18-imagenet.pth",
            "torchvision-resnet18-imagenet",
        ),
        ("timm:C:/w/r50.pth", "timm", "C:/w/r50.pth", "timm-r50"),  # only the first colon splits
    ],
)
def test_parse_round_trip_and_label(text: str, kind: str, path: str, label: str) -> None:
    init = Init.parse(text)
    assert (init.kind, init.path, init.label, str(init)) == (kind, path, label, text)
    assert Init.parse(init) is init and init_label(text) == label


def test_encoder_constructor_matches_parse(tmp_path) -> None:
    assert Init.encoder(tmp_path / "encoder.pt") == Init.parse(f"encoder:{tmp_path / 'encoder.pt'}")


@pytest.mark.parametrize(
    ("text", "message"),
    [("imagenet", "use encoder:<path>"), ("encoder:", "give the file"), ("random:x", "no path"), ("", "use")],
)
def test_bad_inits_name_the_accepted_forms(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Init.parse(text)
