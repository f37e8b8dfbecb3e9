"""A deterministic stand-in for LP-SAM with the interface of docs/INTERFACES.md.

Class ``bright`` is where the frame is brighter than the checkpoint's
``high`` level, class ``dark`` where it is darker than ``low``; the
probabilities are steep sigmoids of the intensity, so thresholds and overlap
resolution have something to act on. The "checkpoint" is a small JSON file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn

from anaus_pl.data.vocabulary import AnatomyVocabulary


class ThresholdLPSAM(nn.Module):
    def __init__(
        self, image_size: int = 64, low: float = 0.25, high: float = 0.6, steepness: float = 30.0, delay: float = 0.0
    ) -> None:
        super().__init__()
        self.delay = delay  # seconds per batch, so a test can interrupt a run part-way
        self.vocabulary = AnatomyVocabulary(["bright", "dark"])
        self.image_size = image_size
        self.register_buffer("levels", torch.tensor([high, low]))
        self.steepness = steepness

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.delay)
        assert images.ndim == 4 and images.shape[1] == 1 and images.shape[-1] == self.image_size
        bright = torch.sigmoid((images - self.levels[0]) * self.steepness)
        dark = torch.sigmoid((self.levels[1] - images) * self.steepness)
        probabilities = torch.cat([bright, dark], dim=1)
        return probabilities, probabilities.mean(dim=(2, 3))


def write_checkpoint(path: str | Path, **settings: float) -> Path:
    path = Path(path)
    path.write_text(json.dumps(settings))
    return path


def load_stub(checkpoint_path: str, map_location: str = "cpu") -> ThresholdLPSAM:
    return ThresholdLPSAM(**json.loads(Path(checkpoint_path).read_text())).eval()
