"""The one input normalisation gives, bit for bit, the tensors its three former copies gave."""

from __future__ import annotations

import pytest
import torch
import torchvision

from anaus_pl.models.downstream import StagedEncoder
from anaus_pl.models.lpsam import LPSAMConfig, build_lpsam
from anaus_pl.models.normalization import InputNormalization
from anaus_pl.tasks.pretrain import PretrainTask

SAM_MEAN = torch.tensor((123.675 / 255, 116.28 / 255, 103.53 / 255)).view(1, 3, 1, 1)  # segment-anything's, / 255
SAM_STD = torch.tensor((58.395 / 255, 57.12 / 255, 57.375 / 255)).view(1, 3, 1, 1)


def test_hand_values_and_channel_repeat() -> None:
    norm = InputNormalization((0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    gray = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    expected = torch.tensor([[-1.0, 1.0], [-1.0, 3.0], [0.0, 0.5]]).view(1, 3, 1, 2)
    assert torch.equal(norm(gray), expected)
    assert torch.equal(norm(gray.expand(-1, 3, -1, -1)), expected)  # RGB input: the same per-channel formula
    assert not norm.state_dict()  # statistics come from the configuration, never from a checkpoint
    with pytest.raises(ValueError, match="1 or 3"):
        norm(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="3 values"):
        InputNormalization((0.5,), (0.5,))


def test_pretrain_lpsam_and_staged_encoder_give_the_former_tensors() -> None:
    images = torch.rand(2, 1, 32, 32)
    task = PretrainTask(
        batch_size=2,
        image_size=32,
        classes=["a"],
        arch="resnet18",
        scales=("c5",),
        channels_last=False,
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.3, 0.1),
    )
    former = (images.expand(-1, 3, -1, -1) - torch.tensor((0.4, 0.5, 0.6)).view(1, 3, 1, 1)) / torch.tensor(
        (0.2, 0.3, 0.1)
    ).view(1, 3, 1, 1)
    assert torch.equal(task.normalize(images), former)

    lpsam = build_lpsam(LPSAMConfig(classes=["a"], encoder="vit_micro", image_size=32, pretrained=False))
    assert torch.equal(lpsam.normalize(images), (images.expand(-1, 3, -1, -1) - SAM_MEAN) / SAM_STD)

    encoder = StagedEncoder(torchvision.models.resnet18(), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)).eval()
    with torch.no_grad():
        ours = encoder(images)[0]
        former_input = (images.expand(-1, 3, -1, -1) - SAM_MEAN) / SAM_STD
        reference = encoder.stages[0](encoder.stem(former_input))
    assert torch.equal(ours, reference)
    assert not any(key.startswith("input_norm") for key in encoder.state_dict())
