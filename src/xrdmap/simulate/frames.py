"""The 2D forward model: a point's phase fractions -> one PILATUS frame of counts.

The powder part of a frame is a 1D profile I(2theta) mapped onto every pixel through
pyFAI's own geometry arrays (2theta at pixel centres, solid angle, polarization), i.e.
what :meth:`pyFAI.AzimuthalIntegrator.calcfrom1d` does, with the pixel -> grid
interpolation precomputed once. Coarse grains add spots on their rings; Fe fluorescence
is isotropic (solid angle only, no polarization). Counting noise is Poisson; dead, hot
and overflowing pixels read what a PILATUS writes (-1 and the count cutoff).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from xrdmap.config import InstrumentConfig, PhasesConfig, SimulationConfig
from xrdmap.line_profiles import epoxy_halo
from xrdmap.phases import ReferenceLines
from xrdmap.simulate.geometry import DetectorDefects
from xrdmap.simulate.profiles import PhaseProfiles, air_scatter, fine_grid, phase_profiles

#: Bin width and significance of the "an expert sees it" rule (ground truth).
VISIBILITY_BIN_DEG = 0.1
VISIBILITY_SIGMAS = 5.0
#: How far (in FWHM) a coarse-grain ring's pixel set reaches either side of the line.
RING_HALF_WIDTH_FWHM = 4.0


@dataclass(frozen=True)
class DetectorMaps:
    """Per-pixel geometry, flat arrays of the detector's pixels."""

    shape: tuple[int, int]
    tth_deg: np.ndarray
    chi_deg: np.ndarray
    solid_angle: np.ndarray  #: relative to the PONI pixel, pyFAI's convention
    polarization: np.ndarray


def detector_maps(ai: AzimuthalIntegrator, polarization_factor: float) -> DetectorMaps:
    """Per-pixel 2theta, chi, solid angle and polarization of the detector."""
    shape = tuple(ai.detector.shape)
    return DetectorMaps(
        shape=shape,
        tth_deg=ai.center_array(shape, unit="2th_deg").ravel(),
        chi_deg=ai.center_array(shape, unit="chi_deg").ravel(),
        solid_angle=ai.solidAngleArray(shape).ravel(),
        polarization=ai.polarization(shape, factor=polarization_factor).ravel(),
    )


@dataclass(frozen=True)
class RingPixels:
    """The pixels near one coarse-grain line: where its spots can land."""

    idx: np.ndarray
    dtth_deg: np.ndarray
    chi_deg: np.ndarray
    chi_range: tuple[float, float]
    fwhm_deg: float
    weight: float  #: relative intensity of the line within its phase


@dataclass(frozen=True)
class PointState:
    """What the simulator knows about one scan point (all drawn by the specimen model).

    ``fractions`` holds one volume fraction per phase of ``FrameSimulator.phase_names``
    plus resin last; ``spots`` holds, per coarse phase, the number of grains in
    diffraction condition on the detector; ``fe_signal`` scales the Fe fluorescence;
    ``texture_r`` holds one March-Dollase parameter per phase (1 = no preferred
    orientation; used by textured phases only).
    """

    fractions: np.ndarray
    spots: np.ndarray
    fe_signal: float
    texture_r: np.ndarray


class FrameSimulator:
    """Renders frames for one geometry; build once per process and reuse."""

    def __init__(
        self,
        ai: AzimuthalIntegrator,
        instrument: InstrumentConfig,
        phases: PhasesConfig,
        sim: SimulationConfig,
        lines: dict[str, ReferenceLines],
        defects: DetectorDefects,
    ) -> None:
        self.instrument = instrument
        self.intensity = sim.intensity
        self.defects = defects
        self.flicker_probability = sim.detector_defects.flicker_probability
        self.maps = detector_maps(ai, instrument.polarization_factor)
        wl = instrument.wavelength_a
        lo, hi = float(self.maps.tth_deg.min()), float(self.maps.tth_deg.max())
        self.grid = fine_grid((np.floor(lo) - 1, np.ceil(hi) + 1))
        step = self.grid[1] - self.grid[0]
        pos = (self.maps.tth_deg - self.grid[0]) / step
        self._i0 = np.floor(pos).astype(np.intp)
        self._w1 = (pos - self._i0).astype(np.float64)
        self._sa_pol = self.maps.solid_angle * self.maps.polarization
        self._on_detector = (self.grid >= lo) & (self.grid <= hi)
        # pixels averaged into a 0.1 deg bin of the integrated pattern, per grid point
        per_step = np.bincount(self._i0, minlength=self.grid.size).astype(float)
        window = round(VISIBILITY_BIN_DEG / step)
        self._pixels_per_bin = np.convolve(per_step, np.ones(window), mode="same")
        self.phase_names: tuple[str, ...] = tuple(phases.phases)
        self.coarse_names: tuple[str, ...] = tuple(
            n for n, p in phases.phases.items() if p.grains == "coarse"
        )
        self.powder: dict[str, PhaseProfiles] = {}
        self.rings: dict[str, list[RingPixels]] = {}
        for name, ph in phases.phases.items():
            prof = phase_profiles(
                lines[name],
                self.grid,
                size_nm=ph.crystallite_size_nm,
                resolution=sim.resolution,
                wavelength_a=wl,
                textured=ph.texture_axis_hkl is not None,
            )
            if ph.grains == "powder":
                self.powder[name] = prof
            else:
                self.rings[name] = self._ring_pixels(lines[name], prof)
        self.halo = sim.intensity.resin_hump_counts * epoxy_halo(self.grid, wl)
        self.air = air_scatter(self.grid, sim.intensity)
        self.fe_per_a3 = {n: lines[n].fe_per_a3 for n in self.phase_names}

    def _ring_pixels(self, lines: ReferenceLines, prof: PhaseProfiles) -> list[RingPixels]:
        rings = []
        total = lines.intensity.sum()
        for tth, fwhm, inten in zip(lines.tth_deg, prof.fwhm_deg, lines.intensity, strict=True):
            near = np.abs(self.maps.tth_deg - tth) < RING_HALF_WIDTH_FWHM * fwhm
            if not near.any():
                continue
            idx = np.flatnonzero(near)
            chi = self.maps.chi_deg[idx]
            rings.append(
                RingPixels(
                    idx=idx,
                    dtth_deg=self.maps.tth_deg[idx] - tth,
                    chi_deg=chi,
                    chi_range=(float(chi.min()), float(chi.max())),
                    fwhm_deg=float(fwhm),
                    weight=float(inten / total),
                )
            )
        return rings

    def phase_profiles(self, fractions: np.ndarray, texture_r: np.ndarray) -> dict[str, np.ndarray]:
        """Each powder phase's 1D contribution on the fine grid (counts/px at the PONI)."""
        scale = self.intensity.diffraction_counts
        out = {}
        for i, name in enumerate(self.phase_names):
            prof = self.powder.get(name)
            if prof is not None and fractions[i] > 0:
                md = prof.march_dollase(float(texture_r[i]))
                out[name] = scale * fractions[i] * (md @ prof.lines)
        return out

    def powder_profile(self, fractions: np.ndarray, texture_r: np.ndarray) -> np.ndarray:
        """The 1D profile (counts/px at the PONI, before polarization) of a point."""
        profile = self.air + fractions[-1] * self.halo
        for contribution in self.phase_profiles(fractions, texture_r).values():
            profile = profile + contribution
        return profile

    def visible_phases(
        self, fractions: np.ndarray, texture_r: np.ndarray, fe_signal: float, min_ratio: float
    ) -> set[str]:
        """Powder phases an expert sees in the integrated pattern: somewhere on the
        detector the phase's contribution stands at least ``min_ratio`` above
        everything else there (Fe fluorescence included) and at least
        :data:`VISIBILITY_SIGMAS` counting-noise standard deviations of a 0.1 deg bin."""
        contributions = self.phase_profiles(fractions, texture_r)
        on_detector = self._on_detector
        total = self.air + fractions[-1] * self.halo
        total = total + self.intensity.fluorescence_counts * fe_signal
        for c in contributions.values():
            total = total + c
        sigma = np.sqrt(total / np.maximum(self._pixels_per_bin, 1.0))
        visible = set()
        for name, c in contributions.items():
            rest = total - c
            seen = (c >= min_ratio * rest) & (c >= VISIBILITY_SIGMAS * sigma) & on_detector
            if seen.any():
                visible.add(name)
        return visible

    def map_profile(self, profile: np.ndarray) -> np.ndarray:
        """Map a 1D profile on the fine grid onto the detector pixels (flat)."""
        return profile[self._i0] * (1 - self._w1) + profile[self._i0 + 1] * self._w1

    def expected_counts(self, point: PointState, rng: np.random.Generator | None) -> np.ndarray:
        """Noise-free expected counts per pixel, flat (n_pixels,)."""
        image = self.map_profile(self.powder_profile(point.fractions, point.texture_r))
        image *= self._sa_pol
        image += self.intensity.fluorescence_counts * point.fe_signal * self.maps.solid_angle
        for k, name in enumerate(self.coarse_names):
            for _ in range(int(point.spots[k])):
                self._add_spot(image, self.rings[name], rng or np.random.default_rng(0))
        return image

    def _add_spot(self, image: np.ndarray, rings: list[RingPixels], rng) -> None:
        weights = np.array([r.weight for r in rings])
        ring = rings[rng.choice(len(rings), p=weights / weights.sum())]
        chi0 = rng.uniform(*ring.chi_range)
        dtth0 = rng.normal(0.0, 0.15 * ring.fwhm_deg)  # grain-to-grain strain
        sig_t = ring.fwhm_deg / 2.3548
        sig_c = self.intensity.spot_chi_fwhm_deg / 2.3548
        g = np.exp(
            -0.5 * ((ring.dtth_deg - dtth0) / sig_t) ** 2
            - 0.5 * ((ring.chi_deg - chi0) / sig_c) ** 2
        )
        total = g.sum()
        if total <= 0:
            return
        counts = self.intensity.spot_counts_median * np.exp(
            rng.normal(0.0, self.intensity.spot_counts_log_sigma)
        )
        image[ring.idx] += counts * g / total

    def detector_readout(self, expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Poisson counting, overflow and bad pixels as a PILATUS writes them."""
        cutoff = self.instrument.count_cutoff
        counts = rng.poisson(np.minimum(expected, 4.0 * cutoff))
        frame = np.minimum(counts, cutoff).astype(np.int32)
        frame[self.defects.dead] = -1
        frame[self.defects.hot] = cutoff
        flicker = self.defects.flickering[
            rng.random(self.defects.flickering.size) < self.flicker_probability
        ]
        frame[flicker] = cutoff
        return frame.reshape(self.maps.shape)

    def render(self, point: PointState, rng: np.random.Generator) -> np.ndarray:
        """One frame, (ny, nx) int32 counts."""
        return self.detector_readout(self.expected_counts(point, rng), rng)
