"""Frames and clips of each anatomy: a scene, a probe, scanner settings and scatterers put together.

Every function takes its own :class:`numpy.random.Generator`; callers seed one
per item, so items do not depend on each other or on the order they are made.
In a clip the scatterers stay attached to the tissue (a small fraction is
refreshed each frame, like out-of-plane motion), so speckle persists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from anaus_pl.data.phantom.breast import BreastClass, breast_scene
from anaus_pl.data.phantom.cardiac import Heart, View, cardiac_scene
from anaus_pl.data.phantom.lung import Lung, LungClass, lung_tissue
from anaus_pl.data.phantom.physics import Acquisition, Scatterers, render
from anaus_pl.data.phantom.probes import convex_probe, linear_probe, phased_probe
from anaus_pl.data.phantom.scene import Scene
from anaus_pl.data.phantom.thyroid import NoduleKind, thyroid_scene

Clip = tuple[list[np.ndarray], list[np.ndarray]]  # frames, label maps


def frame_size(
    rng: np.random.Generator, aspect: float, even: bool = False, low: int = 160, high: int = 256
) -> tuple[int, int]:
    """A random ``(height, width)`` with ``width / height`` near ``aspect``, both within [low, high]."""
    height = int(rng.integers(low, high + 1))
    width = int(np.clip(round(height * aspect * rng.uniform(0.92, 1.08)), low, high))
    if even:
        height, width = height - height % 2, width - width % 2
    return height, width


def linear_frame(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    height, width = scene.labels.shape
    probe = linear_probe(height, width)
    return scene.image(probe, Acquisition.random(rng), Scatterers.draw(probe.beam_shape, rng), rng)


def thyroid_frame(rng: np.random.Generator, size: tuple[int, int], nodule: NoduleKind) -> tuple[np.ndarray, np.ndarray]:
    """Thyroid image and label map (1 gland, 2 nodule)."""
    return linear_frame(thyroid_scene(*size, rng, nodule), rng)


def breast_frame(
    rng: np.random.Generator, size: tuple[int, int], kind: BreastClass, n_lesions: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Breast image and lesion instance map."""
    return linear_frame(breast_scene(*size, rng, kind, n_lesions), rng)


def linear_sweep(
    make_scene: Callable[[int, int, np.random.Generator], Scene],
    rng: np.random.Generator,
    size: tuple[int, int],
    n_frames: int,
    step: int = 2,
) -> Clip:
    """A clip of a probe sliding sideways over one scene: tissue and its speckle move together."""
    height, width = size
    wide = make_scene(height, width + step * n_frames, rng)
    probe = linear_probe(height, width)
    acquisition = Acquisition.random(rng)
    scatterers = Scatterers.draw((probe.beam_shape[0], width + step * n_frames), rng)
    frames, labels = [], []
    for t in range(n_frames):
        window = slice(t * step, t * step + width)
        view = Scene(
            wide.echogenicity[:, window], wide.density[:, window], wide.attenuation[:, window], wide.labels[:, window]
        )
        moved = Scatterers(scatterers.amplitude[:, window], scatterers.occupancy[:, window]).decorrelate(0.05, rng)
        frame, label = view.image(probe, acquisition, moved, rng)
        frames.append(frame)
        labels.append(label)
    return frames, labels


def cardiac_clip(rng: np.random.Generator, size: tuple[int, int], view: View, contractions: Sequence[float]) -> Clip:
    """One heart imaged at each contraction state (0 end-diastole .. 1 end-systole); labels 1 LV, 2 MYO, 3 LA."""
    height, width = size
    heart = Heart.random(height, width, view, rng)
    probe = phased_probe(height, width, rng)
    acquisition = Acquisition.random(rng)
    scatterers = Scatterers.draw(probe.beam_shape, rng)
    texture_seed = int(rng.integers(2**31))
    frames, labels = [], []
    for contraction in contractions:
        scene = cardiac_scene(height, width, heart, contraction, np.random.default_rng(texture_seed))
        scatterers = scatterers.decorrelate(0.15, rng)
        frame, label = scene.image(probe, acquisition, scatterers, rng)
        frames.append(frame)
        labels.append(label)
    return frames, labels


def lung_clip(rng: np.random.Generator, size: tuple[int, int], kind: LungClass, n_frames: int) -> list[np.ndarray]:
    """A breathing lung (convex probe) of the given class; no label maps."""
    probe = convex_probe(*size, rng)
    lung = Lung.random(kind, rng)
    acquisition = Acquisition.random(rng)
    scatterers = Scatterers.draw(probe.beam_shape, rng)
    texture_seed = int(rng.integers(2**31))
    breath_start = float(rng.uniform())
    frames = []
    for t in range(n_frames):
        tissue = lung_tissue(
            probe.beam_shape, lung, breath_start + t / max(n_frames, 8), np.random.default_rng(texture_seed)
        )
        scatterers = scatterers.decorrelate(0.1, rng)
        frames.append(render(tissue, probe, acquisition, scatterers, rng))
    return frames
