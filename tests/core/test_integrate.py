"""The batched integrator reproduces pyFAI's integrate1d frame by frame."""

import numpy as np
import pytest

from xrdmap.config import load_process
from xrdmap.integrate import BatchIntegrator, GeometryError, load_geometry, load_mask
from xrdmap.simulate import geometry


def test_matches_pyfai_integrate1d(batch_integrator, integration_frames, integrate):
    result = batch_integrator.integrate(integration_frames)
    assert result.intensity.shape == (len(integration_frames), 300)
    for i, frame in enumerate(integration_frames):
        ref = integrate(frame)  # per-frame mask of negative and overflowing pixels
        np.testing.assert_allclose(batch_integrator.radial, ref.radial, rtol=1e-12)
        np.testing.assert_allclose(result.intensity[i], ref.intensity, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result.sigma[i], ref.sigma, rtol=1e-4, atol=1e-6)


def test_bad_pixels_are_dropped_not_counted(batch_integrator, integration_frames):
    clean = integration_frames[3].copy()
    clean[100, 200] = 0
    with_overflow = batch_integrator.integrate(integration_frames[3:4]).intensity[0]
    # the overflowing pixel must not leak ~1e6 counts into its bin
    assert np.nanmax(with_overflow) < 10 * np.nanmedian(with_overflow)
    assert not np.allclose(with_overflow, batch_integrator.integrate(clean[None]).intensity[0])


def test_batch_size_does_not_change_results(
    integrator, detector_mask, instrument, integration_frames
):
    cfg = load_process().integration
    a = BatchIntegrator(
        integrator,
        detector_mask,
        cfg.model_copy(update={"batch_frames": 3}),
        count_cutoff=instrument.count_cutoff,
    )
    b = BatchIntegrator(
        integrator,
        detector_mask,
        cfg.model_copy(update={"batch_frames": 64}),
        count_cutoff=instrument.count_cutoff,
    )
    # to the bit (a store's settings leave the batch size out): each frame's sums run in
    # the same order whatever the batch, here split 3+3+... against all in one
    ra, rb = a.integrate(integration_frames), b.integrate(integration_frames)
    assert len(integration_frames) % 3 and 3 < len(integration_frames) <= 64
    np.testing.assert_array_equal(ra.intensity, rb.intensity)
    np.testing.assert_array_equal(ra.sigma, rb.sigma)


def test_bad_poni_names_the_field(tmp_path, integrator):
    good = geometry.write_poni(integrator, tmp_path / "good.poni")
    text = good.read_text()
    for field, broken, message in (
        ("Distance", text.replace("Distance: 0.153", "Distance: abc"), "Distance: not a number"),
        ("Wavelength", text.replace("e-10", "e-03"), "Wavelength: .* is not an X-ray"),
        ("Rot1", "\n".join(li for li in text.splitlines() if not li.startswith("Rot1")), "Rot1:"),
    ):
        path = tmp_path / f"bad_{field}.poni"
        path.write_text(broken)
        with pytest.raises(GeometryError, match=message) as err:
            load_geometry(path)
        assert str(path) in str(err.value)
    with pytest.raises(GeometryError, match="cannot read PONI"):
        load_geometry(tmp_path / "absent.poni")


def test_mask_shape_is_checked(tmp_path):
    path = geometry.write_mask(np.zeros((10, 10), np.int8), tmp_path / "m.edf")
    with pytest.raises(GeometryError, match=r"mask shape \(10, 10\) != detector shape"):
        load_mask(path, (195, 487))


def _without(text: str, *prefixes: str) -> str:
    return "\n".join(li for li in text.splitlines() if not li.startswith(prefixes)) + "\n"


def test_a_poni_naming_no_detector_takes_it_from_the_frames(
    tmp_path, integrator, integration_frames
):
    """PONI files written by other programs may lack the Detector line (and a v1 PONI
    states only pixel sizes): the detector is then the frames' shape and the pixel size
    the PONI, the frame header or the manifest gives."""
    named = geometry.write_poni(integrator, tmp_path / "named.poni")
    bare = tmp_path / "bare.poni"
    bare.write_text(_without(named.read_text(), "Detector", "poni_version"))
    with pytest.raises(GeometryError, match=r"bare.poni: Detector: the PONI names no detector"):
        load_geometry(bare, shape=(195, 487))
    v1 = tmp_path / "v1.poni"
    v1.write_text(bare.read_text() + "PixelSize1: 0.000172\nPixelSize2: 0.000172\n")
    cfg = load_process().integration
    mask = np.zeros((195, 487), bool)
    expected = BatchIntegrator(load_geometry(named), mask, cfg, count_cutoff=2**31 - 1)
    for ai in (
        load_geometry(bare, shape=(195, 487), pixel_size_m=(172e-6, 172e-6)),
        load_geometry(v1, shape=(195, 487)),
    ):
        got = BatchIntegrator(ai, mask, cfg, count_cutoff=2**31 - 1)
        np.testing.assert_array_equal(got.radial, expected.radial)
        np.testing.assert_allclose(
            got.integrate(integration_frames[:4]).intensity,
            expected.integrate(integration_frames[:4]).intensity,
        )
    with pytest.raises(GeometryError, match=r"Pilatus100k has \(195, 487\) pixels, the frames"):
        load_geometry(named, shape=(487, 195))


def test_orientation_says_how_the_image_is_stored(tmp_path, integrator, integration_frames):
    """A frame stored mirrored left-right integrates like the original once the
    orientation says so (pyFAI 4: origin bottom left), and wrongly without."""
    poni = geometry.write_poni(integrator, tmp_path / "g.poni")
    cfg = load_process().integration
    mask = np.zeros((195, 487), bool)
    plain = BatchIntegrator(load_geometry(poni), mask, cfg, count_cutoff=2**31 - 1)
    mirrored = BatchIntegrator(
        load_geometry(poni, orientation=4), mask, cfg, count_cutoff=2**31 - 1
    )
    want = plain.integrate(integration_frames[:4]).intensity
    got = mirrored.integrate(integration_frames[:4, :, ::-1]).intensity
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    wrong = plain.integrate(integration_frames[:4, :, ::-1]).intensity
    assert np.nanmax(np.abs(wrong - want)) > 0.1 * np.nanmax(want)
