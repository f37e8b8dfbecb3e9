import json

import pytest
import torch
import torchvision

from anaus_pl.models.export import EncoderMeta, build_backbone, load_encoder, save_encoder


def test_export_round_trip_loads_strictly_into_torchvision(tmp_path):
    backbone = build_backbone("resnet18")
    with torch.no_grad():
        backbone.conv1.weight.fill_(0.5)
    save_encoder(backbone, EncoderMeta(arch="resnet18", classes=["lv"]), tmp_path)
    reference = torchvision.models.resnet18(weights=None)
    reference.fc = torch.nn.Identity()
    reference.load_state_dict(torch.load(tmp_path / "encoder.pt", weights_only=True), strict=True)
    loaded, meta = load_encoder(tmp_path)
    assert meta.arch == "resnet18" and meta.classes == ["lv"]
    assert torch.equal(loaded.conv1.weight, backbone.conv1.weight)
    assert json.loads((tmp_path / "encoder.json").read_text())["input_size"] == 224


def test_wrong_architecture_is_reported(tmp_path):
    save_encoder(build_backbone("resnet18"), EncoderMeta(arch="resnet18"), tmp_path)
    meta = json.loads((tmp_path / "encoder.json").read_text())
    (tmp_path / "encoder.json").write_text(json.dumps({**meta, "arch": "resnet34"}))
    with pytest.raises(ValueError, match="does not match"):
        load_encoder(tmp_path / "encoder.pt")
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        load_encoder(tmp_path / "elsewhere")
