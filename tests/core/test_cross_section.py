"""Layers of a cross-section from rust/steel maps, and the protective ability index."""

import numpy as np
import pytest

from xrdmap.cross_section import alpha_gamma_star, column_layers, crack_robust_top


def test_top_interface_and_inner_outer_split_per_column():
    rows, cols = 20, 3
    rust = np.zeros((rows, cols), bool)
    steel = np.zeros((rows, cols), bool)
    comp = np.full((rows, cols, 2), np.nan)
    rust[4:14] = True
    steel[14:] = True
    comp[4:9] = [0.9, 0.1]  # outer: lepidocrocite-rich
    comp[9:14] = [0.2, 0.8]  # inner: goethite-rich
    rust[1, 0] = True  # a lone dust grain in the resin is not the rust surface
    rust[8, 1] = False  # a pore inside the rust does not end it
    steel[16, 2] = False  # nor does a steel point without fluorescence end the steel
    layers = column_layers(rust, steel, comp)
    assert list(layers.top) == [4, 4, 4]
    assert list(layers.interface) == [14, 14, 14]
    assert list(layers.split) == [9, 9, 9]


def test_no_rust_no_layers():
    rust = np.zeros((10, 2), bool)
    steel = np.zeros((10, 2), bool)
    steel[6:] = True
    layers = column_layers(rust, steel, np.full((10, 2, 1), np.nan))
    assert list(layers.top) == [-1, -1] and list(layers.interface) == [6, 6]


def test_alpha_gamma_star_by_mass():
    mass = {
        "goethite": np.array([2.0, 1.0]),
        "lepidocrocite": np.array([1.0]),
        "akaganeite": np.array([0.5]),
        "magnetite": np.array([0.5, 1.0]),
    }
    assert alpha_gamma_star(mass) == pytest.approx(3.0 / 3.0)
    assert np.isnan(alpha_gamma_star({"goethite": np.array([1.0])}))


def test_a_crack_from_the_surface_does_not_thin_the_rust():
    top = np.array([10, 11, 30, 10, 9, -1, 10])
    assert list(crack_robust_top(top)) == [10, 11, 10, 10, 9, -1, 10]
