"""Reference patterns computed from the CIFs agree with published powder lines.

The published lines (d in Angstrom, relative intensity) are the strongest lines
tabulated for each mineral (ICDD-style reference data), copied here so the project
never reads anything outside itself.
"""

import numpy as np
import pytest

from xrdmap.phases import compute_reference_lines

PUBLISHED_LINES = {
    "goethite": [
        (4.18, 100),
        (2.69, 35),
        (2.45, 50),
        (2.19, 18),
        (1.72, 20),
        (4.98, 12),
        (2.58, 12),
    ],
    "lepidocrocite": [(6.26, 100), (3.29, 90), (2.47, 80), (1.94, 70), (1.73, 40), (2.09, 20)],
    "magnetite": [(2.53, 100), (2.97, 30), (1.48, 40), (1.61, 30), (2.10, 20), (4.85, 8)],
    "hematite": [(2.70, 100), (2.52, 70), (1.69, 45), (1.84, 40), (3.68, 30), (2.21, 20)],
    "ferrite": [(2.03, 100), (1.43, 20)],
    "austenite": [(2.08, 100), (1.80, 45)],
    "akaganeite": [(3.33, 100), (7.47, 100), (2.55, 55), (1.64, 40), (5.28, 30), (2.29, 20)],
    # the simulator's foreign phases (simulation.yaml), no class
    "quartz": [(4.26, 22), (3.343, 100), (2.458, 8), (2.282, 8), (1.818, 14)],
    "calcite": [(3.035, 100), (2.285, 18), (2.095, 18), (1.913, 17), (1.875, 17), (3.86, 12)],
    "halite": [(2.821, 100), (1.994, 55), (1.628, 15), (3.258, 13)],
}
WAVELENGTH_A = 1.2398
#: Lines closer than this in d are unresolved: their intensities add up.
MERGE_D_A = 0.012


def _lines(phases, sim_config, name):
    # A wide window (d down to ~1.4 A) to see every published line.
    every = phases.with_foreign(sim_config.foreign_phases).phases
    return compute_reference_lines(
        name, every[name], wavelength_a=WAVELENGTH_A, tth_range_deg=(5, 55)
    )


@pytest.mark.parametrize("name", sorted(PUBLISHED_LINES))
def test_positions_match_published_lines(phases, sim_config, name):
    lines = _lines(phases, sim_config, name)
    for d_pub, _ in PUBLISHED_LINES[name]:
        nearest = np.min(np.abs(lines.d_a - d_pub))
        assert nearest <= 0.015 * d_pub, f"{name}: no computed line near d = {d_pub} A"


@pytest.mark.parametrize("name", sorted(PUBLISHED_LINES))
def test_intensities_roughly_match(phases, sim_config, name):
    lines = _lines(phases, sim_config, name)
    rel = lines.relative_intensity
    published = PUBLISHED_LINES[name]
    strongest_pub = max(published, key=lambda t: t[1])[0]
    assert abs(lines.d_a[np.argmax(rel)] - strongest_pub) <= 0.015 * strongest_pub
    for d_pub, i_pub in published:
        if i_pub < 30:
            continue  # weak lines: position only
        i_calc = rel[np.abs(lines.d_a - d_pub) <= max(MERGE_D_A, 0.004 * d_pub)].sum()
        assert i_pub / 2.5 <= i_calc <= i_pub * 2.5, f"{name} d={d_pub}: {i_calc:.0f} vs {i_pub}"


def test_beamline_two_theta_of_main_lines(phases, sim_config):
    """At 10 keV: goethite 17.06, lepidocrocite 11.37, magnetite 28.37, ferrite 35.6 deg."""
    expected = {"goethite": 17.06, "lepidocrocite": 11.37, "magnetite": 28.37, "ferrite": 35.6}
    for name, tth in expected.items():
        lines = _lines(phases, sim_config, name)
        main = lines.tth_deg[np.argmax(lines.intensity)]
        assert main == pytest.approx(tth, abs=0.1), name


def test_texture_axis_of_platy_lepidocrocite(phases, sim_config):
    lines = _lines(phases, sim_config, "lepidocrocite")
    i020 = int(np.argmin(np.abs(lines.d_a - 6.26)))
    assert lines.texture_cos2[i020] == pytest.approx([1.0])  # (020) normal is the plate normal


def test_fe_fluorescence_density(phases, sim_config):
    ferrite = _lines(phases, sim_config, "ferrite")
    goethite = _lines(phases, sim_config, "goethite")
    assert ferrite.fe_per_a3 == pytest.approx(2 / 2.8619**3, rel=0.06)  # 2 Fe per bcc cell
    assert goethite.fe_per_a3 == pytest.approx(4 / (9.96 * 3.02 * 4.61), rel=0.01)


def test_densities_from_the_structures(phases, sim_config):
    """Weight fractions rest on these: the known minerals' densities (g/cm3)."""
    published = {"magnetite": 5.20, "goethite": 4.27, "ferrite": 7.87, "quartz": 2.65}
    published |= {"calcite": 2.71, "halite": 2.16, "hematite": 5.27, "akaganeite": 3.7}
    for name, density in published.items():
        lines = _lines(phases, sim_config, name)
        assert lines.density_g_cm3 == pytest.approx(density, rel=0.02), name
