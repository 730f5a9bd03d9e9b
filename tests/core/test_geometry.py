"""The PONI written by pyFAI loads back with the reference geometry; the mask holds the
detector's listed bad pixels."""

import fabio
import numpy as np
import pyFAI
import pytest

from xrdmap.simulate import geometry


def test_poni_round_trip(tmp_path, integrator, instrument):
    path = geometry.write_poni(integrator, tmp_path / "geometry.poni")
    ai = pyFAI.load(str(path))
    assert ai.detector.shape == (195, 487)
    assert ai.detector.pixel1 == pytest.approx(172e-6)
    assert ai.dist == pytest.approx(0.153)
    assert ai.wavelength == pytest.approx(instrument.wavelength_a * 1e-10)
    assert np.degrees(ai.rot1) == pytest.approx(25.0)
    tth = ai.center_array(unit="2th_deg")
    assert tth[97, 243] == pytest.approx(25.0, abs=0.05)  # detector centre at 2theta = 25
    assert tth.min() == pytest.approx(9.7, abs=0.1)
    assert tth.max() == pytest.approx(40.6, abs=0.1)


def test_writing_twice_replaces_the_poni(tmp_path, integrator):
    path = tmp_path / "g.poni"
    geometry.write_poni(integrator, path)
    first = path.read_text().count("Distance:")
    geometry.write_poni(integrator, path)
    assert first == path.read_text().count("Distance:") == 1


def test_mask_lists_dead_and_hot_pixels(tmp_path, sim_config):
    defects = geometry.detector_defects(sim_config.detector_defects, (195, 487))
    path = geometry.write_mask(defects.mask((195, 487)), tmp_path / "mask.edf")
    mask = fabio.open(str(path)).data
    assert mask.shape == (195, 487)
    assert (
        mask.sum()
        == sim_config.detector_defects.dead_pixels + sim_config.detector_defects.hot_pixels
    )
    assert mask.ravel()[defects.dead].all() and mask.ravel()[defects.hot].all()
    assert not mask.ravel()[defects.flickering].any()  # a flickering pixel is not listed
    again = geometry.detector_defects(sim_config.detector_defects, (195, 487))
    np.testing.assert_array_equal(again.dead, defects.dead)  # fixed by the detector serial
