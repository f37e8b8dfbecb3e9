"""Image formation: speckle statistics, attenuation, shadowing/enhancement, log compression, scan conversion."""

import numpy as np
import pytest

from anaus_pl.data.phantom.physics import (
    TISSUE_ATTENUATION_DB,
    Acquisition,
    Scatterers,
    Tissue,
    axial_pulse,
    envelope,
    lateral_beam,
    log_compress,
    render,
    transmitted_fraction,
)
from anaus_pl.data.phantom.probes import convex_probe, linear_probe, phased_probe
from anaus_pl.data.phantom.scene import Scene
from anaus_pl.data.phantom.shapes import Blob, pixel_grid, soften

RAYLEIGH_SNR = np.sqrt(np.pi / (4 - np.pi))  # mean / std of a Rayleigh variable = 1.913


def uniform_tissue(shape, echo=1.0, density=1.0, attenuation=0.0):
    return Tissue(
        np.full(shape, echo, np.float32), np.full(shape, density, np.float32), np.full(shape, attenuation, np.float32)
    )


def test_psf_parts_have_unit_energy():
    assert np.sum(axial_pulse(0.22, 2.2) ** 2) == pytest.approx(1.0, rel=1e-5)
    assert np.sum(lateral_beam(1.5) ** 2) == pytest.approx(1.0, rel=1e-5)


def test_speckle_envelope_is_rayleigh_before_log_compression(rng):
    shape = (600, 300)
    amplitude = envelope(uniform_tissue(shape), Scatterers.draw(shape, rng), Acquisition(noise_level=0.0), rng)
    region = amplitude[50:-50, 20:-20]
    assert region.mean() / region.std() == pytest.approx(RAYLEIGH_SNR, abs=0.08)
    # unit-energy PSF: RF power equals echogenicity squared; the analytic signal's envelope carries twice that
    assert np.mean(region**2) == pytest.approx(2.0, rel=0.1)


def test_transmitted_fraction_matches_hand_computed_loss():
    rows = 100
    fraction = transmitted_fraction(np.full((rows, 2), 20.0, np.float32))  # 20 dB over the full depth
    assert fraction[-1, 0] == pytest.approx(0.1, rel=1e-4)
    assert fraction[rows // 2 - 1, 0] == pytest.approx(10 ** (-0.5), rel=1e-4)


def test_log_compression_maps_gain_to_white_and_range_floor_to_black():
    acquisition = Acquisition(gain_db=20.0, dynamic_range_db=40.0)
    values = log_compress(np.array([10.0, 0.1, 1.0, 1e-4], np.float32), acquisition)
    np.testing.assert_allclose(values, [1.0, 0.0, 0.5, 0.0], atol=1e-6)


def render_scene(scene, seed=0, **settings):
    rng = np.random.default_rng(seed)
    height, width = scene.labels.shape
    probe = linear_probe(height, width)
    image, _ = scene.image(probe, Acquisition(**settings), Scatterers.draw(probe.beam_shape, rng), rng)
    return image.astype(np.float64)


def test_anechoic_region_is_darker_than_tissue_and_enhances_behind():
    scene = Scene.soft_tissue(200, 200)
    yy, xx = pixel_grid(200, 200)
    cyst = Blob(70, 100, 25, 25).inside(yy, xx)
    scene.paint(soften(cyst), 0.02, attenuation=1.0)
    image = render_scene(scene)
    ring = Blob(70, 100, 40, 40).inside(yy, xx) & ~Blob(70, 100, 30, 30).inside(yy, xx)
    assert image[cyst].mean() < 0.4 * image[ring].mean()
    behind, beside = image[110:190, 85:115], image[110:190, 20:50]
    assert behind.mean() > beside.mean() + 10  # posterior acoustic enhancement


def test_strong_attenuator_casts_a_shadow():
    scene = Scene.soft_tissue(200, 200)
    yy, xx = pixel_grid(200, 200)
    scene.paint(soften(Blob(60, 100, 12, 20).inside(yy, xx)), 0.3, attenuation=600.0)
    image = render_scene(scene)
    assert image[100:190, 90:110].mean() < 0.5 * image[100:190, 20:40].mean()


def test_sector_scan_conversion_round_trip(rng):
    for probe in (phased_probe(181, 220, rng), convex_probe(200, 233, rng)):
        _, xx = pixel_grid(probe.height, probe.width)
        back = probe.scan_convert(probe.to_beam(xx))
        inner = probe.field_of_view & np.roll(probe.field_of_view, 3, 1) & np.roll(probe.field_of_view, -3, 1)
        inner &= np.roll(probe.field_of_view, -3, 0) & np.roll(probe.field_of_view, 3, 0)
        assert np.abs(back - xx)[inner].mean() < 0.5
        assert not back[~probe.field_of_view].any()
        assert probe.field_of_view.mean() > 0.4


def test_render_returns_uint8_of_image_size(rng):
    probe = phased_probe(161, 203, rng)
    image = render(
        uniform_tissue(probe.beam_shape, attenuation=TISSUE_ATTENUATION_DB),
        probe,
        Acquisition(),
        Scatterers.draw(probe.beam_shape, rng),
        rng,
    )
    assert image.dtype == np.uint8 and image.shape == (161, 203)
    assert image[probe.field_of_view].mean() > 40 and image[~probe.field_of_view].max() == 0
