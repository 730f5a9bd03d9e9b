"""Ground truth: what an expert sees in each point's pattern -> the nine labels.

The rule (also in the README and in each truth folder's README):

- Fe3O4, alpha-FeOOH, gamma-FeOOH, Fe3C, Other (akaganeite, ferrihydrite or hematite): the phase
  is seen, i.e. somewhere on the detector its noise-free 1D contribution (texture
  included) rises at least ``min_peak_to_background`` above everything else there
  (the other phases, resin, air scatter and Fe fluorescence) and at least five
  counting-noise standard deviations of a 0.1 deg bin of the integrated pattern.
- Fe(BCC), Fe(FCC): at least one grain of that phase puts a reflection on the
  detector (coarse grains: present but unseen phases are not labeled).
- Fe without peaks: steel (ferrite + austenite + cementite) fills at least
  ``steel_min_fraction`` of the beam and neither Fe(BCC) nor Fe(FCC) shows a reflection.
- resin only: resin fills at least ``resin_min_fraction`` of the beam and no other
  class is present.
"""

from __future__ import annotations

import numpy as np

from xrdmap.classes import CLASS_NAMES
from xrdmap.config import LabelRulesConfig, PhasesConfig
from xrdmap.simulate.specimen import SpecimenMap

STEEL_PHASES = ("ferrite", "austenite", "cementite")


def labels_from_specimen(
    spec: SpecimenMap, visible: np.ndarray, phases: PhasesConfig, rules: LabelRulesConfig
) -> np.ndarray:
    """(n, 9) uint8 labels in :data:`CLASS_NAMES` order.

    ``visible`` is (n, n_phases) bool: which powder phases are seen at each point.
    """
    n = spec.fractions.shape[0]
    col = {name: i for i, name in enumerate(spec.columns)}
    labels = np.zeros((n, len(CLASS_NAMES)), dtype=np.uint8)
    out = {name: i for i, name in enumerate(CLASS_NAMES)}

    for label in ("Fe3O4", "alpha-FeOOH", "gamma-FeOOH", "Fe3C", "Other"):
        idx = [col[p] for p, cfg in phases.phases.items() if cfg.label == label]
        labels[:, out[label]] = visible[:, idx].any(axis=1)
    spots = {name: spec.spots[:, k] for k, name in enumerate(spec.coarse_names)}
    for name, cfg in phases.phases.items():
        if name in spots and cfg.label is not None:
            labels[:, out[cfg.label]] = spots[name] > 0
    steel = spec.fractions[:, [col[p] for p in STEEL_PHASES]].sum(axis=1)
    fe_seen = labels[:, out["Fe(BCC)"]] | labels[:, out["Fe(FCC)"]]
    labels[:, out["Fe without peaks"]] = (steel >= rules.steel_min_fraction) & (fe_seen == 0)
    anything = labels.any(axis=1)
    labels[:, out["resin only"]] = (spec.fractions[:, col["resin"]] >= rules.resin_min_fraction) & (
        ~anything
    )
    return labels
