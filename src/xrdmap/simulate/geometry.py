"""Beamline geometry as pyFAI sees it, and the detector's defective pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import fabio
import numpy as np
import pyFAI
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from xrdmap.config import DetectorDefectsConfig, InstrumentConfig


def build_integrator(instrument: InstrumentConfig) -> AzimuthalIntegrator:
    """The reference geometry: the PONI at the detector centre, detector normal at 2theta.

    The detector is rotated about the vertical axis (``rot1``) so that its long side
    (487 px) runs along 2theta in the horizontal plane.
    """
    detector = pyFAI.detector_factory(instrument.detector)
    ny, nx = detector.shape
    return AzimuthalIntegrator(
        dist=instrument.distance_mm * 1e-3,
        poni1=ny * detector.pixel1 / 2,
        poni2=nx * detector.pixel2 / 2,
        rot1=np.radians(instrument.detector_tth_deg),
        rot2=0.0,
        rot3=0.0,
        detector=detector,
        wavelength=instrument.wavelength_a * 1e-10,
    )


def write_poni(ai: AzimuthalIntegrator, path: str | Path) -> Path:
    """Write the geometry as a PONI file with pyFAI's own writer."""
    path = Path(path)
    path.unlink(missing_ok=True)  # pyFAI appends to an existing file
    ai.write(str(path))
    return path


@dataclass(frozen=True)
class DetectorDefects:
    """Flat pixel indices of a detector's defective pixels."""

    dead: np.ndarray  #: read -1 (PILATUS bad-pixel flag); in the mask
    hot: np.ndarray  #: always overflow; in the mask
    flickering: np.ndarray  #: overflow in some frames; not in the mask

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """int8 mask, 1 = masked (pyFAI convention), of the listed bad pixels."""
        mask = np.zeros(int(np.prod(shape)), dtype=np.int8)
        mask[self.dead] = 1
        mask[self.hot] = 1
        return mask.reshape(shape)


def detector_defects(cfg: DetectorDefectsConfig, shape: tuple[int, int]) -> DetectorDefects:
    """The detector's bad pixels, fixed by its serial seed (not by the scan seed)."""
    rng = np.random.default_rng(cfg.serial_seed)
    n = cfg.dead_pixels + cfg.hot_pixels + cfg.flickering_hot_pixels
    idx = rng.choice(int(np.prod(shape)), size=n, replace=False)
    return DetectorDefects(
        dead=np.sort(idx[: cfg.dead_pixels]),
        hot=np.sort(idx[cfg.dead_pixels : cfg.dead_pixels + cfg.hot_pixels]),
        flickering=np.sort(idx[cfg.dead_pixels + cfg.hot_pixels :]),
    )


def write_mask(mask: np.ndarray, path: str | Path) -> Path:
    """Write a pyFAI mask (1 = masked) as EDF with fabio."""
    path = Path(path)
    fabio.edfimage.EdfImage(data=mask.astype(np.int8)).write(str(path))
    return path
