"""B-mode image formation on a probe's beam grid.

The chain follows a scanner's receive path, vectorised over the whole frame:

1. scatterers: a zero-mean Gaussian amplitude in every grid cell, kept with
   probability ``density`` and scaled by ``echogenicity / sqrt(density)`` so
   that the mean backscattered power follows the echogenicity while sparse
   tissue looks grainier;
2. round-trip attenuation: the cumulative loss along each beam, so strong
   attenuators shadow what lies behind them and weak ones (fluid) enhance it;
3. RF formation: separable convolution with the point-spread function, an
   axial Gaussian-modulated cosine pulse times a lateral Gaussian beam;
4. envelope detection with the Hilbert transform along depth, plus receiver noise;
5. time-gain compensation that undoes most of the expected soft-tissue loss;
6. log compression to a dynamic range, then scan conversion to pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len
from scipy.ndimage import convolve1d
from scipy.signal import hilbert

from anaus_pl.data.phantom.probes import Probe

TISSUE_ATTENUATION_DB = 18.0
"""Round-trip loss of reference soft tissue over the full image depth (dB)."""


@dataclass(frozen=True)
class Tissue:
    """Acoustic property maps on a probe's beam grid (depth rows x beam columns).

    ``echogenicity``: scatterer amplitude scale (1 = reference soft tissue).
    ``density``: fraction of grid cells holding a scatterer, in (0, 1].
    ``attenuation``: round-trip loss in dB per full image depth (soft tissue
    :data:`TISSUE_ATTENUATION_DB`; fluid far less; calcium, bone and air far more).
    """

    echogenicity: np.ndarray
    density: np.ndarray
    attenuation: np.ndarray


@dataclass(frozen=True)
class Scatterers:
    """The random part of a frame: Gaussian amplitudes and the uniform draws deciding occupancy."""

    amplitude: np.ndarray
    occupancy: np.ndarray

    @classmethod
    def draw(cls, shape: tuple[int, int], rng: np.random.Generator) -> Scatterers:
        return cls(rng.standard_normal(shape, dtype=np.float32), rng.random(shape, dtype=np.float32))

    def decorrelate(self, fraction: float, rng: np.random.Generator) -> Scatterers:
        """A partly refreshed field (blood flow, out-of-plane motion between video frames)."""
        fresh = rng.standard_normal(self.amplitude.shape, dtype=np.float32)
        keep = np.float32(np.sqrt(1.0 - fraction))
        return Scatterers(keep * self.amplitude + np.float32(np.sqrt(fraction)) * fresh, self.occupancy)


@dataclass(frozen=True)
class Acquisition:
    """Scanner settings of one recording."""

    pulse_cycles_per_sample: float = 0.22  # carrier frequency in cycles per axial grid sample
    pulse_sigma: float = 2.2  # axial Gaussian envelope, grid samples
    beam_sigma: float = 1.4  # lateral Gaussian beam width, beam columns
    dynamic_range_db: float = 55.0
    gain_db: float = 26.0  # envelope level (dB re. reference tissue RMS) shown as white
    tgc_match: float = 0.9  # fraction of the soft-tissue loss the TGC curve restores
    noise_level: float = 0.01  # receiver noise RMS relative to reference tissue

    @classmethod
    def random(cls, rng: np.random.Generator) -> Acquisition:
        """Settings jittered like different operators and machines."""
        return cls(
            pulse_cycles_per_sample=float(rng.uniform(0.18, 0.26)),
            pulse_sigma=float(rng.uniform(1.8, 2.8)),
            beam_sigma=float(rng.uniform(1.1, 1.9)),
            dynamic_range_db=float(rng.uniform(48.0, 60.0)),
            gain_db=float(rng.uniform(23.0, 29.0)),
            tgc_match=float(rng.uniform(0.75, 1.05)),
            noise_level=float(rng.uniform(0.005, 0.02)),
        )


def axial_pulse(cycles_per_sample: float, sigma: float) -> np.ndarray:
    """Gaussian-modulated cosine, unit energy."""
    half = int(np.ceil(3.0 * sigma))
    t = np.arange(-half, half + 1, dtype=np.float64)
    pulse = np.exp(-0.5 * (t / sigma) ** 2) * np.cos(2.0 * np.pi * cycles_per_sample * t)
    return (pulse / np.sqrt(np.sum(pulse**2))).astype(np.float32)


def lateral_beam(sigma: float) -> np.ndarray:
    """Gaussian beam profile, unit energy."""
    half = int(np.ceil(3.0 * sigma))
    x = np.arange(-half, half + 1, dtype=np.float64)
    beam = np.exp(-0.5 * (x / sigma) ** 2)
    return (beam / np.sqrt(np.sum(beam**2))).astype(np.float32)


def transmitted_fraction(attenuation: np.ndarray) -> np.ndarray:
    """Amplitude left at each depth after the round trip through everything above it."""
    loss_db = np.cumsum(attenuation, axis=0, dtype=np.float32) / np.float32(attenuation.shape[0])
    return np.power(np.float32(10.0), -loss_db / np.float32(20.0))


def tgc_gain(n_rows: int, match: float) -> np.ndarray:
    """Time-gain compensation column: restores ``match`` of the expected soft-tissue loss."""
    depth = (np.arange(n_rows, dtype=np.float32) + 1.0) / np.float32(n_rows)
    return np.power(np.float32(10.0), np.float32(match * TISSUE_ATTENUATION_DB / 20.0) * depth)[:, None]


def envelope(
    tissue: Tissue,
    scatterers: Scatterers,
    acquisition: Acquisition,
    rng: np.random.Generator,
    *,
    attenuate: bool = True,
) -> np.ndarray:
    """Detected echo amplitude on the beam grid (linear scale, before log compression)."""
    density = np.clip(tissue.density, 1e-3, 1.0).astype(np.float32)
    occupied = scatterers.occupancy < density
    reflectivity = np.where(occupied, scatterers.amplitude * (tissue.echogenicity / np.sqrt(density)), np.float32(0.0))
    if attenuate:
        reflectivity = reflectivity * transmitted_fraction(tissue.attenuation)
    rf = convolve1d(
        reflectivity.astype(np.float32),
        axial_pulse(acquisition.pulse_cycles_per_sample, acquisition.pulse_sigma),
        axis=0,
        mode="constant",
    )
    rf = convolve1d(rf, lateral_beam(acquisition.beam_sigma), axis=1, mode="nearest")
    rf += np.float32(acquisition.noise_level) * rng.standard_normal(rf.shape, dtype=np.float32)
    rows = rf.shape[0]
    return np.abs(hilbert(rf, N=next_fast_len(rows), axis=0)[:rows]).astype(np.float32)


def log_compress(amplitude: np.ndarray, acquisition: Acquisition) -> np.ndarray:
    """Map amplitude to [0, 1]: ``gain_db`` is white, ``gain_db - dynamic_range_db`` black."""
    level_db = np.float32(20.0) * np.log10(np.maximum(amplitude, np.float32(1e-6)))
    low = acquisition.gain_db - acquisition.dynamic_range_db
    return np.clip((level_db - np.float32(low)) / np.float32(acquisition.dynamic_range_db), 0.0, 1.0)


def render(
    tissue: Tissue, probe: Probe, acquisition: Acquisition, scatterers: Scatterers, rng: np.random.Generator
) -> np.ndarray:
    """The full chain for one frame: ``uint8 (H, W)`` B-mode image, black outside the field of view."""
    amplitude = envelope(tissue, scatterers, acquisition, rng)
    amplitude *= tgc_gain(amplitude.shape[0], acquisition.tgc_match)
    image = probe.scan_convert(log_compress(amplitude, acquisition))
    return np.rint(image * 255.0).astype(np.uint8)
