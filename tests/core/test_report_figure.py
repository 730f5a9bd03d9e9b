"""The beamtime report's figure: every sample's alpha/gamma* inside the axes, labels apart."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from xrdmap.beamtime_report import report_figure


def test_every_alpha_gamma_star_point_is_inside_the_axis_with_room():
    table = pd.DataFrame(
        {
            "sample": ["S01", "S02", "S03"],
            "thickness_um_mean": [60.0, 120.0, 150.0],
            "thickness_um_sd": [5.0, 9.0, 12.0],
            "thickness_um_min": [50.0, 100.0, 130.0],
            "thickness_um_max": [70.0, 140.0, 170.0],
            "inner_um_mean": [20.0, 50.0, 90.0],
            "wt_goethite": [0.2, 0.3, 0.6],
            "wt_lepidocrocite": [0.8, 0.6, 0.4],
            "alpha_gamma_star": [0.2, 0.9, 1.28],
            "alpha_gamma_star_sigma": [0.01, 0.02, 0.05],
            "alpha_gamma_star_inner": [0.28, 1.15, 1.36],
            "alpha_gamma_star_outer": [0.16, 0.75, 1.21],
        }
    )
    figure = report_figure(table, "test")
    figure.canvas.draw()
    index_axes = figure.axes[2]
    low, high = index_axes.get_ylim()
    values = table.filter(like="alpha_gamma_star_").drop(columns="alpha_gamma_star_sigma")
    # A marker 0.11 decade below the top was cut at the figure's size: ask for 0.15.
    assert np.log10(high / values.to_numpy().max()) > 0.15
    assert np.log10(values.to_numpy().min() / low) > 0.15
    labels = [t.get_text() for t in index_axes.get_yticklabels(minor=True) if t.get_text()]
    assert "0.9" not in labels  # it overlapped the 1 beside it
